//! The memory the kernel charges: the memory cgroup of the watched process (usage, limit,
//! working set, anon/file/shmem, OOM kills), the machine's memory in use, and `/dev/shm`.
//! Shared by `run` (its own cgroup) and `watch` (the child's).

use std::ffi::CString;

use super::Source;
use crate::cgroup::{system_used, MemoryCgroup};
use crate::timeline::Row;

/// Fills the cgroup, machine and /dev/shm columns.
pub struct SystemSource {
    cgroup: Option<MemoryCgroup>,
    /// Skip episode and triplet ends (memory.stat is a few dozen lines to parse).
    rare_only: bool,
}

impl SystemSource {
    /// Read `cgroup` (if found) at every boundary, or only at the rarer ones.
    pub fn new(cgroup: Option<MemoryCgroup>, rare_only: bool) -> Self {
        SystemSource { cgroup, rare_only }
    }
}

impl Source for SystemSource {
    fn sample(&mut self, row: &mut Row) {
        if self.rare_only && matches!(row.phase.as_str(), "episode_end" | "triplet_end") {
            return;
        }
        if let Some(cg) = &self.cgroup {
            let r = cg.read();
            row.cgroup_usage_bytes = r.usage;
            row.cgroup_limit_bytes = r.limit;
            row.cgroup_working_set_bytes = r.working_set;
            row.cgroup_anon_bytes = r.anon;
            row.cgroup_file_bytes = r.file;
            row.cgroup_shmem_bytes = r.shmem;
            row.cgroup_oom_kills = r.oom_kills;
        }
        row.system_used_bytes = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| system_used(&t));
        row.shm_used_bytes = used_bytes("/dev/shm");
    }
}

/// Bytes in use on the file system mounted at `path` (statvfs).
pub fn used_bytes(path: &str) -> Option<u64> {
    let c = CString::new(path).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and a zeroed out-struct of the right type.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some((st.f_blocks as u64).saturating_sub(st.f_bfree as u64) * st.f_frsize as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_shm_usage_follows_a_file() {
        let Some(before) = used_bytes("/dev/shm") else { return }; // no /dev/shm here
        let path = format!("/dev/shm/profiler-test-{}", std::process::id());
        std::fs::write(&path, vec![1u8; 8 << 20]).unwrap();
        let during = used_bytes("/dev/shm").unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(during >= before + (7 << 20), "{before} -> {during}");
    }

    #[test]
    fn fills_machine_columns() {
        let mut row = Row { phase: "epoch_end".into(), ..Row::default() };
        SystemSource::new(MemoryCgroup::of(None), true).sample(&mut row);
        assert!(row.system_used_bytes.unwrap() > 0);
        let mut frequent = Row { phase: "episode_end".into(), ..Row::default() };
        SystemSource::new(None, true).sample(&mut frequent);
        assert_eq!(frequent.system_used_bytes, None);
    }
}
