//! `diagnose`: run the instrumented reference trainer and report on its memory, rebuild
//! reports from a run folder, compare two runs. Parsing and exit codes live here; the
//! work is done by the `profiler` and `reference-trainer` libraries.

mod cli;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use profiler::report::{self, human_bytes};
use profiler::{Analysis, Marker, Profiler};

use cli::{Cli, Command, CompareArgs, ReportArgs, RunArgs, WatchArgs};

#[global_allocator]
static ALLOC: profiler::ProfilerAlloc = profiler::ProfilerAlloc;

/// Exit code when `--fail-on-leak` is given and the verdict is "growing".
const EXIT_LEAK: u8 = 3;
/// Exit code for errors (bad input, unwritable output, ...). Usage errors exit with 2.
const EXIT_ERROR: u8 = 1;
/// Exit code of `watch` when the tree's memory passed `--max-memory`.
const EXIT_MAX_MEMORY: u8 = 4;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Report(args) => report_cmd(args),
        Command::Compare(args) => compare_cmd(args),
        Command::Watch(args) => watch_cmd(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // Library errors already carry their cause in their message.
            eprintln!("error: {e}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Print to stdout; a closed pipe (`diagnose report DIR | head`) ends the program quietly.
fn emit(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {e}");
        std::process::exit(EXIT_ERROR as i32);
    }
}

fn verdict_exit(analysis: &Analysis, fail_on_leak: bool) -> ExitCode {
    if fail_on_leak && analysis.verdict == "growing" {
        ExitCode::from(EXIT_LEAK)
    } else {
        ExitCode::SUCCESS
    }
}

fn default_out_dir(args: &RunArgs) -> PathBuf {
    let mut name = format!("run-{}", timestamp());
    for leak in &args.trainer.leaks {
        name.push('-');
        name.push_str(leak.name());
    }
    Path::new("reports").join(name)
}

fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let cfg = match args.trainer.resolve() {
        Ok(cfg) => cfg,
        Err(message) => {
            eprintln!("error: {message}");
            return Ok(ExitCode::from(2));
        }
    };
    let out = args.out.clone().unwrap_or_else(|| default_out_dir(&args));
    report::prepare_out_dir(&out, args.force)?;

    let total = (cfg.epochs * cfg.episodes_per_epoch) as u64;
    let bar = if args.no_progress { ProgressBar::hidden() } else { ProgressBar::new(total) };
    bar.set_style(ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} episodes  {msg}").expect("valid template"));
    let on_row = {
        let bar = bar.clone();
        move |row: &profiler::Row| {
            if row.phase == "episode_end" {
                bar.inc(1);
            }
            let rss = row.rss_bytes.map_or("?".into(), |b| human_bytes(b as f64));
            let heap = row.je_allocated_bytes.map_or("?".into(), |b| human_bytes(b as f64));
            bar.set_message(format!("epoch {}  RSS {rss}  heap {heap}", row.epoch.unwrap_or(0)));
        }
    };
    let mut builder = Profiler::builder(&out).heap(args.heap.into()).attribute(args.attribute).on_row(on_row);
    if let Some(index) = cfg.cuda {
        builder = builder
            .gpu_device(index as u32)
            .gpu_allocator(Box::new(reference_trainer::cuda::TorchCudaStats { device: index }));
    }
    let mut prof = builder.start()?;
    eprintln!("diagnose: recording into {}", out.display());
    let train_report = reference_trainer::train(&cfg, &mut prof as &mut dyn Marker);
    prof.finish()?;
    bar.finish_and_clear();

    let analysis = report::rebuild(&out)?;
    for e in &train_report.epochs {
        emit(&format!("epoch {}: train loss {:.4}, val loss {:.4}, ST-IoU {:.3}, mAP@0.5 {:.3}, {:.1} s\n",
            e.epoch, e.train_loss, e.val.loss, e.val.st_iou, e.val.map50, e.seconds));
    }
    emit(&report::text_summary(&analysis));
    emit(&format!("reports: {}\n", out.display()));
    Ok(verdict_exit(&analysis, args.fail_on_leak))
}

fn timestamp() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// One status line per epoch on stderr, between the command's own lines.
fn epoch_status(row: &profiler::Row) {
    let b = |v: Option<u64>| v.map_or("?".into(), |b| human_bytes(b as f64));
    let mut line = format!("diagnose: epoch {}: tree PSS {}, main USS {}", row.epoch.map_or("?".into(), |e| e.to_string()), b(row.tree_pss_bytes), b(row.main_uss_bytes));
    if let Some(n) = row.workers_count.filter(|n| *n > 0) {
        line.push_str(&format!(", {n} workers USS {}", b(row.workers_uss_bytes)));
    }
    eprintln!("{line}");
}

fn watch_cmd(args: WatchArgs) -> anyhow::Result<ExitCode> {
    use profiler::watch::{Target, WatchOptions};
    let target = match args.pid {
        Some(pid) => Target::Pid(pid),
        None if args.command.is_empty() => {
            eprintln!("error: give a command after `--` (diagnose watch -- python train.py) or --pid PID");
            return Ok(ExitCode::from(2));
        }
        None => Target::Command(args.command.clone()),
    };
    // Bad input fails before anything is created or started.
    profiler::watch::check_target(&target)?;
    let out = args.out.clone().unwrap_or_else(|| Path::new("reports").join(format!("watch-{}", timestamp())));
    report::prepare_out_dir(&out, args.force)?;
    let opts = WatchOptions {
        interval: args.interval,
        epoch_pattern: Some(args.epoch_pattern),
        phases: args.phases,
        window: args.window,
        max_memory: args.max_memory,
        kill_at_limit: args.kill_at_limit,
        on_epoch: Some(Box::new(epoch_status)),
        ..WatchOptions::default()
    };
    eprintln!("diagnose: watching {}; recording into {}", match &target {
        Target::Pid(p) => format!("pid {p} (Ctrl-C stops watching)"),
        Target::Command(c) => c[0].to_string_lossy().into_owned(),
    }, out.display());
    let watched = profiler::watch::watch(&target, &out, opts)?;
    if watched.markers_rejected > 0 {
        eprintln!("diagnose: {} marker datagram(s) were malformed or from another user and were ignored", watched.markers_rejected);
    }
    let analysis = report::rebuild(&out)?;
    emit(&report::text_summary(&analysis));
    emit(&format!("reports: {}\n", out.display()));
    if watched.max_memory_passed_at.is_some() {
        return Ok(ExitCode::from(EXIT_MAX_MEMORY));
    }
    if args.fail_on_leak && analysis.verdict == "growing" {
        return Ok(ExitCode::from(EXIT_LEAK));
    }
    Ok(ExitCode::from(watched.exit.shell_code().clamp(0, 255) as u8))
}

fn report_cmd(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let analysis = report::rebuild(&args.dir)?;
    emit(&report::text_summary(&analysis));
    emit(&format!("reports: {}\n", args.dir.display()));
    Ok(verdict_exit(&analysis, args.fail_on_leak))
}

fn compare_cmd(args: CompareArgs) -> anyhow::Result<ExitCode> {
    let load = |dir: &Path| -> anyhow::Result<Analysis> {
        Ok(profiler::analyze(&profiler::read_timeline(&dir.join("timeline.csv"))?))
    };
    let (before, after) = (load(&args.before)?, load(&args.after)?);
    let out = args.out.clone().unwrap_or_else(|| args.after.clone());
    let mut text = String::new();
    for column in &args.series {
        let cmp = report::compare(&before, &after, column);
        text.push_str(&cmp.to_markdown());
        text.push('\n');
        if column == &args.series[0] {
            std::fs::create_dir_all(&out)?;
            cmp.write(&out)?;
        }
    }
    emit(&text);
    emit(&format!("written: {}\n", out.join("compare.md").display()));
    Ok(ExitCode::SUCCESS)
}
