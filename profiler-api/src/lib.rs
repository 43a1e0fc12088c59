//! # profiler-api
//!
//! The small instrumentation API that instrumented code depends on: mark boundaries
//! ([`Marker`]) and expose a GPU caching allocator's counters ([`GpuAllocatorStats`]).
//! It has no dependencies, so a program can be built without the profiler (and without
//! its allocator) and still compile its instrumentation, with [`NoMarker`]. The
//! `profiler` crate implements [`Marker`] and re-exports everything here.
#![deny(missing_docs)]

mod boundary;
mod gpu;

pub use boundary::{Boundary, Marker, NoMarker, Phase};
pub use gpu::{GpuAllocatorSnapshot, GpuAllocatorStats};
