//! A process tree read from procfs: who is in it (the root and every descendant, found
//! through `/proc/<pid>/task/<tid>/children`, or a scan of /proc where the kernel lacks
//! that file), what role each plays, and what memory each holds (`smaps_rollup`).
//!
//! Roles: wrappers at the top of the tree (a shell running `train.sh`, `env`, `nohup`,
//! ...) are the *launcher*; the first process below them that is not a thin wrapper is
//! the *main* process (the trainer); its descendants are *workers* (DataLoader workers,
//! subprocesses).

use std::fs;

/// What a process does in the tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A wrapper above the main process (a shell, env, nohup, ...).
    Launcher,
    /// The trainer itself.
    Main,
    /// A descendant of the main process.
    Worker,
}

impl Role {
    /// The name written in `processes.csv`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Launcher => "launcher",
            Role::Main => "main",
            Role::Worker => "worker",
        }
    }
}

/// Commands that only start another: when one has a single child, the child is the job.
const WRAPPERS: &[&str] = &["sh", "bash", "dash", "zsh", "env", "nohup", "timeout", "time", "stdbuf", "setsid", "nice", "taskset", "numactl", "uv", "conda", "chrt", "ionice", "xargs", "script"];

/// Memory of one process from `smaps_rollup`, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcMem {
    /// Resident set size.
    pub rss: u64,
    /// Proportional set size of the memory it owns (anonymous and shared memory: Pss_Anon
    /// + Pss_Shmem), shared pages split among their sharers. File pages (the libraries'
    /// code, files read) are left out: their share moves whenever any other process on
    /// the machine maps the same library (another torch job), which is not this tree's
    /// growth. Plain Pss where the kernel has no Pss_Anon (before 5.12).
    pub pss: u64,
    /// Unique set size: Private_Dirty (pages only this process maps and has written:
    /// its heap, and shared pages it has copied); Private_Clean + Private_Dirty where the
    /// kernel has no Pss_Anon.
    pub uss: u64,
    /// Swapped out.
    pub swap: u64,
}

/// One process of the tree at one sample.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proc {
    /// Process id.
    pub pid: u32,
    /// Parent's id.
    pub ppid: u32,
    /// Its role.
    pub role: Role,
    /// The command name (`comm`, at most 15 bytes): never the command line, which can
    /// hold tokens and passwords.
    pub name: String,
    /// Its memory; `None` if it vanished or turned zombie while being read.
    pub mem: Option<ProcMem>,
    /// What `mem` holds: with [`Detail::Rss`], only its `rss` is measured.
    pub detail: Detail,
    /// Its distributed rank: `RANK` (else `LOCAL_RANK`) in its environment, where
    /// readable (that number is the only value ever taken from an environment); else
    /// from its place under a rank launcher or its parent's ([`fill_ranks`]).
    pub rank: Option<u32>,
}

/// The rank in the text of `/proc/<pid>/environ` (NUL-separated): RANK, else LOCAL_RANK.
pub fn parse_rank(environ: &[u8]) -> Option<u32> {
    let find = |key: &[u8]| {
        environ.split(|b| *b == 0).find_map(|kv| kv.strip_prefix(key)).and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
    };
    find(b"RANK=").or_else(|| find(b"LOCAL_RANK="))
}

/// (ppid, comm) of a live process, from `/proc/<pid>/stat` (comm may hold spaces and
/// parens); `None` for a zombie, which holds no memory and has ended.
pub fn parse_stat(text: &str) -> Option<(u32, String)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let name = text.get(open + 1..close)?.to_string();
    let mut rest = text.get(close + 1..)?.split_whitespace();
    if matches!(rest.next()?, "Z" | "X" | "x") {
        return None;
    }
    let ppid = rest.next()?.parse().ok()?;
    Some((ppid, name))
}

/// Memory from the text of `/proc/<pid>/smaps_rollup` (see [`ProcMem`] for what each
/// field takes).
pub fn parse_rollup(text: &str) -> Option<ProcMem> {
    let mut m = ProcMem::default();
    let (mut seen, mut pss, mut anon, mut shmem, mut clean) = (false, 0, None, 0, 0);
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else { continue };
        let Some(kb) = value.trim().strip_suffix("kB").and_then(|v| v.trim().parse::<u64>().ok()) else { continue };
        let bytes = kb * 1024;
        match key {
            "Rss" => {
                m.rss = bytes;
                seen = true;
            }
            "Pss" => pss = bytes,
            "Pss_Anon" => anon = Some(bytes),
            "Pss_Shmem" => shmem = bytes,
            "Private_Clean" => clean = bytes,
            "Private_Dirty" => m.uss = bytes,
            "Swap" => m.swap = bytes,
            _ => {}
        }
    }
    match anon {
        Some(anon) => m.pss = anon + shmem,
        None => {
            m.pss = pss;
            m.uss += clean;
        }
    }
    seen.then_some(m)
}

/// The children of `pid`, through every thread's `children` file; `None` if the kernel
/// has no such file (CONFIG_PROC_CHILDREN off) or the process is gone.
fn children(pid: u32) -> Option<Vec<u32>> {
    let tasks = fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut out = Vec::new();
    for task in tasks.flatten() {
        let text = fs::read_to_string(task.path().join("children")).ok()?;
        out.extend(text.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
    }
    Some(out)
}

/// Every (pid, ppid) on the machine, for kernels without `children` files.
fn all_parents() -> Vec<(u32, u32)> {
    let Ok(dir) = fs::read_dir("/proc") else { return vec![] };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?.0)))
        .collect()
}

/// The root and its descendants as (pid, ppid), parents before children. The watcher
/// itself, and whatever it starts, is never one of them: `diagnose watch --pid` started
/// by the watched process (`diagnose_memory.watching()`, the pytest plugin) is its child.
pub fn members(root: u32) -> Vec<(u32, u32)> {
    let own = std::process::id();
    let root_ppid = fs::read_to_string(format!("/proc/{root}/stat")).ok().and_then(|t| parse_stat(&t)).map_or(0, |s| s.0);
    let mut out = vec![(root, root_ppid)];
    let mut i = 0;
    let mut scanned: Option<Vec<(u32, u32)>> = None;
    while i < out.len() {
        let pid = out[i].0;
        let kids = match children(pid) {
            Some(k) => k,
            None => {
                let all = scanned.get_or_insert_with(all_parents);
                all.iter().filter(|(_, pp)| *pp == pid).map(|(p, _)| *p).collect()
            }
        };
        out.extend(kids.into_iter().filter(|k| *k != own && !out.iter().any(|(p, _)| p == k)).map(|k| (k, pid)).collect::<Vec<_>>());
        i += 1;
    }
    out
}

/// Assign roles: wrappers with exactly one child are launchers, down to the first process
/// that is not; that one is the main process; everything below it is a worker.
pub fn assign_roles(root: u32, procs: &mut [Proc]) {
    let mut main = root;
    loop {
        let Some(p) = procs.iter().find(|p| p.pid == main) else { break };
        let kids: Vec<u32> = procs.iter().filter(|c| c.ppid == main && c.pid != main).map(|c| c.pid).collect();
        if kids.len() == 1 && WRAPPERS.contains(&p.name.as_str()) {
            main = kids[0];
        } else {
            break;
        }
    }
    // Parents come before children in `procs`, so one pass sees each parent's role first.
    for i in 0..procs.len() {
        let role = if procs[i].pid == main {
            Role::Main
        } else if procs[i].pid == root {
            Role::Launcher
        } else {
            let parent = procs[i].ppid;
            match procs[..i].iter().find(|p| p.pid == parent).map(|p| p.role) {
                Some(Role::Main) | Some(Role::Worker) => Role::Worker,
                _ => Role::Launcher,
            }
        };
        procs[i].role = role;
    }
}

/// Launchers that start one process per rank (`python -m torch.distributed.run` names
/// itself `pt_elastic`; MPI's and Slurm's starters): their direct children are the ranks.
const RANK_LAUNCHERS: &[&str] = &["pt_elastic", "torchrun", "mpirun", "mpiexec", "orterun", "prterun", "hydra_pmi_proxy", "srun", "deepspeed"];

/// Ranks for processes whose environment said none. Where a rank launcher's direct
/// children carry no `RANK` (environ unreadable, or a launcher that passes the rank
/// otherwise), they are its ranks in the order they were started (by pid); and every
/// process without a rank takes its parent's, so a rank's DataLoader workers are counted
/// with it. Ranks read from an environment are never changed.
pub fn fill_ranks(procs: &mut [Proc]) {
    let launchers: Vec<u32> = procs.iter().filter(|p| RANK_LAUNCHERS.contains(&p.name.as_str())).map(|p| p.pid).collect();
    for launcher in launchers {
        let mut kids: Vec<usize> = (0..procs.len()).filter(|&i| procs[i].ppid == launcher && procs[i].pid != launcher).collect();
        if kids.iter().any(|&i| procs[i].rank.is_some()) {
            continue;
        }
        kids.sort_by_key(|&i| procs[i].pid);
        for (rank, i) in kids.into_iter().enumerate() {
            procs[i].rank = Some(rank as u32);
        }
    }
    // Parents come before children in `procs`.
    for i in 0..procs.len() {
        if procs[i].rank.is_none() {
            let parent = procs[i].ppid;
            procs[i].rank = procs[..i].iter().find(|p| p.pid == parent).and_then(|p| p.rank);
        }
    }
}

/// How much to read of each process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detail {
    /// RSS alone, from `statm`: microseconds a process.
    Rss,
    /// RSS, PSS, USS and swap from `smaps_rollup`, which walks the page tables: about
    /// 10 ms for a Python process with torch loaded, here.
    Full,
}

/// RSS in bytes from the text of `/proc/<pid>/statm` (pages).
pub fn parse_statm_rss(text: &str) -> Option<u64> {
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    Some(pages * page)
}

/// The rank the injected helper wrote for `pid` (`rank-<pid>` in its folder: the process
/// called `torch.distributed.init_process_group`, or torchrun gave it RANK).
pub fn helper_rank(dir: &std::path::Path, pid: u32) -> Option<u32> {
    fs::read_to_string(dir.join(format!("rank-{pid}"))).ok()?.trim().parse().ok()
}

/// Read the whole tree under `root` now, to `detail`. Empty if the root is gone.
pub fn read_tree(root: u32, detail: Detail) -> Vec<Proc> {
    read_tree_with(root, detail, None, &mut RankCache::default())
}

/// The ranks found so far, per pid: a process's environment is read once per program it
/// runs (`env RANK=0 python ...` execs python in the same pid, with a new environment:
/// the name read from `stat` tells), and the rank the helper reported is kept once it
/// appeared. Read at every sample, `environ` was a tenth of the watcher's own CPU.
#[derive(Debug, Default)]
pub struct RankCache {
    environ: std::collections::HashMap<u32, (String, Option<u32>)>,
    helper: std::collections::HashMap<u32, u32>,
}

impl RankCache {
    fn rank(&mut self, pid: u32, name: &str, rank_dir: Option<&std::path::Path>) -> Option<u32> {
        if let Some(r) = self.helper.get(&pid) {
            return Some(*r);
        }
        if let Some(r) = rank_dir.and_then(|d| helper_rank(d, pid)) {
            self.helper.insert(pid, r);
            return Some(r);
        }
        match self.environ.get(&pid) {
            Some((seen, rank)) if seen == name => *rank,
            _ => {
                let rank = fs::read(format!("/proc/{pid}/environ")).ok().and_then(|e| parse_rank(&e));
                self.environ.insert(pid, (name.to_string(), rank));
                rank
            }
        }
    }

    /// Forget the processes no longer in the tree (a pid may be reused).
    fn keep_only(&mut self, pids: &[u32]) {
        self.environ.retain(|p, _| pids.contains(p));
        self.helper.retain(|p, _| pids.contains(p));
    }
}

/// The newest pid the kernel handed out (the last field of `/proc/loadavg`, in our pid
/// namespace; threads count too): while it stays the same, no process was started
/// anywhere, so a tree listed before has no new member.
pub fn last_pid() -> Option<u32> {
    fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().nth(4)?.parse().ok()
}

/// [`read_tree`], with the ranks the injected helper reported in `rank_dir` taking
/// precedence over the environment (a process started by `torch.multiprocessing.spawn`
/// has no RANK: its rank is an argument to `init_process_group`).
pub fn read_tree_with(root: u32, detail: Detail, rank_dir: Option<&std::path::Path>, ranks: &mut RankCache) -> Vec<Proc> {
    read_members(root, &members(root), detail, rank_dir, ranks)
}

/// [`read_tree_with`] for the `(pid, parent)` pairs of a [`members`] read earlier: those
/// gone since, or no longer the child of their parent there, are left out.
pub fn read_members(root: u32, members: &[(u32, u32)], detail: Detail, rank_dir: Option<&std::path::Path>, ranks: &mut RankCache) -> Vec<Proc> {
    read_members_named(root, members, detail, rank_dir, ranks, None)
}

/// [`read_members`]; with `known` (each pid's name when the listing was read, and no pid
/// allocated on the machine since: `last_pid` unchanged, so none was reused), RSS alone
/// is read without `/proc/<pid>/stat` (the kernel composes 52 fields for it): a process
/// gone since reads no RSS (or a zombie's 0) and is left out.
pub fn read_members_named(root: u32, members: &[(u32, u32)], detail: Detail, rank_dir: Option<&std::path::Path>, ranks: &mut RankCache, known: Option<&std::collections::HashMap<u32, String>>) -> Vec<Proc> {
    let mut procs: Vec<Proc> = members
        .iter()
        .copied()
        .filter_map(|(pid, ppid)| {
            if let (Detail::Rss, Some(name)) = (detail, known.and_then(|k| k.get(&pid))) {
                let rss = fs::read_to_string(format!("/proc/{pid}/statm")).ok().and_then(|t| parse_statm_rss(&t)).filter(|r| *r > 0)?;
                let rank = ranks.rank(pid, name, rank_dir);
                return Some(Proc { pid, ppid, role: Role::Worker, name: name.clone(), mem: Some(ProcMem { rss, ..ProcMem::default() }), detail, rank });
            }
            let (parent, name) = parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?;
            // Exited and its pid reused, or orphaned and adopted elsewhere: not this tree's.
            // (The root's own parent may be anything.)
            if pid != root && parent != ppid {
                return None;
            }
            let mem = match detail {
                Detail::Full => fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok().and_then(|t| parse_rollup(&t)),
                Detail::Rss => fs::read_to_string(format!("/proc/{pid}/statm")).ok().and_then(|t| parse_statm_rss(&t)).map(|rss| ProcMem { rss, ..ProcMem::default() }),
            };
            let rank = ranks.rank(pid, &name, rank_dir);
            Some(Proc { pid, ppid, role: Role::Worker, name, mem, detail, rank })
        })
        .collect();
    if !procs.is_empty() {
        ranks.keep_only(&procs.iter().map(|p| p.pid).collect::<Vec<_>>());
    }
    assign_roles(root, &mut procs);
    fill_ranks(&mut procs);
    procs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_names() {
        assert_eq!(parse_stat("42 (pt_data_worker) S 7 42 1 0"), Some((7, "pt_data_worker".into())));
        assert_eq!(parse_stat("42 (a) b) (c) R 9 1"), Some((9, "a) b) (c".into())));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("42 (python) Z 7 42 1 0"), None);
    }

    #[test]
    fn rollup_leaves_out_file_pages_where_the_kernel_can() {
        // An old kernel: plain Pss, and USS as Private_Clean + Private_Dirty.
        let old = "55-77 ---p 0 0 [rollup]\nRss: 1736 kB\nPss: 530 kB\nShared_Clean: 1544 kB\nPrivate_Clean: 80 kB\nPrivate_Dirty: 112 kB\nSwap: 4 kB\nSwapPss: 4 kB\n";
        assert_eq!(parse_rollup(old), Some(ProcMem { rss: 1736 * 1024, pss: 530 * 1024, uss: 192 * 1024, swap: 4 * 1024 }));
        // 5.12+: a library's clean pages (Pss_File, Private_Clean) are not the tree's own.
        let new = "55-77 ---p 0 0 [rollup]\nRss: 1744 kB\nPss: 286 kB\nPss_Dirty: 112 kB\nPss_Anon: 100 kB\nPss_File: 174 kB\nPss_Shmem: 12 kB\nPrivate_Clean: 36 kB\nPrivate_Dirty: 112 kB\nSwap: 0 kB\n";
        assert_eq!(parse_rollup(new), Some(ProcMem { rss: 1744 * 1024, pss: 112 * 1024, uss: 112 * 1024, swap: 0 }));
        assert_eq!(parse_rollup(""), None);
    }

    fn proc(pid: u32, ppid: u32, name: &str) -> Proc {
        Proc { pid, ppid, role: Role::Worker, name: name.into(), mem: None, detail: Detail::Full, rank: None }
    }

    #[test]
    fn roles_skip_wrappers() {
        // bash train.sh -> python (main) -> 2 workers, one with a child of its own.
        let mut t = vec![proc(1, 0, "bash"), proc(2, 1, "python"), proc(3, 2, "python"), proc(4, 2, "pt_worker"), proc(5, 4, "sh")];
        assign_roles(1, &mut t);
        let roles: Vec<_> = t.iter().map(|p| p.role).collect();
        assert_eq!(roles, [Role::Launcher, Role::Main, Role::Worker, Role::Worker, Role::Worker]);
        // A shell running two commands is the main process itself.
        let mut t = vec![proc(1, 0, "bash"), proc(2, 1, "python"), proc(3, 1, "python")];
        assign_roles(1, &mut t);
        assert_eq!(t[0].role, Role::Main);
        assert_eq!(t[1].role, Role::Worker);
    }

    #[test]
    fn launchers_children_are_ranks_when_their_environment_says_none() {
        let ranked = |t: &[Proc]| t.iter().map(|p| p.rank).collect::<Vec<_>>();
        // torchrun -> two ranks (pids out of order) -> a DataLoader worker of rank 1.
        let mut t = vec![proc(1, 0, "pt_elastic"), proc(9, 1, "python"), proc(5, 1, "python"), proc(12, 9, "pt_data_worker")];
        fill_ranks(&mut t);
        assert_eq!(ranked(&t), [None, Some(1), Some(0), Some(1)]);
        // Ranks from the environment stay; a worker whose environ was not read yet joins its parent's.
        let mut t = vec![proc(1, 0, "pt_elastic"), proc(5, 1, "python"), proc(9, 1, "python"), proc(12, 5, "pt_data_worker")];
        (t[1].rank, t[2].rank) = (Some(1), Some(0));
        fill_ranks(&mut t);
        assert_eq!(ranked(&t), [None, Some(1), Some(0), Some(1)]);
        // A trainer and its DataLoader workers: no ranks.
        let mut t = vec![proc(1, 0, "python"), proc(2, 1, "pt_data_worker"), proc(3, 1, "pt_data_worker")];
        fill_ranks(&mut t);
        assert_eq!(ranked(&t), [None, None, None]);
    }

    #[test]
    fn an_environment_is_read_again_when_its_pid_runs_another_program() {
        let me = std::process::id();
        let own = fs::read(format!("/proc/{me}/environ")).ok().and_then(|e| parse_rank(&e));
        let mut cache = RankCache::default();
        // Read once while the pid ran `env` (no RANK then, say 7 for the test): kept...
        cache.environ.insert(me, ("env".into(), Some(7)));
        assert_eq!(cache.rank(me, "env", None), Some(7));
        // ...until the pid execs another program, whose environment is read afresh.
        assert_eq!(cache.rank(me, "python3", None), own);
        assert_eq!(cache.environ[&me], ("python3".to_string(), own));
    }

    #[test]
    fn ranks_the_helper_reported_come_first() {
        let dir = tempfile::tempdir().unwrap();
        let me = std::process::id();
        assert_eq!(helper_rank(dir.path(), me), None);
        fs::write(dir.path().join(format!("rank-{me}")), "3\n").unwrap();
        assert_eq!(helper_rank(dir.path(), me), Some(3));
        let tree = read_tree_with(me, Detail::Rss, Some(dir.path()), &mut RankCache::default());
        assert_eq!(tree.iter().find(|p| p.pid == me).unwrap().rank, Some(3));
        fs::write(dir.path().join(format!("rank-{me}")), "x").unwrap();
        assert_eq!(helper_rank(dir.path(), me), None, "a torn or odd file is no rank");
    }

    #[test]
    fn ranks_from_the_environment_only() {
        assert_eq!(parse_rank(b"PATH=/bin\0RANK=3\0LOCAL_RANK=1\0"), Some(3));
        assert_eq!(parse_rank(b"LOCAL_RANK=1\0TOKEN=secret\0"), Some(1));
        assert_eq!(parse_rank(b"WORLD_RANK=2\0RANK=x\0"), None);
        let mut child = sleeper(std::process::Command::new("sleep").arg("5").env("RANK", "7"));
        let tree = read_tree(std::process::id(), Detail::Rss);
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(tree.iter().find(|p| p.pid == child.id()).unwrap().rank, Some(7));
    }

    /// Start `cmd` and wait until its exec has finished: before that, the forked child
    /// shows the test's own name, and for a moment after the new name an empty environ.
    fn sleeper(cmd: &mut std::process::Command) -> std::process::Child {
        let child = cmd.spawn().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let started = |pid: u32| {
            fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
                && fs::read(format!("/proc/{pid}/environ")).is_ok_and(|e| !e.is_empty())
        };
        while !started(child.id()) {
            assert!(std::time::Instant::now() < deadline, "sleep did not start");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        child
    }

    #[test]
    fn a_listing_kept_while_no_pid_is_new_misses_no_child_and_keeps_no_stranger() {
        let me = std::process::id();
        let before = last_pid().expect("/proc/loadavg");
        let listed = members(me);
        let mut child = sleeper(std::process::Command::new("sleep").arg("5"));
        // A process started since the listing: the newest pid moved, so it is listed again.
        assert_ne!(last_pid(), Some(before));
        assert!(members(me).iter().any(|(p, _)| *p == child.id()));
        // A member listed under another parent than it has now is left out.
        let mut stranger = listed.clone();
        stranger.push((child.id(), me + 1));
        let read = read_members(me, &stranger, Detail::Rss, None, &mut RankCache::default());
        assert!(!read.iter().any(|p| p.pid == child.id()) && read.iter().any(|p| p.pid == me));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn reads_own_tree() {
        let mut child = sleeper(std::process::Command::new("sleep").arg("5"));
        let tree = read_tree(std::process::id(), Detail::Full);
        let quick = read_tree(std::process::id(), Detail::Rss);
        let me_quick = quick.iter().find(|p| p.pid == std::process::id()).unwrap().mem.unwrap();
        assert!(me_quick.rss > 0 && me_quick.pss == 0);
        child.kill().unwrap();
        child.wait().unwrap();
        let me = tree.iter().find(|p| p.pid == std::process::id()).unwrap();
        assert_eq!(me.role, Role::Main);
        assert!(me.mem.unwrap().pss > 0 && me.mem.unwrap().uss <= me.mem.unwrap().rss);
        let sleeper = tree.iter().find(|p| p.pid == child.id()).expect("child in tree");
        assert_eq!((sleeper.role, sleeper.name.as_str()), (Role::Worker, "sleep"));
        assert!(read_tree(u32::MAX - 1, Detail::Full).is_empty());
    }
}
