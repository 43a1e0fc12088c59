//! Process memory from procfs: RSS and peak RSS (`/proc/self/status`), PSS
//! (`/proc/self/smaps_rollup`). Buffers are reused, so a sample allocates nothing.
//!
//! After each read the peak (VmHWM) is reset through `/proc/self/clear_refs`, so each
//! row's peak is the highest RSS since the previous boundary: the transient peak of the
//! phase that just ended, which boundary samples alone would miss. Where the kernel
//! refuses the reset, the peak is the process's lifetime peak.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};

use super::Source;
use crate::timeline::Row;

/// Reads `/proc/self/status` and, if enabled, `/proc/self/smaps_rollup`.
pub struct ProcessSource {
    buf: String,
    pss: bool,
    clear_refs: Option<File>,
}

impl ProcessSource {
    /// `pss`: also read PSS at boundaries other than episode and triplet ends (it costs a
    /// walk of the page tables).
    pub fn new(pss: bool) -> Self {
        let clear_refs = OpenOptions::new().write(true).open("/proc/self/clear_refs").ok();
        ProcessSource { buf: String::with_capacity(4096), pss, clear_refs }
    }

    fn read(&mut self, path: &str) -> Option<&str> {
        self.buf.clear();
        File::open(path).ok()?.read_to_string(&mut self.buf).ok()?;
        Some(&self.buf)
    }
}

impl Source for ProcessSource {
    fn sample(&mut self, row: &mut Row) {
        if let Some(text) = self.read("/proc/self/status") {
            let (rss, hwm) = parse_status(text);
            row.rss_bytes = rss;
            row.peak_rss_bytes = hwm;
        }
        // "5" resets the peak RSS counter (Linux >= 4.0); on failure keep the lifetime peak.
        if let Some(f) = &mut self.clear_refs {
            if f.write_all(b"5").is_err() {
                self.clear_refs = None;
            }
        }
        // PSS walks the page tables (~200 µs here): read it at the rarer boundaries only,
        // keeping the per-episode cost low.
        let frequent = matches!(row.phase.as_str(), "episode_end" | "triplet_end");
        if self.pss && !frequent {
            row.pss_bytes = self.read("/proc/self/smaps_rollup").and_then(parse_smaps_rollup_pss);
        }
    }
}

/// The value in bytes of a `Key:   123 kB` line (/proc's status, smaps_rollup, meminfo).
pub(crate) fn kb_field(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    let value = line[key.len()..].trim_start_matches(':').trim();
    let number = value.strip_suffix("kB").unwrap_or(value).trim();
    number.parse::<u64>().ok().map(|kb| kb * 1024)
}

/// (VmRSS, VmHWM) in bytes from the text of `/proc/<pid>/status`.
pub fn parse_status(text: &str) -> (Option<u64>, Option<u64>) {
    (kb_field(text, "VmRSS:"), kb_field(text, "VmHWM:"))
}

/// Pss in bytes from the text of `/proc/<pid>/smaps_rollup`.
pub fn parse_smaps_rollup_pss(text: &str) -> Option<u64> {
    kb_field(text, "Pss:")
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tdiagnose\nVmPeak:\t 2000 kB\nVmHWM:\t    1500 kB\nVmRSS:\t    1200 kB\nRssAnon:\t 1000 kB\n";
    const ROLLUP: &str = "5581e000-7ffd [rollup]\nRss:                2048 kB\nPss:                1024 kB\nPss_Anon:            512 kB\n";

    #[test]
    fn parses_status() {
        assert_eq!(parse_status(STATUS), (Some(1200 * 1024), Some(1500 * 1024)));
        assert_eq!(parse_status("Name: x\n"), (None, None));
    }

    #[test]
    fn parses_rollup_pss_not_pss_anon() {
        assert_eq!(parse_smaps_rollup_pss(ROLLUP), Some(1024 * 1024));
        assert_eq!(parse_smaps_rollup_pss("garbage"), None);
    }

    /// 64 MiB of touched anonymous memory, mapped outside the allocator so that unmapping
    /// returns it to the OS at once.
    fn touched_mapping(len: usize) -> *mut libc::c_void {
        unsafe {
            let p = libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0);
            assert_ne!(p, libc::MAP_FAILED);
            std::ptr::write_bytes(p as *mut u8, 1, len);
            p
        }
    }

    #[test]
    fn live_rss_rises_and_peak_resets_per_boundary() {
        const LEN: usize = 64 << 20;
        const SLACK: u64 = 16 << 20; // other test threads allocate too
        let mut src = ProcessSource::new(true);
        let mut before = Row::default();
        src.sample(&mut before);
        let p = touched_mapping(LEN);
        let mut during = Row::default();
        src.sample(&mut during);
        let grew = during.rss_bytes.unwrap() as i64 - before.rss_bytes.unwrap() as i64;
        assert!(grew >= (LEN as u64 - SLACK) as i64, "RSS grew by only {grew} bytes");
        assert!(during.pss_bytes.is_some());
        unsafe { libc::munmap(p, LEN) };
        let mut after = Row::default();
        src.sample(&mut after);
        // The peak since the previous boundary still shows the mapping just released...
        assert!(after.peak_rss_bytes.unwrap() + SLACK >= during.rss_bytes.unwrap(), "{after:?}");
        assert!(after.rss_bytes.unwrap() + LEN as u64 - SLACK <= during.rss_bytes.unwrap(), "{after:?}");
        // ...and the boundary reset it (where the kernel allows).
        let mut later = Row::default();
        src.sample(&mut later);
        if src.clear_refs.is_some() {
            assert!(later.peak_rss_bytes.unwrap() + LEN as u64 - SLACK <= during.rss_bytes.unwrap(), "{later:?}");
        }
    }
}
