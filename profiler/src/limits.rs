//! How much memory this process may use: the smaller of the machine's MemTotal and the
//! cgroup's limit (v1 `memory.limit_in_bytes` or v2 `memory.max`), for OOM projections.

use std::fs;

use crate::cgroup::UNLIMITED_V1;

/// A memory limit and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemLimit {
    /// The limit in bytes.
    pub bytes: u64,
    /// `meminfo`, `cgroup-v1` or `cgroup-v2`.
    pub source: &'static str,
}

/// The effective limit of the current process, if any can be read.
pub fn memory_limit() -> Option<MemLimit> {
    let total = fs::read_to_string("/proc/meminfo").ok().and_then(|t| parse_memtotal(&t));
    let cgroup = fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|text| cgroup_limit(&text, |p| fs::read_to_string(p).ok()));
    smallest(total.map(|b| MemLimit { bytes: b, source: "meminfo" }), cgroup)
}

fn smallest(a: Option<MemLimit>, b: Option<MemLimit>) -> Option<MemLimit> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.bytes < a.bytes { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// MemTotal in bytes from `/proc/meminfo`.
pub fn parse_memtotal(text: &str) -> Option<u64> {
    crate::source::kb_field(text, "MemTotal:")
}

/// The cgroup limit for the process whose `/proc/self/cgroup` is `cgroup_text`, reading
/// limit files through `read` (so tests can supply them).
pub fn cgroup_limit(cgroup_text: &str, read: impl Fn(&str) -> Option<String>) -> Option<MemLimit> {
    for line in cgroup_text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        if controllers.split(',').any(|c| c == "memory") {
            let file = format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes");
            let root = "/sys/fs/cgroup/memory/memory.limit_in_bytes";
            let value = read(&file).or_else(|| read(root))?;
            let bytes: u64 = value.trim().parse().ok()?;
            return (bytes < UNLIMITED_V1).then_some(MemLimit { bytes, source: "cgroup-v1" });
        }
        if controllers.is_empty() {
            let path = path.trim_end_matches('/');
            let value = read(&format!("/sys/fs/cgroup{path}/memory.max"))
                .or_else(|| read("/sys/fs/cgroup/memory.max"))?;
            let value = value.trim();
            if value == "max" {
                return None;
            }
            return value.parse().ok().map(|bytes| MemLimit { bytes, source: "cgroup-v2" });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memtotal() {
        assert_eq!(parse_memtotal("MemTotal:       24576000 kB\nMemFree: 1 kB\n"), Some(24576000 * 1024));
    }

    #[test]
    fn cgroup_v1_limit_and_unlimited() {
        let cg = "12:memory:/job/7\n11:cpu:/job/7\n";
        let lim = cgroup_limit(cg, |p| (p == "/sys/fs/cgroup/memory/job/7/memory.limit_in_bytes").then(|| "1073741824\n".into()));
        assert_eq!(lim, Some(MemLimit { bytes: 1 << 30, source: "cgroup-v1" }));
        let unl = cgroup_limit(cg, |_| Some("9223372036854771712\n".into()));
        assert_eq!(unl, None);
    }

    #[test]
    fn cgroup_v2_limit_and_max() {
        let cg = "0::/user.slice/run\n";
        let lim = cgroup_limit(cg, |p| (p == "/sys/fs/cgroup/user.slice/run/memory.max").then(|| "2147483648\n".into()));
        assert_eq!(lim, Some(MemLimit { bytes: 2 << 30, source: "cgroup-v2" }));
        assert_eq!(cgroup_limit(cg, |_| Some("max\n".into())), None);
    }

    #[test]
    fn smallest_wins() {
        let a = Some(MemLimit { bytes: 10, source: "meminfo" });
        let b = Some(MemLimit { bytes: 5, source: "cgroup-v2" });
        assert_eq!(smallest(a.clone(), b.clone()).unwrap().bytes, 5);
        assert_eq!(smallest(a, None).unwrap().bytes, 10);
        assert!(memory_limit().is_some());
    }
}
