//! The memory cgroup of a process: where it is, what it is charged, its limit and its OOM
//! kills, for cgroup v1 and v2. The OOM killer compares this charge against this limit,
//! which is why the out-of-memory projection reads it rather than any process's RSS.

use std::fs;
use std::path::{Path, PathBuf};

/// cgroup v1 writes "unlimited" as a huge page-aligned number; anything above this is no limit.
pub(crate) const UNLIMITED_V1: u64 = 1 << 60;

/// Which cgroup interface a folder speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CgroupVersion {
    /// The memory controller's own hierarchy (`memory.usage_in_bytes`, ...).
    V1,
    /// The unified hierarchy (`memory.current`, `memory.max`, ...).
    V2,
}

/// A memory cgroup folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryCgroup {
    /// The folder under /sys/fs/cgroup.
    pub dir: PathBuf,
    /// Its interface.
    pub version: CgroupVersion,
}

/// What a memory cgroup is charged, at one moment. Fields the kernel does not offer are `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CgroupReading {
    /// All memory charged, page cache included.
    pub usage: Option<u64>,
    /// The limit; `None` when unlimited.
    pub limit: Option<u64>,
    /// Usage minus inactive page cache.
    pub working_set: Option<u64>,
    /// Anonymous memory.
    pub anon: Option<u64>,
    /// Page cache.
    pub file: Option<u64>,
    /// Shared memory and tmpfs.
    pub shmem: Option<u64>,
    /// OOM kills so far.
    pub oom_kills: Option<u64>,
}

impl MemoryCgroup {
    /// The memory cgroup of `pid` (`None`: this process), if it can be found.
    pub fn of(pid: Option<u32>) -> Option<MemoryCgroup> {
        let file = match pid {
            Some(p) => format!("/proc/{p}/cgroup"),
            None => "/proc/self/cgroup".into(),
        };
        let text = fs::read_to_string(file).ok()?;
        locate(&text, |p| p.exists())
    }

    /// Read the cgroup's figures now.
    pub fn read(&self) -> CgroupReading {
        read_with(self, |name| fs::read_to_string(self.dir.join(name)).ok())
    }
}

/// The memory cgroup folder named in the text of `/proc/<pid>/cgroup`. `exists` checks
/// a folder (the test supplies its own); where the process's own folder is not visible
/// (a container shows its root), the hierarchy's root is used.
pub fn locate(cgroup_text: &str, exists: impl Fn(&Path) -> bool) -> Option<MemoryCgroup> {
    let mut v2 = None;
    for line in cgroup_text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let rel = path.trim_start_matches('/');
        if controllers.split(',').any(|c| c == "memory") {
            let root = Path::new("/sys/fs/cgroup/memory");
            let dir = if exists(&root.join(rel)) { root.join(rel) } else { root.to_path_buf() };
            return Some(MemoryCgroup { dir, version: CgroupVersion::V1 });
        }
        if controllers.is_empty() {
            let root = Path::new("/sys/fs/cgroup");
            // A hybrid system lists the unified hierarchy too; it has no memory.current there.
            if exists(&root.join(rel).join("memory.current")) {
                v2 = Some(MemoryCgroup { dir: root.join(rel), version: CgroupVersion::V2 });
            } else if exists(&root.join("memory.current")) {
                v2 = Some(MemoryCgroup { dir: root.to_path_buf(), version: CgroupVersion::V2 });
            }
        }
    }
    v2
}

/// Read a cgroup's files through `read` (file name → text).
pub fn read_with(cg: &MemoryCgroup, read: impl Fn(&str) -> Option<String>) -> CgroupReading {
    let number = |name: &str| read(name).and_then(|t| t.trim().parse::<u64>().ok());
    let stat = read("memory.stat").unwrap_or_default();
    let field = |key: &str| {
        stat.lines().find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == key).then(|| v.trim().parse::<u64>().ok()).flatten()
        })
    };
    let mut r = CgroupReading::default();
    let inactive_file;
    match cg.version {
        CgroupVersion::V1 => {
            r.usage = number("memory.usage_in_bytes");
            r.limit = number("memory.limit_in_bytes").filter(|&b| b < UNLIMITED_V1);
            // The hierarchical totals include child cgroups, as the charge does.
            r.anon = field("total_rss").or_else(|| field("rss"));
            r.file = field("total_cache").or_else(|| field("cache"));
            r.shmem = field("total_shmem").or_else(|| field("shmem"));
            inactive_file = field("total_inactive_file").or_else(|| field("inactive_file"));
            r.oom_kills = read("memory.oom_control").and_then(|t| {
                t.lines().find_map(|l| l.strip_prefix("oom_kill ").and_then(|v| v.trim().parse().ok()))
            });
        }
        CgroupVersion::V2 => {
            r.usage = number("memory.current");
            r.limit = number("memory.max"); // "max" does not parse: unlimited
            r.anon = field("anon");
            r.file = field("file");
            r.shmem = field("shmem");
            inactive_file = field("inactive_file");
            r.oom_kills = read("memory.events").and_then(|t| {
                t.lines().find_map(|l| l.strip_prefix("oom_kill ").and_then(|v| v.trim().parse().ok()))
            });
        }
    }
    r.working_set = r.usage.map(|u| u.saturating_sub(inactive_file.unwrap_or(0)));
    r
}

/// A memory cgroup made for one watched command, inside the watcher's own: the kernel then
/// counts the command's memory for us. Its anon + shmem is the sum of the tree's PSS of
/// anonymous and shared memory (each page charged once, to the cgroup that first touched
/// it), read in 0.1 ms where walking the page tables of a 9-process torch tree for the
/// same sum took 53 ms (docs/watch-overhead-bench.txt). Limits still act from above: the
/// parent's limit covers it (hierarchical accounting, always on in v2 and in v1 since
/// Linux 5.11; checked through `memory.use_hierarchy` before).
/// Removed when dropped, if empty by then.
#[derive(Debug)]
pub struct OwnCgroup {
    /// The cgroup made.
    pub cgroup: MemoryCgroup,
}

impl OwnCgroup {
    /// Make `name` under `parent`. Fails (with why) where this process may not, or where
    /// the parent's limit would not cover the child.
    pub fn create(parent: &MemoryCgroup, name: &str) -> Result<OwnCgroup, String> {
        let dir = parent.dir.join(name);
        if parent.version == CgroupVersion::V1 && fs::read_to_string(parent.dir.join("memory.use_hierarchy")).is_ok_and(|t| t.trim() == "0") {
            return Err(format!("{}: memory.use_hierarchy is 0, so its limit would not cover a child", parent.dir.display()));
        }
        fs::create_dir(&dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
        let own = OwnCgroup { cgroup: MemoryCgroup { dir, version: parent.version } };
        if parent.version == CgroupVersion::V2 && !own.cgroup.dir.join("memory.current").exists() {
            // The memory controller is not passed down: ask for it (refused while the parent
            // holds processes itself, v2's "no internal processes" rule).
            let _ = fs::write(parent.dir.join("cgroup.subtree_control"), "+memory");
            if !own.cgroup.dir.join("memory.current").exists() {
                return Err(format!("{}: the memory controller is not enabled for its children", parent.dir.display()));
            }
        }
        Ok(own)
    }

    /// The file a process writes "0" to, to move itself in.
    pub fn procs_file(&self) -> PathBuf {
        self.cgroup.dir.join("cgroup.procs")
    }

    /// Whether `pid` is in it (from /proc/<pid>/cgroup).
    pub fn holds(&self, pid: u32) -> bool {
        let Ok(text) = fs::read_to_string(format!("/proc/{pid}/cgroup")) else { return false };
        locate(&text, |p| p.exists()).is_some_and(|c| c == self.cgroup)
    }

    /// What its processes hold: anonymous plus shared memory (the PSS sum's counterpart).
    pub fn anon_and_shmem(&self) -> Option<u64> {
        // memory.stat alone: read at every sample, dense ones included.
        let r = read_with(&self.cgroup, |name| (name == "memory.stat").then(|| fs::read_to_string(self.cgroup.dir.join(name)).ok()).flatten());
        Some(r.anon? + r.shmem.unwrap_or(0))
    }
}

impl Drop for OwnCgroup {
    fn drop(&mut self) {
        // Fails while a process the command left behind still lives in it: it stays then.
        let _ = fs::remove_dir(&self.cgroup.dir);
    }
}

/// The machine's memory in use, MemTotal − MemAvailable, from the text of /proc/meminfo.
pub fn system_used(meminfo: &str) -> Option<u64> {
    let kb = |key| crate::source::kb_field(meminfo, key);
    Some(kb("MemTotal:")?.saturating_sub(kb("MemAvailable:")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_v1_and_v2() {
        let v1 = locate("4:memory:/job/7\n0::/\n", |_| true).unwrap();
        assert_eq!(v1, MemoryCgroup { dir: "/sys/fs/cgroup/memory/job/7".into(), version: CgroupVersion::V1 });
        let hidden = locate("4:memory:/job/7\n", |p| p == Path::new("/sys/fs/cgroup/memory")).unwrap();
        assert_eq!(hidden.dir, PathBuf::from("/sys/fs/cgroup/memory"));
        let v2 = locate("0::/user.slice/run\n", |p| p.ends_with("user.slice/run/memory.current")).unwrap();
        assert_eq!(v2, MemoryCgroup { dir: "/sys/fs/cgroup/user.slice/run".into(), version: CgroupVersion::V2 });
        assert_eq!(locate("0::/\n", |_| false), None);
    }

    #[test]
    fn reads_v1_files() {
        let cg = MemoryCgroup { dir: "/x".into(), version: CgroupVersion::V1 };
        let r = read_with(&cg, |name| match name {
            "memory.usage_in_bytes" => Some("1000\n".into()),
            "memory.limit_in_bytes" => Some("9223372036854771712\n".into()),
            "memory.stat" => Some("cache 5\nrss 6\ntotal_cache 300\ntotal_rss 600\ntotal_shmem 50\ntotal_inactive_file 200\n".into()),
            "memory.oom_control" => Some("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n".into()),
            _ => None,
        });
        assert_eq!(r, CgroupReading { usage: Some(1000), limit: None, working_set: Some(800), anon: Some(600), file: Some(300), shmem: Some(50), oom_kills: Some(2) });
    }

    #[test]
    fn reads_v2_files() {
        let cg = MemoryCgroup { dir: "/x".into(), version: CgroupVersion::V2 };
        let r = read_with(&cg, |name| match name {
            "memory.current" => Some("1000\n".into()),
            "memory.max" => Some("4096\n".into()),
            "memory.stat" => Some("anon 600\nfile 300\nshmem 40\ninactive_file 100\n".into()),
            "memory.events" => Some("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n".into()),
            _ => None,
        });
        assert_eq!(r, CgroupReading { usage: Some(1000), limit: Some(4096), working_set: Some(900), anon: Some(600), file: Some(300), shmem: Some(40), oom_kills: Some(1) });
        let unlimited = read_with(&cg, |n| (n == "memory.max").then(|| "max\n".into()));
        assert_eq!(unlimited.limit, None);
    }

    #[test]
    fn this_process_has_readable_figures() {
        assert!(system_used("MemTotal: 100 kB\nMemAvailable: 40 kB\n") == Some(60 * 1024));
        if let Some(cg) = MemoryCgroup::of(None) {
            assert!(cg.read().usage.is_some(), "{cg:?}");
        }
    }
}
