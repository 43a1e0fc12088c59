//! `diagnose`: watch a command's memory from outside, rebuild reports from a run folder,
//! compare two runs. Parsing and exit codes live here; the work is done by the `profiler`
//! library. This binary links no libtorch (`cargo install --path .` needs no torch):
//! `diagnose run`, the instrumented reference trainer, is the `diagnose-run` binary
//! (package `diagnose-run/`), which this one execs with the same arguments.

mod cli;

use diagnose_cli::shared::{self, emit, exit_because, timestamp, EXIT_ERROR, EXIT_LEAK, EXIT_USAGE};
use diagnose_cli::watch_cli;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use profiler::report;
use profiler::Analysis;

use cli::{Cli, Command, CompareArgs, ReportArgs};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(run) => Ok(run_elsewhere(run.args)),
        Command::Report(args) => report_cmd(args),
        Command::Compare(args) => compare_cmd(args),
        Command::Watch(args) => watch_cli::watch_cmd(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => shared::error_exit(&e),
    }
}

/// The binary that runs the reference trainer (package `diagnose-run/`).
pub const RUN_BIN: &str = "diagnose-run";

/// Where `diagnose-run` is: next to this binary (a build folder, an install prefix),
/// else on PATH.
fn find_run_bin() -> Option<PathBuf> {
    let beside = std::env::current_exe().ok().map(|exe| exe.with_file_name(RUN_BIN)).filter(|p| p.is_file());
    beside.or_else(|| {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path).map(|d| d.join(RUN_BIN)).find(|p| p.is_file())
    })
}

/// Replace this process with `diagnose-run ARGS`: `run` profiles the trainer in its own
/// process (libtorch and the profiler's allocator in one binary), so it cannot be a
/// function of this light one. Returns only when that binary cannot be started.
fn run_elsewhere(args: Vec<OsString>) -> ExitCode {
    use std::os::unix::process::CommandExt;
    let Some(bin) = find_run_bin() else {
        return exit_because(EXIT_ERROR, &format!("`diagnose run` needs the {RUN_BIN} binary (built with libtorch), found neither next to diagnose nor on PATH: in a checkout of this repository, `scripts/diagnose run ...` builds and runs it (or `cargo build --release -p {RUN_BIN}`)"));
    };
    let err = std::process::Command::new(&bin).arg0("diagnose run").args(args).exec();
    exit_because(EXIT_ERROR, &format!("cannot start {} ({err})", bin.display()))
}

fn report_cmd(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let Some(dir) = &args.dir else {
        let merged = report::merge(&args.merge)?;
        let out = args.out.clone().unwrap_or_else(|| Path::new("reports").join(format!("merged-{}", timestamp())));
        merged.write(&out)?;
        emit(&merged.to_markdown());
        emit(&format!("reports: {}\n", out.display()));
        let growing = args.fail_on_leak && merged.verdict == "growing";
        return Ok(if growing { exit_because(EXIT_LEAK, "--fail-on-leak and the merged verdict is growing") } else { ExitCode::SUCCESS });
    };
    let analysis = report::rebuild(dir)?;
    emit(&report::text_summary(&analysis));
    if let Some(missing) = report::missing_facts(dir) {
        eprintln!("diagnose: {missing}");
    }
    emit(&format!("reports: {}\n", dir.display()));
    Ok(shared::verdict_exit(&analysis, args.fail_on_leak))
}

fn compare_cmd(args: CompareArgs) -> anyhow::Result<ExitCode> {
    let load = |dir: &Path| -> anyhow::Result<Analysis> {
        Ok(profiler::analyze(&profiler::read_timeline(&dir.join("timeline.csv"))?))
    };
    let (before, after) = (load(&args.before)?, load(&args.after)?);
    let series: Vec<String> = if !args.series.is_empty() {
        args.series.clone()
    } else {
        let defaults: &[&str] = if before.recorder == "watch" {
            &["tree_pss_bytes", "main_uss_bytes"]
        } else if before.phases.iter().any(|p| p.peak("heap_peak_bytes").is_some()) {
            // Each phase's own height (format 3); RSS keeps freed pages, so its per-phase
            // peak is mostly the run's high-water mark.
            &["heap_peak_bytes", "peak_rss_bytes"]
        } else {
            &["peak_rss_bytes", "je_allocated_bytes"]
        };
        let valid = report::comparable_columns(&before, &after);
        defaults.iter().filter(|c| valid.contains(c)).map(|c| c.to_string()).collect()
    };
    let cmp = match report::compare_all(&before, &after, &series) {
        Ok(cmp) => cmp,
        Err(message) => {
            eprintln!("error: {message}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    emit(&cmp.to_markdown());
    match &args.out {
        Some(out) => {
            std::fs::create_dir_all(out)?;
            let written = cmp.write(out)?;
            let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
            emit(&format!("\nwritten: {}\n", names.join(", ")));
        }
        None => emit("\nprinted only; --out DIR writes compare.md and compare.csv\n"),
    }
    Ok(ExitCode::SUCCESS)
}
