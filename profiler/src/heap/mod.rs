//! Call-site attribution from jemalloc's sampling heap profiler, which sees Rust and
//! libtorch (C++) allocations alike, or from dhat in exact mode, which sees every Rust
//! allocation and no C++ one.
//!
//! At each epoch end the recorder takes the live heap by stack (`heap/epoch-N.heap`, or
//! in exact mode `dhat/epoch-N.json` for DHAT's viewer and `heap/epoch-N.live`), attributes
//! every sampled stack to its *site*, the first frame in the program's own source (not
//! the allocator, the standard library, a registry crate or a shared library), and
//! streams one row per site to `heap_sites.csv`, and each newly seen site once to
//! `sites.csv`. Symbols are resolved in-process (addresses are only meaningful there)
//! through a cache that lives as long as the run. At the end the growth between the
//! first post-warm-up snapshot and the last is written as a pprof profile and a
//! flamegraph.

mod attribution;
mod jeprof;
pub mod native;
mod symbols;

pub use attribution::{
    read_sites, HeapAttribution, SiteInfo, SiteRow, StackSource, DHAT_DIR, DHAT_MAX_FRAMES, SITES_FILE, SITE_ROWS_FILE,
};
pub use jeprof::{activate_sampling, dump_profile, profiling_available};
pub use symbols::{Frame, Symbolizer};
