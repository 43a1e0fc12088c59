//! The exact Rust heap from dhat, while exact mode's dhat profiler runs.

use super::Source;
use crate::timeline::Row;

/// Reads `dhat::HeapStats`. Only constructed while a dhat heap profiler is running
/// (dhat panics otherwise), which [`crate::Profiler`] guarantees.
pub struct ExactHeapSource(());

impl ExactHeapSource {
    pub(crate) fn new() -> Self {
        ExactHeapSource(())
    }
}

impl Source for ExactHeapSource {
    fn sample(&mut self, row: &mut Row) {
        let stats = dhat::HeapStats::get();
        row.heap_exact_bytes = Some(stats.curr_bytes as u64);
        row.heap_exact_blocks = Some(stats.curr_blocks as u64);
    }
}
