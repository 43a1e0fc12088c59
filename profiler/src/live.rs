//! The verdict while the run goes. Fed every row; at each epoch end it judges the epochs
//! so far, rewrites `summary.json` (so a crash or kill leaves a current summary, not
//! only the rows) and says in one line where memory stands:
//! `epoch 5: heap allocated +13.3 MiB/epoch, growing since epoch 3; out of memory in about 40 epochs`.
//! `diagnose run` and `diagnose watch` print that line, and `--stop-on-leak` ends the run
//! once [`LiveStatus::growing`] is true.

use std::path::{Path, PathBuf};

use crate::analysis::{Analysis, Analyzer, Class, ProcessPoint, ProcessTrends, SeriesVerdict, Tolerance, AFTER_EXIT, PRIMARY_SERIES};
use crate::format::{human_bytes, signed_bytes};
use crate::timeline::{Row, TimelineMeta};

/// Where memory stands after one epoch.
#[derive(Clone, Debug)]
pub struct LiveStatus {
    /// The epoch that just ended.
    pub epoch: u32,
    /// The one-line reading (no trailing newline).
    pub line: String,
    /// Whether the verdict so far is growing, confirmed by a fit with an interval (at
    /// least three epochs after warm-up): what `--stop-on-leak` acts on. Two rising
    /// epochs ("growing so far") are not enough to stop a job.
    pub growing: bool,
}

/// Judges the run at each epoch end.
pub struct LiveVerdict {
    analyzer: Analyzer,
    /// A watch's processes, each judged on its own USS, as `report` judges them.
    processes: ProcessTrends,
    meta: TimelineMeta,
    summary: Option<PathBuf>,
    latest: Option<Analysis>,
    /// Epoch ends seen.
    ends: u64,
}

/// Every epoch end is judged up to this many; after that every (ends / this)-th. A
/// judgment walks every epoch end so far, so judging each of 300,000 would grow with the
/// square of the run; this way the work per epoch end stays bounded (about this many
/// epoch ends walked, amortized), and the reading and `summary.json` lag by at most 0.1 %
/// of the run.
pub const JUDGE_EVERY_EPOCH_UNTIL: u64 = 1000;

impl LiveVerdict {
    /// A live verdict with the run's facts; with `out_dir`, `summary.json` is rewritten
    /// there at each epoch end.
    pub fn new(meta: TimelineMeta, out_dir: Option<&Path>) -> Self {
        LiveVerdict { analyzer: Analyzer::live(Tolerance::default()), processes: ProcessTrends::default(), meta, summary: out_dir.map(|d| d.join("summary.json")), latest: None, ends: 0 }
    }

    /// Take one row; at an epoch end that is judged (every one of the first
    /// [`JUDGE_EVERY_EPOCH_UNTIL`], then fewer), judge and return the reading.
    pub fn observe(&mut self, row: &Row) -> Option<LiveStatus> {
        self.analyzer.add(row);
        if row.phase != "epoch_end" {
            return None;
        }
        self.ends += 1;
        if self.ends > JUDGE_EVERY_EPOCH_UNTIL && self.ends % (self.ends / JUDGE_EVERY_EPOCH_UNTIL) != 0 {
            return None;
        }
        let mut analysis = self.analyzer.judge(&self.meta, false);
        let processes = self.processes.judge(analysis.seconds_per_epoch.unwrap_or(f64::INFINITY));
        if !processes.is_empty() {
            analysis = analysis.with_processes(processes);
        }
        if let Some(path) = &self.summary {
            let _ = crate::report::replace_text(path, &crate::report::summary_json(&analysis));
        }
        let status = LiveStatus { epoch: row.epoch.unwrap_or(0), line: status_line(row.epoch.unwrap_or(0), &analysis), growing: confirmed_growth(&analysis) };
        self.latest = Some(analysis);
        Some(status)
    }

    /// A watched tree's processes as read at the sample of `row` (call before
    /// [`observe`](Self::observe) with that row): an epoch end adds each one's USS.
    pub fn observe_processes(&mut self, row: &Row, procs: Vec<ProcessPoint>) {
        let at_end = row.epoch.filter(|_| row.phase == "epoch_end" && row.label != AFTER_EXIT);
        for p in procs {
            self.processes.add(p, at_end);
        }
    }

    /// The analysis at the latest epoch end.
    pub fn latest(&self) -> Option<&Analysis> {
        self.latest.as_ref()
    }
}

/// The series a reading names: the first primary series that grows, else the first one
/// recorded (heap for `run`, the tree's PSS for `watch`).
fn headline(a: &Analysis) -> Option<&SeriesVerdict> {
    let primary = || PRIMARY_SERIES.iter().filter_map(|c| a.series(c));
    primary().find(|s| s.class == Class::Growing).or_else(|| {
        let preferred = ["je_allocated_bytes", "tree_pss_bytes", "rss_in_use_bytes", "rss_bytes"];
        preferred.iter().find_map(|c| a.series(c)).or_else(|| primary().next())
    })
}

/// Fitted epochs before growth may stop a job. Over three, the interval's low end is the
/// least of three pairwise slopes: above zero for any rising jitter, e.g. two equal
/// windows and then one that caught short-lived DataLoader workers (seen in CI).
pub const STOP_MIN_FITTED: usize = 4;

/// Growth that a fit with an interval over at least [`STOP_MIN_FITTED`] epoch ends
/// confirms, in a series the verdict reads, and that goes on in the latest epochs
/// ([`SeriesVerdict::rising_now`]): a cache that filled and stopped is never stopped.
/// Paired evidence from the first epochs names growth early but never stops a job.
fn confirmed_growth(a: &Analysis) -> bool {
    let primary = PRIMARY_SERIES.iter().filter_map(|c| a.series(c)).chain(a.series("rss_bytes").filter(|_| a.series("rss_in_use_bytes").is_none()));
    let process = || a.processes.iter().any(|p| p.leaks() && p.fitted >= STOP_MIN_FITTED && p.rising_now);
    a.verdict == "growing"
        && (primary.into_iter().any(|s| s.class == Class::Growing && s.paired.is_none() && s.slope_interval.is_some() && s.fitted.is_some_and(|f| f.count >= STOP_MIN_FITTED) && s.rising_now) || process())
}

/// "epoch 5: heap allocated +13.3 MiB/epoch, growing since epoch 3; out of memory in about 40 epochs".
pub fn status_line(epoch: u32, a: &Analysis) -> String {
    let Some(s) = headline(a) else { return format!("epoch {epoch}: no memory series recorded") };
    let mut line = format!("epoch {epoch}: {} ", s.name);
    match (s.class, s.slope_bytes_per_epoch) {
        (Class::Insufficient, _) | (_, None) => line.push_str(&format!("{} (too few epochs to judge)", human_bytes(s.last_bytes as f64))),
        // Two points after warm-up, both rising far: no interval yet.
        (Class::Growing, Some(slope)) if s.slope_interval.is_none() => line.push_str(&format!("{}/epoch, growing so far (too few epochs to confirm)", signed_bytes(slope))),
        (Class::Growing, Some(slope)) if s.paired.is_some_and(|p| p.steady_ends.is_some()) => {
            let e = s.paired.unwrap().steady_ends.unwrap();
            line.push_str(&format!("{}/epoch, growing (its epoch ends rose alike at each of {} steps)", signed_bytes(slope), e.steps));
        }
        (Class::Growing, Some(slope)) if s.paired.is_some() => {
            let p = s.paired.unwrap();
            line.push_str(&format!("{}/epoch, growing (from {} pairs of points in epochs {} and {})", signed_bytes(slope), p.pairs, p.epochs.0, p.epochs.1));
        }
        (Class::Growing, Some(slope)) if !s.rising_now && s.fitted.is_some_and(|f| f.count >= STOP_MIN_FITTED) => {
            line.push_str(&format!("{}/epoch since epoch {}, but no higher in the latest epochs (levelling off?)", signed_bytes(slope), s.growing_since.unwrap_or(epoch)));
        }
        (Class::Growing, Some(slope)) => {
            line.push_str(&format!("{}/epoch, growing since epoch {}", signed_bytes(slope), s.growing_since.unwrap_or(epoch)));
        }
        (class, Some(_)) if s.paired.is_some() => {
            let p = s.paired.unwrap();
            line.push_str(&format!("{}/epoch, {} so far (from {} pairs of points in epochs {} and {})", signed_bytes(p.bytes_per_epoch), class.as_str(), p.pairs, p.epochs.0, p.epochs.1));
        }
        // A slope said beside "flat" carries its interval: "+29.4 MiB/epoch, flat" alone
        // reads as a contradiction; within its noise it is not.
        (class, Some(slope)) => match s.slope_interval {
            Some((lo, hi)) => line.push_str(&format!("{}/epoch [{}, {}], {} so far", signed_bytes(slope), signed_bytes(lo), signed_bytes(hi), class.as_str())),
            None => line.push_str(&format!("{}/epoch, {} so far", signed_bytes(slope), class.as_str())),
        },
    }
    if s.class != Class::Growing || a.processes.len() > 1 {
        // A sum can hide the one process that grows, and a sum that grows does not say
        // which: name it (the ledger does too).
        if let Some(p) = a.processes.iter().filter(|p| p.leaks()).max_by(|x, y| x.slope_bytes_per_epoch.unwrap_or(0.0).total_cmp(&y.slope_bytes_per_epoch.unwrap_or(0.0))) {
            line.push_str(&format!("; {} (its USS)", p.growth()));
        }
    }
    if let Some(p) = &a.oom {
        line.push_str(&format!("; out of memory in about {:.0} epochs", p.epochs_to_limit));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1 << 20;

    fn epoch_row(epoch: u32, heap: u64) -> Row {
        Row { t_s: epoch as f64, phase: "epoch_end".into(), epoch: Some(epoch), je_allocated_bytes: Some(heap), ..Row::default() }
    }

    #[test]
    fn judges_each_epoch_and_rewrites_the_summary() {
        let dir = tempfile::tempdir().unwrap();
        let mut live = LiveVerdict::new(TimelineMeta::default(), Some(dir.path()));
        let episode = Row { t_s: 0.1, phase: "episode_end".into(), epoch: Some(0), ..Row::default() };
        assert!(live.observe(&episode).is_none());
        let mut last = None;
        for e in 0..6 {
            let s = live.observe(&epoch_row(e, 500 * MB + e as u64 * 40 * MB)).unwrap();
            let on_disk: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap()).unwrap();
            assert_eq!(on_disk["epochs"], e + 1);
            last = Some(s);
        }
        let last = last.unwrap();
        assert!(last.growing, "{}", last.line);
        assert!(last.line.starts_with("epoch 5: heap allocated +40.0 MiB/epoch, growing since epoch 1"), "{}", last.line);
    }

    #[test]
    fn a_process_that_grows_under_a_flat_sum_is_named_live_and_stops_only_while_it_grows() {
        // Rank 1 keeps 8 MiB an epoch while rank 0 frees as much: the tree's PSS is flat.
        // Rank 2 fills a cache for 3 epochs, then holds.
        let watched = TimelineMeta { recorder: Some("watch".into()), ..TimelineMeta::default() };
        let mut live = LiveVerdict::new(watched, None);
        let point = |pid: u32, rank: u32, t: f64, uss: u64| ProcessPoint { t_s: t, pid, role: "worker".into(), rank: Some(rank), name: "python".into(), rss_bytes: Some(uss + 100 * MB), uss_bytes: Some(uss) };
        let mut statuses = vec![];
        for e in 0..8u32 {
            let t = 10.0 * (e + 1) as f64;
            let cache = 200 * MB + 20 * MB * u64::from(e.min(3));
            let procs = [point(40, 0, t, 600 * MB - 8 * MB * e as u64), point(41, 1, t, 300 * MB + 8 * MB * e as u64), point(42, 2, t, cache)];
            let row = Row { t_s: t, phase: "epoch_end".into(), epoch: Some(e), tree_pss_bytes: Some(1100 * MB + cache), ..Row::default() };
            live.observe_processes(&row, procs.to_vec());
            statuses.push(live.observe(&row).unwrap());
        }
        let last = statuses.last().unwrap();
        assert!(last.line.contains("; rank 1 (pid 41) grows +8.0 MiB/epoch since epoch 1 (its USS)"), "{}", last.line);
        assert!(last.growing, "{}", last.line);
        assert!(!last.line.contains("pid 42") && !last.line.contains("pid 40"), "{}", last.line);
        assert_eq!(live.latest().unwrap().verdict, "growing");
        // Growing is said once a fit confirms it, never from two points.
        assert!(!statuses[2].growing, "{}", statuses[2].line);

        // Only the cache: never stopped, though it rose for 3 epochs.
        let mut live = LiveVerdict::new(TimelineMeta { recorder: Some("watch".into()), ..TimelineMeta::default() }, None);
        for e in 0..8u32 {
            let t = 10.0 * (e + 1) as f64;
            let cache = 200 * MB + 20 * MB * u64::from(e.min(3));
            let row = Row { t_s: t, phase: "epoch_end".into(), epoch: Some(e), tree_pss_bytes: Some(900 * MB + cache), ..Row::default() };
            live.observe_processes(&row, vec![point(40, 0, t, 600 * MB), point(42, 2, t, cache)]);
            let s = live.observe(&row).unwrap();
            assert!(!s.growing, "{}", s.line);
        }
    }

    #[test]
    fn flat_reads_flat_so_far() {
        let mut live = LiveVerdict::new(TimelineMeta::default(), None);
        let s = (0..5).map(|e| live.observe(&epoch_row(e, 500 * MB)).unwrap()).last().unwrap();
        assert!(!s.growing);
        assert!(s.line.contains("flat so far"), "{}", s.line);
    }

    #[test]
    fn a_noisy_flat_slope_is_said_with_its_interval() {
        // Epoch ends that wander by tens of MiB: a slope of some MiB/epoch, flat within
        // its noise; the line says the interval beside the class.
        let mut live = LiveVerdict::new(TimelineMeta::default(), None);
        let ends = [500, 540, 470, 545, 480, 530];
        let s = ends.iter().enumerate().map(|(e, mb)| live.observe(&epoch_row(e as u32, mb * MB)).unwrap()).last().unwrap();
        assert!(!s.growing, "{}", s.line);
        assert!(s.line.contains("/epoch [") && s.line.contains("MiB], flat so far"), "{}", s.line);
    }

    #[test]
    fn epoch_two_is_not_flat_so_far() {
        let mut live = LiveVerdict::new(TimelineMeta::default(), None);
        let lines: Vec<LiveStatus> = (0..3).map(|e| live.observe(&epoch_row(e, 1024 * MB + e as u64 * 20 * MB)).unwrap()).collect();
        assert!(lines.iter().all(|s| !s.line.contains("flat") && !s.growing), "{:?}", lines.iter().map(|s| &s.line).collect::<Vec<_>>());
        assert!(lines[2].line.contains("too few epochs"), "{}", lines[2].line);
        // An obvious leak: growing so far, but not confirmed: --stop-on-leak waits.
        let mut live = LiveVerdict::new(TimelineMeta::default(), None);
        let s = (0..3).map(|e| live.observe(&epoch_row(e, 500 * MB + e as u64 * 200 * MB)).unwrap()).last().unwrap();
        assert!(s.line.contains("growing so far") && !s.growing, "{}", s.line);
        // Three fitted epochs confirm the growth, but do not stop a job yet; four do.
        let s = live.observe(&epoch_row(3, 1100 * MB)).unwrap();
        assert!(s.line.contains("growing since") && !s.growing, "{}", s.line);
        let s = live.observe(&epoch_row(4, 1300 * MB)).unwrap();
        assert!(s.growing, "{}", s.line);
    }

    #[test]
    fn warm_up_reads_as_epochs_not_a_count() {
        use crate::report::markdown::warmup_cell;
        assert_eq!(warmup_cell(&[0]), "epoch 0");
        assert_eq!(warmup_cell(&[0, 1, 2]), "epochs 0–2");
        assert_eq!(warmup_cell(&[]), "none");
        assert_eq!(warmup_cell(&[3, 7]), "epochs 3, 7");
    }
}
