//! A GPU caching allocator's counters, as a program exposes them to the profiler.

/// Bytes as a caching allocator counts them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GpuAllocatorSnapshot {
    /// Bytes in live tensors.
    pub allocated: u64,
    /// Bytes held from the driver (allocated + cached free blocks).
    pub reserved: u64,
    /// Peak of `allocated`.
    pub peak_allocated: u64,
    /// Peak of `reserved`.
    pub peak_reserved: u64,
}

/// A framework's caching-allocator statistics for one device.
pub trait GpuAllocatorStats: Send {
    /// Current counters, or `None` if unavailable right now.
    fn snapshot(&self) -> Option<GpuAllocatorSnapshot>;
}
