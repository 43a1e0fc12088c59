//! # profiler: memory boundaries for training loops
//!
//! Mark the boundaries of a training loop (episode end, validation start and end, epoch
//! end, phases of your own). At each one the profiler records process memory (RSS, peak,
//! PSS), jemalloc's counters (which include libtorch's C++ heap), optionally the exact
//! Rust heap (dhat) and GPU memory (NVML, a caching allocator), and appends one row to
//! `timeline.csv`, flushed at once. The analysis and reports read only that file.
//!
//! ## Set-up
//!
//! Install the profiler's allocator in your binary. It is jemalloc, configured with
//! background threads, and can route through dhat at start-up for exact counts:
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOC: profiler::ProfilerAlloc = profiler::ProfilerAlloc;
//! ```
//!
//! ## Instrumenting a loop
//!
//! ```no_run
//! use profiler::{Marker, Profiler};
//!
//! let mut prof = Profiler::builder("reports/my-run").start()?;
//! for epoch in 0..3 {
//!     for episode in 0..100u64 {
//!         // ... train one episode ...
//!         prof.episode_end(epoch, episode);
//!     }
//!     prof.validation_start(epoch);
//!     // ... validate ...
//!     prof.validation_end(epoch);
//!     prof.epoch_end(epoch);
//! }
//! prof.finish()?;
//! # Ok::<(), profiler::Error>(())
//! ```
//!
//! Instrumented code can take `&mut dyn Marker` so it runs unchanged with [`NoMarker`].
//!
//! ## Analysis
//!
//! [`analyze`] turns a [`Timeline`] into a verdict per memory series (flat, bounded or
//! growing, with a robust slope in bytes per epoch and its interval), a per-phase table
//! and an explanation of the ledger; [`report::write_all`] writes CSV, PNG, JSON and
//! Markdown from it.
#![deny(missing_docs)]

mod alloc;
pub mod cgroup;
mod error;
mod flat;
pub mod format;
mod frames;
mod limits;
pub mod live;
pub mod metrics;
mod recorder;
pub mod source;
pub mod timeline;
pub mod watch;

pub use alloc::{exact_mode, purge_freed_pages, set_exact_mode, ProfilerAlloc, JEMALLOC_CONF};
pub use profiler_api::{Boundary, Marker, NoMarker, Phase};
pub use error::Error;
pub use flat::{FlatMemory, FlatReport, SeriesCheck};
pub use limits::{memory_limit, MemLimit};
pub use recorder::{HeapMode, Profiler, ProfilerBuilder};
pub use timeline::{read_timeline, Row, Timeline, TimelineMeta};
pub mod analysis;
pub use analysis::{analyze, Analysis, Analyzer};

// Unit tests run on the profiler's allocator so jemalloc statistics are live.
#[cfg(test)]
#[global_allocator]
static TEST_ALLOC: ProfilerAlloc = ProfilerAlloc;
pub mod heap;
pub mod report;
