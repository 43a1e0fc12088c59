//! jemalloc's sampling profiler: switch it on, dump a heap profile.

use std::ffi::CString;
use std::path::Path;

use crate::error::Error;

/// Whether jemalloc was built with profiling and started with `prof:true`.
pub fn profiling_available() -> bool {
    // SAFETY: "opt.prof" is a bool option in every jemalloc build with stats.
    unsafe { tikv_jemalloc_ctl::raw::read::<bool>(b"opt.prof\0") }.unwrap_or(false)
}

/// Start (or stop) sampling allocations. Only allocations made while active are sampled.
pub fn activate_sampling(on: bool) -> Result<(), Error> {
    if !profiling_available() {
        return Err(Error::HeapProfile(
            "jemalloc profiling is off: install profiler::ProfilerAlloc as the global allocator and do not override prof:true in MALLOC_CONF".into(),
        ));
    }
    // SAFETY: "prof.active" takes a bool.
    unsafe { tikv_jemalloc_ctl::raw::write(b"prof.active\0", on) }
        .map_err(|e| Error::HeapProfile(format!("cannot set prof.active: {e}")))
}

/// Write the live sampled heap to `path` (jemalloc's `heap_v2` text format).
pub fn dump_profile(path: &Path) -> Result<(), Error> {
    let c_path = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::HeapProfile(format!("path has a NUL byte: {}", path.display())))?;
    // SAFETY: "prof.dump" takes a NUL-terminated file name, which outlives the call.
    unsafe { tikv_jemalloc_ctl::raw::write(b"prof.dump\0", c_path.as_ptr()) }
        .map_err(|e| Error::HeapProfile(format!("prof.dump to {} failed: {e}", path.display())))
}
