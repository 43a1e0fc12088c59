//! Sources of measurements. Each fills its own columns of a [`Row`] at every boundary.

mod exact_heap;
mod gpu;
mod jemalloc;
mod process;
mod system;

pub use exact_heap::ExactHeapSource;
pub use gpu::{GpuAllocatorSnapshot, GpuAllocatorStats, GpuSource, GpuStatus, NvmlSource};
pub use jemalloc::{JemallocSource, JemallocStats};
pub(crate) use process::kb_field;
pub use process::{parse_smaps_rollup_pss, parse_status, ProcessSource};
pub use system::{used_bytes, SystemSource};

use crate::timeline::Row;

/// A backend that measures something at a boundary.
pub trait Source: Send {
    /// Fill this source's columns of `row`. Must not allocate in proportion to run length.
    fn sample(&mut self, row: &mut Row);
}
