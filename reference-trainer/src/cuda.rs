//! libtorch's CUDA caching allocator, through a small C++ shim (`cpp/cuda_stats.cpp`):
//! allocated vs reserved bytes for the profiler's GPU columns, and `empty_cache`.
//! Built wherever the torch package ships CUDA (pip's torch does, even on CPU-only
//! machines); calls fail cleanly where CUDA is unusable.

use profiler_api::{GpuAllocatorSnapshot, GpuAllocatorStats};

#[cfg(cuda_shim)]
extern "C" {
    fn rt_cuda_allocator_stats(device: i32, out: *mut u64) -> i32;
    fn rt_cuda_empty_cache() -> i32;
}

/// Counters of one device's caching allocator, or `None` if unavailable.
pub fn allocator_stats(device: usize) -> Option<GpuAllocatorSnapshot> {
    #[cfg(cuda_shim)]
    {
        if !tch::Cuda::is_available() {
            return None;
        }
        let mut out = [0u64; 4];
        // SAFETY: the shim writes exactly four u64 into `out` and catches all exceptions.
        let rc = unsafe { rt_cuda_allocator_stats(device as i32, out.as_mut_ptr()) };
        (rc == 0).then_some(GpuAllocatorSnapshot { allocated: out[0], reserved: out[1], peak_allocated: out[2], peak_reserved: out[3] })
    }
    #[cfg(not(cuda_shim))]
    {
        let _ = device;
        None
    }
}

/// Release the caching allocator's free blocks to the driver (torch.cuda.empty_cache()).
pub fn empty_cache() {
    #[cfg(cuda_shim)]
    if tch::Cuda::is_available() {
        // SAFETY: no arguments; exceptions are caught in the shim.
        unsafe { rt_cuda_empty_cache() };
    }
}

/// The caching allocator of one device as a profiler GPU source.
pub struct TorchCudaStats {
    /// CUDA device index.
    pub device: usize,
}

impl GpuAllocatorStats for TorchCudaStats {
    fn snapshot(&self) -> Option<GpuAllocatorSnapshot> {
        allocator_stats(self.device)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn stats_are_none_without_cuda_and_some_with_it() {
        let stats = super::allocator_stats(0);
        assert_eq!(stats.is_some(), tch::Cuda::is_available() && cfg!(cuda_shim));
        super::empty_cache(); // must not crash either way
    }
}
