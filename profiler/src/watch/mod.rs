//! Watching a command, or a running process, from outside: its whole process tree sampled
//! at an interval and at every boundary (log lines, markers, fixed windows), written as
//! the same `timeline.csv` that `run` writes, plus `processes.csv`. The same analysis and
//! reports read it.
//!
//! ```text
//!  child stdout/stderr ──pump──▶ terminal (unchanged)      marker socket ──▶ ┐
//!                         └─ lines ─▶ LogMatcher ─▶ boundary ──────────────▶ ├─▶ event loop ─▶ sample tree ─▶ timeline.csv
//!  interval / window ticks, child exit, signals ─────────────────────────▶ ┘                            └─▶ processes.csv
//! ```

mod budget;
pub use budget::POLICY as DEFAULT_PSS_BUDGET;
pub use budget::MOVEMENT_EPOCHS;
pub mod census;
pub mod console;
mod logscan;
pub mod markers;
mod sample;
pub mod tree;

pub use logscan::{LogMatcher, DEFAULT_EPOCH_PATTERN};
pub use sample::{ProcRow, RankMem, TreeSampler, PROCESS_COLUMNS};

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use profiler_api::{Boundary, Phase};
use regex::Regex;

use crate::cgroup::{MemoryCgroup, OwnCgroup};
use crate::error::Error;
use crate::limits::memory_limit;
use crate::live::{LiveStatus, LiveVerdict};
use crate::source::{Source, SystemSource};
use crate::timeline::{Row, TimelineMeta, TimelineWriter};
use markers::{MarkerSocket, MARKER_ENV};
use tree::Detail;

/// Samples wanted in each of the first epochs (see `analysis::paired`), at the length
/// of the epoch before.
const PAIRED_SAMPLES_PER_EPOCH: u32 = 40;

/// The interval over the first epoch's first minute, whose length is not known yet.
const FIRST_EPOCH_INTERVAL: Duration = Duration::from_millis(250);

/// The shortest interval between samples, however short the epochs.
const MIN_PAIRED_INTERVAL: Duration = Duration::from_millis(100);

/// Epochs sampled often: paired evidence decides only while the epoch-end fit has fewer
/// than `PAIRED_UNTIL_FITTED` points (4 points after a warm-up epoch: 5 epoch ends), and
/// the samples past them would cost the watcher for nothing (10 a second at 3.6-s epochs).
const DENSE_EPOCHS: usize = crate::analysis::paired::PAIRED_UNTIL_FITTED + 2;

/// With no epoch boundary for this long, a watch falls back to fixed windows.
pub const DEFAULT_AUTO_WINDOW: Duration = Duration::from_secs(600);

/// The fixed windows a watch falls back to after `after` with no epoch boundary.
pub fn fallback_window(after: Duration) -> Duration {
    (after / 10).max(Duration::from_millis(100))
}

/// What to watch.
#[derive(Clone, Debug)]
pub enum Target {
    /// Start this command (program and arguments) and watch it until it exits.
    Command(Vec<OsString>),
    /// Watch this running process until it exits or the watch is interrupted.
    Pid(u32),
}

/// How to watch.
pub struct WatchOptions {
    /// Time between samples (RSS of every process of the tree: cheap).
    pub interval: Duration,
    /// Time between full samples (PSS and USS from smaps_rollup: about 10 ms per Python
    /// process) when no boundary asks for one. Boundaries are sampled in full while the
    /// page walks stay within their budget (`budget`).
    pub full_interval: Duration,
    /// Log lines matching this are epoch boundaries (`None`: logs mark no epochs).
    pub epoch_pattern: Option<Regex>,
    /// Log lines matching a pattern are boundaries of that name.
    pub phases: Vec<(String, Regex)>,
    /// Fixed windows as epochs, for programs that mark nothing.
    pub window: Option<Duration>,
    /// The tree's PSS may not pass this.
    pub max_memory: Option<u64>,
    /// Stop the child when it passes `max_memory` (after writing the report).
    pub kill_at_limit: bool,
    /// Time between SIGTERM and SIGKILL when stopping the child.
    pub kill_grace: Duration,
    /// Inject our helper into the command's first Python process (PYTHONPATH): it finds
    /// epochs from DataLoader passes, and takes the censuses.
    pub inject: bool,
    /// Take a census of the Python main process's objects at each epoch end.
    pub python_objects: bool,
    /// With `python_objects`: full censuses in forked DataLoader workers too (they copy
    /// the pages a worker shares with the trainer); light ones (the dataset's containers)
    /// otherwise.
    pub census_workers: bool,
    /// With no epoch boundary for this long, fall back to fixed windows a tenth as long.
    pub auto_window: Option<Duration>,
    /// With `python_objects`: trace Python allocations (tracemalloc) to say where the
    /// growing containers' items were allocated.
    pub python_tracemalloc: bool,
    /// Record PyTorch's CUDA allocation history in the Python main process and write the
    /// live CUDA bytes per allocating line at each epoch end (`gpu/epoch-N.json`).
    pub gpu_sites: bool,
    /// Preload our sampling jemalloc into the command's processes and, at each epoch
    /// end, reduce the Python main process's heap dump to the C and C++ functions that
    /// hold its native memory (`native/`, then `native_sites.csv` in the report).
    pub native_sites: bool,
    /// Called with each recorded row (e.g. to print a status line at epoch ends, or to
    /// update metrics).
    /// With the row, each rank's processes summed at that sample (empty without ranks).
    pub on_row: Option<Box<dyn FnMut(&Row, &std::collections::BTreeMap<u32, RankMem>) + Send>>,
    /// Called at each epoch end with the verdict so far (`summary.json` is rewritten then).
    pub on_verdict: Option<Box<dyn FnMut(&LiveStatus) + Send>>,
    /// Once growth is confirmed: write the report, then stop the child (SIGTERM, then
    /// SIGKILL after `kill_grace`).
    pub stop_on_leak: bool,
    /// Bind the marker socket here instead of in a private folder (a process watched by
    /// pid learns the path from whoever started the watch).
    pub marker_socket: Option<PathBuf>,
    /// How often boundaries read PSS and USS (see `budget`); `None`: at every boundary.
    pub pss_budget: Option<crate::timeline::PssBudget>,
    /// Start the command in a memory cgroup of its own, where this process may make one
    /// (`cgroup::OwnCgroup`): the tree's PSS is then the kernel's count, at every sample.
    pub own_cgroup: bool,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            interval: Duration::from_secs(1),
            full_interval: Duration::from_secs(30),
            pss_budget: Some(budget::POLICY),
            own_cgroup: true,
            epoch_pattern: Some(Regex::new(DEFAULT_EPOCH_PATTERN).expect("valid default pattern")),
            phases: Vec::new(),
            window: None,
            max_memory: None,
            kill_at_limit: false,
            kill_grace: Duration::from_secs(5),
            inject: true,
            python_objects: false,
            census_workers: false,
            auto_window: Some(DEFAULT_AUTO_WINDOW),
            python_tracemalloc: false,
            gpu_sites: false,
            native_sites: false,
            on_row: None,
            on_verdict: None,
            stop_on_leak: false,
            marker_socket: None,
        }
    }
}

/// How the watched program ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
    /// `--pid`: the process ended (its exit code belongs to its parent).
    Ended,
    /// `--pid`: the watch was interrupted; the process still runs.
    Detached,
}

impl Exit {
    /// The exit code a shell would show for it.
    pub fn shell_code(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
            Exit::Ended | Exit::Detached => 0,
        }
    }
}

/// What a watch produced.
#[derive(Clone, Debug)]
pub struct Watched {
    /// How the program ended.
    pub exit: Exit,
    /// The OOM killer ended it (SIGKILL while its cgroup's OOM-kill counter rose).
    pub oom_killed: bool,
    /// Seconds into the watch when the tree passed `--max-memory`, if it did.
    pub max_memory_passed_at: Option<f64>,
    /// With `stop_on_leak`: the epoch after which growth was confirmed and the child
    /// was stopped.
    pub stopped_on_leak: Option<u32>,
    /// Marker datagrams dropped as malformed or foreign.
    pub markers_rejected: u64,
    /// Markers accepted.
    pub markers_received: u64,
    /// The watcher's own CPU time (user + system), seconds.
    pub own_cpu_s: f64,
    /// The watcher's own peak RSS, bytes.
    pub own_peak_rss_bytes: u64,
    /// Seconds the watch lasted.
    pub wall_s: f64,
}

/// Check a target before anything runs: the command exists and is executable, or the
/// pid exists and its memory is readable by us.
pub fn check_target(target: &Target) -> Result<(), Error> {
    match target {
        Target::Command(argv) => {
            let program = argv.first().ok_or_else(|| Error::Config("no command given".into()))?;
            find_program(program).map(|_| ())
        }
        Target::Pid(pid) => {
            let dir = PathBuf::from(format!("/proc/{pid}"));
            if !dir.exists() {
                return Err(Error::Config(format!("no process with pid {pid}")));
            }
            std::fs::read_to_string(dir.join("smaps_rollup")).map(|_| ()).map_err(|e| {
                Error::Config(format!(
                    "cannot read the memory of pid {pid} ({e}): it belongs to another user; run diagnose as that user or as root"
                ))
            })
        }
    }
}

/// The program's path: as given when it holds a slash, else the first match on PATH.
fn find_program(program: &OsString) -> Result<PathBuf, Error> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| p.is_file() && p.metadata().is_ok_and(|m| m.permissions().mode() & 0o111 != 0);
    let path = Path::new(program);
    let shown = path.display().to_string();
    if program.to_string_lossy().contains('/') {
        return if executable(path) { Ok(path.to_path_buf()) } else { Err(Error::Config(format!("command not found or not executable: {shown}"))) };
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join(path))
        .find(|p| executable(p))
        .ok_or_else(|| Error::Config(format!("command not found: {shown} (not on PATH)")))
}

/// Where a boundary came from, the least trusted first: explicit markers win over the
/// helper's DataLoader passes, which win over log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Origin {
    Log,
    Loader,
    Marker,
}

/// Something the event loop reacts to.
enum Event {
    Boundary { boundary: Boundary, source: Origin, gpu: Option<profiler_api::GpuAllocatorSnapshot>, rank: Option<u32> },
    Exited(ExitStatus),
    Signal(i32),
}

/// Which boundaries become rows. Epochs come from the most trusted source heard from so
/// far: once a marker epoch arrives, DataLoader passes and log lines no longer mark
/// epochs; once a DataLoader pass does, log lines no longer do. Once the program sends
/// markers of its own, the helper's validation boundaries are dropped too. Fixed windows
/// replace all as epochs. Frequent boundaries (episode and triplet ends) are not
/// sampled: the interval sampler covers them, and a tree sample per training step would
/// cost the trainer time.
struct BoundaryFilter {
    windows: bool,
    /// The most trusted source of an epoch so far.
    epochs_from: Option<Origin>,
    /// The program sent markers of its own.
    explicit: bool,
    /// The last epoch ended.
    last_epoch: Option<u32>,
}

impl BoundaryFilter {
    fn new(windows: bool) -> Self {
        BoundaryFilter { windows, epochs_from: None, explicit: false, last_epoch: None }
    }

    fn accepts(&mut self, boundary: &Boundary, source: Origin) -> bool {
        if matches!(boundary.phase, Phase::EpisodeEnd | Phase::TripletEnd) {
            return false;
        }
        if matches!(&boundary.phase, Phase::Custom(name) if name == "census") {
            return true; // the helper's GPU figures for the epoch that just ended
        }
        self.explicit |= source == Origin::Marker;
        if source == Origin::Loader && self.explicit {
            return false;
        }
        if boundary.phase != Phase::EpochEnd {
            return true;
        }
        if self.windows || self.epochs_from.is_some_and(|best| source < best) {
            return false;
        }
        // A more trusted source that takes over at an epoch a lesser one already ended (a
        // log line, then the DataLoader's next pass) takes over from the next epoch on.
        let takes_over = self.epochs_from.is_some_and(|best| source > best);
        self.epochs_from = Some(source);
        if takes_over && boundary.epoch.is_some() && boundary.epoch == self.last_epoch {
            return false;
        }
        self.last_epoch = boundary.epoch;
        true
    }
}

/// Watch `target`, writing `timeline.csv` and `processes.csv` into `out_dir` (which
/// must exist), until it exits (or, for a pid, until interrupted). Reports are not
/// written here, except before stopping a child at `--max-memory`.
pub fn watch(target: &Target, out_dir: &Path, mut opts: WatchOptions) -> Result<Watched, Error> {
    check_target(target)?;
    reset_own_peak();
    let cpu_before = own_cpu();
    let (tx, rx) = mpsc::channel::<Event>();
    let socket = MarkerSocket::bind_at(opts.marker_socket.as_deref()).map_err(|e| Error::Config(format!("cannot create the marker socket: {e}")))?;
    let received = Arc::new(std::sync::atomic::AtomicU64::new(0));
    {
        let (tx, received) = (tx.clone(), received.clone());
        socket
            .listen(move |m| {
                received.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let source = if m.auto { Origin::Loader } else { Origin::Marker };
                let _ = tx.send(Event::Boundary { boundary: m.boundary, source, gpu: m.gpu, rank: m.rank });
            })
            .map_err(|e| Error::Config(format!("cannot listen on the marker socket: {e}")))?;
    }
    forward_signals(tx.clone())?;

    if opts.gpu_sites && (!opts.inject || matches!(target, Target::Pid(_))) {
        return Err(Error::Config("--gpu-sites needs the injected helper and a command to start (it switches on CUDA allocation history at start-up): drop --no-inject and --pid".into()));
    }
    let helper = match (opts.python_objects, opts.inject, target) {
        (true, _, Target::Pid(_)) => return Err(Error::Config("--python-objects needs a command to start (the helper is injected at start-up), not --pid".into())),
        (true, false, _) => return Err(Error::Config("--python-objects needs the injected helper: drop --no-inject".into())),
        (_, true, Target::Command(_)) => Some(census::CensusHelper::install(&socket.dir().join("py")).map_err(|e| Error::Config(format!("cannot write the census helper: {e}")))?),
        _ => None,
    };
    let native = match (opts.native_sites, &helper) {
        (false, _) => None,
        (true, None) => return Err(Error::Config("--native-sites needs a command to start with the helper injected (not --pid, not --no-inject)".into())),
        (true, Some(_)) => Some(NativeReducer::start(crate::heap::native::find_native_library()?, out_dir)?),
    };
    // The cgroup the watcher is in: its limit covers the command's own, made inside it.
    let outer = MemoryCgroup::of(None);
    let mut own = match (target, &outer) {
        (Target::Command(_), Some(outer)) if opts.own_cgroup => OwnCgroup::create(outer, &format!("diagnose-watch-{}", std::process::id())).ok(),
        _ => None,
    };
    let started = Instant::now();
    let (root, mut child, pumps) = match target {
        Target::Command(argv) => {
            let (child, pumps) = spawn(argv, &socket, &opts, helper.as_ref(), native.as_ref(), own.as_ref(), out_dir, tx.clone())?;
            (child.id(), Some(child), pumps)
        }
        Target::Pid(pid) => (*pid, None, Vec::new()),
    };
    // The move happens in the child before exec; where it failed, the tree is read as
    // without one.
    if own.as_ref().is_some_and(|o| !o.holds(root)) {
        own = None;
    }
    let child_pid = child.as_ref().map(|c| c.id());
    if let Some(c) = child.take() {
        wait_in_background(c, tx.clone());
    }
    drop(tx);

    // Limits and OOM kills: the cgroup the command's memory is charged to, or with a cgroup
    // of its own, the one above it whose limit it lives under.
    let cgroup = if own.is_some() { outer } else { MemoryCgroup::of(Some(root)).or(outer) };
    // OOM kills are counted in the victim's cgroup (and, in v2 only, in those above it).
    let oom_kills = |own: Option<&OwnCgroup>| -> Option<u64> {
        let counts = [cgroup.as_ref().and_then(|c| c.read().oom_kills), own.and_then(|o| o.cgroup.read().oom_kills)];
        counts.iter().flatten().copied().reduce(|a, b| a + b)
    };
    let oom_before = oom_kills(own.as_ref());
    let mut sampler = TreeSampler::new(root, out_dir)?;
    if let Some(h) = &helper {
        sampler.set_rank_dir(h.dir());
    }
    let limit = memory_limit();
    // With the tree's PSS counted by its cgroup, walks serve each process's points alone.
    let pss_budget = opts.pss_budget.map(|p| match own {
        Some(_) => crate::timeline::PssBudget { always_full_epoch_ends: budget::OWN_CGROUP_POLICY.always_full_epoch_ends, ..p },
        None => p,
    });
    let mut meta = TimelineMeta {
        mem_limit_bytes: limit.as_ref().map(|l| l.bytes),
        mem_limit_source: limit.map(|l| l.source.to_string()),
        gpu: Some(sampler.gpu_status().to_token()),
        recorder: Some("watch".into()),
        window_s: opts.window.map(|w| w.as_secs_f64()),
        windows_after_s: None,
        attached: matches!(target, Target::Pid(_)).then_some(true),
        target_age_s: match target {
            Target::Pid(pid) => process_age_s(*pid),
            Target::Command(_) => None,
        },
        pss_budget,
        tree_pss_from_cgroup: own.as_ref().map(|o| o.cgroup.dir.display().to_string()),
    };
    let mut live = LiveVerdict::new(meta.clone(), Some(out_dir));
    let mut stopped_on_leak = None;
    let mut rec = Recorder {
        started,
        last_full: started,
        walks: budget::WalkBudget::new(pss_budget),
        movement: budget::Movement::default(),
        cheap: budget::CheapReading::default(),
        pids: Vec::new(),
        main_first: false,
        points: Vec::new(),
        ranks: Default::default(),
        gpu: None,
        writer: TimelineWriter::create(&out_dir.join("timeline.csv"), &meta)?,
        system: SystemSource::new(cgroup.clone(), false),
        own: own.as_ref(),
        sampler: &mut sampler,
    };

    rec.record(Boundary::new(Phase::Start))?;
    // The first sample reads PSS and USS in full too: the start row's are the watcher's
    // fork before the command's exec, and a run with no epoch lines would otherwise have
    // none of the command's own before --pss-interval passed.
    rec.last_full = started.checked_sub(opts.full_interval).unwrap_or(started);
    let mut next_sample = started + opts.interval;
    // Over the first epochs, samples come often enough that each epoch holds a few dozen:
    // the points paired with the same point of the next epoch (analysis::paired). RSS
    // alone, read from statm: cheap. Later epochs are sampled at --interval.
    let mut sample_every = if opts.window.is_some() { opts.interval } else { opts.interval.min(FIRST_EPOCH_INTERVAL) };
    let mut epoch_ends_seen: (u32, Option<Instant>) = (0, Some(started));
    // Fixed windows: asked for, or fallen back to.
    let mut window = opts.window;
    let mut next_window = window.map(|w| started + w);
    let mut window_index = 0u32;
    let mut filter = BoundaryFilter::new(opts.window.is_some());
    // The fall-back to windows: due this long after the start unless an epoch comes first.
    let mut fallback_at = opts.auto_window.filter(|_| opts.window.is_none()).map(|a| (started + a, a));
    let mut gate = RankGate::default();
    let mut passed_at: Option<f64> = None;
    let mut last_rss = 0u64;
    // The tree's PSS and summed RSS at the last full reading.
    let mut last_full_pss: Option<(u64, u64)> = None;
    let mut stop_deadline: Option<Instant> = None;
    let mut census_in_loop = false;
    let exit = loop {
        let now = Instant::now();
        let due = next_window.map_or(next_sample, |w| w.min(next_sample));
        let event = rx.recv_timeout(due.saturating_duration_since(now));
        let row = match event {
            Ok(Event::Boundary { boundary, source, gpu, rank }) => {
                // The helper waits (briefly) until the tree was sampled at its boundary.
                let ack = (source == Origin::Loader && boundary.phase == Phase::EpochEnd).then_some(boundary.epoch).flatten();
                let row = if filter.accepts(&boundary, source) {
                    match gate.pass(boundary, rank, &rec.ranks) {
                        Some(boundary) => {
                            rec.gpu = gpu;
                            Some(rec.record(boundary)?)
                        }
                        None => None,
                    }
                } else {
                    None
                };
                // The main process's census is then taken by its waiting training loop.
                census_in_loop = ack.is_some() && row.is_some() && (opts.python_objects || opts.gpu_sites || opts.native_sites);
                if let (Some(h), Some(epoch)) = (&helper, ack) {
                    h.ack(&rec.pids, epoch, census_in_loop);
                }
                match row {
                    Some(row) => row,
                    None => continue,
                }
            }
            Ok(Event::Exited(status)) => break exit_of(status),
            Ok(Event::Signal(sig)) => match child_pid {
                // Ctrl-C reaches the child through the terminal (it is in our foreground
                // process group); a SIGINT sent to us alone (kill -INT, timeout -s INT, a
                // CI runner) and other signals are passed on.
                Some(pid) if sig != libc::SIGINT || !interrupt_from_terminal() => {
                    unsafe { libc::kill(pid as i32, sig) };
                    continue;
                }
                Some(_) => continue,
                None => break Exit::Detached,
            },
            Err(RecvTimeoutError::Disconnected) => break Exit::Ended,
            Err(RecvTimeoutError::Timeout) => {
                let now = Instant::now();
                if filter.epochs_from.is_some() {
                    fallback_at = None;
                }
                if let Some((_, after)) = fallback_at.filter(|(at, _)| now >= *at) {
                    // No epoch boundary for this long: fixed windows from now on, said
                    // in run.json and in a row of its own.
                    fallback_at = None;
                    let length = fallback_window(after);
                    window = Some(length);
                    filter.windows = true;
                    next_window = Some(now + length);
                    meta.window_s = Some(length.as_secs_f64());
                    meta.windows_after_s = Some(after.as_secs_f64());
                    rec.writer.update_meta(&meta)?;
                    let label = format!("no epoch boundary in {after:?}: fixed windows of {length:?} from now on");
                    rec.record(Boundary::new(Phase::Custom("windows".into())).label(label))?
                } else if next_window.is_some_and(|w| now >= w) {
                    next_window = window.map(|w| now + w);
                    window_index += 1;
                    rec.record(Boundary::new(Phase::EpochEnd).epoch(window_index - 1).label("window"))?
                } else {
                    if epoch_ends_seen.0 == 0 && now - started > Duration::from_secs(60) {
                        sample_every = opts.interval;
                    }
                    next_sample = now + sample_every;
                    // PSS costs a page-table walk per process: in full only now and then,
                    // or when PSS may be past --max-memory (see max_memory_walk_due).
                    let over = passed_at.is_none() && rec.own.is_none() && opts.max_memory.is_some_and(|m| budget::max_memory_walk_due(m, last_rss, last_full_pss, now - rec.last_full));
                    let periodic = now >= rec.last_full + opts.full_interval && (rec.own.is_none() || (rec.walks.allows_moved(now - rec.started) && rec.moved(false)));
                    let detail = if over || periodic { Detail::Full } else { Detail::Rss };
                    let row = rec.record_with(Boundary::new(Phase::Custom("sample".into())), detail)?;
                    if child_pid.is_none() && row.tree_processes.is_none() {
                        break Exit::Ended; // the watched pid is gone
                    }
                    row
                }
            }
        };
        last_rss = row.tree_rss_bytes.unwrap_or(0);
        if let (Some(pss), Some(rss)) = (row.tree_pss_bytes, row.tree_rss_bytes) {
            last_full_pss = Some((pss, rss));
        }
        if row.phase == "epoch_end" && window.is_none() {
            let now = Instant::now();
            let (count, last) = epoch_ends_seen;
            sample_every = match last {
                Some(last) if (count as usize) < DENSE_EPOCHS => ((now - last) / PAIRED_SAMPLES_PER_EPOCH).clamp(MIN_PAIRED_INTERVAL, opts.interval),
                _ => opts.interval,
            };
            epoch_ends_seen = (count + 1, Some(now));
            next_sample = next_sample.min(now + sample_every);
        }
        if let (Some(h), "epoch_end", Some(epoch), true) = (&helper, row.phase.as_str(), row.epoch, opts.python_objects || opts.gpu_sites || opts.native_sites) {
            // The main process (first) takes its own when its loop was told to.
            let skip = usize::from(std::mem::take(&mut census_in_loop) && rec.main_first);
            h.request(&rec.pids[skip.min(rec.pids.len())..], epoch);
        }
        if let Some(f) = &mut opts.on_row {
            f(&row, &rec.sampler.ranks);
        }
        live.observe_processes(&row, std::mem::take(&mut rec.points));
        if let Some(status) = live.observe(&row) {
            if let Some(f) = &mut opts.on_verdict {
                f(&status);
            }
            if opts.stop_on_leak && status.growing && stopped_on_leak.is_none() && stop_deadline.is_none() {
                stopped_on_leak = Some(status.epoch);
                let mut b = Boundary::new(Phase::Custom("stop_on_leak".into())).label(status.line.clone());
                b.epoch = Some(status.epoch);
                rec.record(b)?;
                stop_deadline = Some(report_then_stop(out_dir, root, opts.kill_grace)?);
            }
        }
        if let (Some(max), Some(pss), None) = (opts.max_memory, row.tree_pss_bytes, passed_at) {
            if pss > max {
                passed_at = Some(row.t_s);
                let human = crate::format::human_bytes;
                let mut b = Boundary::new(Phase::Custom("max_memory".into())).label(format!("tree PSS {} > {}", human(pss as f64), human(max as f64)));
                b.epoch = row.epoch;
                rec.record(b)?;
                // Said as it happens, not only in the report at the end.
                if let Some(f) = &mut opts.on_verdict {
                    let then = if opts.kill_at_limit { "stopping the command (--kill-at-limit)" } else { "the command runs on (--kill-at-limit would stop it)" };
                    let line = format!("tree PSS {} passed --max-memory {} at {:.1} s; {then}", human(pss as f64), human(max as f64), row.t_s);
                    f(&LiveStatus { epoch: row.epoch.unwrap_or(0), line, growing: false });
                }
                if opts.kill_at_limit {
                    let mut b = Boundary::new(Phase::Custom("kill_at_limit".into())).label("stopping the command (--kill-at-limit)");
                    b.epoch = row.epoch;
                    rec.record(b)?;
                    stop_deadline = Some(report_then_stop(out_dir, root, opts.kill_grace)?);
                }
            }
        }
        if stop_deadline.is_some_and(|d| Instant::now() >= d) {
            terminate(root, libc::SIGKILL);
            stop_deadline = None;
        }
    };

    // Lines printed just before the exit are still in the pipes: read them first.
    let drain_until = Instant::now() + Duration::from_secs(2);
    for p in pumps {
        while !p.is_finished() && Instant::now() < drain_until {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    while let Ok(Event::Boundary { mut boundary, source, gpu, rank }) = rx.try_recv() {
        // The command has exited: what a sample sees now is its tree shutting down, which
        // is no part of the epoch's memory (the analysis counts the epoch, not its values).
        if boundary.phase == Phase::EpochEnd {
            boundary.label = crate::analysis::AFTER_EXIT.into();
        }
        let boundary = if filter.accepts(&boundary, source) { gate.pass(boundary, rank, &rec.ranks) } else { None };
        if let Some(boundary) = boundary {
            rec.gpu = gpu;
            rec.record(boundary)?;
        }
    }

    let oom_after = oom_kills(own.as_ref());
    let oom_killed = exit == Exit::Signal(libc::SIGKILL) && matches!((oom_before, oom_after), (Some(a), Some(b)) if b > a);
    let mut label = match exit {
        Exit::Code(c) => format!("exit={c}"),
        Exit::Signal(s) => format!("signal={s}"),
        Exit::Ended => "ended".into(),
        Exit::Detached => "detached".into(),
    };
    if oom_killed {
        label.push_str(&format!(" oom_kill={}->{}", oom_before.unwrap_or(0), oom_after.unwrap_or(0)));
    }
    rec.record(Boundary::new(Phase::Finish).label(label))?;
    if let Some(n) = native {
        n.finish();
    }
    Ok(Watched {
        own_cpu_s: own_cpu() - cpu_before,
        own_peak_rss_bytes: own_peak_rss(),
        wall_s: started.elapsed().as_secs_f64(),
        exit,
        oom_killed,
        max_memory_passed_at: passed_at,
        stopped_on_leak,
        markers_rejected: socket.rejected(),
        markers_received: received.load(std::sync::atomic::Ordering::Relaxed),
    })
}

/// Whether a SIGINT we got came from our terminal's Ctrl-C, which the kernel sends to the
/// whole foreground process group (the command included): stdin is a terminal whose
/// foreground group is ours.
fn interrupt_from_terminal() -> bool {
    // SAFETY: plain queries on file descriptor 0 and this process.
    unsafe { libc::isatty(0) == 1 && libc::tcgetpgrp(0) == libc::getpgrp() }
}

/// How long process `pid` has been running, from its start time in `/proc/<pid>/stat`
/// (clock ticks since boot) and the machine's uptime.
fn process_age_s(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces), from field 3 on.
    let rest = &stat[stat.rfind(')')? + 2..];
    let start_ticks: f64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime").ok()?.split_whitespace().next()?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks > 0.0).then(|| (uptime - start_ticks / ticks).max(0.0))
}

/// This process's CPU seconds so far (getrusage; children not included).
fn own_cpu() -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a zeroed out-struct of the right type.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(u.ru_utime) + secs(u.ru_stime)
}

/// Reset this process's peak RSS, so that what `diagnose` held before it exec'd us
/// (libtorch) is not counted as the watcher's.
fn reset_own_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// This process's peak RSS since [`reset_own_peak`] (VmHWM).
fn own_peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status").ok().and_then(|t| crate::source::parse_status(&t).1).unwrap_or(0)
}

/// The epoch end of a run of several ranks is the one all of them reached: each rank's
/// `epoch_end` marker (it carries `rank=R`) is held until every rank of the tree (and
/// every rank heard from) has reached that epoch; then one row is recorded for it.
#[derive(Default)]
struct RankGate {
    reached: std::collections::BTreeMap<u32, u32>,
    emitted: Option<u32>,
}

impl RankGate {
    fn pass(&mut self, b: Boundary, rank: Option<u32>, tree_ranks: &std::collections::BTreeSet<u32>) -> Option<Boundary> {
        let (Some(rank), Phase::EpochEnd, Some(epoch)) = (rank, &b.phase, b.epoch) else { return Some(b) };
        let e = self.reached.entry(rank).or_insert(epoch);
        *e = (*e).max(epoch);
        let all = tree_ranks.iter().map(|r| self.reached.get(r).copied()).chain(self.reached.values().map(|v| Some(*v)));
        let common = all.collect::<Option<Vec<u32>>>()?.into_iter().min()?;
        if self.emitted.is_some_and(|x| x >= common) {
            return None;
        }
        self.emitted = Some(common);
        Some(Boundary { epoch: Some(common), label: "all ranks".into(), ..b })
    }
}

/// Takes a sample at each boundary and appends it.
struct Recorder<'a> {
    started: Instant,
    last_full: Instant,
    /// Whether a boundary may be read in full (page walks kept to a share of a core).
    walks: budget::WalkBudget,
    /// With a cgroup of its own: whether memory moved since the last epoch ends and the
    /// last full reading, from the cheap readings (`cheap`: at the last sample).
    movement: budget::Movement,
    cheap: budget::CheapReading,
    /// The main process first, then the rest of the tree, at the last sample: whose
    /// census helper to ask.
    pids: Vec<u32>,
    /// `pids` starts with the main process.
    main_first: bool,
    /// Each process at the last sample, for the live per-process verdicts.
    points: Vec<crate::analysis::ProcessPoint>,
    /// The distributed ranks in the tree at the last sample.
    ranks: std::collections::BTreeSet<u32>,
    /// The caching allocator's figures the next boundary's marker carried (torch.cuda).
    gpu: Option<profiler_api::GpuAllocatorSnapshot>,
    writer: TimelineWriter,
    system: SystemSource,
    /// The command's own memory cgroup: the tree's PSS at every sample.
    own: Option<&'a OwnCgroup>,
    sampler: &'a mut TreeSampler,
}

impl Recorder<'_> {
    /// A boundary: sampled in full while the page-walk budget allows (see [`budget`]).
    fn record(&mut self, b: Boundary) -> Result<Row, Error> {
        let epoch_end = b.phase == Phase::EpochEnd;
        let allowed = self.walks.allows(epoch_end.then_some(b.epoch), self.started.elapsed());
        let moved = || epoch_end && self.own.is_some() && self.walks.allows_moved(self.started.elapsed()) && self.moved(true);
        let full = b.phase == Phase::Start || allowed || moved();
        self.record_with(b, if full { Detail::Full } else { Detail::Rss })
    }

    /// With a cgroup of its own: whether the tree's memory moved enough to read each
    /// process in full (`budget::Movement`), from the last sample's readings; at an epoch
    /// end (`fresh`) from its cgroup read now. (A periodic check runs before each sample
    /// once the 30 s are up, and the sample reads the cgroup itself: not twice there.)
    fn moved(&self, fresh: bool) -> bool {
        let tree = self.own.filter(|_| fresh).and_then(|o| o.anon_and_shmem()).unwrap_or(self.cheap.tree);
        self.movement.due(tree, &self.cheap.rss)
    }

    fn record_with(&mut self, b: Boundary, detail: Detail) -> Result<Row, Error> {
        let cpu_before = (detail == Detail::Full).then(budget::thread_cpu);
        if detail == Detail::Full {
            self.last_full = Instant::now();
        }
        let ends_epoch = b.phase == Phase::EpochEnd;
        let mut row = Row {
            t_s: self.started.elapsed().as_secs_f64(),
            phase: b.phase.as_str().to_string(),
            epoch: b.epoch,
            episode: b.episode,
            label: b.label,
            user_bytes: b.user_bytes,
            ..Row::default()
        };
        let procs = self.sampler.sample(&mut row, detail)?;
        if let (Some(own), false) = (self.own, procs.is_empty()) {
            // The kernel's count replaces the sum of page walks (they agree within 0.1 MiB),
            // at every sample rather than at full ones alone.
            row.tree_pss_bytes = own.anon_and_shmem().or(row.tree_pss_bytes);
        }
        if let Some(before) = cpu_before {
            self.walks.spend(budget::thread_cpu().saturating_sub(before));
        }
        if self.own.is_some() && !procs.is_empty() {
            self.cheap = budget::CheapReading { tree: row.tree_pss_bytes.unwrap_or(0), rss: procs.iter().filter_map(|p| Some((p.pid, p.mem?.rss))).collect() };
            if detail == Detail::Full {
                self.movement.full(self.cheap.clone());
            }
            if ends_epoch {
                self.movement.epoch_end(self.cheap.clone());
            }
        }
        if !procs.is_empty() {
            self.ranks = procs.iter().filter_map(|p| p.rank).collect();
        }
        self.pids = procs.iter().filter(|p| p.role == tree::Role::Main).chain(procs.iter().filter(|p| p.role != tree::Role::Main)).map(|p| p.pid).collect();
        self.main_first = procs.iter().any(|p| p.role == tree::Role::Main);
        self.points = procs
            .iter()
            .map(|p| crate::analysis::ProcessPoint {
                t_s: row.t_s,
                pid: p.pid,
                role: p.role.as_str().to_string(),
                rank: p.rank,
                name: p.name.clone(),
                rss_bytes: p.mem.map(|m| m.rss),
                uss_bytes: p.mem.filter(|_| p.detail == Detail::Full).map(|m| m.uss),
            })
            .collect();
        self.system.sample(&mut row);
        if let Some(g) = self.gpu.take() {
            row.gpu_allocated_bytes = Some(g.allocated);
            row.gpu_reserved_bytes = Some(g.reserved);
            row.gpu_peak_allocated_bytes = Some(g.peak_allocated);
            row.gpu_peak_reserved_bytes = Some(g.peak_reserved);
        }
        self.writer.append(&row)?;
        Ok(row)
    }
}

fn exit_of(status: ExitStatus) -> Exit {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => Exit::Code(c),
        (None, Some(s)) => Exit::Signal(s),
        (None, None) => Exit::Ended,
    }
}

/// Start the command with its output piped through us (so log lines can be matched),
/// stdin inherited, and the marker socket's path in its environment.
#[allow(clippy::too_many_arguments)]
fn spawn(argv: &[OsString], socket: &MarkerSocket, opts: &WatchOptions, census: Option<&census::CensusHelper>, native: Option<&NativeReducer>, own: Option<&OwnCgroup>, out_dir: &Path, tx: Sender<Event>) -> Result<(Child, Vec<std::thread::JoinHandle<()>>), Error> {
    let program = find_program(&argv[0])?;
    let mut cmd = Command::new(&program);
    // Into the cgroup before exec, so that every page the command touches is charged there
    // (pages charged before a move stay where they were charged).
    let procs = own.and_then(|o| std::fs::OpenOptions::new().write(true).open(o.procs_file()).ok());
    if let Some(f) = &procs {
        use std::os::unix::io::AsRawFd;
        use std::os::unix::process::CommandExt;
        let fd = f.as_raw_fd();
        // SAFETY: write(2) is async-signal-safe; "0" moves the writing process. A failure
        // is seen after the start (OwnCgroup::holds) and the tree is then read without it.
        unsafe {
            cmd.pre_exec(move || {
                libc::write(fd, b"0".as_ptr().cast(), 1);
                Ok(())
            });
        }
    }
    cmd.args(&argv[1..]).stdin(Stdio::inherit()).stdout(Stdio::piped()).stderr(Stdio::piped()).env(MARKER_ENV, socket.path());
    // Where a census goes, also for diagnose_markers.epoch_end(n, census=True).
    cmd.env("DIAGNOSE_CENSUS_OUT", out_dir.join(census::OBJECTS_DIR));
    if let Some(helper) = census {
        cmd.env("PYTHONPATH", census::python_path(helper.dir())).env("DIAGNOSE_CENSUS_DIR", helper.dir()).env_remove("DIAGNOSE_CENSUS_OWNER");
        if opts.python_objects {
            cmd.env("DIAGNOSE_OBJECTS", "1");
            cmd.env("DIAGNOSE_CENSUS_WORKERS", if opts.census_workers { "full" } else { "light" });
        }
        if opts.python_tracemalloc {
            cmd.env("DIAGNOSE_TRACEMALLOC", "1");
        }
        // The CUDA allocator's counters with a census; with --gpu-sites, its call sites too.
        if opts.gpu_sites {
            // Made here, so that a report can tell "recorded nothing" from "not asked".
            let _ = std::fs::create_dir_all(out_dir.join(census::GPU_DIR));
        }
        if opts.python_objects || opts.gpu_sites {
            cmd.env("DIAGNOSE_GPU", if opts.gpu_sites { "sites" } else { "stats" }).env("DIAGNOSE_GPU_OUT", out_dir.join(census::GPU_DIR));
        }
    }
    if let Some(n) = native {
        // The user's own preloads stay, after ours (a malloc preloaded first wins).
        let mut preload = n.library.as_os_str().to_owned();
        if let Some(old) = std::env::var_os("LD_PRELOAD").filter(|o| !o.is_empty()) {
            preload.push(":");
            preload.push(old);
        }
        cmd.env("LD_PRELOAD", preload).env("DIAGNOSE_NATIVE_DUMPS", &n.dumps);
    }
    // Python block-buffers a piped stdout, which would hold back its epoch lines.
    if std::env::var_os("PYTHONUNBUFFERED").is_none() {
        cmd.env("PYTHONUNBUFFERED", "1");
    }
    let mut child = cmd.spawn().map_err(|e| Error::Config(format!("cannot start {}: {e}", program.display())))?;
    let matcher = Arc::new(Mutex::new(LogMatcher::new(opts.epoch_pattern.clone(), opts.phases.clone())));
    let deliver = move |tx: Sender<Event>| move |b: Boundary| {
        let _ = tx.send(Event::Boundary { boundary: b, source: Origin::Log, gpu: None, rank: None });
    };
    let out = child.stdout.take().expect("piped");
    let err = child.stderr.take().expect("piped");
    let (m1, m2) = (matcher.clone(), matcher);
    let d1 = deliver(tx.clone());
    let d2 = deliver(tx);
    let pumps = vec![
        std::thread::spawn(move || logscan::pump(out, std::io::stdout(), m1, d1)),
        std::thread::spawn(move || logscan::pump(err, std::io::stderr(), m2, d2)),
    ];
    Ok((child, pumps))
}

/// `--native-sites`: the library to preload, and a thread that reduces the helper's heap
/// dumps as they appear (symbolizing takes a while the first time a library is seen; the
/// event loop must not wait for it).
struct NativeReducer {
    library: PathBuf,
    dumps: PathBuf,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl NativeReducer {
    fn start(library: PathBuf, out_dir: &Path) -> Result<Self, Error> {
        let mut sites = crate::heap::native::NativeSites::create(out_dir)?;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut failed = false;
            loop {
                let last = flag.load(std::sync::atomic::Ordering::Acquire);
                if let Err(e) = sites.reduce_ready() {
                    if !std::mem::replace(&mut failed, true) {
                        console::status_line(&format!("diagnose: native sites: {e}"));
                    }
                }
                if last {
                    break;
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        });
        Ok(NativeReducer { library, dumps: out_dir.join(crate::heap::native::DUMPS_DIR), stop, thread })
    }

    /// Reduce what is left, then stop.
    fn finish(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        let _ = self.thread.join();
    }
}

fn wait_in_background(mut child: Child, tx: Sender<Event>) {
    std::thread::spawn(move || {
        if let Ok(status) = child.wait() {
            let _ = tx.send(Event::Exited(status));
        }
    });
}

/// SIGINT, SIGTERM and SIGHUP become events instead of ending us: the report must still
/// be written, and the child decides how it ends.
fn forward_signals(tx: Sender<Event>) -> Result<(), Error> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .map_err(|e| Error::Config(format!("cannot handle signals: {e}")))?;
    std::thread::spawn(move || {
        for sig in signals.forever() {
            if tx.send(Event::Signal(sig)).is_err() {
                break;
            }
        }
    });
    Ok(())
}

/// Write the report (so that it exists whatever happens to the tree), then ask the tree
/// to stop (SIGTERM). Returns when SIGKILL is due.
fn report_then_stop(out_dir: &Path, root: u32, grace: Duration) -> Result<Instant, Error> {
    crate::report::rebuild(out_dir)?;
    terminate(root, libc::SIGTERM);
    Ok(Instant::now() + grace)
}

/// Send `sig` to every process of the tree under `root`, the root last so its children
/// are not orphaned first.
fn terminate(root: u32, sig: i32) {
    let members = tree::members(root);
    for (pid, _) in members.iter().rev() {
        unsafe { libc::kill(*pid as i32, sig) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_supersede_log_epochs_and_windows_both() {
        let epoch = |e| Boundary::new(Phase::EpochEnd).epoch(e);
        let mut f = BoundaryFilter::new(false);
        assert!(f.accepts(&epoch(0), Origin::Log), "log epochs count until a marker comes");
        assert!(!f.accepts(&epoch(0), Origin::Marker), "an epoch already ended is not ended twice");
        assert!(f.accepts(&epoch(1), Origin::Marker), "markers take over from the next epoch");
        assert!(!f.accepts(&epoch(1), Origin::Log), "then log epochs are dropped");
        assert!(f.accepts(&Boundary::new(Phase::ValidationStart).epoch(1), Origin::Log), "other log phases stay");
        assert!(!f.accepts(&Boundary::new(Phase::EpisodeEnd).epoch(1).episode(3), Origin::Marker), "steps are not sampled");
        let mut w = BoundaryFilter::new(true);
        assert!(!w.accepts(&epoch(0), Origin::Marker) && !w.accepts(&epoch(0), Origin::Log));
    }

    #[test]
    fn markers_win_over_loader_passes_which_win_over_log_lines() {
        let epoch = |e| Boundary::new(Phase::EpochEnd).epoch(e);
        let val = |e| Boundary::new(Phase::ValidationStart).epoch(e);
        let mut f = BoundaryFilter::new(false);
        assert!(f.accepts(&epoch(0), Origin::Log));
        assert!(f.accepts(&val(0), Origin::Loader), "the helper's validation passes count");
        assert!(!f.accepts(&epoch(0), Origin::Loader), "epoch 0 ended by its log line is not ended again by the loader");
        assert!(!f.accepts(&epoch(1), Origin::Log), "log epochs dropped once a loader pass marked one");
        assert!(f.accepts(&epoch(1), Origin::Loader));
        assert!(!f.accepts(&epoch(1), Origin::Marker), "nor by a marker");
        assert!(f.accepts(&epoch(2), Origin::Marker));
        assert!(!f.accepts(&epoch(3), Origin::Loader), "loader epochs dropped once the program marks its own");
        assert!(!f.accepts(&val(2), Origin::Loader), "and the helper's validation too");
        assert!(f.accepts(&Boundary::new(Phase::Custom("census".into())).epoch(2), Origin::Loader), "the census's GPU figures always");
        assert_eq!(fallback_window(DEFAULT_AUTO_WINDOW), Duration::from_secs(60));
    }

    #[test]
    fn an_epoch_ends_when_every_rank_reached_it() {
        let ranks: std::collections::BTreeSet<u32> = [0, 1].into();
        let mut g = RankGate::default();
        let end = |e| Boundary::new(Phase::EpochEnd).epoch(e);
        assert!(g.pass(end(0), Some(0), &ranks).is_none(), "rank 1 is not there yet");
        assert_eq!(g.pass(end(0), Some(1), &ranks).unwrap().epoch, Some(0));
        assert!(g.pass(end(1), Some(1), &ranks).is_none());
        assert!(g.pass(end(2), Some(1), &ranks).is_none());
        assert_eq!(g.pass(end(1), Some(0), &ranks).unwrap().epoch, Some(1));
        assert_eq!(g.pass(end(3), Some(0), &ranks).unwrap().epoch, Some(2), "the slower rank sets the pace");
        assert_eq!(g.pass(end(5), None, &ranks).unwrap().epoch, Some(5), "no rank: passed as it is");
    }

    #[test]
    fn exit_codes_as_a_shell_shows_them() {
        assert_eq!(Exit::Code(3).shell_code(), 3);
        assert_eq!(Exit::Signal(9).shell_code(), 137);
        assert_eq!(Exit::Detached.shell_code(), 0);
        assert!(check_target(&Target::Command(vec!["definitely-not-a-command-x".into()])).is_err());
        assert!(check_target(&Target::Command(vec!["sh".into()])).is_ok());
        assert!(check_target(&Target::Pid(std::process::id())).is_ok());
        let age = process_age_s(std::process::id()).unwrap();
        assert!((0.0..3600.0).contains(&age), "{age}");
    }
}
