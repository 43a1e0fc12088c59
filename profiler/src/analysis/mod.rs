//! Analysis: from timeline rows to verdicts, a per-phase table and an explanation of the
//! ledger. Reads rows only (never live profiler state), one at a time, keeping epoch-end
//! points, running phase totals and a thinned copy of each series for the plots.

mod gpu;
mod objects;
mod oom;
mod phases;
mod ranks;
mod sites;
mod tree;
mod trend;
mod verdict;

pub use gpu::{read_gpu, site_name as gpu_site_name, GpuAllocator, GpuCause, GpuSeries, GPU_STATS, GPU_TOLERANCE};
pub use objects::{read_censuses, Accounting, Censuses, ObjectVerdict, OBJECT_TOLERANCE};
pub use oom::{project, OomInput, OomProjection, RECENT_EPOCHS};
pub use ranks::{read_ranks, RankVerdict};
pub use tree::{decelerating, mark_copy_on_write, parse_end, CommandEnd, COPY_ON_WRITE};
pub use phases::{phase_group, PhaseStats, Stat, PHASE_SERIES};
pub use sites::{classify_sites, classify_sites_with, SiteVerdict, SITE_TOLERANCE};
pub use trend::{theil_sen, Trend};
pub use verdict::{classify, classify_after, classify_measured, thin, warmup_epochs, warmup_timed, Class, Classified, Tolerance, MAX_FIT_POINTS, MAX_WARMUP_EPOCHS, MIN_FIT_POINTS, STARTUP_SECONDS};

use serde::Serialize;

use crate::timeline::{Row, Timeline, TimelineMeta, MEMORY_SERIES};
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
    /// Epochs the fit used.
    pub fitted_epochs: Vec<u32>,
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
    /// With `watch --window`: the window length standing in for an epoch.
    pub window_s: Option<f64>,
    /// Windows that were not asked for: no epoch boundary came in this many seconds.
    pub windows_after_s: Option<f64>,
    /// `watch --pid`: the watch attached to a running process.
    pub attached: bool,
    /// Why diagnose itself stopped the command, if it did (`--stop-on-leak`,
    /// `--kill-at-limit`).
    pub stopped_by: Option<String>,
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

/// Accumulates rows; [`Analyzer::finish`] computes the [`Analysis`]. Its state is
/// bounded (phase sums, one point per epoch, a thinned plot), so a live verdict can keep
/// one for the whole run and judge a clone at each epoch end.
#[derive(Clone)]
pub struct Analyzer {
    tolerance: Tolerance,
    rows: u64,
    last_t: f64,
    saw_finish: bool,
    /// Per row of the epoch_end kind: (epoch, t, values of MEMORY_SERIES, user_bytes).
    epoch_points: Vec<(u32, f64, Vec<Option<u64>>, Option<u64>)>,
    /// Per epoch point: the epoch's high points of what the kernel charges.
    epoch_peaks: Vec<EpochPeak>,
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
}

impl Analyzer {
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
            open_peak: EpochPeak::default(),
            phases: PhaseTable::default(),
            plot,
            plot_stride: 1,
            open_validation: None,
            finish_label: None,
            max_memory: None,
            cgroup_limit: None,
            stopped_by: None,
        }
    }

    /// Take one row.
    pub fn add(&mut self, row: &Row) {
        self.phases.add(row);
        self.last_t = row.t_s;
        self.open_peak.see(row);
        match row.phase.as_str() {
            "epoch_end" => {
                let epoch = row.epoch.unwrap_or(self.epoch_points.len() as u32);
                // An epoch end read after the command had exited (its line was still in
                // the pipe) counts as an epoch, but what was sampled then is the tree
                // shutting down, not the epoch's memory: no trend reads it.
                let after_exit = row.label == AFTER_EXIT;
                let values = MEMORY_SERIES.iter().map(|(c, _)| if after_exit { None } else { row.series(c) }).collect();
                let mut peak = std::mem::take(&mut self.open_peak).close(row);
                // The same epoch marked twice in a row (a log line, then a marker; several
                // ranks): its last mark is its end.
                if self.epoch_points.last().is_some_and(|p| p.0 == epoch) {
                    self.epoch_points.pop();
                    self.plot.epoch_ends.pop();
                    peak = peak.max(self.epoch_peaks.pop().unwrap_or_default());
                }
                if after_exit {
                    peak = EpochPeak::default();
                }
                self.epoch_points.push((epoch, row.t_s, values, row.user_bytes));
                self.epoch_peaks.push(peak);
                self.plot.epoch_ends.push((epoch, row.t_s));
            }
            "validation_start" => self.open_validation = Some(row.t_s),
            "validation_end" => {
                if let Some(start) = self.open_validation.take() {
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
                        if column.starts_with("gpu_") && point.2[i].is_none() {
                            point.2[i] = row.series(column);
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
        if self.rows % self.plot_stride == 0 {
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
        let epochs = self.epoch_points.len();
        let seconds_per_epoch = (epochs >= 2).then(|| {
            let first = self.epoch_points[0].1;
            let last = self.epoch_points[epochs - 1].1;
            (last - first) / (epochs - 1) as f64
        });

        let mut series = Vec::new();
        for (i, (column, name)) in MEMORY_SERIES.iter().enumerate() {
            let pts: Vec<(u32, f64)> = self
                .epoch_points
                .iter()
                .filter_map(|(e, _, values, _)| values[i].map(|v| (*e, v as f64)))
                .collect();
            if pts.is_empty() {
                continue;
            }
            let xy: Vec<(f64, f64)> = pts.iter().map(|&(e, v)| (e as f64, v)).collect();
            let c = classify_after(&xy, self.warmup_of(i, meta), self.tolerance);
            let last_bytes = pts[pts.len() - 1].1 as u64;
            series.push(SeriesVerdict {
                column: column.to_string(),
                name: name.to_string(),
                class: c.class,
                slope_bytes_per_epoch: c.trend.map(|t| t.slope),
                slope_interval: c.trend.and_then(|t| t.interval()),
                intercept_bytes: c.trend.map(|t| t.intercept),
                tolerance_bytes_per_epoch: c.tolerance_bytes,
                warmup_epochs: pts[..c.warmup].iter().map(|p| p.0).collect(),
                fitted_epochs: c.fitted(&pts, |p| p.0 as f64).iter().map(|p| p.0).collect(),
                first_bytes: pts[0].1 as u64,
                last_bytes,
                cause: None,
                ceiling_bytes: None,
                levelling_off: None,
                growing_since: c.growing_since.map(|e| e as u32),
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
            window_s: meta.window_s,
            windows_after_s: meta.windows_after_s,
            attached: meta.attached == Some(true),
            stopped_by: self.stopped_by.clone(),
            plot,
        };
        let rss_primary = if analysis.series("rss_in_use_bytes").is_some() { "rss_in_use_bytes" } else { "rss_bytes" };
        let primary: Vec<Option<Class>> = PRIMARY_SERIES.iter().map(|c| analysis.class_of(if *c == "rss_in_use_bytes" { rss_primary } else { c })).collect();
        if primary.contains(&Some(Class::Growing)) {
            analysis.verdict = "growing";
        } else if primary.iter().flatten().all(|c| *c == Class::Insufficient) {
            // Nothing could be judged (fewer than 3 epoch ends): not "flat", which would reassure.
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

impl Analyzer {
    /// (epoch, seconds, bytes) of a memory series at each epoch end where it has a value.
    fn epoch_values(&self, column: &str) -> Vec<(u32, f64, f64)> {
        let Some(i) = MEMORY_SERIES.iter().position(|(c, _)| *c == column) else { return vec![] };
        self.epoch_points.iter().filter_map(|(e, t, v, _)| v[i].map(|v| (*e, *t, v as f64))).collect()
    }

    /// How many leading points of series `i` are warm-up: by their number, and with
    /// fixed windows also every window that ended within start-up.
    fn warmup_of(&self, i: usize, meta: &TimelineMeta) -> usize {
        let times: Vec<f64> = self.epoch_points.iter().filter(|p| p.2[i].is_some()).map(|p| p.1).collect();
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
                .filter_map(|((e, t, v, _), p)| Some((*e, *t, v[i]?.max(peak(p).unwrap_or(0)) as f64)))
                .collect()
        };
        let own = || ["tree_pss_bytes", "rss_in_use_bytes", "rss_bytes"].into_iter().map(|c| (c, self.epoch_values(c))).find(|(_, p)| p.len() >= 3);
        if let Some(limit) = self.cgroup_limit {
            let pts = peaks("cgroup_unreclaimable_bytes", |p| p.cgroup);
            if !pts.is_empty() {
                return project(&OomInput { column: "cgroup_unreclaimable_bytes", name: &format!("{} at its epoch peak", name("cgroup_unreclaimable_bytes")), level: &pts, rate: None, limit, limit_source: "cgroup" }, self.tolerance);
            }
        }
        let machine = meta.mem_limit_bytes.filter(|_| meta.mem_limit_source.as_deref() == Some("meminfo"));
        if let (Some(limit), Some((own_column, own_points))) = (machine, own()) {
            let pts = peaks("system_used_bytes", |p| p.system);
            if !pts.is_empty() {
                let label = format!("{} at its epoch peak, rising as the run's {}", name("system_used_bytes"), name(own_column));
                return project(&OomInput { column: "system_used_bytes", name: &label, level: &pts, rate: Some(&own_points), limit, limit_source: "meminfo" }, self.tolerance);
            }
        }
        let limit = meta.mem_limit_bytes?;
        let pts = peaks("rss_bytes", |p| p.rss);
        if pts.is_empty() {
            return None;
        }
        let source = meta.mem_limit_source.as_deref().unwrap_or("limit");
        project(&OomInput { column: "rss_bytes", name: &name("rss_bytes"), level: &pts, rate: None, limit, limit_source: source }, self.tolerance)
    }
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

/// Read the ledger (RSS vs allocator vs live heap vs GPU) in plain words.
fn explain(a: &Analysis) -> Vec<String> {
    let grows = |c: &str| a.class_of(c) == Some(Class::Growing);
    let mut lines = Vec::new();
    if a.epochs < 4 && a.verdict != "insufficient" {
        lines.push(format!(
            "Only {} epoch end(s) recorded: a verdict needs 3 after warm-up (the first is warm-up), so at least 4.",
            a.epochs
        ));
    }
    if grows("je_allocated_bytes") || grows("heap_exact_bytes") {
        let hint = if a.sites.is_empty() { " Run with --attribute to see which call site holds them." } else { "" };
        lines.push(format!("Live heap allocations grow: objects (Rust values or libtorch CPU tensors) are kept alive across epochs.{hint}"));
    }
    for s in a.sites.iter().filter(|s| s.class == Class::Growing).take(3) {
        let slope = s.slope_bytes_per_epoch.unwrap_or(0.0);
        lines.push(format!("{} retains {}/epoch, growing.", s.name(), crate::format::signed_bytes(slope)));
    }
    if !a.sites.is_empty() && !a.sites.iter().any(|s| s.class == Class::Growing) {
        lines.push("No call site's live heap grows.".into());
    }
    if let (Some(crate::heap::StackSource::DhatExact), Some(heap)) = (a.sites_source, a.series("je_allocated_bytes")) {
        // dhat sees Rust allocations only; say so when jemalloc's count grows beyond them.
        let explained: f64 = a.sites.iter().filter(|s| s.class == Class::Growing).filter_map(|s| s.slope_bytes_per_epoch).sum();
        let total = heap.slope_bytes_per_epoch.unwrap_or(0.0);
        if heap.class == Class::Growing && explained < 0.5 * total {
            lines.push(format!(
                "dhat's growing call sites hold {}/epoch of the {}/epoch by which live allocations grow: the rest is outside the Rust heap that dhat sees (C++ allocations: libtorch tensors, autograd graphs). Run with --attribute (jemalloc sampling sees both) to name its call site.",
                crate::format::signed_bytes(explained), crate::format::signed_bytes(total)
            ));
        }
    }
    let in_use_measured = a.series("rss_in_use_bytes").is_some();
    if grows("rss_bytes") && in_use_measured && !grows("rss_in_use_bytes") {
        lines.push("RSS grows but RSS in use does not: the growth is pages the allocator holds free and returns on its own schedule (jemalloc decay). Not a leak.".into());
    } else if grows("rss_bytes") && !grows("je_allocated_bytes") {
        if grows("je_active_bytes") {
            lines.push("RSS grows while live allocations are flat: the allocator holds more pages (fragmentation, or freed pages not yet returned to the OS). Not a leak of objects.".into());
        } else {
            lines.push("RSS grows outside the heap allocator: thread stacks, memory-mapped files, GPU driver host memory, or a library with its own allocator.".into());
        }
    }
    if let Some(g) = &a.gpu_allocator {
        gpu::explain(g, a.censuses.as_ref(), &mut lines);
    } else if a.class_of("gpu_reserved_bytes") == Some(Class::Growing) && !grows("gpu_allocated_bytes") {
        lines.push("GPU reserved grows while GPU allocated is flat: libtorch's caching allocator keeps freed blocks for reuse. That is caching, not a leak (emptying the cache returns them).".into());
    }
    if a.gpu_unrecorded && a.gpu_allocator.is_none() {
        lines.push("--gpu-sites: nothing was recorded. CUDA was never initialised in the command's first Python process (no torch.cuda use there), so there is no allocator to read.".into());
    }
    if grows("gpu_allocated_bytes") && a.gpu_allocator.is_none() {
        lines.push("GPU allocated grows: tensors accumulate on the device across epochs.".into());
    }
    explain_tree(a, &mut lines);
    explain_native_sites(a, &mut lines);
    explain_objects(a, &mut lines);
    explain_ranks(a, &mut lines);
    // Retained and mapped memory is virtual, not resident: its saturation is not news;
    // nor is the whole machine's (other processes come and go).
    let told = |s: &SeriesVerdict| s.cause.is_some() || matches!(s.column.as_str(), "je_retained_bytes" | "je_mapped_bytes" | "system_used_bytes");
    for s in a.series.iter().filter(|s| !told(s)) {
        if s.class == Class::Bounded {
            lines.push(format!("{} rose and levelled off (bounded): a cache filling to capacity, not a leak.", s.name));
        }
    }
    if a.verdict == "flat" && lines.is_empty() {
        lines.push("Memory is flat after warm-up: no series grows beyond its noise tolerance.".into());
    }
    if a.verdict == "insufficient" {
        lines.push(format!("Too few epoch ends to judge ({}; a verdict needs 3 after warm-up): the verdict is insufficient, neither flat nor growing.", a.epochs));
    }
    if let Some(why) = gpu_empty_reason(&a.gpu) {
        lines.push(format!("GPU columns are empty: {why}."));
    }
    if a.incomplete {
        lines.push("The run did not finish (killed or crashed): this report covers the rows written before it stopped.".into());
    }
    explain_end(a, &mut lines);
    lines
}

/// The ledger of a watched process tree: who grows, and whether it is copy-on-write.
fn explain_tree(a: &Analysis, lines: &mut Vec<String>) {
    use crate::format::{human_bytes, signed_bytes};
    let slope = |s: &SeriesVerdict| signed_bytes(s.slope_bytes_per_epoch.unwrap_or(0.0));
    if let (Some(rss), Some(pss)) = (a.series("tree_rss_bytes"), a.series("tree_pss_bytes")) {
        if rss.last_bytes as f64 > 1.2 * pss.last_bytes as f64 {
            lines.push(format!(
                "Summed RSS of the tree ({}) is {:.1}x its PSS ({}): RSS counts a page shared between its processes once per process, and the libraries' code and files read, which PSS here leaves out (other processes map them too). PSS splits what the processes own among its sharers: the verdict reads PSS.",
                human_bytes(rss.last_bytes as f64), rss.last_bytes as f64 / pss.last_bytes.max(1) as f64, human_bytes(pss.last_bytes as f64)
            ));
        }
    }
    let grows = |c: &str| a.series(c).is_some_and(|s| s.class == Class::Growing && s.cause.is_none());
    if let Some(s) = a.series("main_uss_bytes").filter(|_| grows("main_uss_bytes")) {
        // What holds it is the census's to say; without one, no guess.
        // Native call sites that hold most of it have said what holds it.
        let named = a.native_sites_asked && native_growth(a) >= 0.75 * s.slope_bytes_per_epoch.unwrap_or(0.0);
        let next = if a.censuses.is_some() || named { String::new() } else { " To see which Python objects hold it, and whether they do at all, rerun with a census: diagnose watch --python-objects -- <the same command>.".into() };
        lines.push(format!("The main process grows: its private memory (USS) {}/epoch.{next}", slope(s)));
    }
    // With ranks, the workers are the ranks: the ranks' line names which one grows.
    if let Some(s) = a.series("workers_uss_bytes").filter(|_| grows("workers_uss_bytes") && a.ranks.is_empty()) {
        let main = if grows("main_uss_bytes") { "" } else { " The main process does not grow." };
        lines.push(format!("The workers grow: their private memory (USS) {}/epoch in all, and their RSS with it. Memory is kept inside the DataLoader workers (e.g. a per-worker cache in persistent workers).{main}", slope(s)));
    }
    let cow: Vec<&SeriesVerdict> = a.series.iter().filter(|s| s.cause.as_deref() == Some(COPY_ON_WRITE)).collect();
    if !cow.is_empty() {
        let what = cow.iter().map(|s| format!("{} {}/epoch", s.name, slope(s))).collect::<Vec<_>>().join(", ");
        let slowing = if cow.iter().any(|s| s.levelling_off == Some(true)) {
            "It slows down epoch after epoch as fewer shared pages are left to copy: bounded."
        } else {
            "It has not slowed down yet, but it is bounded all the same: pages can turn private only once."
        };
        let ceiling = cow.iter().find(|s| s.column == "tree_pss_bytes").or(cow.first()).and_then(|s| Some((s.name.clone(), s.ceiling_bytes?)));
        let ceiling = ceiling.map_or(String::new(), |(name, c)| format!(" Ceiling: {name} reaches at most {} if every process copies all it shares.", human_bytes(c as f64)));
        lines.push(format!(
            "Copy-on-write, not a leak: {what}, while RSS stays. Pages shared with the main process turn private as the workers write to them (Python's reference counts write to every object read, pytorch/pytorch#13246). {slowing}{ceiling} The usual cure: hold the dataset's items in numpy arrays or one serialized buffer (bytes, Arrow) instead of lists of Python objects."
        ));
    }
    let per_epoch = if a.attached {
        // Under --pid neither log lines nor markers reach us.
        "For a per-epoch verdict, watch the command from its start (diagnose watch -- CMD): its DataLoader passes, markers and log lines then mark epochs."
    } else {
        "For a per-epoch verdict, call diagnose_markers.epoch_end(N) (python/diagnose_markers.py), or print \"Epoch N\" lines (matched by --epoch-pattern)."
    };
    // "0.5 s", "60 s": windows are short and exact.
    let window = |w: f64| if w < 120.0 { format!("{} s", (w * 10.0).round() / 10.0) } else { crate::format::human_seconds(w) };
    match (a.window_s, a.windows_after_s) {
        (Some(w), Some(after)) => lines.push(format!(
            "No epoch boundary came in the first {}: from then on fixed windows of {} stood in for epochs (the verdict is per window, and windows cut across epochs and validation). {per_epoch}",
            window(after), window(w)
        )),
        (Some(w), None) => lines.push(format!("Boundaries are fixed windows of {} (--window): the verdict is per window, not per epoch, and windows cut across epochs and validation. {per_epoch}", window(w))),
        (None, _) if a.recorder == "watch" && a.epochs == 0 && a.attached => lines.push("No epoch boundary was seen: a process watched with --pid can send neither log lines nor markers to diagnose. Pass --window 60s for a verdict per window.".into()),
        (None, _) if a.recorder == "watch" && a.epochs == 0 => lines.push("No epoch boundary was seen: no DataLoader was iterated twice, no marker arrived and no output line matched --epoch-pattern. Call diagnose_markers.epoch_end(N) (python/diagnose_markers.py), print \"Epoch N\" lines, or pass --window 60s.".into()),
        _ => {}
    }
}

/// Which ranks grow.
fn explain_ranks(a: &Analysis, lines: &mut Vec<String>) {
    if a.ranks.is_empty() {
        return;
    }
    let growing: Vec<String> = a
        .ranks
        .iter()
        .filter(|r| r.class == Class::Growing)
        .map(|r| {
            let since = r.growing_since.map(|e| format!(" since epoch {e}")).unwrap_or_default();
            format!("rank {} ({}/epoch{since})", r.rank, crate::format::signed_bytes(r.slope_bytes_per_epoch.unwrap_or(0.0)))
        })
        .collect();
    let rest: Vec<String> = a.ranks.iter().filter(|r| r.class != Class::Growing).map(|r| format!("rank {} {}", r.rank, r.class.as_str())).collect();
    if growing.is_empty() {
        lines.push(format!("Ranks: no rank grows ({}).", rest.join(", ")));
    } else {
        let others = if rest.is_empty() { String::new() } else { format!("; {}", rest.join(", ")) };
        lines.push(format!("Ranks: {} grow{} (PSS of each rank's processes at epoch ends){others}.", growing.join(", "), if growing.len() == 1 { "s" } else { "" }));
    }
}

/// The C and C++ functions whose native memory grows (`watch --native-sites`).
fn explain_native_sites(a: &Analysis, lines: &mut Vec<String>) {
    if a.native_sites.is_empty() {
        if a.native_sites_asked {
            lines.push("--native-sites: no heap dump came. Dumps are taken by the helper in the command's first Python process, at epoch ends (none here, or it is not Python, or it was started without our LD_PRELOAD).".into());
        }
        return;
    }
    let growing: Vec<&SiteVerdict> = a.native_sites.iter().filter(|s| s.class == Class::Growing).collect();
    let native = native_growth(a);
    for s in growing.iter().take(3) {
        // C++ names run to hundreds of characters: shortened here, whole in the CSV.
        lines.push(format!(
            "{} {}/epoch of native memory kept (the main process's C/C++ allocations, jemalloc samples; native_sites.csv).",
            s.short_name(),
            crate::format::signed_bytes(s.slope_bytes_per_epoch.unwrap_or(0.0))
        ));
    }
    if growing.is_empty() {
        lines.push("No native call site grows (the main process's C/C++ allocations, jemalloc samples; native_sites.csv).".into());
    }
    // How much of the main process's growth went through the preloaded jemalloc: what a
    // library allocates past it is not sampled, and must not read as "native is clean".
    let Some(uss) = a.series("main_uss_bytes").filter(|s| s.class == Class::Growing) else { return };
    let process = uss.slope_bytes_per_epoch.unwrap_or(0.0);
    let low = uss.slope_interval.map_or(process, |i| i.0.min(process));
    let signed = crate::format::signed_bytes;
    if native >= process {
        lines.push(format!("Native call sites account for all of the main process's growth ({} of {}/epoch, USS).", signed(native), signed(process)));
    } else if native >= 0.75 * low {
        lines.push(format!("Native call sites account for {} of the main process's {}/epoch (USS).", signed(native), signed(process)));
    } else if process - native >= f64::from(1u32 << 20) {
        lines.push(format!(
            "Native call sites account for {} of the main process's {}/epoch (USS). The other {}/epoch did not go through the preloaded jemalloc's sampled allocations: a library that binds glibc's malloc directly (ctypes.CDLL(\"libc.so.6\").malloc), its own mmap, thread stacks, or pages jemalloc holds free.",
            signed(native), signed(process), signed(process - native)
        ));
    }
    if a.censuses.as_ref().is_some_and(|c| c.objects.iter().any(|o| o.kind != "type" && o.class == Class::Growing)) && native > 0.0 {
        lines.push("The native and Python views overlap: a numpy array's or a tensor's storage is native memory (PyDataMem_*, libtorch's allocations) that a Python container holds, so the same bytes can be named in both.".into());
    }
}

/// Bytes per epoch by which the growing native call sites grow, together.
fn native_growth(a: &Analysis) -> f64 {
    a.native_sites.iter().filter(|s| s.class == Class::Growing).filter_map(|s| s.slope_bytes_per_epoch).sum()
}

/// The Python objects that grow, named by what keeps them alive; how much of the main
/// process's growth they account for, and, for the rest, whether native code uses it or
/// the C allocator holds it free. What a failed or partial census could not see is said,
/// never read as "nothing grows".
fn explain_objects(a: &Analysis, lines: &mut Vec<String>) {
    use crate::format::{human_bytes, signed_bytes};
    let Some(c) = &a.censuses else { return };
    let per_epoch = |b: Option<f64>| format!("{}/epoch", signed_bytes(b.unwrap_or(0.0)));
    let growing: Vec<&ObjectVerdict> = c.objects.iter().filter(|o| o.kind != "type" && o.kind != "line" && o.class == Class::Growing).collect();
    for o in growing.iter().take(3) {
        // issue 25: arrays held as a value that grows, hooks piling up (objects.rs).
        if let Some(line) = objects::special_line(o) {
            lines.push(line);
            continue;
        }
        let last = o.by_epoch.last().map_or(0, |p| p.1);
        let at = match o.allocated_at.as_deref().map(|a| a.split_once(' ').unwrap_or(("", a))) {
            Some(("item", at)) => format!(" Its newest item was allocated at {at}."),
            Some((_, at)) => format!(" It was made at {at} (its items are not traced: made in C++)."),
            None => String::new(),
        };
        let slope = o.slope_bytes_per_epoch.unwrap_or(0.0);
        let graph = o.graph_bytes_per_epoch.filter(|g| *g > 0.25 * slope && slope > 0.0);
        if o.kind == "tensor" {
            lines.push(format!(
                "Python: {} is one tensor whose autograd graph grows: {:+.0} graph nodes/epoch keeping {} of tensors saved for backward ({} at the last census). A loss or output was accumulated with its graph (`total += loss`): accumulate `loss.item()` or `loss.detach()` instead.",
                o.name, o.graph_nodes_per_epoch.unwrap_or(0.0), per_epoch(o.graph_bytes_per_epoch), human_bytes(last as f64)
            ));
        } else if let Some(g) = graph {
            lines.push(format!(
                "Python: {} ({}, {:+.0} items/epoch, {}) keeps growing, and its tensors keep their autograd graphs alive: {} of it are tensors saved for backward ({:+.0} graph nodes/epoch), {} the tensors themselves; it holds {} at the last census. Keep `.detach()`ed tensors (or `.item()` for a number), or run validation under `torch.no_grad()` / `torch.inference_mode()`.{at}",
                o.name, o.type_name, o.items_per_epoch.unwrap_or(0.0), per_epoch(Some(slope)), per_epoch(Some(g)), o.graph_nodes_per_epoch.unwrap_or(0.0), per_epoch(Some(slope - g)), human_bytes(last as f64)
            ));
        } else {
            // Graphs whose saved tensors backward has freed still hold their nodes.
            let nodes = match o.graph_nodes_per_epoch.filter(|n| *n >= 1.0) {
                Some(n) => format!(" Its tensors keep their autograd graphs too ({n:+.0} graph nodes/epoch; backward has freed their saved tensors): keep `.detach()`ed tensors, or `.item()` for a number."),
                None => String::new(),
            };
            lines.push(format!(
                "Python: {} ({}, {:+.0} items/epoch, {}) keeps growing; it holds {} at the last census.{nodes}{at}",
                o.name, o.type_name, o.items_per_epoch.unwrap_or(0.0), per_epoch(Some(slope)), human_bytes(last as f64)
            ));
        }
    }
    let all_failed = c.count > 0 && c.failed == c.count;
    let partial = c.failed > 0 || c.worker_failed > 0 || c.skipped_objects > 0;
    // Objects of a type that grow though no container found holds them.
    let types: Vec<String> = c
        .objects
        .iter()
        .filter(|o| o.kind == "type" && o.class == Class::Growing && o.slope_bytes_per_epoch.unwrap_or(0.0) >= 64.0 * 1024.0)
        .take(3)
        .map(|o| format!("{} {}", o.name, per_epoch(o.slope_bytes_per_epoch)))
        .collect();
    if all_failed {
        lines.push(format!("Python: every census of the main process failed ({} of {}): nothing is known of its objects, growing or not.", c.failed, c.count));
    } else if growing.is_empty() && !types.is_empty() {
        lines.push(format!(
            "Python: objects grow though no container the census follows holds them: {}. It searched {}; something keeps them where it cannot name (a C extension's reference, a container it has not named yet).",
            types.join(", "), c.searched()
        ));
    } else if growing.is_empty() && !partial {
        lines.push("Python: no container of the main process or its persistent workers grows from census to census.".into());
    } else if growing.is_empty() {
        lines.push("Python: no container that the censuses could inspect grows; what they could not see is below.".into());
    }
    if !all_failed {
        explain_accounting(a, c, lines);
    }
    lines.extend(c.notes());
    let workers = match (c.worker_count, c.light_worker_count) {
        (0, _) => String::new(),
        (n, l) if l == n => format!(" (and {n} light ones in forked DataLoader workers: their datasets' containers only)"),
        (n, l) => format!(" (and {} full ones in forked DataLoader workers, --python-objects-workers: each worker copies the pages it shares with the trainer at its first, its USS stepping up once{})", n - l, if l > 0 { format!("; {l} light ones") } else { String::new() }),
    };
    lines.push(format!(
        "Python object census: {} censuses{workers}, the longest {:.2} s with {} live gc-tracked objects (objects.csv).",
        c.count, c.max_seconds, c.max_objects
    ));
    if c.failed > 0 || c.worker_failed > 0 {
        let workers = if c.worker_failed > 0 { format!(" and {} of {} in workers", c.worker_failed, c.worker_count) } else { String::new() };
        lines.push(format!("Censuses failed: {} of {} of the main process{workers}; the first: {}.", c.failed, c.count, c.errors.join("; ")));
    }
    if c.skipped_objects > 0 {
        lines.push(format!(
            "A census could not inspect {} object(s) (their class raised when asked; types: {}): they are not counted.",
            c.skipped_objects,
            if c.skipped_types.is_empty() { "unknown".to_string() } else { c.skipped_types.join(", ") }
        ));
    }
}

/// How much of the main process's growth the censuses account for, and the rest by
/// glibc's malloc counters: native code using it, or the allocator holding it free.
fn explain_accounting(a: &Analysis, c: &Censuses, lines: &mut Vec<String>) {
    use crate::format::signed_bytes;
    let Some(uss) = a.series("main_uss_bytes").filter(|s| s.class == Class::Growing) else { return };
    let (Some(acc), Some(process)) = (c.accounting, uss.slope_bytes_per_epoch) else { return };
    let python = acc.python_bytes_per_epoch.max(0.0);
    if python >= process {
        lines.push(format!("Python objects account for all of the main process's growth ({} of {}/epoch, USS).", signed_bytes(python), signed_bytes(process)));
        return;
    }
    lines.push(format!(
        "Python objects account for {} of the main process's {}/epoch (USS).",
        signed_bytes(python), signed_bytes(process)
    ));
    let rest = process - python;
    // Against the lowest growth the interval allows, so that a noisy slope is not read as
    // unexplained growth; a rest under a quarter of it, or under 1 MiB, is not told.
    let low = uss.slope_interval.map_or(process, |i| i.0.min(process));
    if python >= 0.75 * low || rest < f64::from(1u32 << 20) {
        return;
    }
    let free = acc.malloc_free_bytes_per_epoch.unwrap_or(0.0);
    let objects_grow = c.objects.iter().any(|o| o.class == Class::Growing && o.slope_bytes_per_epoch.unwrap_or(0.0) >= 64.0 * 1024.0);
    // Tensors' and arrays' storage is in malloc too, and already counted as Python's.
    let native = acc.malloc_in_use_bytes_per_epoch.map(|u| u - acc.array_bytes_per_epoch);
    match native {
        None => lines.push(format!(
            "The other {}/epoch is native memory; glibc's malloc counters could not be read (another allocator, or glibc before 2.33), so whether native code uses it or the allocator holds it free is unknown.",
            signed_bytes(rest)
        )),
        // Kept objects pin the freed blocks between them: then the leak above is the cause.
        Some(_) if free >= 0.5 * rest && objects_grow => lines.push(format!(
            "Of the {}/epoch no Python object explains, glibc's malloc holds {}/epoch free in its arenas: fragmentation, the freed blocks pinned between what the growing objects above keep. A leak of objects all the same: stop keeping them and this goes too.",
            signed_bytes(rest), signed_bytes(free)
        )),
        Some(_) if free >= 0.5 * rest => lines.push(format!(
            "The C allocator holds it free: glibc's malloc keeps {}/epoch of freed memory in its arenas (fragmentation), of the {}/epoch no Python object explains. No Python object the census searched ({}) holds it. Cures: MALLOC_ARENA_MAX=2, calling malloc_trim(0) (ctypes) after each epoch, or jemalloc/tcmalloc through LD_PRELOAD.",
            signed_bytes(free), signed_bytes(rest), c.searched()
        )),
        Some(n) if n >= 0.5 * rest => lines.push(format!(
            "Native code uses it: glibc's malloc has {}/epoch more in use that no Python object the census searched holds (a C extension's buffers, or libtorch memory no tensor reaches), of the {}/epoch no Python object explains. It searched {}; what native code keeps, a census cannot name.",
            signed_bytes(n), signed_bytes(rest), c.searched()
        )),
        Some(_) => lines.push(format!(
            "The other {}/epoch is outside glibc's malloc: memory-mapped files, thread stacks, or a library with an allocator of its own.",
            signed_bytes(rest)
        )),
    }
}

/// How a watched command ended, and whether it passed --max-memory.
fn explain_end(a: &Analysis, lines: &mut Vec<String>) {
    let after = |e: Option<u32>| e.map_or("before the first epoch ended".to_string(), |e| format!("after epoch {e}"));
    if let Some(m) = &a.max_memory {
        lines.push(format!("The tree's memory passed --max-memory ({}) at {:.1} s, {}.", m.label, m.t_s, after(m.epoch)));
    }
    let Some(end) = &a.end else { return };
    let projected = a.oom.as_ref().map_or(String::new(), |p| format!(" The projection from the epochs before it said epoch {:.1}.", p.at_epoch));
    if end.oom_killed {
        lines.push(format!("The command was killed by the OOM killer (SIGKILL while its cgroup's OOM-kill counter rose) {}, at {:.1} s.{projected}", after(end.last_epoch), end.t_s));
    } else if let Some(sig) = end.signal.filter(|s| a.stopped_by.is_some() && matches!(s, 9 | 15)) {
        let how = if sig == 15 { "SIGTERM" } else { "SIGKILL" };
        lines.push(format!("diagnose stopped the command ({}; {how}) {}, at {:.1} s.", a.stopped_by.as_deref().unwrap_or(""), after(end.last_epoch), end.t_s));
    } else if let Some(sig) = end.signal {
        lines.push(format!("The command was killed by signal {sig} {}, at {:.1} s.", after(end.last_epoch), end.t_s));
    } else if let Some(code) = end.code.filter(|c| *c != 0) {
        lines.push(format!("The command exited with code {code} {}, at {:.1} s.", after(end.last_epoch), end.t_s));
    } else if end.detached {
        lines.push(format!("The watch was stopped at {:.1} s while the process ran on: this report covers what was seen until then.", end.t_s));
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
        assert!(a.ledger.iter().any(|l| l.contains("Too few epoch ends to judge (2;")), "{:?}", a.ledger);
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
        assert_eq!((pss.class, pss.fitted_epochs.last().copied()), (Class::Growing, Some(6)));
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
