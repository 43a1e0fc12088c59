//! Command-line flags. Raw clap structs stay here; the libraries never see clap except
//! the trainer's own flag group, which `run` flattens so every trainer flag is accepted.

use std::path::PathBuf;

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use regex::Regex;
use reference_trainer::TrainerArgs;

const AFTER_HELP: &str = "\
Exit codes:
  0  success (and, with --fail-on-leak, memory is not growing)
  1  error: bad or missing input, unwritable output, a failed run
  2  usage error: unknown flag, bad flag value
  3  --fail-on-leak was given and the verdict is \"growing\"
  4  watch: the tree's memory passed --max-memory
  watch passes on the command's own exit code (128+N when killed by signal N) when no
  gate above fails.";

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
    #[command(after_help = AFTER_HELP)]
    Run(RunArgs),
    /// Rebuild every report of a run folder from its timeline.csv alone.
    #[command(after_help = AFTER_HELP)]
    Report(ReportArgs),
    /// Compare the per-phase peaks of two runs (before/after a fix).
    Compare(CompareArgs),
    /// Watch any command (or a running process) and its whole process tree from outside:
    /// `diagnose watch -- python train.py`.
    #[command(after_help = WATCH_HELP)]
    Watch(WatchArgs),
}

const WATCH_HELP: &str = "\
Boundaries, so epochs are compared with epochs:
  log lines   --epoch-pattern (default: 'Epoch 3', 'epoch 3/50', '[Epoch 3]' ...) and --phase NAME=REGEX
  markers     the command finds a socket path in $DIAGNOSE_MARKER_SOCKET; python/diagnose_markers.py
              (epoch_end(3), validation_start(3), ...) and profiler_api::SocketMarker send to it.
              Once a marker epoch arrives, log-line epochs are ignored.
  windows     --window 60s: fixed windows stand in for epochs (the verdict is then per window)

Exit codes:
  the command's own exit code (128+N when killed by signal N), unless a gate fails:
  1  error: bad input (no such command or pid, bad pattern), unwritable output
  2  usage error
  3  --fail-on-leak was given and the verdict is \"growing\"
  4  the tree's memory (PSS) passed --max-memory";

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
    pub trainer: TrainerArgs,
}

#[derive(Args, Debug)]
pub struct WatchArgs {
    /// Output folder (default: reports/watch-<time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write into an output folder that already holds files.
    #[arg(long)]
    pub force: bool,
    /// Watch this running process instead of starting a command (until it exits or Ctrl-C).
    #[arg(long, conflicts_with = "command")]
    pub pid: Option<u32>,
    /// Time between samples of the process tree (e.g. 1s, 500ms).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Log lines matching this regex are epoch boundaries; its first capture group, if
    /// any, is the epoch index.
    #[arg(long, default_value = profiler::watch::DEFAULT_EPOCH_PATTERN, value_parser = parse_regex)]
    pub epoch_pattern: Regex,
    /// Log lines matching REGEX are boundaries named NAME (repeatable), e.g.
    /// validation_start='^Validat'.
    #[arg(long = "phase", value_name = "NAME=REGEX", value_parser = parse_phase)]
    pub phases: Vec<(String, Regex)>,
    /// Fixed windows (e.g. 60s) stand in for epochs, for programs that mark none.
    #[arg(long, value_parser = parse_duration)]
    pub window: Option<Duration>,
    /// Fail (exit code 4) when the tree's memory (PSS) passes this (e.g. 20G, 512M).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_memory: Option<u64>,
    /// With --max-memory: write the report, then stop the command (SIGTERM, then SIGKILL).
    #[arg(long, requires = "max_memory")]
    pub kill_at_limit: bool,
    /// Exit with code 3 if the verdict is "growing".
    #[arg(long)]
    pub fail_on_leak: bool,
    /// The command and its arguments, after `--`.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<std::ffi::OsString>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = match s.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs >= 0.0 => Duration::from_secs_f64(secs),
        _ => humantime::parse_duration(s).map_err(|e| e.to_string())?,
    };
    if d < Duration::from_millis(10) {
        return Err("must be at least 10ms".into());
    }
    Ok(d)
}

fn parse_regex(s: &str) -> Result<Regex, String> {
    Regex::new(s).map_err(|e| e.to_string())
}

fn parse_phase(s: &str) -> Result<(String, Regex), String> {
    let (name, pattern) = s.split_once('=').ok_or("expected NAME=REGEX")?;
    let ok = !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !ok || matches!(name, "start" | "finish" | "sample") {
        return Err(format!("bad phase name '{name}' (letters, digits, _ . -; not start, finish or sample)"));
    }
    Ok((name.to_string(), parse_regex(pattern)?))
}

fn parse_size(s: &str) -> Result<u64, String> {
    parse_size::Config::new().with_binary().parse_size(s).map_err(|e| e.to_string())
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// A run folder holding timeline.csv.
    pub dir: PathBuf,
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
    /// Where to write compare.md and compare.csv (default: the AFTER folder).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Series to compare, by timeline column (repeatable; the first is written to files).
    #[arg(long, default_values_t = ["peak_rss_bytes".to_string(), "je_allocated_bytes".to_string()])]
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
    fn watch_takes_a_command_or_a_pid() {
        let cli = Cli::try_parse_from(["diagnose", "watch", "--interval", "250ms", "--phase", "validation_start=^Validat", "--max-memory", "20G", "--", "python", "train.py", "--epochs", "3"]).unwrap();
        let Command::Watch(w) = cli.command else { panic!() };
        assert_eq!(w.command, ["python", "train.py", "--epochs", "3"]);
        assert_eq!(w.interval, Duration::from_millis(250));
        assert_eq!(w.max_memory, Some(20 << 30));
        assert_eq!(w.phases[0].0, "validation_start");
        assert!(Cli::try_parse_from(["diagnose", "watch", "--pid", "1", "--", "ls"]).is_err());
        assert!(Cli::try_parse_from(["diagnose", "watch", "--epoch-pattern", "(", "--", "ls"]).is_err());
        assert!(Cli::try_parse_from(["diagnose", "watch", "--phase", "finish=x", "--", "ls"]).is_err());
        assert!(Cli::try_parse_from(["diagnose", "watch", "--kill-at-limit", "--", "ls"]).is_err());
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn unknown_flags_are_usage_errors() {
        let err = Cli::try_parse_from(["diagnose", "run", "--epoch", "3"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}
