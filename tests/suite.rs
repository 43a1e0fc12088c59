//! The end-to-end tests of `diagnose`, in one test binary: one link instead of one per
//! file (building them after a change to tests/common: 26 s as 37 binaries, 10 s as one). Each file below is a module of
//! its own; run one with `cargo test --release --test suite FILE::` (e.g. `short_runs::`).
//! The memory they measure is always a child process's (`diagnose` run or watching), never
//! this binary's, so sharing one process changes nothing they read. tests/readme.rs is a
//! binary of its own (Cargo.toml says why).

mod common;

mod bad_input;
mod census_corpus;
mod clean_run;
mod exact_attribution;
mod exit_codes;
mod feature_pins;
mod killed_run;
mod late_growth;
mod leak_validation_accumulators;
mod leaks_raise_heap;
mod light_build;
mod memory_plots;
mod metrics_prometheus;
mod oom_at_peak;
mod outside_crate;
mod phase_peaks;
mod presets_flat;
mod pytest_plugin;
mod report_html;
mod report_merge;
mod sensitivity;
mod short_runs;
mod soak_false_alarms;
mod stop_on_leak;
mod watch_boundaries;
mod watch_frameworks;
mod watch_gpu;
mod watch_native_sites;
mod watch_objects;
mod watch_process;
mod watch_python;
mod watch_ranks;
mod watch_real_trainer;
mod watch_reference;
mod watch_shapes;
mod wheel;
mod wrapper;
