//! One sample of a watched tree: its processes' memory summed per role into a timeline
//! row, and one `processes.csv` row per process, streamed and flushed like the timeline.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::Nvml;
use serde::Serialize;

use super::tree::{last_pid, members, read_members, read_members_named, Detail, Proc, RankCache, Role};
use crate::error::Error;
use crate::source::GpuStatus;
use crate::timeline::Row;

/// One row of `processes.csv`.
#[derive(Debug, Serialize)]
pub struct ProcRow<'a> {
    /// Seconds since the watch started (the timeline's `t_s`).
    pub t_s: f64,
    /// The timeline row's phase (`sample`, `epoch_end`, ...).
    pub phase: &'a str,
    /// Process id.
    pub pid: u32,
    /// Parent's id.
    pub ppid: u32,
    /// launcher / main / worker.
    pub role: &'static str,
    /// Its distributed rank, where its environment says.
    pub rank: Option<u32>,
    /// Command name (comm), never the command line.
    pub name: &'a str,
    /// Resident set size.
    pub rss_bytes: Option<u64>,
    /// Proportional set size.
    pub pss_bytes: Option<u64>,
    /// Unique set size.
    pub uss_bytes: Option<u64>,
    /// Swapped out.
    pub swap_bytes: Option<u64>,
    /// GPU memory of this process (NVML), summed over devices.
    pub gpu_bytes: Option<u64>,
}

/// `processes.csv`'s columns and what they hold (docs/output-files.md's table, checked by tests/readme.rs).
pub const PROCESS_COLUMNS: &[(&str, &str)] = &[
    ("t_s", "seconds since the watch started, as in timeline.csv"),
    ("phase", "the phase of the timeline row taken at the same moment (sample, epoch_end, ...)"),
    ("pid", "process id"),
    ("ppid", "parent process id"),
    ("role", "launcher (a wrapper above the trainer: bash, env, ...), main (the trainer), worker (any descendant of the trainer: DataLoader workers, subprocesses)"),
    ("rank", "the distributed rank of the process: as the injected helper reported it (the process called init_process_group: torch.multiprocessing.spawn's ranks too), else RANK, else LOCAL_RANK, in its environment (torchrun's ranks), else its parent's (their DataLoader workers); empty when it has none"),
    ("name", "command name (/proc/PID/comm, 15 bytes at most); command lines and environments are never recorded"),
    ("rss_bytes", "resident set size"),
    ("pss_bytes", "proportional set size of the memory the process owns (anonymous and shared memory, Pss_Anon + Pss_Shmem; not the libraries' code and files read, whose share moves when any other process maps them), each shared page divided among its sharers; like uss_bytes and swap_bytes, read at boundaries and every --pss-interval, empty at the samples between (RSS alone, from statm)"),
    ("uss_bytes", "unique set size: pages only this process maps and has written (Private_Dirty)"),
    ("swap_bytes", "swapped-out memory"),
    ("gpu_bytes", "GPU memory of this process, all devices (NVML); empty without a driver or when it holds none"),
];

/// One rank's processes summed at a sample (PSS and USS only at full samples).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RankMem {
    /// Summed RSS.
    pub rss: u64,
    /// Summed PSS.
    pub pss: Option<u64>,
    /// Summed USS.
    pub uss: Option<u64>,
    /// Summed GPU memory (NVML).
    pub gpu: Option<u64>,
}

/// GPU memory per process, from NVML (absent without a driver).
struct TreeGpu {
    nvml: Nvml,
}

impl TreeGpu {
    /// (per-pid bytes over all devices, device used summed over the devices the tree is on).
    fn read(&self, pids: &[u32]) -> (HashMap<u32, u64>, Option<u64>) {
        let mut per_pid = HashMap::new();
        let mut device_used: Option<u64> = None;
        let count = self.nvml.device_count().unwrap_or(0);
        for i in 0..count {
            let Ok(dev) = self.nvml.device_by_index(i) else { continue };
            let mut on_it = false;
            for p in dev.running_compute_processes().unwrap_or_default().into_iter().chain(dev.running_graphics_processes().unwrap_or_default()) {
                if pids.contains(&p.pid) {
                    on_it = true;
                    let b = match p.used_gpu_memory {
                        UsedGpuMemory::Used(b) => b,
                        UsedGpuMemory::Unavailable => 0,
                    };
                    *per_pid.entry(p.pid).or_insert(0) += b;
                }
            }
            if on_it {
                *device_used.get_or_insert(0) += dev.memory_info().map_or(0, |m| m.used);
            }
        }
        (per_pid, device_used)
    }
}

/// Samples the tree under one root.
pub struct TreeSampler {
    root: u32,
    gpu: Option<TreeGpu>,
    gpu_status: GpuStatus,
    procs_out: csv::Writer<File>,
    procs_path: PathBuf,
    /// Each rank's processes summed, at the last sample.
    pub ranks: std::collections::BTreeMap<u32, RankMem>,
    /// Where the injected helper reports ranks (`rank-<pid>`), when injected.
    rank_dir: Option<PathBuf>,
    rank_cache: RankCache,
    /// The tree's `(pid, parent)` pairs as last listed, and the kernel's newest pid then
    /// (`tree::last_pid`). Listing reads every thread's `children` file (a torch process
    /// has dozens), most of an RSS sample's cost at 10 samples a second: samples reuse the
    /// list until a new pid appears anywhere. Exits drop out by themselves.
    listed: Option<(u32, Vec<(u32, u32)>)>,
    /// Each listed process's name, read with the listing (`tree::read_members_named`).
    names: HashMap<u32, String>,
}

impl TreeSampler {
    /// Sample the tree under `root`, writing `processes.csv` in `dir`.
    pub fn new(root: u32, dir: &Path) -> Result<Self, Error> {
        let procs_path = dir.join("processes.csv");
        let file = File::create(&procs_path).map_err(|source| Error::Output { path: procs_path.clone(), source })?;
        let (gpu, gpu_status) = match Nvml::init() {
            Ok(nvml) => {
                let status = match nvml.device_count() {
                    Ok(n) if n > 0 => {
                        let name = nvml.device_by_index(0).and_then(|d| d.name()).unwrap_or_default();
                        GpuStatus::Active { name: format!("{n}x {name}") }
                    }
                    Ok(_) => GpuStatus::NoDevice("no GPU present".into()),
                    Err(e) => GpuStatus::NoDevice(e.to_string()),
                };
                (Some(TreeGpu { nvml }), status)
            }
            Err(e) => (None, GpuStatus::NoDriver(e.to_string())),
        };
        Ok(TreeSampler { root, gpu, gpu_status, procs_out: csv::Writer::from_writer(file), procs_path, ranks: Default::default(), rank_dir: None, rank_cache: RankCache::default(), listed: None, names: HashMap::new() })
    }

    /// Read ranks the injected helper reports in `dir` (they win over the environment).
    pub fn set_rank_dir(&mut self, dir: &Path) {
        self.rank_dir = Some(dir.to_path_buf());
    }

    /// Whether NVML is readable, and if not why.
    pub fn gpu_status(&self) -> &GpuStatus {
        &self.gpu_status
    }

    /// Read the tree now to `detail`, fill the tree and role columns of `row` and append
    /// one `processes.csv` row per process. Returns the processes read (empty: root gone).
    pub fn sample(&mut self, row: &mut Row, detail: Detail) -> Result<Vec<Proc>, Error> {
        let newest = last_pid();
        let reuse = self.listed.as_ref().filter(|(at, _)| detail == Detail::Rss && newest == Some(*at));
        let mut procs = match reuse {
            Some((_, listed)) => read_members_named(self.root, listed, detail, self.rank_dir.as_deref(), &mut self.rank_cache, Some(&self.names)),
            None => Vec::new(),
        };
        if reuse.is_none() || !procs.iter().any(|p| p.pid == self.root) {
            let listed = members(self.root);
            procs = read_members(self.root, &listed, detail, self.rank_dir.as_deref(), &mut self.rank_cache);
            self.listed = newest.map(|n| (n, listed));
            self.names = procs.iter().map(|p| (p.pid, p.name.clone())).collect();
        }
        // A process forked while the tree was read (a DataLoader worker starting) shares
        // the pages of its parent, read after the fork, without being counted itself:
        // PSS would dip by its share. Read again, a few times at most, until the tree
        // holds still across a reading.
        for _ in 0..3 {
            if detail != Detail::Full {
                break;
            }
            let live = |pid: u32| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().and_then(|t| super::tree::parse_stat(&t)).is_some();
            let listed = members(self.root);
            if !listed.iter().any(|(pid, _)| !procs.iter().any(|p| p.pid == *pid) && live(*pid)) {
                break;
            }
            procs = read_members(self.root, &listed, detail, self.rank_dir.as_deref(), &mut self.rank_cache);
        }
        let pids: Vec<u32> = procs.iter().map(|p| p.pid).collect();
        let (gpu_per_pid, gpu_device) = self.gpu.as_ref().map(|g| g.read(&pids)).unwrap_or_default();
        fill_row(row, &procs);
        if self.gpu.is_some() && !procs.is_empty() {
            row.gpu_tree_used_bytes = Some(gpu_per_pid.values().sum());
            row.gpu_device_used_bytes = gpu_device;
        }
        self.ranks.clear();
        for p in &procs {
            if let (Some(rank), Some(m)) = (p.rank, p.mem) {
                let r = self.ranks.entry(rank).or_default();
                r.rss += m.rss;
                if p.detail == Detail::Full {
                    r.pss = Some(r.pss.unwrap_or(0) + m.pss);
                    r.uss = Some(r.uss.unwrap_or(0) + m.uss);
                }
                if let Some(g) = gpu_per_pid.get(&p.pid) {
                    r.gpu = Some(r.gpu.unwrap_or(0) + g);
                }
            }
        }
        for p in &procs {
            let m = p.mem;
            let full = |f: fn(&super::tree::ProcMem) -> u64| m.filter(|_| p.detail == Detail::Full).map(|m| f(&m));
            let r = ProcRow {
                t_s: row.t_s,
                phase: &row.phase,
                pid: p.pid,
                ppid: p.ppid,
                role: p.role.as_str(),
                rank: p.rank,
                name: &p.name,
                rss_bytes: m.map(|m| m.rss),
                pss_bytes: full(|m| m.pss),
                uss_bytes: full(|m| m.uss),
                swap_bytes: full(|m| m.swap),
                gpu_bytes: gpu_per_pid.get(&p.pid).copied(),
            };
            self.procs_out.serialize(r).map_err(|e| self.output_error(e.to_string()))?;
        }
        self.procs_out.flush().map_err(|e| self.output_error(e.to_string()))?;
        Ok(procs)
    }

    fn output_error(&self, message: String) -> Error {
        Error::Output { path: self.procs_path.clone(), source: std::io::Error::other(message) }
    }
}

/// Sum the processes' memory into the row's tree, main and workers columns. PSS, USS and
/// swap only where every process was read in full.
pub fn fill_row(row: &mut Row, procs: &[Proc]) {
    if procs.is_empty() {
        return;
    }
    let full = procs.iter().all(|p| p.detail == Detail::Full);
    let sum = |f: &dyn Fn(&Proc) -> bool, g: fn(&super::tree::ProcMem) -> u64| -> u64 {
        procs.iter().filter(|p| f(p)).filter_map(|p| p.mem.as_ref()).map(g).sum()
    };
    let detailed = |g: fn(&super::tree::ProcMem) -> u64, f: &dyn Fn(&Proc) -> bool| full.then(|| sum(f, g));
    let all = |_: &Proc| true;
    let main = |p: &Proc| p.role == Role::Main;
    let worker = |p: &Proc| p.role == Role::Worker;
    row.tree_rss_bytes = Some(sum(&all, |m| m.rss));
    row.tree_pss_bytes = detailed(|m| m.pss, &all);
    row.tree_uss_bytes = detailed(|m| m.uss, &all);
    row.tree_swap_bytes = detailed(|m| m.swap, &all);
    row.tree_processes = Some(procs.len() as u64);
    if procs.iter().any(|p| main(p) && p.mem.is_some()) {
        row.main_rss_bytes = Some(sum(&main, |m| m.rss));
        row.main_pss_bytes = detailed(|m| m.pss, &main);
        row.main_uss_bytes = detailed(|m| m.uss, &main);
    }
    let workers = procs.iter().filter(|p| worker(p) && p.mem.is_some()).count() as u64;
    row.workers_count = Some(workers);
    if workers > 0 {
        row.workers_rss_bytes = Some(sum(&worker, |m| m.rss));
        row.workers_pss_bytes = detailed(|m| m.pss, &worker);
        row.workers_uss_bytes = detailed(|m| m.uss, &worker);
    }
}

#[cfg(test)]
mod tests {
    use super::super::tree::ProcMem;
    use super::*;

    #[test]
    fn rows_sum_per_role() {
        let mem = |rss, pss, uss| Some(ProcMem { rss, pss, uss, swap: 1 });
        let p = |pid, ppid, role, name: &str, mem| Proc { pid, ppid, role, name: name.into(), mem, detail: Detail::Full, rank: None };
        let mut procs = vec![
            p(1, 0, Role::Launcher, "bash", mem(4, 2, 1)),
            p(2, 1, Role::Main, "python", mem(100, 60, 40)),
            p(3, 2, Role::Worker, "python", mem(90, 30, 10)),
            p(4, 2, Role::Worker, "python", mem(90, 30, 12)),
            p(5, 2, Role::Worker, "python", None),
        ];
        let mut row = Row::default();
        fill_row(&mut row, &procs);
        assert_eq!((row.tree_rss_bytes, row.tree_pss_bytes, row.tree_uss_bytes, row.tree_swap_bytes), (Some(284), Some(122), Some(63), Some(4)));
        assert_eq!((row.main_uss_bytes, row.workers_uss_bytes, row.workers_count, row.tree_processes), (Some(40), Some(22), Some(2), Some(5)));
        let mut alone = Row::default();
        fill_row(&mut alone, &procs[1..2]);
        assert_eq!((alone.workers_count, alone.workers_uss_bytes), (Some(0), None));
        // A quick sample measures RSS alone: no PSS or USS is made up from it.
        procs.iter_mut().for_each(|p| p.detail = Detail::Rss);
        let mut quick = Row::default();
        fill_row(&mut quick, &procs);
        assert_eq!((quick.tree_rss_bytes, quick.tree_pss_bytes, quick.main_uss_bytes, quick.workers_rss_bytes), (Some(284), None, None, Some(180)));
    }

    #[test]
    fn process_columns_match_the_struct() {
        let mut w = csv::Writer::from_writer(vec![]);
        w.serialize(ProcRow { t_s: 0.0, phase: "", pid: 0, ppid: 0, role: "main", rank: None, name: "", rss_bytes: None, pss_bytes: None, uss_bytes: None, swap_bytes: None, gpu_bytes: None }).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
        assert_eq!(header, PROCESS_COLUMNS.iter().map(|c| c.0).collect::<Vec<_>>());
    }
}
