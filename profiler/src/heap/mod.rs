//! Call-site attribution from jemalloc's sampling heap profiler, which sees Rust and
//! libtorch (C++) allocations alike.
//!
//! At each epoch end the recorder dumps a heap profile (`heap/epoch-N.heap`), attributes
//! every sampled stack to its *site*, the first frame in the program's own source (not
//! the allocator, the standard library, a registry crate or a shared library), and
//! streams one row per site to `heap_sites.csv`, and each newly seen site once to
//! `sites.csv`. Symbols are resolved in-process (addresses are only meaningful there)
//! through a cache that lives as long as the run. At the end the growth between the
//! first post-warm-up snapshot and the last is written as a pprof profile and a
//! flamegraph.

mod attribution;
mod jeprof;
mod symbols;

pub use attribution::{HeapAttribution, SiteRow, SiteInfo, read_sites, SITES_FILE, SITE_ROWS_FILE};
pub use jeprof::{activate_sampling, dump_profile, profiling_available};
pub use symbols::{Frame, Symbolizer};
