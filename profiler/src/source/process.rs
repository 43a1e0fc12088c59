//! Process memory from procfs: RSS and peak RSS (`/proc/self/status`), PSS
//! (`/proc/self/smaps_rollup`). Buffers are reused, so a sample allocates nothing.

use std::fs::File;
use std::io::Read;

use super::Source;
use crate::timeline::Row;

/// Reads `/proc/self/status` and, if enabled, `/proc/self/smaps_rollup`.
pub struct ProcessSource {
    buf: String,
    pss: bool,
}

impl ProcessSource {
    /// `pss`: also read PSS (costs a walk of the page tables; tens of µs).
    pub fn new(pss: bool) -> Self {
        ProcessSource { buf: String::with_capacity(4096), pss }
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
        if self.pss {
            row.pss_bytes = self.read("/proc/self/smaps_rollup").and_then(parse_smaps_rollup_pss);
        }
    }
}

/// The value in bytes of a `Key:   123 kB` line.
fn kb_field(text: &str, key: &str) -> Option<u64> {
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

    #[test]
    fn live_rss_rises_with_touched_memory() {
        let mut src = ProcessSource::new(true);
        let mut before = Row::default();
        src.sample(&mut before);
        let block = vec![1u8; 64 << 20];
        let mut during = Row::default();
        src.sample(&mut during);
        assert!(block.iter().step_by(4096).all(|&b| b == 1));
        let grew = during.rss_bytes.unwrap() - before.rss_bytes.unwrap();
        assert!(grew >= 60 << 20, "RSS grew by only {grew} bytes");
        assert!(during.peak_rss_bytes >= during.rss_bytes);
        assert!(during.pss_bytes.is_some());
    }
}
