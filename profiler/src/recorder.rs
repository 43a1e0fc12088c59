//! The recorder: at each boundary, ask every source for its columns and append one row.
//!
//! Recording never analyses; it only streams rows to `timeline.csv`. Its own memory is
//! one reusable row and the sources' buffers, whatever the run's length.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use profiler_api::{Boundary, Marker, Phase};
use crate::error::Error;
use crate::heap::{HeapAttribution, StackSource, DHAT_MAX_FRAMES};
use crate::limits::memory_limit;
use crate::live::{LiveStatus, LiveVerdict};
use crate::source::{
    ExactHeapSource, GpuAllocatorStats, GpuSource, GpuStatus, JemallocSource, NvmlSource,
    ProcessSource, Source, SystemSource,
};
use crate::timeline::{Row, TimelineMeta, TimelineWriter};

/// How the Rust heap is observed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HeapMode {
    /// jemalloc's counters only (the everyday mode; no per-allocation cost).
    #[default]
    Sampled,
    /// dhat counts every Rust allocation exactly (slow: a backtrace per allocation),
    /// attributes the live Rust heap to call sites at every epoch end (as
    /// [`ProfilerBuilder::attribute`] does with jemalloc), and writes DHAT's JSON for its
    /// viewer: `dhat/epoch-N.json` at each epoch end, `dhat-heap.json` at the finish.
    /// C++ allocations (libtorch's tensors) go straight to jemalloc and are not seen.
    Exact,
}

/// Past this fraction of the memory limit, freed pages are returned at every boundary.
const NEAR_LIMIT: f64 = 0.9;

/// Settings for a [`Profiler`].
pub struct ProfilerBuilder {
    out_dir: PathBuf,
    heap: HeapMode,
    pss: bool,
    gpu_device: Option<u32>,
    gpu_allocator: Option<Box<dyn GpuAllocatorStats>>,
    on_row: Option<Box<dyn FnMut(&Row) + Send>>,
    attribute: bool,
    on_verdict: Option<Box<dyn FnMut(&LiveStatus) + Send>>,
    stop_on_leak: bool,
}

impl ProfilerBuilder {
    /// Judge the run at every epoch end (rewriting `summary.json`) and pass the reading to
    /// `f` (e.g. to print it).
    pub fn on_verdict(mut self, f: impl FnMut(&LiveStatus) + Send + 'static) -> Self {
        self.on_verdict = Some(Box::new(f));
        self
    }

    /// Ask the loop to stop ([`Marker::stop_requested`]) once the live verdict is
    /// growing. Turns the live verdict on.
    pub fn stop_on_leak(mut self, on: bool) -> Self {
        self.stop_on_leak = on;
        self
    }

    /// Attribute live heap to call sites at every epoch end with jemalloc's sampling
    /// profiler (`sites.csv`, `heap_sites.csv`, `growth.pb.gz`, `growth.svg`). In
    /// [`HeapMode::Exact`] dhat attributes instead, whatever this says.
    pub fn attribute(mut self, on: bool) -> Self {
        self.attribute = on;
        self
    }

    /// Heap observation mode (default [`HeapMode::Sampled`]).
    pub fn heap(mut self, heap: HeapMode) -> Self {
        self.heap = heap;
        self
    }
    /// Read PSS at each boundary (default on).
    pub fn pss(mut self, on: bool) -> Self {
        self.pss = on;
        self
    }
    /// Record GPU memory of this CUDA device index via NVML.
    pub fn gpu_device(mut self, index: u32) -> Self {
        self.gpu_device = Some(index);
        self
    }
    /// Record a framework's caching-allocator statistics.
    pub fn gpu_allocator(mut self, stats: Box<dyn GpuAllocatorStats>) -> Self {
        self.gpu_allocator = Some(stats);
        self
    }
    /// Call `f` with every recorded row (e.g. to show the current RSS in a progress bar).
    pub fn on_row(mut self, f: impl FnMut(&Row) + Send + 'static) -> Self {
        self.on_row = Some(Box::new(f));
        self
    }

    /// Create the output folder and `timeline.csv`, start the sources, and record the
    /// `start` row. Fails before any work if the folder cannot be written.
    pub fn start(self) -> Result<Profiler, Error> {
        let out_dir = self.out_dir;
        fs::create_dir_all(&out_dir)
            .map_err(|source| Error::Output { path: out_dir.clone(), source })?;

        let mut sources: Vec<Box<dyn Source>> = vec![
            Box::new(ProcessSource::new(self.pss)),
            Box::new(SystemSource::new(crate::cgroup::MemoryCgroup::of(None), true)),
        ];
        match JemallocSource::new() {
            Ok(j) => sources.push(Box::new(j)),
            Err(e) => eprintln!("profiler: jemalloc statistics unavailable ({e}); is ProfilerAlloc the global allocator?"),
        }
        let gpu_status = match self.gpu_device {
            None => GpuStatus::probe(),
            Some(index) => match NvmlSource::open(index) {
                Ok((nvml, status)) => {
                    sources.push(Box::new(nvml));
                    status
                }
                Err(status) => status,
            },
        };
        if let Some(stats) = self.gpu_allocator {
            sources.push(Box::new(GpuSource(stats)));
        }

        let limit = memory_limit();
        let meta = TimelineMeta {
            mem_limit_bytes: limit.as_ref().map(|l| l.bytes),
            mem_limit_source: limit.map(|l| l.source.to_string()),
            gpu: Some(gpu_status.to_token()),
            recorder: Some("run".into()),
            ..TimelineMeta::default()
        };
        let writer = TimelineWriter::create(&out_dir.join("timeline.csv"), &meta)?;
        let live = (self.on_verdict.is_some() || self.stop_on_leak).then(|| LiveVerdict::new(meta.clone(), Some(&out_dir)));

        let stack_source = match (self.heap, self.attribute) {
            (HeapMode::Exact, _) => Some(StackSource::DhatExact),
            (HeapMode::Sampled, true) => Some(StackSource::JemallocSampled),
            (HeapMode::Sampled, false) => None,
        };
        // Before dhat starts, so that the attribution's own state is not counted.
        let attribution = stack_source.map(|s| HeapAttribution::start(&out_dir, s)).transpose()?;
        let dhat = (self.heap == HeapMode::Exact).then(|| {
            crate::alloc::set_exact_mode(true);
            sources.push(Box::new(ExactHeapSource::new()));
            dhat::Profiler::builder()
                .file_name(out_dir.join("dhat-heap.json"))
                .trim_backtraces(Some(DHAT_MAX_FRAMES))
                .build()
        });

        let mut profiler = Profiler {
            out_dir,
            started: Instant::now(),
            sources,
            writer,
            row: Row::default(),
            on_row: self.on_row,
            gpu_status,
            first_error: None,
            dhat,
            attribution,
            finished: false,
            live,
            limit_bytes: meta.mem_limit_bytes,
            on_verdict: self.on_verdict,
            stop_on_leak: self.stop_on_leak,
            stop: false,
        };
        profiler.mark(Boundary::new(Phase::Start));
        if let Some(e) = profiler.first_error.take() {
            return Err(e);
        }
        Ok(profiler)
    }
}

/// Records one timeline row per boundary. Implements [`Marker`].
pub struct Profiler {
    out_dir: PathBuf,
    started: Instant,
    sources: Vec<Box<dyn Source>>,
    writer: TimelineWriter,
    row: Row,
    on_row: Option<Box<dyn FnMut(&Row) + Send>>,
    gpu_status: GpuStatus,
    first_error: Option<Error>,
    dhat: Option<dhat::Profiler>,
    attribution: Option<HeapAttribution>,
    finished: bool,
    live: Option<LiveVerdict>,
    /// The machine's or cgroup's limit at start.
    limit_bytes: Option<u64>,
    on_verdict: Option<Box<dyn FnMut(&LiveStatus) + Send>>,
    stop_on_leak: bool,
    /// Set once stop-on-leak saw growth confirmed.
    stop: bool,
}

impl Profiler {
    /// Start configuring a profiler that writes into `out_dir`.
    pub fn builder(out_dir: impl AsRef<Path>) -> ProfilerBuilder {
        ProfilerBuilder {
            out_dir: out_dir.as_ref().to_path_buf(),
            heap: HeapMode::default(),
            pss: true,
            gpu_device: None,
            gpu_allocator: None,
            on_row: None,
            attribute: false,
            on_verdict: None,
            stop_on_leak: false,
        }
    }

    /// Where the files go.
    pub fn out_dir(&self) -> &Path {
        &self.out_dir
    }

    /// Whether GPU columns are filled, and if not why.
    pub fn gpu_status(&self) -> &GpuStatus {
        &self.gpu_status
    }

    /// Record the `finish` row, stop exact mode (writing `dhat-heap.json`) and report the
    /// first write error, if any happened during the run.
    pub fn finish(mut self) -> Result<PathBuf, Error> {
        self.finish_inner();
        match self.first_error.take() {
            Some(e) => Err(e),
            None => Ok(self.writer.path().to_path_buf()),
        }
    }

    fn finish_inner(&mut self) {
        if self.finished {
            return;
        }
        self.mark(Boundary::new(Phase::Finish));
        self.finished = true;
        if let Some(mut a) = self.attribution.take() {
            if let Err(e) = a.finish(crate::analysis::warmup_epochs) {
                self.record_error(e);
            }
        }
        if let Some(dhat) = self.dhat.take() {
            drop(dhat); // writes dhat-heap.json
            crate::alloc::set_exact_mode(false);
        }
    }
}

impl Profiler {
    fn record_error(&mut self, e: Error) {
        if self.first_error.is_none() {
            eprintln!("profiler: {e}");
            self.first_error = Some(e);
        }
    }
}

impl Marker for Profiler {
    fn mark(&mut self, boundary: Boundary) {
        let row = &mut self.row;
        *row = Row::default();
        row.t_s = self.started.elapsed().as_secs_f64();
        row.phase = boundary.phase.as_str().to_string();
        row.epoch = boundary.epoch;
        row.episode = boundary.episode;
        row.label = boundary.label;
        row.user_bytes = boundary.user_bytes;
        // Freed pages go back to the OS at the ends of validation and of the epoch (the
        // allocator keeps them otherwise, for speed): RSS at those rows is what the
        // program holds, and the kept pages cannot shorten its runway under a cap.
        if matches!(boundary.phase, Phase::EpochEnd | Phase::ValidationEnd) {
            crate::alloc::purge_freed_pages();
        }
        for source in &mut self.sources {
            source.sample(row);
        }
        // Near the memory limit, kept pages are returned at every boundary.
        let limit = self.limit_bytes.into_iter().chain(row.cgroup_limit_bytes).min();
        if let (Some(limit), Some(rss)) = (limit, row.rss_bytes) {
            if rss as f64 > NEAR_LIMIT * limit as f64 && row.je_resident_bytes > row.je_active_bytes {
                crate::alloc::purge_freed_pages();
            }
        }
        if let Err(e) = self.writer.append(row) {
            self.record_error(e);
        }
        if let (Phase::EpochEnd, Some(a)) = (&boundary.phase, &mut self.attribution) {
            if let Err(e) = a.snapshot(boundary.epoch.unwrap_or(0)) {
                self.record_error(e);
            }
        }
        if let Some(f) = &mut self.on_row {
            f(&self.row);
        }
        if let Some(status) = self.live.as_mut().and_then(|l| l.observe(&self.row)) {
            if let Some(f) = &mut self.on_verdict {
                f(&status);
            }
            self.stop |= self.stop_on_leak && status.growing;
        }
    }

    fn stop_requested(&self) -> bool {
        self.stop
    }
}

impl Drop for Profiler {
    fn drop(&mut self) {
        self.finish_inner();
    }
}
