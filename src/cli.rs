//! Command-line flags. Raw clap structs stay here; the libraries never see clap except
//! the trainer's own flag group, which `run` flattens so every trainer flag is accepted.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use reference_trainer::TrainerArgs;

pub use crate::watch_cli::WatchArgs;

const AFTER_HELP: &str = "Each subcommand's --help lists its exit codes (diagnose run --help, ...).";

/// Find out whether a training run's memory grows, where, and how fast.
#[derive(Parser, Debug)]
#[command(name = "diagnose", version, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the instrumented reference trainer and write the reports.
    #[command(after_help = crate::shared::exit_help("run"))]
    Run(RunArgs),
    /// Rebuild every report of a run folder from its timeline.csv alone.
    #[command(after_help = crate::shared::exit_help("report"), override_usage = "diagnose report [OPTIONS] <DIR>\n       diagnose report --merge <DIR>... [--out <OUT>] [--fail-on-leak]")]
    Report(ReportArgs),
    /// Compare two runs (before/after a fix): each primary series' class and slope, and
    /// the peak per phase.
    #[command(after_help = crate::shared::exit_help("compare"))]
    Compare(CompareArgs),
    /// Watch any command (or a running process) and its whole process tree from outside:
    /// `diagnose watch -- python train.py`.
    #[command(after_help = crate::watch_cli::watch_help())]
    Watch(WatchArgs),
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
    pub metrics: crate::watch_cli::MetricsArgs,
    #[command(flatten)]
    pub trainer: TrainerArgs,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// A run folder holding timeline.csv.
    #[arg(required_unless_present = "merge")]
    pub dir: Option<PathBuf>,
    /// Merge several run folders (one per node or per run) into one report: a table of
    /// nodes × ranks, one plot line each, the overall verdict.
    #[arg(long, num_args = 1.., value_name = "DIR", conflicts_with = "dir")]
    pub merge: Vec<PathBuf>,
    /// With --merge: where to write merged.md, merged.csv, merged.png (default:
    /// reports/merged-<time>).
    #[arg(long, requires = "merge")]
    pub out: Option<PathBuf>,
    /// Exit with code 3 if the verdict is "growing".
    #[arg(long)]
    pub fail_on_leak: bool,
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// The run before the change.
    pub before: PathBuf,
    /// The run after the change.
    pub after: PathBuf,
    /// Write compare.md and compare.csv into this folder (default: print only).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Series whose peak per phase to compare, by timeline column (repeatable; an unknown
    /// one is a usage error that lists the valid ones). Default: heap_peak_bytes and
    /// peak_rss_bytes (or peak_rss_bytes and je_allocated_bytes) for `run` folders,
    /// tree_pss_bytes and main_uss_bytes for `watch` folders.
    #[arg(long)]
    pub series: Vec<String>,
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
        let cli = Cli::try_parse_from(["diagnose", "run", "--epochs", "3", "--leak", "model-cache", "--preset", "seed-before"]).unwrap();
        let Command::Run(run) = cli.command else { panic!() };
        assert_eq!(run.trainer.epochs, Some(3));
        assert_eq!(run.trainer.leaks, vec![reference_trainer::Leak::ModelCache]);
    }

    #[test]
    fn unknown_flags_are_usage_errors() {
        let err = Cli::try_parse_from(["diagnose", "run", "--epoch", "3"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}
