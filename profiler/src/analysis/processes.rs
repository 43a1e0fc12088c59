//! Every process judged on its own: the USS of each process of a watched tree (the main
//! process, ranks, persistent workers, spawned children) at each epoch end, from
//! `processes.csv`, classed like any series. A sum over the tree can read flat or
//! bounded while one member grows in a straight line; a per-process verdict never hides
//! it.
//!
//! A process's last epoch end is left out when the process was gone within half an epoch
//! after it while the rest of the tree went on: what was sampled then is a process
//! shutting down (a rank leaving its
//! process group, a worker exiting), not the epoch's memory. Growth of a process's USS
//! that its RSS does not share is pages turning private (copy-on-write), bounded by that
//! RSS: named, never a leak.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::tree::is_copy_on_write;
use super::verdict::{classify, still_rising, thin, Class, Tolerance, MAX_FIT_POINTS};
use crate::error::Error;
use crate::timeline::{last_epoch_ends, Row};

/// Fewest epoch ends a process must live across to be judged.
pub const MIN_PROCESS_EPOCHS: usize = 3;

/// Processes followed at once: a run that forks workers at every epoch does not grow the
/// state (processes seen at fewer than [`MIN_PROCESS_EPOCHS`] epoch ends are dropped as
/// soon as they miss one).
pub const MAX_PROCESSES: usize = 256;

#[derive(Deserialize)]
struct ProcLine {
    t_s: f64,
    phase: String,
    pid: u32,
    #[serde(default)]
    role: String,
    #[serde(default)]
    rank: Option<u32>,
    #[serde(default)]
    name: String,
    rss_bytes: Option<u64>,
    uss_bytes: Option<u64>,
}

/// The verdict on one process, read on its USS.
#[derive(Clone, Debug, Serialize)]
pub struct ProcessVerdict {
    /// Process id.
    pub pid: u32,
    /// main, worker, launcher (as in processes.csv).
    pub role: String,
    /// Its distributed rank, where it has one.
    pub rank: Option<u32>,
    /// Command name.
    pub name: String,
    /// flat / bounded / growing / insufficient, of its USS.
    pub class: Class,
    /// USS bytes per epoch after warm-up.
    pub slope_bytes_per_epoch: Option<f64>,
    /// 90 % interval of the slope.
    pub slope_interval: Option<(f64, f64)>,
    /// Growing: the first epoch that rose.
    pub growing_since: Option<u32>,
    /// Epoch ends judged (its teardown left out).
    pub epochs: usize,
    /// USS at the first and last epoch end judged.
    pub first_uss_bytes: u64,
    /// USS at the last epoch end judged.
    pub last_uss_bytes: u64,
    /// Why it grows where known (`copy-on-write`: bounded by its RSS, not a leak).
    pub cause: Option<String>,
    /// Epoch ends the slope was fitted on (after warm-up).
    pub fitted: usize,
    /// Growth goes on in the latest epoch ends (`verdict::still_rising`): what a live
    /// stop needs besides the class.
    pub rising_now: bool,
}

impl ProcessVerdict {
    /// "rank 2 (pid 4242)", "main process (pid 10)", "worker pt_data_worker (pid 12)".
    pub fn who(&self) -> String {
        match (self.rank, self.role.as_str()) {
            (Some(r), _) => format!("rank {r} (pid {})", self.pid),
            (None, "main") => format!("main process (pid {})", self.pid),
            (None, role) => format!("{role} {} (pid {})", self.name, self.pid),
        }
    }

    /// "rank 2 (pid 4242) grows +8.7 MiB/epoch since epoch 1": the ledger's and the live
    /// line's words for a process that [`leaks`](Self::leaks).
    pub fn growth(&self) -> String {
        let since = self.growing_since.map(|e| format!(" since epoch {e}")).unwrap_or_default();
        format!("{} grows {}/epoch{since}", self.who(), crate::format::signed_bytes(self.slope_bytes_per_epoch.unwrap_or(0.0)))
    }

    /// Grows, confirmed by a fit with an interval, and not by copy-on-write: what makes
    /// the verdict growing. Two rising epoch ends ("growing so far") are not enough.
    pub fn leaks(&self) -> bool {
        self.class == Class::Growing && self.cause.is_none() && self.slope_interval.is_some()
    }
}

#[derive(Default)]
struct Follow {
    role: String,
    rank: Option<u32>,
    name: String,
    /// (epoch, seconds, USS, RSS) at each epoch end it was seen at.
    points: Vec<(f64, f64, f64, f64)>,
    last_seen: f64,
}

/// Per-process verdicts from `dir/processes.csv`, the epochs taken from `rows` (the
/// timeline's epoch ends); `None` without the file or when no process lived across
/// [`MIN_PROCESS_EPOCHS`] epoch ends. Streams the file through [`ProcessTrends`].
pub fn read_processes(dir: &Path, rows: &[Row]) -> Result<Option<Vec<ProcessVerdict>>, Error> {
    let path = dir.join("processes.csv");
    let Ok(file) = std::fs::File::open(&path) else { return Ok(None) };
    let ends = last_epoch_ends(rows);
    let epoch_at: BTreeMap<u64, u32> = ends.iter().filter(|r| r.label != super::AFTER_EXIT).filter_map(|r| Some((r.t_s.to_bits(), r.epoch?))).collect();
    let mut gaps: Vec<f64> = ends.windows(2).map(|w| w[1].t_s - w[0].t_s).collect();
    gaps.sort_by(|a, b| a.total_cmp(b));
    let epoch_s = gaps.get(gaps.len() / 2).copied().unwrap_or(f64::INFINITY);
    let mut trends = ProcessTrends::default();
    for line in csv::Reader::from_reader(file).deserialize::<ProcLine>() {
        // A partial last line (a killed run) ends the data, as in the timeline.
        let Ok(p) = line else { break };
        let at_end = if p.phase == "epoch_end" { epoch_at.get(&p.t_s.to_bits()).copied() } else { None };
        trends.add(ProcessPoint { t_s: p.t_s, pid: p.pid, role: p.role, rank: p.rank, name: p.name, rss_bytes: p.rss_bytes, uss_bytes: p.uss_bytes }, at_end);
    }
    let verdicts = trends.judge(epoch_s);
    Ok((!verdicts.is_empty()).then_some(verdicts))
}

/// One process at one sample, as a row of `processes.csv` holds it.
#[derive(Clone, Debug, Default)]
pub struct ProcessPoint {
    /// Seconds since the start.
    pub t_s: f64,
    /// Process id.
    pub pid: u32,
    /// main, worker, launcher.
    pub role: String,
    /// Its distributed rank, where it has one.
    pub rank: Option<u32>,
    /// Command name.
    pub name: String,
    /// RSS.
    pub rss_bytes: Option<u64>,
    /// USS (read at boundaries only).
    pub uss_bytes: Option<u64>,
}

/// Each process's USS at epoch ends, followed as samples come: by `report` from
/// `processes.csv`, and live by the watch. Its state is one entry per live process (at
/// most [`MAX_PROCESSES`]), each at most a few hundred points.
#[derive(Default)]
pub struct ProcessTrends {
    procs: BTreeMap<u32, Follow>,
    last_end_t: Option<f64>,
    last_t: Option<f64>,
}

impl ProcessTrends {
    /// A process seen at a sample; `at_end`: the sample is epoch `at_end`'s end.
    pub fn add(&mut self, p: ProcessPoint, at_end: Option<u32>) {
        self.last_t = Some(self.last_t.map_or(p.t_s, |t| t.max(p.t_s)));
        if p.role == "launcher" {
            return;
        }
        if at_end.is_some() && self.last_end_t.is_none_or(|t| p.t_s > t) {
            // A new epoch end: forget the processes too short-lived to judge that were
            // not seen since the one before.
            let before = self.last_end_t.unwrap_or(f64::MIN);
            self.last_end_t = Some(p.t_s);
            self.procs.retain(|_, f| f.points.len() >= MIN_PROCESS_EPOCHS || f.last_seen >= before);
        }
        if !self.procs.contains_key(&p.pid) && self.procs.len() >= MAX_PROCESSES {
            return;
        }
        let f = self.procs.entry(p.pid).or_default();
        f.last_seen = f.last_seen.max(p.t_s);
        (f.role, f.rank, f.name) = (p.role, p.rank.or(f.rank), p.name);
        if let (Some(epoch), Some(uss)) = (at_end, p.uss_bytes) {
            if f.points.last().is_some_and(|l| l.0 == epoch as f64) {
                f.points.pop();
            }
            f.points.push((epoch as f64, p.t_s, uss as f64, p.rss_bytes.unwrap_or(0) as f64));
            if f.points.len() >= 4 * MAX_FIT_POINTS {
                thin_points(&mut f.points);
            }
        }
    }

    /// The verdict on every process that lived across [`MIN_PROCESS_EPOCHS`] epoch ends,
    /// with epochs `epoch_s` seconds long.
    pub fn judge(&self, epoch_s: f64) -> Vec<ProcessVerdict> {
        let last_t = self.last_t.unwrap_or(f64::MIN);
        self.procs.iter().filter_map(|(pid, f)| judge(*pid, f, epoch_s, last_t)).collect()
    }
}

/// Halve a long process's points (medians of neighbours), as the fit would thin them.
fn thin_points(points: &mut Vec<(f64, f64, f64, f64)>) {
    let uss = thin(&points.iter().map(|p| (p.0, p.2)).collect::<Vec<_>>(), points.len() / 2);
    let rss = thin(&points.iter().map(|p| (p.0, p.3)).collect::<Vec<_>>(), points.len() / 2);
    let t = thin(&points.iter().map(|p| (p.0, p.1)).collect::<Vec<_>>(), points.len() / 2);
    *points = uss.iter().zip(&rss).zip(&t).map(|((u, r), t)| (u.0, t.1, u.1, r.1)).collect();
}

fn judge(pid: u32, f: &Follow, epoch_s: f64, last_t: f64) -> Option<ProcessVerdict> {
    // Its last epoch end, with the process gone soon after while the tree went on: a
    // process shutting down. (When the whole watch ends there, nothing shut down early.)
    let left_early = f.last_seen + (0.25 * epoch_s).max(1.0) < last_t;
    let teardown = left_early && f.points.last().is_some_and(|l| f.last_seen - l.1 < 0.5 * epoch_s);
    let points = &f.points[..f.points.len() - usize::from(teardown)];
    if points.len() < MIN_PROCESS_EPOCHS {
        return None;
    }
    let uss: Vec<(f64, f64)> = points.iter().map(|p| (p.0, p.2)).collect();
    let rss: Vec<(f64, f64)> = points.iter().map(|p| (p.0, p.3)).collect();
    let mut c = classify(&uss, Tolerance::default());
    let fitted = c.fitted(&uss, |p| p.0).len();
    if fitted < super::PAIRED_UNTIL_FITTED {
        // A young process is held to the budget its series gets from paired evidence at
        // the same age (`Analyzer::paired_verdict`): a process is never called growing
        // where its role's series, the same points, reads flat. (Lightning's clean main
        // process, +858 KiB/epoch over 4 epoch ends of 100 MiB, did.)
        let level = super::verdict::median_level(&uss[c.warmup.min(uss.len())..]);
        c.tolerance_bytes = super::young_budget(c.tolerance_bytes, level);
        if c.class == Class::Growing && c.trend.is_some_and(|t| t.slope <= c.tolerance_bytes) {
            c.class = Class::Flat;
            c.growing_since = None;
        }
    }
    let rss_slope = classify(&rss, Tolerance::default()).trend.map(|t| t.slope);
    let slope = c.trend.map(|t| t.slope);
    let cow = matches!(c.class, Class::Growing | Class::Bounded)
        && matches!((slope, rss_slope), (Some(s), Some(r)) if is_copy_on_write(s, r, c.tolerance_bytes));
    Some(ProcessVerdict {
        pid,
        role: f.role.clone(),
        rank: f.rank,
        name: f.name.clone(),
        class: if cow { Class::Bounded } else { c.class },
        slope_bytes_per_epoch: slope,
        slope_interval: c.trend.and_then(|t| t.interval()),
        growing_since: c.growing_since.map(|e| e as u32),
        epochs: uss.len(),
        first_uss_bytes: uss[0].1 as u64,
        last_uss_bytes: uss[uss.len() - 1].1 as u64,
        cause: cow.then(|| super::COPY_ON_WRITE.to_string()),
        fitted,
        rising_now: still_rising(&uss[c.warmup.min(uss.len())..], c.tolerance_bytes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1 << 20;

    fn write_processes(dir: &Path, lines: &str) {
        let header = "t_s,phase,pid,ppid,role,rank,name,rss_bytes,pss_bytes,uss_bytes,swap_bytes,gpu_bytes\n";
        std::fs::write(dir.join("processes.csv"), format!("{header}{lines}")).unwrap();
    }

    /// The job: two spawned ranks, one keeping 8 MiB an epoch; the other's last
    /// epoch end sampled while it shut down, 11 MiB lower.
    #[test]
    fn a_growing_rank_is_named_and_a_shutting_down_one_is_not_judged_on_its_teardown() {
        let dir = tempfile::tempdir().unwrap();
        let (mut text, mut rows) = (String::new(), Vec::new());
        for e in 0..6u32 {
            let t = 10.0 + e as f64 * 5.0;
            rows.push(Row { t_s: t, phase: "epoch_end".into(), epoch: Some(e), ..Row::default() });
            let jitter = (e as u64 * 7 % 3) * (200 << 10);
            let rank0 = if e == 5 { 339 * MB } else { 350 * MB + jitter };
            let rank1 = 350 * MB + e as u64 * 8 * MB + jitter;
            text.push_str(&format!("{t},epoch_end,10,1,main,,python,{},1,{},0,\n", 200 * MB, 200 * MB + jitter));
            text.push_str(&format!("{t},epoch_end,11,10,worker,0,python,{},1,{rank0},0,\n", 500 * MB));
            text.push_str(&format!("{t},epoch_end,12,10,worker,1,python,{},1,{rank1},0,\n", 500 * MB + e as u64 * 8 * MB));
            // Short-lived workers forked at each epoch: never judged, never kept.
            text.push_str(&format!("{},sample,{},12,worker,1,pt_worker,{},1,{},0,\n", t + 1.0, 100 + e, 50 * MB, 20 * MB));
        }
        // Rank 0 exits right after its last epoch end; the others live on a while.
        text.push_str(&format!("{},sample,11,10,worker,0,python,{},1,{},0,\n", 35.5, 500 * MB, 330 * MB));
        text.push_str(&format!("{},sample,10,1,main,,python,{},1,{},0,\n", 40.0, 200 * MB, 200 * MB));
        text.push_str(&format!("{},sample,12,10,worker,1,python,{},1,{},0,\n", 40.0, 540 * MB, 390 * MB));
        write_processes(dir.path(), &text);
        let v = read_processes(dir.path(), &rows).unwrap().unwrap();
        let by = |pid: u32| v.iter().find(|p| p.pid == pid).unwrap();
        assert_eq!(v.len(), 3, "the workers forked per epoch are not judged: {v:?}");
        assert_eq!(by(10).class, Class::Flat, "{:?}", by(10));
        assert_eq!((by(11).class, by(11).epochs), (Class::Flat, 5), "teardown left out: {:?}", by(11));
        assert!(by(12).leaks(), "{:?}", by(12));
        assert!((by(12).slope_bytes_per_epoch.unwrap() / (8 * MB) as f64 - 1.0).abs() < 0.05);
        assert_eq!(by(12).who(), "rank 1 (pid 12)");
    }

    #[test]
    fn copy_on_write_in_a_worker_is_bounded_not_a_leak() {
        let dir = tempfile::tempdir().unwrap();
        let (mut text, mut rows) = (String::new(), Vec::new());
        for e in 0..6u32 {
            let t = e as f64 * 5.0;
            rows.push(Row { t_s: t, phase: "epoch_end".into(), epoch: Some(e), ..Row::default() });
            // USS rises as shared pages turn private; RSS stays.
            text.push_str(&format!("{t},epoch_end,20,10,worker,,pt_worker,{},1,{},0,\n", 900 * MB, 30 * MB + e as u64 * 40 * MB));
        }
        text.push_str(&format!("{},sample,20,10,worker,,pt_worker,{},1,{},0,\n", 40.0, 900 * MB, 300 * MB));
        write_processes(dir.path(), &text);
        let v = read_processes(dir.path(), &rows).unwrap().unwrap();
        assert_eq!((v[0].class, v[0].cause.as_deref(), v[0].leaks()), (Class::Bounded, Some("copy-on-write"), false), "{:?}", v[0]);
    }

    #[test]
    fn no_file_or_no_long_lived_process_gives_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_processes(dir.path(), &[]).unwrap().is_none());
        write_processes(dir.path(), "1.0,epoch_end,10,1,main,,python,1,1,1,0,\n");
        let rows = vec![Row { t_s: 1.0, phase: "epoch_end".into(), epoch: Some(0), ..Row::default() }];
        assert!(read_processes(dir.path(), &rows).unwrap().is_none());
    }
}
