//! `diagnose run`'s flags. Raw clap structs stay here; the libraries never see clap except
//! the trainer's own flag group, which `run` flattens so every trainer flag is accepted.

use std::path::PathBuf;

use clap::{Args, Parser, ValueEnum};
use reference_trainer::TrainerArgs;

/// Run the instrumented reference trainer and write the reports.
#[derive(Parser, Debug)]
#[command(name = "diagnose run", version, after_help = diagnose_cli::shared::exit_help("run"))]
pub struct Cli {
    #[command(flatten)]
    pub args: RunArgs,
}

/// How the heap is observed.
#[derive(Clone, Copy, Debug, Default, ValueEnum)]
pub enum HeapArg {
    /// jemalloc counters (fast, the default).
    #[default]
    Sampled,
    /// dhat counts every Rust allocation (slow; C++ allocations are not seen), attributes
    /// the live Rust heap to call sites at every epoch end, and writes DHAT's JSON
    /// (dhat/epoch-N.json, dhat-heap.json).
    Exact,
}

impl From<HeapArg> for profiler::HeapMode {
    fn from(h: HeapArg) -> Self {
        match h {
            HeapArg::Sampled => profiler::HeapMode::Sampled,
            HeapArg::Exact => profiler::HeapMode::Exact,
        }
    }
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Output folder (default: reports/run-<time>[-<leaks>]).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write into an output folder that already holds files.
    #[arg(long)]
    pub force: bool,
    /// Exit with code 3 if the verdict is "growing".
    #[arg(long)]
    pub fail_on_leak: bool,
    /// Stop training at the first epoch end where growth is confirmed, write the full
    /// report, and exit with code 3.
    #[arg(long)]
    pub stop_on_leak: bool,
    /// Heap observation mode.
    #[arg(long, value_enum, default_value_t)]
    pub heap: HeapArg,
    /// Attribute live heap to call sites at every epoch end (jemalloc sampling; writes
    /// callsites.csv, callsites.png, growth.pb.gz, growth.svg). With --heap exact, dhat
    /// attributes instead.
    #[arg(long)]
    pub attribute: bool,
    /// Do not draw the progress bar.
    #[arg(long)]
    pub no_progress: bool,
    #[command(flatten)]
    pub metrics: diagnose_cli::watch_cli::MetricsArgs,
    #[command(flatten)]
    pub trainer: TrainerArgs,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_accepts_trainer_flags() {
        let cli = Cli::try_parse_from(["diagnose run", "--epochs", "3", "--leak", "model-cache", "--preset", "seed-before"]).unwrap();
        assert_eq!(cli.args.trainer.epochs, Some(3));
        assert_eq!(cli.args.trainer.leaks, vec![reference_trainer::Leak::ModelCache]);
    }

    #[test]
    fn unknown_flags_are_usage_errors() {
        let err = Cli::try_parse_from(["diagnose run", "--epoch", "3"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}
