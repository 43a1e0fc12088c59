//! Command-line flags of the light `diagnose`. Raw clap structs stay here; the libraries
//! never see clap. `run`'s flags belong to `diagnose-run` (the libtorch binary, package
//! `diagnose-run/`): this binary passes them on untouched.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use diagnose_cli::watch_cli::WatchArgs;

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
    /// Run the instrumented reference trainer and write the reports (the `diagnose-run`
    /// binary, built with libtorch: `diagnose run --help` lists its flags).
    #[command(disable_help_flag = true)]
    Run(RunPassthrough),
    /// Rebuild every report of a run folder from its timeline.csv alone.
    #[command(after_help = diagnose_cli::shared::exit_help("report"), override_usage = "diagnose report [OPTIONS] <DIR>\n       diagnose report --merge <DIR>... [--out <OUT>] [--fail-on-leak]")]
    Report(ReportArgs),
    /// Compare two runs (before/after a fix): each primary series' class and slope, and
    /// the peak per phase.
    #[command(after_help = diagnose_cli::shared::exit_help("compare"))]
    Compare(CompareArgs),
    /// Watch any command (or a running process) and its whole process tree from outside:
    /// `diagnose watch -- python train.py`.
    #[command(after_help = diagnose_cli::watch_cli::watch_help())]
    Watch(WatchArgs),
}

/// Everything after `diagnose run`, for `diagnose-run`.
#[derive(Args, Debug)]
pub struct RunPassthrough {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    pub args: Vec<OsString>,
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
    fn run_passes_every_flag_on() {
        let cli = Cli::try_parse_from(["diagnose", "run", "--epochs", "3", "--help", "--", "x"]).unwrap();
        let Command::Run(run) = cli.command else { panic!() };
        assert_eq!(run.args, ["--epochs", "3", "--help", "--", "x"]);
    }

    #[test]
    fn the_auto_window_default_is_the_library_s() {
        // clap takes the default as text; the library's constant is what it must say.
        let cli = Cli::try_parse_from(["diagnose", "watch", "--", "x"]).unwrap();
        let Command::Watch(watch) = cli.command else { panic!() };
        assert_eq!(watch.auto_window, profiler::watch::DEFAULT_AUTO_WINDOW);
    }
}
