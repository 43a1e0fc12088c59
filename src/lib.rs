//! What the two command-line binaries share: the light `diagnose` (this package) and
//! `diagnose-run` (package `diagnose-run/`, the one that links libtorch). Exit codes and
//! stdout handling ([`shared`]), and the `watch` command with the flag groups `run` reuses
//! ([`watch_cli`]). Flags stay clap structs here; the `profiler` library never sees clap.

pub mod shared;
pub mod watch_cli;
