//! # profiler-api
//!
//! The small instrumentation API that instrumented code depends on: mark boundaries
//! ([`Marker`]) and expose a GPU caching allocator's counters ([`GpuAllocatorStats`]).
//! It has no dependencies, so a program can be built without the profiler (and without
//! its allocator) and still compile its instrumentation, with [`NoMarker`]. The
//! `profiler` crate implements [`Marker`] and re-exports everything here.
//! [`SocketMarker`] sends boundaries to `diagnose watch`, which watches a program from
//! outside: a program needs only this crate to be watched with its epochs marked.
#![deny(missing_docs)]

mod boundary;
mod gpu;
#[cfg(unix)]
mod socket;

pub use boundary::{Boundary, Marker, NoMarker, Phase};
pub use gpu::{GpuAllocatorSnapshot, GpuAllocatorStats};
#[cfg(unix)]
pub use socket::{SocketMarker, MARKER_ENV};
