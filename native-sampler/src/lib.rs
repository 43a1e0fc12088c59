//! libdiagnose_jemalloc.so: jemalloc with its sampling heap profiler, to be preloaded
//! (`LD_PRELOAD`) into the processes `diagnose watch --native-sites` starts.
//!
//! jemalloc is built prefixed (`_rjem_malloc`, ...); the `#[no_mangle]` functions below
//! are the C allocation API over it, which is what the preload replaces in every library
//! of the process (Python, C extensions, libtorch). `mallctl` is exported too: the
//! injected Python helper calls `mallctl("prof.dump", ...)` through ctypes at each epoch
//! end. Profiling starts on, sampling one allocation per 512 KiB on average (jemalloc's
//! default); `_RJEM_MALLOC_CONF` in the environment overrides it.

// The C allocation API: its safety contract is C's (valid pointers from this allocator),
// documented by the C standard and POSIX, not here.
#![allow(clippy::missing_safety_doc)]

use std::ffi::{c_char, c_int, c_void};
use tikv_jemalloc_sys as je;

/// jemalloc reads this (its weak default is empty) before the first allocation.
#[repr(transparent)]
pub struct Conf(*const c_char);
// SAFETY: a pointer to a static, immutable string.
unsafe impl Sync for Conf {}

#[no_mangle]
#[used]
pub static _rjem_malloc_conf: Conf = Conf(c"prof:true,prof_active:true,lg_prof_sample:19".as_ptr());

const PAGE: usize = 4096;

#[no_mangle]
pub unsafe extern "C" fn malloc(size: usize) -> *mut c_void {
    je::malloc(size)
}

#[no_mangle]
pub unsafe extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
    je::calloc(n, size)
}

#[no_mangle]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    je::realloc(p, size)
}

#[no_mangle]
pub unsafe extern "C" fn free(p: *mut c_void) {
    je::free(p)
}

#[no_mangle]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    je::posix_memalign(out, align, size)
}

#[no_mangle]
pub unsafe extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    je::aligned_alloc(align, size)
}

/// glibc's memalign: any power-of-two alignment (posix_memalign also wants a multiple
/// of the pointer size, which a smaller one always divides).
#[no_mangle]
pub unsafe extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        *libc::__errno_location() = libc::EINVAL;
        return std::ptr::null_mut();
    }
    let mut p = std::ptr::null_mut();
    match je::posix_memalign(&mut p, align.max(std::mem::size_of::<usize>()), size) {
        0 => p,
        e => {
            *libc::__errno_location() = e;
            std::ptr::null_mut()
        }
    }
}

#[no_mangle]
pub unsafe extern "C" fn valloc(size: usize) -> *mut c_void {
    memalign(PAGE, size)
}

#[no_mangle]
pub unsafe extern "C" fn pvalloc(size: usize) -> *mut c_void {
    memalign(PAGE, size.div_ceil(PAGE).max(1) * PAGE)
}

#[no_mangle]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    if p.is_null() {
        0
    } else {
        je::malloc_usable_size(p)
    }
}

#[no_mangle]
pub unsafe extern "C" fn mallctl(name: *const c_char, oldp: *mut c_void, oldlenp: *mut usize, newp: *mut c_void, newlen: usize) -> c_int {
    je::mallctl(name, oldp, oldlenp, newp, newlen)
}
