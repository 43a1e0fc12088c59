// libtorch's CUDA caching-allocator statistics, which tch does not expose: bytes in live
// tensors (allocated) vs bytes held from the driver (reserved), and their peaks; and
// emptyCache, the seed's torch.cuda.empty_cache().
//
// Goes through c10's device-generic DeviceAllocator interface, so it compiles with the
// torch package's headers alone (no CUDA toolkit headers). The CUDA allocator registers
// itself when libc10_cuda is loaded. Errors (no CUDA, bad device) return -1 instead of
// throwing across the FFI boundary.
#include <c10/core/CachingDeviceAllocator.h>
#include <cstdint>

namespace {
c10::DeviceAllocator* cuda_allocator() {
  auto* a = c10::getDeviceAllocator(c10::DeviceType::CUDA);
  return (a != nullptr && a->initialized()) ? a : nullptr;
}
}  // namespace

extern "C" int rt_cuda_allocator_stats(int device, uint64_t* out) {
  try {
    auto* a = cuda_allocator();
    if (a == nullptr) return -1;
    auto stats = a->getDeviceStats(static_cast<c10::DeviceIndex>(device));
    const auto agg = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
    out[0] = static_cast<uint64_t>(stats.allocated_bytes[agg].current);
    out[1] = static_cast<uint64_t>(stats.reserved_bytes[agg].current);
    out[2] = static_cast<uint64_t>(stats.allocated_bytes[agg].peak);
    out[3] = static_cast<uint64_t>(stats.reserved_bytes[agg].peak);
    return 0;
  } catch (...) {
    return -1;
  }
}

extern "C" int rt_cuda_empty_cache() {
  try {
    auto* a = cuda_allocator();
    if (a == nullptr) return -1;
    a->emptyCache();
    return 0;
  } catch (...) {
    return -1;
  }
}
