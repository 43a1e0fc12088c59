//! Analysis: from timeline rows to verdicts, a per-phase table and an explanation of the
//! ledger. Reads rows only (never live profiler state), one at a time, keeping epoch-end
//! points, running phase totals and a thinned copy of each series for the plots.

mod gpu;
mod ledger;
mod objects;
mod oom;
pub mod paired;
mod phases;
mod processes;
mod ranks;
mod sites;
mod tree;
mod trend;
mod verdict;

pub use gpu::{read_gpu, site_name as gpu_site_name, GpuAllocator, GpuCause, GpuSeries, GPU_STATS, GPU_TOLERANCE};
pub use objects::{read_censuses, Accounting, Censuses, ObjectVerdict, OBJECT_TOLERANCE};
pub use oom::{project, OomInput, OomProjection, RECENT_EPOCHS};
pub use paired::{steady_rise, EpochProfiles, Paired, SteadyEnds, MIN_PAIRS, PAIRED_UNTIL_FITTED, STEADY_SPREAD};
pub use processes::{read_processes, ProcessPoint, ProcessTrends, ProcessVerdict, MIN_PROCESS_EPOCHS};
pub use ranks::{read_ranks, RankVerdict};
pub use tree::{decelerating, mark_copy_on_write, parse_end, CommandEnd, COPY_ON_WRITE};
pub use phases::{phase_group, PhaseStats, Stat, PHASE_SERIES};
pub use sites::{classify_sites, classify_sites_with, SiteVerdict, SITE_TOLERANCE};
pub use trend::{theil_sen, Trend};
pub use verdict::{classify, classify_after, classify_measured, plateau_holds, still_rising, thin, warmup_epochs, warmup_timed, Class, Classified, Tolerance, MAX_FIT_POINTS, MAX_WARMUP_EPOCHS, MIN_FIT_POINTS, STARTUP_SECONDS};

use serde::Serialize;

use crate::timeline::{Row, Timeline, TimelineMeta, MEMORY_SERIES};
use ledger::explain;
use phases::PhaseTable;

/// Series whose growth makes the overall verdict "growing". RSS counts as "RSS in use"
/// where jemalloc's counters exist (raw RSS otherwise): the allocator's idle pages are
/// returned on its own schedule. GPU reserved and NVML's per-process figure are left
/// out: they include the caching allocator's free blocks. A watched tree is judged on
/// its PSS (summed RSS counts shared pages once per process), the USS of its main
/// process and of its workers, and the GPU memory of its processes.
pub const PRIMARY_SERIES: &[&str] = &[
    "rss_in_use_bytes",
    "je_allocated_bytes",
    "heap_exact_bytes",
    "gpu_allocated_bytes",
    "tree_pss_bytes",
    "main_uss_bytes",
    "workers_uss_bytes",
    "gpu_tree_used_bytes",
];

/// The command's tree passed `--max-memory`.
#[derive(Clone, Debug, Serialize)]
pub struct MaxMemoryPass {
    /// Seconds into the watch.
    pub t_s: f64,
    /// The epoch it happened in (the last one that ended before), if any.
    pub epoch: Option<u32>,
    /// What passed what.
    pub label: String,
}

/// The verdict on one memory series.
#[derive(Clone, Debug, Serialize)]
pub struct SeriesVerdict {
    /// Timeline column.
    pub column: String,
    /// Display name.
    pub name: String,
    /// flat / bounded / growing / insufficient.
    pub class: Class,
    /// Bytes per epoch (Theil–Sen), after warm-up.
    pub slope_bytes_per_epoch: Option<f64>,
    /// 90 % interval of the slope.
    pub slope_interval: Option<(f64, f64)>,
    /// Intercept of the fit (bytes at epoch 0), for drawing it.
    pub intercept_bytes: Option<f64>,
    /// Growth per epoch under this is noise.
    pub tolerance_bytes_per_epoch: f64,
    /// Epochs excluded as warm-up (at most [`MAX_WARMUP_EPOCHS`] by their number, more
    /// only to cover start-up: see [`STARTUP_SECONDS`]).
    pub warmup_epochs: Vec<u32>,
    /// The epoch ends the fit used (a span, not a list: a week cut into 2-s windows
    /// has 300,000 of them, in each series).
    pub fitted: Option<EpochSpan>,
    /// Value at the first and last epoch end.
    pub first_bytes: u64,
    /// Value at the last epoch end.
    pub last_bytes: u64,
    /// Why it grows, where known (`copy-on-write`).
    pub cause: Option<String>,
    /// The most it can reach, where its cause bounds it.
    pub ceiling_bytes: Option<u64>,
    /// For bounded growth with a known ceiling: whether it slows epoch after epoch.
    pub levelling_off: Option<bool>,
    /// With class growing: the first epoch that grew (later than the first fitted one
    /// when growth started late: then only the epochs from the change on are fitted).
    pub growing_since: Option<u32>,
    /// Where the class came from pairs of boundaries at the same point of consecutive
    /// epochs (the epoch ends alone were too few after warm-up): that evidence. The
    /// slope and interval above are then its own.
    pub paired: Option<Paired>,
    /// Whether the latest epoch end stands above every one up to two before it by more
    /// than the tolerance (growth goes on now): what a live "growing" and
    /// `--stop-on-leak` need, so a cache that filled and stopped is never stopped.
    pub rising_now: bool,
}

/// A run of epoch ends: the first and the last epoch, and how many epoch ends from the
/// one to the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct EpochSpan {
    /// The first epoch.
    pub first: u32,
    /// The last epoch.
    pub last: u32,
    /// How many epoch ends.
    pub count: usize,
}

impl EpochSpan {
    /// The span of these epochs, in order; `None` when there are none.
    pub fn of(epochs: impl IntoIterator<Item = u32>) -> Option<EpochSpan> {
        epochs.into_iter().fold(None, |span, e| match span {
            None => Some(EpochSpan { first: e, last: e, count: 1 }),
            Some(s) => Some(EpochSpan { last: e, count: s.count + 1, ..s }),
        })
    }

    /// Whether epoch `e` lies in the span.
    pub fn contains(&self, e: u32) -> bool {
        (self.first..=self.last).contains(&e)
    }
}

/// A thinned series for plotting: (seconds, bytes).
#[derive(Clone, Debug, Default, Serialize)]
pub struct PlotSeries {
    /// Timeline column.
    pub column: String,
    /// Display name.
    pub name: String,
    /// Points, at most [`MAX_PLOT_POINTS`].
    pub points: Vec<(f64, u64)>,
}

/// The most points kept per plotted series, however long the run.
pub const MAX_PLOT_POINTS: usize = 4000;

/// What the plots need besides the verdicts.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PlotData {
    /// Each series that has values.
    pub series: Vec<PlotSeries>,
    /// (epoch, seconds) of each epoch end.
    pub epoch_ends: Vec<(u32, f64)>,
    /// (start, end) seconds of each validation.
    pub validations: Vec<(f64, f64)>,
}

/// Everything the reports show.
#[derive(Clone, Debug, Serialize)]
pub struct Analysis {
    /// "growing" if any primary series grows (confirmed, or "so far" on two points that
    /// rise far); "insufficient" if none could be judged (fewer than 3 epoch ends after
    /// warm-up); else "flat" (bounded counts as flat).
    pub verdict: &'static str,
    /// Epoch ends recorded.
    pub epochs: usize,
    /// Rows read.
    pub boundaries: u64,
    /// Seconds from start to the last row.
    pub duration_s: f64,
    /// Mean seconds per epoch.
    pub seconds_per_epoch: Option<f64>,
    /// The run was killed mid-write (last row partial) or never reached `finish`.
    pub incomplete: bool,
    /// GPU status from the timeline (why GPU columns are empty, if they are).
    pub gpu: String,
    /// The memory limit recorded with the run.
    pub mem_limit_bytes: Option<u64>,
    /// Per memory series with values.
    pub series: Vec<SeriesVerdict>,
    /// Per-phase peaks and means.
    pub phases: Vec<PhaseStats>,
    /// Plain-language reading of the ledger.
    pub ledger: Vec<String>,
    /// Call sites, growing first (empty unless the run attributed its heap).
    pub sites: Vec<SiteVerdict>,
    /// Which profiler the call sites' bytes come from (none without attribution).
    pub sites_source: Option<crate::heap::StackSource>,
    /// Native call sites of a watched Python main process (`watch --native-sites`),
    /// growing first: the C and C++ functions its malloc'd memory was allocated in.
    pub native_sites: Vec<SiteVerdict>,
    /// The run was watched with `--native-sites` (its `native/` folder exists), whether
    /// or not any dump came.
    pub native_sites_asked: bool,
    /// Growth per epoch of the program's own `user_bytes` (e.g. bytes a known leak holds).
    pub user_bytes_per_epoch: Option<f64>,
    /// When memory runs out, if the recent epochs' growth goes on.
    pub oom: Option<OomProjection>,
    /// How a watched command ended.
    pub end: Option<CommandEnd>,
    /// When a watched tree passed `--max-memory`.
    pub max_memory: Option<MaxMemoryPass>,
    /// `run` or `watch`.
    pub recorder: String,
    /// Python objects from censuses (watch --python-objects).
    pub censuses: Option<Censuses>,
    /// The CUDA caching allocator's counters and call sites (watch --python-objects,
    /// --gpu-sites).
    pub gpu_allocator: Option<GpuAllocator>,
    /// `watch --gpu-sites` ran (its folder exists) but no epoch end was recorded.
    pub gpu_unrecorded: bool,
    /// Per-rank verdicts of a distributed run (watch).
    pub ranks: Vec<RankVerdict>,
    /// Per-process verdicts of a watched tree: each process that lived across at least
    /// [`MIN_PROCESS_EPOCHS`] epoch ends, on its own USS.
    pub processes: Vec<ProcessVerdict>,
    /// With `watch --window`: the window length standing in for an epoch.
    pub window_s: Option<f64>,
    /// Windows that were not asked for: no epoch boundary came in this many seconds.
    pub windows_after_s: Option<f64>,
    /// `watch --pid`: the watch attached to a running process.
    pub attached: bool,
    /// Why diagnose itself stopped the command, if it did (`--stop-on-leak`,
    /// `--kill-at-limit`).
    pub stopped_by: Option<String>,
    /// Epoch ends of a watch that did not read each process in full (its USS, and its PSS
    /// unless the tree's came from its cgroup): the page-walk budget of short epochs
    /// (`watch/budget.rs`).
    pub rss_only_epoch_ends: usize,
    /// The watch's budget for those readings (run.json).
    pub pss_budget: Option<crate::timeline::PssBudget>,
    /// The tree's PSS is the anon + shmem of the command's own memory cgroup (run.json).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tree_pss_from_cgroup: bool,
    /// Thinned series for the plots.
    #[serde(skip)]
    pub plot: PlotData,
}

impl Analysis {
    /// The verdict on a series, by column.
    pub fn series(&self, column: &str) -> Option<&SeriesVerdict> {
        self.series.iter().find(|s| s.column == column)
    }

    fn class_of(&self, column: &str) -> Option<Class> {
        self.series(column).map(|s| s.class)
    }
}

/// Accumulates rows; [`Analyzer::finish`] computes the [`Analysis`]. Its state is phase
/// sums, one point per epoch end (a few hundred bytes) and a thinned plot; a live one
/// ([`Analyzer::live`]) keeps no plot and thins its epoch ends, so that a watcher's
/// memory stays flat however long the run.
#[derive(Clone)]
pub struct Analyzer {
    tolerance: Tolerance,
    rows: u64,
    last_t: f64,
    saw_finish: bool,
    /// Per row of the epoch_end kind: (epoch, t, values of MEMORY_SERIES, user_bytes).
    epoch_points: Vec<(u32, f64, EpochValues, Option<u64>)>,
    /// Per epoch point: the epoch's high points of what the kernel charges.
    epoch_peaks: Vec<EpochPeak>,
    /// Every boundary of the first epochs, keyed by its place in its epoch.
    profiles: EpochProfiles,
    /// The high points seen since the last epoch end.
    open_peak: EpochPeak,
    phases: PhaseTable,
    plot: PlotData,
    plot_stride: u64,
    open_validation: Option<f64>,
    finish_label: Option<(String, f64)>,
    max_memory: Option<MaxMemoryPass>,
    cgroup_limit: Option<u64>,
    stopped_by: Option<String>,
    /// Epoch ends seen (the points kept may be fewer: see `thinning`).
    epochs_seen: usize,
    /// Epoch ends with summed RSS but no tree USS (see [`Analysis::rss_only_epoch_ends`]).
    rss_only_epoch_ends: usize,
    /// A live analyzer's bound on its epoch ends; `None` keeps them all.
    thinning: Option<Thinning>,
}

/// Epoch ends a live analyzer keeps at most: 16,384 points of ~200 B. Past that, every
/// other one after the first [`KEPT_HEAD`] is dropped and half as many are taken from
/// then on (as the plot's points are), so the kept ones stay evenly spread over the run.
/// A fit over them reads the same slope; a run of 300,000 2-s windows keeps 3 MiB.
pub const LIVE_EPOCH_POINTS: usize = 16_384;

/// The first epoch ends, never thinned: warm-up, start-up's windows and the knee.
pub const KEPT_HEAD: usize = 256;

/// Which epoch ends a live analyzer still takes.
#[derive(Clone, Copy, Debug)]
struct Thinning {
    /// One epoch end in this many (after the head) is kept.
    stride: usize,
    /// The last point kept is the latest epoch end though off the stride: the reading
    /// is always of the latest epoch; the next epoch end replaces it.
    tail_off_stride: bool,
}

impl Analyzer {
    /// An analyzer for the live verdict: no plot, and at most [`LIVE_EPOCH_POINTS`]
    /// epoch ends kept, evenly spread over the run.
    pub fn live(tolerance: Tolerance) -> Self {
        let mut a = Analyzer::new(tolerance);
        a.plot.series.clear();
        a.thinning = Some(Thinning { stride: 1, tail_off_stride: false });
        a
    }

    /// A fresh analyzer with these thresholds.
    pub fn new(tolerance: Tolerance) -> Self {
        let plot = PlotData {
            series: MEMORY_SERIES
                .iter()
                .map(|(c, n)| PlotSeries { column: c.to_string(), name: n.to_string(), points: vec![] })
                .collect(),
            ..PlotData::default()
        };
        Analyzer {
            tolerance,
            rows: 0,
            last_t: 0.0,
            saw_finish: false,
            epoch_points: Vec::new(),
            epoch_peaks: Vec::new(),
            profiles: EpochProfiles::default(),
            open_peak: EpochPeak::default(),
            phases: PhaseTable::default(),
            plot,
            plot_stride: 1,
            open_validation: None,
            finish_label: None,
            max_memory: None,
            cgroup_limit: None,
            stopped_by: None,
            rss_only_epoch_ends: 0,
            epochs_seen: 0,
            thinning: None,
        }
    }

    /// Take one row.
    pub fn add(&mut self, row: &Row) {
        self.phases.add(row);
        self.profiles.add(row);
        self.last_t = row.t_s;
        self.open_peak.see(row);
        match row.phase.as_str() {
            "epoch_end" => {
                let epoch = row.epoch.unwrap_or(self.epochs_seen as u32);
                // An epoch end read after the command had exited (its line was still in
                // the pipe) counts as an epoch, but what was sampled then is the tree
                // shutting down, not the epoch's memory: no trend reads it.
                let after_exit = row.label == AFTER_EXIT;
                let values = EpochValues::of(MEMORY_SERIES.iter().map(|(c, _)| if after_exit { None } else { row.series(c) }));
                let mut peak = std::mem::take(&mut self.open_peak).close(row);
                // The same epoch marked twice in a row (a log line, then a marker; several
                // ranks): its last mark is its end.
                if self.epoch_points.last().is_some_and(|p| p.0 == epoch) {
                    self.epoch_points.pop();
                    self.plot.epoch_ends.pop();
                    peak = peak.max(self.epoch_peaks.pop().unwrap_or_default());
                } else {
                    self.epochs_seen += 1;
                    self.rss_only_epoch_ends += usize::from(!after_exit && row.tree_rss_bytes.is_some() && row.tree_uss_bytes.is_none());
                    self.make_room_for_epoch_end();
                }
                if after_exit {
                    peak = EpochPeak::default();
                }
                self.epoch_points.push((epoch, row.t_s, values, row.user_bytes));
                self.epoch_peaks.push(peak);
                if self.thinning.is_none() {
                    self.plot.epoch_ends.push((epoch, row.t_s));
                }
            }
            "validation_start" => self.open_validation = Some(row.t_s),
            "validation_end" => {
                if let Some(start) = self.open_validation.take().filter(|_| self.thinning.is_none()) {
                    self.plot.validations.push((start, row.t_s));
                }
            }
            "finish" => {
                self.saw_finish = true;
                self.finish_label = Some((row.label.clone(), row.t_s));
            }
            // A census row carries the program's own GPU allocator figures for the epoch
            // that just ended (watch --python-objects): they complete its epoch point.
            "census" => {
                if let Some(point) = self.epoch_points.last_mut().filter(|p| Some(p.0) == row.epoch) {
                    for (i, (column, _)) in MEMORY_SERIES.iter().enumerate() {
                        if column.starts_with("gpu_") && point.2.get(i).is_none() {
                            point.2.set(i, row.series(column));
                        }
                    }
                }
            }
            "stop_on_leak" => self.stopped_by = Some("--stop-on-leak".into()),
            "kill_at_limit" => self.stopped_by = Some("--kill-at-limit".into()),
            "max_memory" if self.max_memory.is_none() => {
                let epoch = self.epoch_points.last().map(|p| p.0);
                self.max_memory = Some(MaxMemoryPass { t_s: row.t_s, epoch, label: row.label.clone() });
            }
            _ => {}
        }
        if row.cgroup_limit_bytes.is_some() {
            self.cgroup_limit = row.cgroup_limit_bytes;
        }
        if self.thinning.is_none() && self.rows % self.plot_stride == 0 {
            // A watched tree's `start` row is taken as the command is spawned, before its
            // exec: its tree figures are the watcher's fork, never the command's memory.
            // And once the tree is gone (finish after the exit) it has no memory to draw.
            let pre_exec = row.phase == "start" || row.tree_processes == Some(0);
            for s in &mut self.plot.series {
                let tree = ["tree_", "main_", "workers_", "gpu_tree_"].iter().any(|p| s.column.starts_with(p));
                if pre_exec && tree {
                    continue;
                }
                // A process being reaped reads 0: the tree or its main process is gone.
                let gone = ["tree_", "main_"].iter().any(|p| s.column.starts_with(p)) && row.series(&s.column) == Some(0);
                if gone {
                    continue;
                }
                if let Some(v) = row.series(&s.column) {
                    s.points.push((row.t_s, v));
                }
            }
            // Keep the plot bounded: past the cap, drop every other point and sample half
            // as often from now on.
            if self.plot.series.iter().any(|s| s.points.len() >= MAX_PLOT_POINTS) {
                for s in &mut self.plot.series {
                    let mut i = 0;
                    s.points.retain(|_| {
                        i += 1;
                        i % 2 == 1
                    });
                }
                self.plot_stride *= 2;
            }
        }
        self.rows += 1;
    }

    /// A live analyzer, before it takes epoch end number `epochs_seen`: drop the latest
    /// point if it was kept only as the latest, and past [`LIVE_EPOCH_POINTS`] every
    /// other point after the head. Then say whether the new one is on the stride.
    fn make_room_for_epoch_end(&mut self) {
        let Some(t) = self.thinning.as_mut() else { return };
        if std::mem::take(&mut t.tail_off_stride) {
            self.epoch_points.pop();
            self.epoch_peaks.pop();
        }
        if self.epoch_points.len() >= LIVE_EPOCH_POINTS {
            keep_every_other_after(&mut self.epoch_points, KEPT_HEAD);
            keep_every_other_after(&mut self.epoch_peaks, KEPT_HEAD);
            t.stride *= 2;
        }
        let index = self.epochs_seen - 1;
        t.tail_off_stride = index >= KEPT_HEAD && (index - KEPT_HEAD) % t.stride != 0;
    }

    /// Compute verdicts and the ledger.
    pub fn finish(mut self, meta: &TimelineMeta, truncated: bool) -> Analysis {
        let mut plot = std::mem::take(&mut self.plot);
        plot.series.retain(|s| !s.points.is_empty());
        self.analyse(meta, truncated, plot)
    }

    /// The verdicts so far, without the plots: what the live verdict needs at each epoch
    /// end, at a cost bounded by the fits (not a copy of everything seen).
    pub fn judge(&self, meta: &TimelineMeta, truncated: bool) -> Analysis {
        self.analyse(meta, truncated, PlotData::default())
    }

    fn analyse(&self, meta: &TimelineMeta, truncated: bool, plot: PlotData) -> Analysis {
        let epochs = self.epochs_seen;
        // The first and the latest epoch ends are always kept (thinned or not).
        let seconds_per_epoch = (epochs >= 2).then(|| {
            let (first, last) = (&self.epoch_points[0], &self.epoch_points[self.epoch_points.len() - 1]);
            (last.1 - first.1) / (epochs - 1) as f64
        });

        let mut series = Vec::new();
        for (i, (column, name)) in MEMORY_SERIES.iter().enumerate() {
            let pts: Vec<(u32, f64)> = self
                .epoch_points
                .iter()
                .filter_map(|(e, _, values, _)| values.get(i).map(|v| (*e, v as f64)))
                .collect();
            if pts.is_empty() {
                continue;
            }
            let xy: Vec<(f64, f64)> = pts.iter().map(|&(e, v)| (e as f64, v)).collect();
            let mut c = classify_after(&xy, self.warmup_of(i, meta), self.tolerance);
            let fitted = EpochSpan::of(c.fitted(&pts, |p| p.0 as f64).iter().map(|p| p.0));
            let paired = self.paired_verdict(column, &mut c, &xy, fitted.map_or(0, |f| f.count), meta);
            let last_bytes = pts[pts.len() - 1].1 as u64;
            let rising_now = still_rising(&xy[c.warmup.min(xy.len())..], c.tolerance_bytes);
            series.push(SeriesVerdict {
                column: column.to_string(),
                name: name.to_string(),
                class: c.class,
                slope_bytes_per_epoch: c.trend.map(|t| t.slope),
                slope_interval: c.trend.and_then(|t| t.interval()),
                intercept_bytes: c.trend.map(|t| t.intercept),
                tolerance_bytes_per_epoch: c.tolerance_bytes,
                warmup_epochs: pts[..c.warmup].iter().map(|p| p.0).collect(),
                fitted,
                first_bytes: pts[0].1 as u64,
                last_bytes,
                cause: None,
                ceiling_bytes: None,
                levelling_off: None,
                growing_since: c.growing_since.map(|e| e as u32),
                paired,
                rising_now,
            });
        }
        let warmups: Vec<(String, usize)> = series.iter().map(|s| (s.column.clone(), s.warmup_epochs.len())).collect();
        let fitted_points = |column: &str| -> Vec<(f64, f64)> {
            let pts = self.epoch_values(column);
            let warmup = warmups.iter().find(|w| w.0 == column).map_or(0, |w| w.1);
            pts[warmup.min(pts.len())..].iter().map(|p| (p.0 as f64, p.2)).collect()
        };
        mark_copy_on_write(&mut series, fitted_points);
        let oom = self.project_oom(meta);
        let last_epoch = self.epoch_points.last().map(|p| p.0);
        let end = self.finish_label.as_ref().and_then(|(label, t)| parse_end(label, *t, last_epoch));

        let user: Vec<(f64, f64)> = self
            .epoch_points
            .iter()
            .filter_map(|(e, _, _, u)| u.map(|u| (*e as f64, u as f64)))
            .collect();
        let user_bytes_per_epoch =
            (user.len() >= 2).then(|| theil_sen(&user).map(|t| t.slope)).flatten();

        let mut analysis = Analysis {
            verdict: "flat",
            epochs,
            boundaries: self.rows,
            duration_s: self.last_t,
            seconds_per_epoch,
            incomplete: truncated || !self.saw_finish,
            gpu: meta.gpu.clone().unwrap_or_else(|| "unknown".into()),
            mem_limit_bytes: meta.mem_limit_bytes,
            series,
            phases: self.phases.clone().finish(),
            ledger: Vec::new(),
            sites: Vec::new(),
            sites_source: None,
            native_sites: Vec::new(),
            native_sites_asked: false,
            user_bytes_per_epoch,
            oom,
            end,
            max_memory: self.max_memory.clone(),
            recorder: meta.recorder.clone().unwrap_or_else(|| "run".into()),
            censuses: None,
            gpu_allocator: None,
            gpu_unrecorded: false,
            ranks: Vec::new(),
            processes: Vec::new(),
            window_s: meta.window_s,
            windows_after_s: meta.windows_after_s,
            attached: meta.attached == Some(true),
            stopped_by: self.stopped_by.clone(),
            rss_only_epoch_ends: self.rss_only_epoch_ends,
            pss_budget: meta.pss_budget,
            tree_pss_from_cgroup: meta.tree_pss_from_cgroup.is_some(),
            plot,
        };
        let rss_primary = if analysis.series("rss_in_use_bytes").is_some() { "rss_in_use_bytes" } else { "rss_bytes" };
        let primary: Vec<Option<Class>> = PRIMARY_SERIES.iter().map(|c| analysis.class_of(if *c == "rss_in_use_bytes" { rss_primary } else { c })).collect();
        if primary.contains(&Some(Class::Growing)) {
            analysis.verdict = "growing";
        } else if primary.iter().flatten().all(|c| *c == Class::Insufficient) {
            // Nothing could be judged (fewer than 3 epoch ends): not "flat", which would reassure.
            analysis.verdict = "insufficient";
        } else if analysis.series.iter().any(|s| s.paired.is_some()) && primary.contains(&Some(Class::Insufficient)) {
            // From the first epochs, one series that cannot tell is not outvoted by another
            // that reads flat: the heap's epoch ends rose by 3 % at every step of a leaking
            // run while its pairs scattered, and RSS in use alone called the run flat.
            analysis.verdict = "insufficient";
        }
        // The machine's memory moves with other processes too: projected only when this
        // run's own memory grows. Its cgroup is its own, and always projected.
        if analysis.verdict != "growing" && analysis.oom.as_ref().is_some_and(|p| p.limit_source != "cgroup") {
            analysis.oom = None;
        }
        analysis.ledger = explain(&analysis);
        analysis
    }
}

/// One epoch end's values of [`MEMORY_SERIES`], packed: `u64::MAX` where a series has
/// none (184 B where `Vec<Option<u64>>` took 368 and its slack: one is kept per epoch end,
/// 300,000 of them in a week of 2-s windows).
#[derive(Clone)]
struct EpochValues(Box<[u64]>);

impl EpochValues {
    const NONE: u64 = u64::MAX;

    /// One value packed: `NONE` for none, and a value that would read as none kept just
    /// under it.
    fn pack(v: Option<u64>) -> u64 {
        v.map_or(Self::NONE, |v| v.min(Self::NONE - 1))
    }

    fn of(values: impl Iterator<Item = Option<u64>>) -> Self {
        EpochValues(values.map(Self::pack).collect())
    }

    fn get(&self, i: usize) -> Option<u64> {
        self.0.get(i).copied().filter(|v| *v != Self::NONE)
    }

    fn set(&mut self, i: usize, v: Option<u64>) {
        if let Some(slot) = self.0.get_mut(i) {
            *slot = Self::pack(v);
        }
    }
}

/// Growth per epoch under this is noise to paired evidence from the first epochs.
pub const PAIRED_FLOOR_BYTES: f64 = 1024.0 * 1024.0;

/// Growth per epoch under this fraction of the level is noise to paired evidence.
pub const PAIRED_RELATIVE: f64 = 0.01;

/// The budget of a young series (fewer than [`PAIRED_UNTIL_FITTED`] fitted epoch ends):
/// its own tolerance `base`, at least [`PAIRED_FLOOR_BYTES`] and [`PAIRED_RELATIVE`] of
/// its `level`. The same for a series judged from pairs and for one process's USS.
pub fn young_budget(base: f64, level: f64) -> f64 {
    base.max(PAIRED_FLOOR_BYTES).max(PAIRED_RELATIVE * level)
}

impl Analyzer {
    /// While the epoch ends after warm-up are fewer than [`PAIRED_UNTIL_FITTED`], the
    /// pairs of boundaries at the same point of consecutive epochs decide the class of
    /// `column` (see [`paired`]): `c` takes their class, slope and interval. Not with
    /// fixed windows, whose "epochs" have no repeating inside.
    fn paired_verdict(&self, column: &str, c: &mut Classified, xy: &[(f64, f64)], fitted: usize, meta: &TimelineMeta) -> Option<Paired> {
        if fitted >= PAIRED_UNTIL_FITTED || meta.window_s.is_some() {
            return None;
        }
        let mut p = self.profiles.judge(column, c.warmup.max(1))?;
        let before = c.clone();
        let level = verdict::median_level(&xy[c.warmup.min(xy.len())..]);
        // One or two epoch steps of a young process: allocator arenas and interpreter
        // caches still settle by a few hundred KiB an epoch. A looser budget than the
        // trend's, still well under the 2 % of the level per epoch it must find.
        let tolerance = young_budget(self.tolerance.per_epoch(level, p.steps as f64), level);
        c.tolerance_bytes = tolerance;
        // The epoch ends of the same steps must rise too: they are the quiet points (what
        // an epoch keeps, its temporaries gone). Inside an epoch, churn that falls one
        // episode later than the epoch before shifts a whole run of pairs alike; the
        // reference trainer's clean epochs did that (pairs +15 MiB, epoch ends equal).
        let at = |e: u32| xy.iter().find(|q| q.0 == e as f64).map(|q| q.1);
        let end_step = match (at(p.epochs.0), at(p.epochs.1)) {
            (Some(a), Some(b)) => Some((b - a) / (p.epochs.1 - p.epochs.0).max(1) as f64),
            _ => None,
        };
        let ends_rise = end_step.is_none_or(|d| d > tolerance);
        // Pairs that fall while the epoch ends rise contradict them: not flat. (A leak
        // of 2.6 MiB/epoch, its heap's epoch ends rising by that at every step, read
        // -11.8 MiB/epoch [-12.4, -4.9] from pairs a cache's churn had shifted.)
        let pairs_flat = p.bytes_per_epoch.abs() <= tolerance && p.interval.0 >= -2.0 * tolerance && p.interval.1 <= 2.0 * tolerance;
        // The epoch ends, warm-up's included, rose alike at every step: the quiet points
        // say it, and how much, where the pairs scatter or overshoot (the pairs of the
        // runs above read anything from -11.8 to +17.6 MiB/epoch; the ends +2.66).
        p.steady_ends = paired::steady_rise(xy, tolerance);
        c.class = if p.steady_ends.is_some() || (p.interval.0 > 0.0 && p.bytes_per_epoch > tolerance && ends_rise) {
            Class::Growing
        } else if !ends_rise || pairs_flat {
            Class::Flat
        } else {
            // Rising, or scattered too widely to tell yet.
            Class::Insufficient
        };
        // Three epoch ends after warm-up already give a trend with an interval: pairs too
        // scattered to tell leave it standing (they only overrule it when they can say).
        if c.class == Class::Insufficient && fitted >= MIN_FIT_POINTS {
            *c = before;
            return None;
        }
        c.growing_since = (c.class == Class::Growing).then_some(p.epochs.0 as f64);
        c.late_fit_from = None;
        // Flat because the epoch ends did not rise while the pairs did (DataLoader workers
        // made anew each epoch, paired with other workers): the slope said is the epoch
        // ends' own, never "flat, +20 MiB/epoch [+7, +34]".
        if c.class == Class::Flat && !pairs_flat && before.trend.is_some() {
            c.trend = before.trend;
            return Some(p);
        }
        let (slope, (low, high), points) = match p.steady_ends {
            Some(s) => (s.bytes_per_epoch, s.interval, s.steps + 1),
            None => (p.bytes_per_epoch, p.interval, p.pairs),
        };
        let intercept = xy.last().map_or(0.0, |l| l.1 - slope * l.0);
        c.trend = Some(Trend { slope, low, high, intercept, points });
        Some(p)
    }

    /// (epoch, seconds, bytes) of a memory series at each epoch end where it has a value.
    fn epoch_values(&self, column: &str) -> Vec<(u32, f64, f64)> {
        let Some(i) = MEMORY_SERIES.iter().position(|(c, _)| *c == column) else { return vec![] };
        self.epoch_points.iter().filter_map(|(e, t, v, _)| v.get(i).map(|v| (*e, *t, v as f64))).collect()
    }

    /// How many leading points of series `i` are warm-up: by their number, and with
    /// fixed windows also every window that ended within start-up.
    fn warmup_of(&self, i: usize, meta: &TimelineMeta) -> usize {
        let times: Vec<f64> = self.epoch_points.iter().filter(|p| p.2.get(i).is_some()).map(|p| p.1).collect();
        if meta.window_s.is_some() {
            // Start-up is the first seconds of the process's life: with --pid, the watch
            // may begin long after; windows the watch fell back to begin only after that
            // long without a boundary (10 min by default), start-up behind them.
            let startup = if meta.windows_after_s.is_some() { 0.0 } else { STARTUP_SECONDS - meta.target_age_s.unwrap_or(0.0) };
            warmup_timed(&times, startup)
        } else {
            warmup_epochs(times.len())
        }
    }

    /// The one out-of-memory projection, on each epoch's high point (an OOM kill comes at
    /// an epoch's peak, not at its end): the cgroup's unreclaimable memory against its
    /// limit where one is set; else the machine's memory in use against MemTotal, rising
    /// at the rate of the run's own memory (the tree's PSS, the process's RSS), not the
    /// machine's, which moves with every other job; else (timelines from before these
    /// columns) RSS against the recorded limit.
    fn project_oom(&self, meta: &TimelineMeta) -> Option<OomProjection> {
        let name = |column: &str| MEMORY_SERIES.iter().find(|(c, _)| *c == column).map_or(column.to_string(), |(_, n)| n.to_string());
        let peaks = |column: &str, peak: fn(&EpochPeak) -> Option<u64>| -> Vec<(u32, f64, f64)> {
            let Some(i) = MEMORY_SERIES.iter().position(|(c, _)| *c == column) else { return vec![] };
            self.epoch_points
                .iter()
                .zip(&self.epoch_peaks)
                .filter_map(|((e, t, v, _), p)| Some((*e, *t, v.get(i)?.max(peak(p).unwrap_or(0)) as f64)))
                .collect()
        };
        let own = || ["tree_pss_bytes", "rss_in_use_bytes", "rss_bytes"].into_iter().map(|c| (c, self.epoch_values(c))).find(|(_, p)| p.len() >= 3);
        if let Some(limit) = self.cgroup_limit {
            let pts = peaks("cgroup_unreclaimable_bytes", |p| p.cgroup);
            if !pts.is_empty() {
                return project(&OomInput { column: "cgroup_unreclaimable_bytes", name: &format!("{} at its epoch peak", name("cgroup_unreclaimable_bytes")), level: &pts, rate: None, ends: Some(&self.epoch_values("cgroup_unreclaimable_bytes")), limit, limit_source: "cgroup" }, self.tolerance);
            }
        }
        let machine = meta.mem_limit_bytes.filter(|_| meta.mem_limit_source.as_deref() == Some("meminfo"));
        if let (Some(limit), Some((own_column, own_points))) = (machine, own()) {
            let pts = peaks("system_used_bytes", |p| p.system);
            if !pts.is_empty() {
                let label = format!("{} at its epoch peak, rising as the run's {}", name("system_used_bytes"), name(own_column));
                return project(&OomInput { column: "system_used_bytes", name: &label, level: &pts, rate: Some(&own_points), ends: None, limit, limit_source: "meminfo" }, self.tolerance);
            }
        }
        let limit = meta.mem_limit_bytes?;
        let pts = peaks("rss_bytes", |p| p.rss);
        if pts.is_empty() {
            return None;
        }
        let source = meta.mem_limit_source.as_deref().unwrap_or("limit");
        project(&OomInput { column: "rss_bytes", name: &name("rss_bytes"), level: &pts, rate: None, ends: Some(&self.epoch_values("rss_bytes")), limit, limit_source: source }, self.tolerance)
    }
}

/// Drop every other item after the first `head` (the first after the head stays).
fn keep_every_other_after<T>(v: &mut Vec<T>, head: usize) {
    let mut i = 0;
    v.retain(|_| {
        i += 1;
        i <= head || (i - head) % 2 == 1
    });
}

/// The label of an epoch end that was read after the watched command had exited.
pub const AFTER_EXIT: &str = "after-exit";

/// The high points of one epoch, from every row between its start and its end: the
/// charged series where they were sampled (the watcher samples them between boundaries),
/// and, where the process recorded its peak RSS since the last boundary (`run`), its
/// value at the epoch's end plus how far peak RSS stood above RSS there.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct EpochPeak {
    cgroup: Option<u64>,
    system: Option<u64>,
    rss: Option<u64>,
}

impl EpochPeak {
    fn see(&mut self, row: &Row) {
        let up = |acc: &mut Option<u64>, v: Option<u64>| {
            if let Some(v) = v {
                *acc = Some(acc.map_or(v, |a| a.max(v)));
            }
        };
        up(&mut self.cgroup, row.series("cgroup_unreclaimable_bytes"));
        up(&mut self.system, row.system_used_bytes);
        up(&mut self.rss, row.peak_rss_bytes.or(row.rss_bytes));
    }

    /// The epoch's peaks, given its end row (already seen).
    fn close(mut self, end: &Row) -> Self {
        // Peak RSS above RSS at the end: the epoch's temporaries, charged at its height.
        let excess = match (self.rss, end.rss_bytes) {
            (Some(peak), Some(at_end)) => peak.saturating_sub(at_end),
            _ => 0,
        };
        let lift = |peak: Option<u64>, at_end: Option<u64>| match (peak, at_end) {
            (p, Some(e)) => Some(p.unwrap_or(e).max(e + excess)),
            (p, None) => p,
        };
        self.cgroup = lift(self.cgroup, end.series("cgroup_unreclaimable_bytes"));
        self.system = lift(self.system, end.system_used_bytes);
        self
    }

    fn max(self, other: EpochPeak) -> EpochPeak {
        let m = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        EpochPeak { cgroup: m(self.cgroup, other.cgroup), system: m(self.system, other.system), rss: m(self.rss, other.rss) }
    }
}

impl Analysis {
    /// Add the per-rank verdicts and re-read the ledger with them; a growing rank makes
    /// the verdict growing.
    pub fn with_ranks(mut self, ranks: Vec<RankVerdict>) -> Self {
        if ranks.iter().any(|r| r.class == Class::Growing) {
            self.verdict = "growing";
        }
        self.ranks = ranks;
        self.ledger = explain(&self);
        self
    }

    /// Add the per-process verdicts and re-read the ledger with them; a process that
    /// grows (not by copy-on-write) makes the verdict growing, whatever the sums say.
    pub fn with_processes(mut self, processes: Vec<ProcessVerdict>) -> Self {
        if processes.iter().any(ProcessVerdict::leaks) {
            self.verdict = "growing";
        }
        self.processes = processes;
        self.ledger = explain(&self);
        self
    }

    /// Add the Python objects' verdicts and re-read the ledger with them.
    pub fn with_censuses(mut self, censuses: Censuses) -> Self {
        self.censuses = Some(censuses);
        self.ledger = explain(&self);
        self
    }

    /// Add the CUDA allocator's verdict and re-read the ledger with it; a GPU leak
    /// (allocated grows) makes the verdict growing.
    pub fn with_gpu(mut self, gpu: GpuAllocator) -> Self {
        if gpu.cause == GpuCause::Leak {
            self.verdict = "growing";
        }
        self.gpu_allocator = Some(gpu);
        self.ledger = explain(&self);
        self
    }

    /// Say that `watch --gpu-sites` recorded nothing (CUDA never initialised).
    pub fn with_gpu_unrecorded(mut self) -> Self {
        self.gpu_unrecorded = true;
        self.ledger = explain(&self);
        self
    }

    /// Add the native call sites' verdicts (`watch --native-sites`) and re-read the ledger.
    pub fn with_native_sites(mut self, sites: Vec<SiteVerdict>) -> Self {
        self.native_sites = sites;
        self.native_sites_asked = true;
        self.ledger = explain(&self);
        self
    }

    /// Add call-site verdicts and re-read the ledger with them.
    pub fn with_sites(mut self, sites: Vec<SiteVerdict>, source: crate::heap::StackSource) -> Self {
        self.sites = sites;
        self.sites_source = Some(source);
        self.ledger = explain(&self);
        self
    }
}

/// Analyze a whole timeline with the default thresholds.
pub fn analyze(timeline: &Timeline) -> Analysis {
    let mut a = Analyzer::new(Tolerance::default());
    for row in &timeline.rows {
        a.add(row);
    }
    a.finish(&timeline.meta, timeline.truncated)
}

/// Why the GPU columns are empty, in words, from the timeline's GPU status token
/// (`None` when they are filled).
pub fn gpu_empty_reason(token: &str) -> Option<String> {
    let words = |t: &str| -> String {
        let t = t.replace('_', " ");
        if let Some(why) = t.strip_prefix("no-driver:") {
            // NVML's own words ("a libnvidia-ml.so could not be found") add nothing on a
            // machine without a GPU; the timeline keeps them.
            let _ = why;
            "no NVIDIA driver".to_string()
        } else if let Some(why) = t.strip_prefix("no-device:") {
            format!("no such GPU device (NVML: {why})")
        } else if let Some(name) = t.strip_prefix("active:") {
            format!("a GPU is present ({name})")
        } else {
            t
        }
    };
    if token.starts_with("active:") {
        None
    } else if let Some(probe) = token.strip_prefix("not-requested;") {
        Some(format!("the run did not use a GPU (--device cpu); {}", words(probe)))
    } else {
        Some(words(token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1 << 20;

    fn run(epochs: u32, rss: impl Fn(u32) -> u64, alloc: impl Fn(u32) -> u64) -> Analysis {
        let mut a = Analyzer::new(Tolerance::default());
        a.add(&Row { phase: "start".into(), ..Row::default() });
        for e in 0..epochs {
            let t = e as f64 * 10.0;
            a.add(&Row { t_s: t + 1.0, phase: "validation_start".into(), epoch: Some(e), ..Row::default() });
            a.add(&Row { t_s: t + 2.0, phase: "validation_end".into(), epoch: Some(e), ..Row::default() });
            a.add(&Row {
                t_s: t + 3.0,
                phase: "epoch_end".into(),
                epoch: Some(e),
                rss_bytes: Some(rss(e)),
                je_allocated_bytes: Some(alloc(e)),
                je_resident_bytes: Some(alloc(e) + 10 * MB),
                user_bytes: Some(e as u64 * 3 * MB),
                ..Row::default()
            });
        }
        a.add(&Row { t_s: 1000.0, phase: "finish".into(), ..Row::default() });
        let meta = TimelineMeta { mem_limit_bytes: Some(1000 * MB), mem_limit_source: Some("meminfo".into()), ..TimelineMeta::default() };
        a.finish(&meta, false)
    }

    /// A live analyzer over 100,000 epoch ends keeps a bounded, evenly spread set of
    /// them, and reads what the full one reads: the count, the slope, the latest value.
    #[test]
    fn live_analyzer_thins_its_epoch_ends_and_reads_the_same() {
        let n = 100_000u32;
        let meta = TimelineMeta::default();
        let level = |e: u32, leak: u64| 500 * MB + e as u64 * leak + (e as u64 * 2654435761 % 4096) * 1024;
        for (leak, class) in [(MB, Class::Growing), (0, Class::Flat)] {
            let (mut full, mut live) = (Analyzer::new(Tolerance::default()), Analyzer::live(Tolerance::default()));
            for e in 0..n {
                let row = Row { t_s: e as f64 * 2.0, phase: "epoch_end".into(), epoch: Some(e), rss_bytes: Some(level(e, leak)), ..Row::default() };
                full.add(&row);
                live.add(&row);
                assert!(live.epoch_points.len() <= LIVE_EPOCH_POINTS + 1);
            }
            assert!(live.plot.series.is_empty() && live.plot.epoch_ends.is_empty());
            let kept: Vec<u32> = live.epoch_points.iter().map(|p| p.0).collect();
            assert_eq!(kept[..KEPT_HEAD], (0..KEPT_HEAD as u32).collect::<Vec<_>>()[..]);
            assert_eq!(*kept.last().unwrap(), n - 1, "the latest epoch end is kept");
            // Evenly spread: one stride between the kept points after the head.
            let gaps: std::collections::BTreeSet<u32> = kept[KEPT_HEAD..kept.len() - 1].windows(2).map(|w| w[1] - w[0]).collect();
            assert_eq!(gaps.len(), 1, "{gaps:?}");
            let (f, l) = (full.judge(&meta, false), live.judge(&meta, false));
            assert_eq!((l.epochs, f.epochs), (n as usize, n as usize));
            let (fs, ls) = (f.series("rss_bytes").unwrap(), l.series("rss_bytes").unwrap());
            assert_eq!((fs.class, ls.class), (class, class));
            let slope = |s: &SeriesVerdict| s.slope_bytes_per_epoch.unwrap() / MB as f64;
            assert!((slope(fs) - slope(ls)).abs() < 0.01, "full {} live {}", slope(fs), slope(ls));
            assert_eq!((fs.last_bytes, ls.last_bytes), (level(n - 1, leak), level(n - 1, leak)));
            assert!((f.seconds_per_epoch.unwrap() - 2.0).abs() < 1e-9 && (l.seconds_per_epoch.unwrap() - 2.0).abs() < 1e-9);
        }
    }

    #[test]
    fn flat_run() {
        let a = run(5, |_| 400 * MB, |_| 200 * MB);
        assert_eq!(a.verdict, "flat");
        assert_eq!(a.epochs, 5);
        assert_eq!(a.plot.validations.len(), 5);
        assert!(a.ledger[0].contains("flat"), "{:?}", a.ledger);
        assert_eq!(a.user_bytes_per_epoch, Some(3.0 * MB as f64));
    }

    #[test]
    fn too_few_epochs_are_insufficient_not_flat() {
        let a = run(2, |_| 400 * MB, |_| 200 * MB);
        assert_eq!(a.verdict, "insufficient");
        assert!(a.ledger.iter().any(|l| l.contains("Too few epoch ends to judge (2):")), "{:?}", a.ledger);
        // Ctrl-C at epoch 2: two points after warm-up say nothing, whatever their slope.
        let a = run(3, |e| 1000 * MB + e as u64 * 20 * MB, |_| 200 * MB);
        assert_eq!(a.verdict, "insufficient", "{:?}", a.series);
        assert!(crate::report::text_summary(&a).contains("no interval (2 epochs after warm-up)"));
        // An obvious leak stopped after 3 epochs: growing so far, never flat.
        let a = run(3, |e| 400 * MB + e as u64 * 100 * MB, |e| 200 * MB + e as u64 * 100 * MB);
        assert_eq!(a.verdict, "growing");
        assert!(crate::report::text_summary(&a).contains("growing so far"), "{}", crate::report::text_summary(&a));
        assert_eq!(run(4, |_| 400 * MB, |_| 200 * MB).verdict, "flat");
    }

    /// Three epochs of 20 episodes: the heap's epoch end `e` stands `end(e)` above
    /// 200 MiB; inside epoch 1 a cache held 15 MiB more than at the same episodes of
    /// epoch 2, so every pair reads about -12 MiB. RSS stays flat.
    fn pairs_shifted_by_a_cache(end: impl Fn(u32) -> u64) -> Analysis {
        let mut a = Analyzer::new(Tolerance::default());
        a.add(&Row { phase: "start".into(), ..Row::default() });
        for e in 0..3u32 {
            let churn = if e == 1 { 15 * MB } else { 0 };
            for k in 0..20u64 {
                let t = e as f64 * 100.0 + k as f64;
                let heap = 200 * MB + end(e) + churn + (k * 7919 % 13) * (MB / 8);
                a.add(&Row { t_s: t, phase: "episode_end".into(), epoch: Some(e), rss_bytes: Some(400 * MB), je_allocated_bytes: Some(heap), ..Row::default() });
            }
            a.add(&Row { t_s: e as f64 * 100.0 + 50.0, phase: "epoch_end".into(), epoch: Some(e), rss_bytes: Some(400 * MB), je_allocated_bytes: Some(200 * MB + end(e)), ..Row::default() });
        }
        a.add(&Row { t_s: 1000.0, phase: "finish".into(), ..Row::default() });
        a.finish(&TimelineMeta::default(), false)
    }

    #[test]
    fn pairs_that_fall_while_epoch_ends_rise_are_not_flat() {
        // The ends rise unevenly (+3, then +6 MiB): not steady, and the falling pairs
        // contradict them. Before: heap "flat" from the pairs, and the run flat.
        let a = pairs_shifted_by_a_cache(|e| [0, 3, 9][e as usize] * MB);
        let heap = a.series("je_allocated_bytes").unwrap();
        let p = heap.paired.expect("paired");
        assert!(p.bytes_per_epoch < -5.0 * MB as f64 && p.interval.1 < 0.0 && p.steady_ends.is_none(), "{p:?}");
        assert_eq!(heap.class, Class::Insufficient, "{heap:?}");
        assert_eq!(a.verdict, "insufficient", "{:?}", a.ledger);
    }

    #[test]
    fn epoch_ends_rising_alike_at_every_step_are_growing_whatever_the_pairs_read() {
        // +3 MiB at each epoch end (a leak; its heap's quiet points are exact), the pairs
        // shifted by a cache's churn: growing at the ends' slope, and the ledger says so.
        let a = pairs_shifted_by_a_cache(|e| e as u64 * 3 * MB);
        let heap = a.series("je_allocated_bytes").unwrap();
        assert_eq!((heap.class, a.verdict), (Class::Growing, "growing"), "{:?}", a.ledger);
        assert!((heap.slope_bytes_per_epoch.unwrap() / MB as f64 - 3.0).abs() < 0.01, "{heap:?}");
        assert!(a.ledger.iter().any(|l| l.contains("epoch ends rose by the same amount at each of 2 steps")), "{:?}", a.ledger);
        // The same ends flat: no steady rise, and the pairs alone cannot call it growing.
        let a = pairs_shifted_by_a_cache(|_| 0);
        assert_ne!(a.series("je_allocated_bytes").unwrap().class, Class::Growing, "{:?}", a.ledger);
    }

    /// Fixed windows: `rows` (t, PSS) watched, one window end per second.
    fn windows(pss: impl Fn(f64) -> u64, seconds: u32) -> Analysis {
        let mut a = Analyzer::new(Tolerance::default());
        for s in 1..=seconds {
            let t = s as f64;
            a.add(&Row { t_s: t, phase: "epoch_end".into(), epoch: Some(s - 1), label: "window".into(), tree_pss_bytes: Some(pss(t)), ..Row::default() });
        }
        let meta = TimelineMeta { recorder: Some("watch".into()), window_s: Some(1.0), ..TimelineMeta::default() };
        a.finish(&meta, false)
    }

    #[test]
    fn start_up_under_one_second_windows_is_warm_up_not_growth() {
        // import torch and workers starting: +100 MiB a second for 8 s, then flat.
        let startup = |t: f64| 200 * MB + (100.0 * t.min(8.0)) as u64 * MB;
        for seconds in [3, 9, 12, 30] {
            let a = windows(startup, seconds);
            assert_ne!(a.verdict, "growing", "{seconds} s: {:?}", a.series);
        }
        let a = windows(startup, 30);
        let pss = a.series("tree_pss_bytes").unwrap();
        assert_eq!(pss.warmup_epochs.len(), 9, "the windows that ended in the first 10 s");
        assert_eq!(crate::report::markdown::warmup_cell(&pss.warmup_epochs), "epochs 0–8");
        // The other way: a leak after start-up is caught.
        let a = windows(|t| startup(t) + (20.0 * (t - 10.0).max(0.0)) as u64 * MB, 30);
        assert_eq!(a.verdict, "growing", "{:?}", a.series);
    }

    #[test]
    fn an_epoch_end_read_after_the_command_exited_is_not_in_the_trend() {
        let mut a = Analyzer::new(Tolerance::default());
        for e in 0..8u32 {
            // Growing, then the last epoch's line read after the tree shut down.
            let after = e == 7;
            let pss = if after { 100 * MB } else { 500 * MB + e as u64 * 30 * MB };
            a.add(&Row { t_s: e as f64 * 10.0, phase: "epoch_end".into(), epoch: Some(e), label: if after { AFTER_EXIT.into() } else { "log".into() }, tree_pss_bytes: Some(pss), ..Row::default() });
        }
        let r = a.finish(&TimelineMeta { recorder: Some("watch".into()), ..TimelineMeta::default() }, false);
        assert_eq!(r.epochs, 8);
        let pss = r.series("tree_pss_bytes").unwrap();
        assert_eq!((pss.class, pss.fitted.map(|f| f.last)), (Class::Growing, Some(6)));
        assert!(!r.ledger.iter().any(|l| l.contains("levelled off")), "{:?}", r.ledger);
    }

    /// A watched tree whose workers' USS follows `uss(e)` while their RSS stays at 900 MiB.
    fn workers(uss: impl Fn(u32) -> u64) -> Analysis {
        let mut a = Analyzer::new(Tolerance::default());
        for e in 0..8u32 {
            let w = uss(e);
            a.add(&Row { t_s: e as f64, phase: "epoch_end".into(), epoch: Some(e), workers_uss_bytes: Some(w), workers_rss_bytes: Some(900 * MB), tree_pss_bytes: Some(600 * MB + w), tree_rss_bytes: Some(1800 * MB), ..Row::default() });
        }
        a.finish(&TimelineMeta { recorder: Some("watch".into()), ..TimelineMeta::default() }, false)
    }

    #[test]
    fn copy_on_write_is_claimed_only_beyond_the_tolerance() {
        // Noise: +83 KiB/epoch, or a few hundred KiB that rose and stopped. No cause, no cure.
        for (name, uss) in [("steady +83 KiB/epoch", Box::new(|e: u32| 300 * MB + e as u64 * 83 * 1024) as Box<dyn Fn(u32) -> u64>), ("+272 KiB/epoch for 3 epochs", Box::new(|e: u32| 300 * MB + e.min(3) as u64 * 272 * 1024))] {
            let a = workers(uss);
            let w = a.series("workers_uss_bytes").unwrap();
            assert_eq!((w.class, w.cause.as_deref()), (Class::Flat, None), "{name}");
            assert!(!a.ledger.iter().any(|l| l.contains("Copy-on-write") || l.contains("numpy")), "{name}: {:?}", a.ledger);
        }
        // The other way: shared pages copied at +20 MiB/epoch, slowing down.
        let a = workers(|e| 300 * MB + (20.0 * MB as f64 * 8.0 * (1.0 - 0.8f64.powi(e as i32))) as u64);
        let w = a.series("workers_uss_bytes").unwrap();
        assert_eq!((w.class, w.cause.as_deref()), (Class::Bounded, Some(COPY_ON_WRITE)), "{w:?}");
        assert!(a.ledger.iter().any(|l| l.contains("Copy-on-write, not a leak")), "{:?}", a.ledger);
    }

    #[test]
    fn the_oom_projection_reads_peak_rss_in_a_run() {
        // `run`: the cgroup read at boundaries only; peak RSS since the last boundary says
        // validation stood 300 MiB above the epoch's end.
        let mut a = Analyzer::new(Tolerance::default());
        for e in 0..6u32 {
            let kept = 1000 * MB + e as u64 * 10 * MB;
            let t = e as f64 * 10.0;
            let at = |phase: &str, dt: f64, rss: u64, peak: u64| Row { t_s: t + dt, phase: phase.into(), epoch: Some(e), rss_bytes: Some(rss), peak_rss_bytes: Some(peak), cgroup_anon_bytes: Some(kept + 50 * MB), cgroup_limit_bytes: Some(2000 * MB), ..Row::default() };
            a.add(&at("validation_end", 1.0, kept, kept + 300 * MB));
            a.add(&at("epoch_end", 2.0, kept, kept));
        }
        let p = a.finish(&TimelineMeta::default(), false).oom.unwrap();
        // At epoch 5: 1100 MiB charged at the end, 1400 at the peak; 600 MiB to go at
        // 10/epoch (from the end: 90 epochs).
        assert!((p.at_epoch - 65.0).abs() < 1e-6, "{p:?}");
    }

    /// The whole analysis, not only the classifier: a week watched under fixed windows,
    /// cut into 10, 168, 2000 or 10,000 of them, reads the same (issue 18).
    #[test]
    fn a_week_reads_the_same_at_every_window_length() {
        let week = 7.0 * 24.0 * 3600.0;
        let judge = |windows: u32, pss: &dyn Fn(f64) -> f64| -> &'static str {
            let w = week / windows as f64;
            let mut a = Analyzer::new(Tolerance::default());
            for i in 0..windows {
                let t = (i + 1) as f64 * w;
                let jitter = ((t as u64).wrapping_mul(2654435761) % 8192) as f64 * 1024.0;
                a.add(&Row { t_s: t, phase: "epoch_end".into(), epoch: Some(i), label: "window".into(), tree_pss_bytes: Some((pss(t / week) + jitter) as u64), ..Row::default() });
            }
            a.finish(&TimelineMeta { recorder: Some("watch".into()), window_s: Some(w), ..TimelineMeta::default() }, false).verdict
        };
        let mib = MB as f64;
        for windows in [10, 168, 2000, 10_000] {
            assert_eq!(judge(windows, &|f| 748.0 * mib + 2000.0 * mib * f), "growing", "the issue's leak in {windows} windows");
            assert_eq!(judge(windows, &|f| 748.0 * mib + 100.0 * mib * f), "growing", "+100 MiB in a week, {windows} windows");
            assert_eq!(judge(windows, &|_| 748.0 * mib), "flat", "clean, {windows} windows");
            assert_eq!(judge(windows, &|f| 748.0 * mib + 200.0 * mib * (f / 0.3).min(1.0)), "flat", "a filling cache, {windows} windows");
        }
    }

    #[test]
    fn the_oom_projection_reads_each_epochs_peak() {
        // Kept +10 MiB/epoch; validation holds 300 MiB more at its height, gone by the end.
        let mut a = Analyzer::new(Tolerance::default());
        for e in 0..6u32 {
            let kept = 1000 * MB + e as u64 * 10 * MB;
            let t = e as f64 * 10.0;
            let cg = |b: u64| Row { cgroup_anon_bytes: Some(b), cgroup_shmem_bytes: Some(0), cgroup_limit_bytes: Some(2000 * MB), ..Row::default() };
            a.add(&Row { t_s: t + 1.0, phase: "sample".into(), ..cg(kept + 300 * MB) });
            a.add(&Row { t_s: t + 2.0, phase: "epoch_end".into(), epoch: Some(e), ..cg(kept) });
        }
        let r = a.finish(&TimelineMeta::default(), false);
        let p = r.oom.unwrap();
        // At epoch 5 the peak is 1350 MiB: 650 MiB to go at 10 MiB/epoch.
        assert!((p.at_epoch - 70.0).abs() < 1e-6, "{p:?}");
        assert!(p.name.contains("epoch peak"), "{}", p.name);
    }

    #[test]
    fn heap_leak_is_growing_with_projection() {
        let a = run(6, |e| 400 * MB + e as u64 * 10 * MB, |e| 200 * MB + e as u64 * 10 * MB);
        assert_eq!(a.verdict, "growing");
        let rss = a.series("rss_bytes").unwrap();
        assert_eq!(rss.slope_bytes_per_epoch, Some(10.0 * MB as f64));
        // No cgroup or machine columns: the projection falls back on RSS.
        let p = a.oom.as_ref().unwrap();
        assert_eq!(p.column, "rss_bytes");
        assert!((p.epochs_to_limit - 55.0).abs() < 1e-9, "{p:?}");
        assert!((p.seconds_to_limit.unwrap() - 550.0).abs() < 1e-6);
        assert_eq!(rss.warmup_epochs, vec![0]);
        assert!(a.ledger.iter().any(|l| l.contains("Live heap allocations grow")));
    }

    #[test]
    fn rss_growth_with_flat_heap_is_not_blamed_on_the_heap() {
        let a = run(6, |e| 400 * MB + e as u64 * 10 * MB, |_| 200 * MB);
        assert_eq!(a.verdict, "growing");
        assert!(a.ledger.iter().any(|l| l.contains("outside the heap allocator")), "{:?}", a.ledger);
        assert!(!a.ledger.iter().any(|l| l.contains("Live heap")));
    }

    #[test]
    fn rss_growth_from_idle_allocator_pages_is_not_a_leak() {
        let mut a = Analyzer::new(Tolerance::default());
        for e in 0..6u32 {
            let idle = e as u64 * 15 * MB; // freed pages jemalloc has not purged yet
            a.add(&Row {
                t_s: e as f64,
                phase: "epoch_end".into(),
                epoch: Some(e),
                rss_bytes: Some(400 * MB + idle),
                je_allocated_bytes: Some(80 * MB),
                je_active_bytes: Some(84 * MB),
                je_resident_bytes: Some(90 * MB + idle),
                ..Row::default()
            });
        }
        let r = a.finish(&TimelineMeta::default(), false);
        assert_eq!(r.series("rss_bytes").unwrap().class, Class::Growing);
        assert_eq!(r.series("rss_in_use_bytes").unwrap().class, Class::Flat);
        assert_eq!(r.verdict, "flat");
        assert!(r.ledger.iter().any(|l| l.contains("RSS in use does not")), "{:?}", r.ledger);
    }

    #[test]
    fn gpu_reasons_in_words() {
        assert_eq!(gpu_empty_reason("active:NVIDIA_H100"), None);
        let why = gpu_empty_reason("not-requested;no-driver:libnvidia-ml.so:_not_found").unwrap();
        assert!(why.contains("did not use a GPU") && why.contains("no NVIDIA driver"), "{why}");
        assert!(gpu_empty_reason("no-device:device_3_requested,_1_present").unwrap().contains("no such GPU device"));
    }

    #[test]
    fn plot_points_stay_bounded() {
        let mut a = Analyzer::new(Tolerance::default());
        for i in 0..100_000u64 {
            a.add(&Row { t_s: i as f64, phase: "episode_end".into(), rss_bytes: Some(i), ..Row::default() });
        }
        let r = a.finish(&TimelineMeta::default(), true);
        let n = r.plot.series[0].points.len();
        assert!(n <= MAX_PLOT_POINTS && n > MAX_PLOT_POINTS / 4, "{n}");
        assert!(r.incomplete);
    }

    #[test]
    fn failed_or_partial_censuses_never_read_as_nothing_grows() {
        let base = || run(5, |_| 400 * MB, |_| 200 * MB);
        let all_failed = Censuses { count: 5, failed: 5, worker_count: 14, worker_failed: 14, errors: vec!["epoch 0: AttributeError: x".into()], ..Censuses::default() };
        let l = base().with_censuses(all_failed).ledger.join("\n");
        assert!(l.contains("every census of the main process failed (5 of 5)"), "{l}");
        assert!(l.contains("Censuses failed: 5 of 5 of the main process and 14 of 14 in workers"), "{l}");
        assert!(!l.contains("no container"), "{l}");
        let partial = Censuses { count: 5, skipped_objects: 3, skipped_types: vec!["Hostile".into()], ..Censuses::default() };
        let l = base().with_censuses(partial).ledger.join("\n");
        assert!(l.contains("no container that the censuses could inspect grows") && l.contains("could not inspect 3 object(s)") && l.contains("Hostile"), "{l}");
        let clean = Censuses { count: 5, ..Censuses::default() };
        assert!(base().with_censuses(clean).ledger.join("\n").contains("no container of the main process or its persistent workers grows"));
    }

    /// A watched main process whose USS grows by `uss_per_epoch` MiB, with native call
    /// sites growing by `native` MiB/epoch each.
    fn watched_with_native(uss_per_epoch: u64, native: &[u64]) -> Analysis {
        let mut a = Analyzer::new(Tolerance::default());
        for e in 0..8u32 {
            let uss = Some(300 * MB + e as u64 * uss_per_epoch * MB);
            a.add(&Row { t_s: e as f64 * 10.0 + 3.0, phase: "epoch_end".into(), epoch: Some(e), main_uss_bytes: uss, tree_pss_bytes: uss, ..Row::default() });
        }
        let a = a.finish(&TimelineMeta::default(), false);
        let site = |i: usize, per_epoch: u64| SiteVerdict {
            site: i as u32,
            function: format!("keep{i}"),
            location: "libkeep.so".into(),
            via: String::new(),
            stack: String::new(),
            bytes_by_epoch: (0..8).map(|e| (e, e as u64 * per_epoch * MB)).collect(),
            class: if per_epoch > 0 { Class::Growing } else { Class::Flat },
            slope_bytes_per_epoch: Some((per_epoch * MB) as f64),
            slope_interval: Some(((per_epoch * MB) as f64, (per_epoch * MB) as f64)),
        };
        a.with_native_sites(native.iter().enumerate().map(|(i, n)| site(i, *n)).collect())
    }

    #[test]
    fn native_sites_say_how_much_of_the_growth_they_hold_and_what_they_cannot_see() {
        let l = watched_with_native(8, &[8]).ledger.join("\n");
        assert!(l.contains("Native call sites account for all of the main process's growth"), "{l}");
        assert!(!l.contains("rerun with a census"), "the native site named what holds it: {l}");
        let l = watched_with_native(8, &[0]).ledger.join("\n");
        assert!(l.contains("No native call site grows") && l.contains("The other +8.0 MiB/epoch did not go through the preloaded jemalloc"), "{l}");
        assert!(l.contains("rerun with a census"), "{l}");
        let l = watched_with_native(8, &[2]).ledger.join("\n");
        assert!(l.contains("account for +2.0 MiB of the main process's +8.0 MiB/epoch") && l.contains("The other +6.0 MiB/epoch"), "{l}");
    }

    #[test]
    fn gpu_sites_that_recorded_nothing_say_so() {
        let l = run(5, |_| 400 * MB, |_| 200 * MB).with_gpu_unrecorded().ledger.join("\n");
        assert!(l.contains("--gpu-sites: nothing was recorded. CUDA was never initialised"), "{l}");
    }
}
