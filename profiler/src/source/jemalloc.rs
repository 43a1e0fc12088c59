//! jemalloc's own statistics. jemalloc is the process-wide `malloc`, so libtorch's C++
//! allocations are counted along with Rust's. Statistics are cached by jemalloc and only
//! refreshed when the epoch is advanced, which each sample does first.

use tikv_jemalloc_ctl::{epoch, epoch_mib, stats};

use super::Source;
use crate::timeline::Row;

/// A snapshot of jemalloc's counters, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JemallocStats {
    /// Live allocations.
    pub allocated: u64,
    /// Pages holding live allocations.
    pub active: u64,
    /// Resident allocator pages.
    pub resident: u64,
    /// Mapped extents.
    pub mapped: u64,
    /// Retained virtual memory.
    pub retained: u64,
    /// Allocator metadata.
    pub metadata: u64,
}

/// Reads jemalloc's counters through cached MIBs (no name lookup per sample).
pub struct JemallocSource {
    epoch: epoch_mib,
    allocated: stats::allocated_mib,
    active: stats::active_mib,
    resident: stats::resident_mib,
    mapped: stats::mapped_mib,
    retained: stats::retained_mib,
    metadata: stats::metadata_mib,
    /// Heap allocated at the previous sample, the base of the next heap peak.
    last_allocated: Option<u64>,
}

impl JemallocSource {
    /// Look the counters up once. Fails if jemalloc's stats are unavailable.
    pub fn new() -> Result<Self, tikv_jemalloc_ctl::Error> {
        Ok(JemallocSource {
            epoch: epoch::mib()?,
            allocated: stats::allocated::mib()?,
            active: stats::active::mib()?,
            resident: stats::resident::mib()?,
            mapped: stats::mapped::mib()?,
            retained: stats::retained::mib()?,
            metadata: stats::metadata::mib()?,
            last_allocated: None,
        })
    }

    /// Refresh and read every counter.
    pub fn read(&self) -> Result<JemallocStats, tikv_jemalloc_ctl::Error> {
        self.epoch.advance()?;
        Ok(JemallocStats {
            allocated: self.allocated.read()? as u64,
            active: self.active.read()? as u64,
            resident: self.resident.read()? as u64,
            mapped: self.mapped.read()? as u64,
            retained: self.retained.read()? as u64,
            metadata: self.metadata.read()? as u64,
        })
    }
}

/// This thread's highest net allocation (allocated minus freed) since the last reset,
/// and a reset (jemalloc 5.3's `thread.peak`): free to keep, jemalloc counts per thread
/// anyway. Frees of blocks other threads allocated lower the net, so it is a lower bound
/// on the heap's own peak when such frees come before the peak.
fn thread_peak_and_reset() -> Option<u64> {
    // SAFETY: a NUL-terminated name whose value is a u64.
    let peak = unsafe { tikv_jemalloc_ctl::raw::read::<u64>(b"thread.peak.read\0") }.ok()?;
    crate::alloc::mallctl_action(c"thread.peak.reset");
    Some(peak)
}

impl Source for JemallocSource {
    fn sample(&mut self, row: &mut Row) {
        let peak = thread_peak_and_reset();
        if let Ok(s) = self.read() {
            // The heap at the previous boundary, plus what this thread added at most since:
            // the height of the phase that just ended (never below the heap now).
            if let (Some(base), Some(peak)) = (self.last_allocated, peak) {
                row.heap_peak_bytes = Some((base + peak).max(s.allocated));
            }
            self.last_allocated = Some(s.allocated);
            row.je_allocated_bytes = Some(s.allocated);
            row.je_active_bytes = Some(s.active);
            row.je_resident_bytes = Some(s.resident);
            row.je_mapped_bytes = Some(s.mapped);
            row.je_retained_bytes = Some(s.retained);
            row.je_metadata_bytes = Some(s.metadata);
        }
    }
}
