//! `diagnose-run`: what `diagnose run` runs. The instrumented reference trainer, profiled
//! in this process (libtorch, the trainer and the profiler's allocator in one binary), then
//! its reports. A binary of its own so that `diagnose` itself (watch, report, compare)
//! needs no libtorch: `diagnose run ARGS` execs `diagnose-run ARGS`.

mod cli;

use diagnose_cli::shared::{self, emit, exit_because, timestamp, EXIT_LEAK, EXIT_USAGE};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use profiler::report::{self, human_bytes};
use profiler::{Marker, Profiler};

use cli::{Cli, RunArgs};

#[global_allocator]
static ALLOC: profiler::ProfilerAlloc = profiler::ProfilerAlloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    run(cli.args).unwrap_or_else(|e| shared::error_exit(&e))
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
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    let out = args.out.clone().unwrap_or_else(|| default_out_dir(&args));
    report::prepare_out_dir(&out, args.force)?;

    let total = (cfg.epochs * cfg.episodes_per_epoch) as u64;
    let bar = if args.no_progress { ProgressBar::hidden() } else { ProgressBar::new(total) };
    bar.set_style(ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} episodes  {msg}").expect("valid template"));
    let mut metrics = args.metrics.exporter()?;
    // The verdict so far (after the latest epoch end), kept on the progress line.
    let verdict_so_far = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let on_row = {
        let (bar, verdict_so_far) = (bar.clone(), verdict_so_far.clone());
        // Rows without an epoch (start, finish) keep the epoch shown last.
        let mut epoch_shown = 0;
        move |row: &profiler::Row| {
            if let Some(m) = &mut metrics {
                m.observe(row);
            }
            if row.phase == "episode_end" {
                bar.inc(1);
            }
            let rss = row.rss_bytes.map_or("?".into(), |b| human_bytes(b as f64));
            let heap = row.je_allocated_bytes.map_or("?".into(), |b| human_bytes(b as f64));
            let so_far = verdict_so_far.lock().map(|v| v.clone()).unwrap_or_default();
            epoch_shown = row.epoch.unwrap_or(epoch_shown);
            bar.set_message(format!("epoch {epoch_shown}  RSS {rss}  heap {heap}{so_far}"));
        }
    };
    // The verdict so far, after every epoch: above the bar, or on stderr without one.
    let on_verdict = {
        let (bar, stop_on_leak, verdict_so_far) = (bar.clone(), args.stop_on_leak, verdict_so_far.clone());
        move |status: &profiler::live::LiveStatus| {
            let stop = stop_on_leak && status.growing;
            let line = format!("diagnose: {}{}", status.line, if stop { " — stopping (--stop-on-leak)" } else { "" });
            if bar.is_hidden() { eprintln!("{line}") } else { bar.println(line) }
            if let Ok(mut v) = verdict_so_far.lock() {
                // "epoch 3: heap ... growing since epoch 1; ..." without its epoch prefix.
                *v = format!("  | {}", status.line.split_once(": ").map_or(status.line.as_str(), |(_, rest)| rest));
            }
        }
    };
    let mut builder = Profiler::builder(&out).heap(args.heap.into()).attribute(args.attribute).on_row(on_row).on_verdict(on_verdict).stop_on_leak(args.stop_on_leak);
    if let Some(index) = cfg.cuda {
        builder = builder
            .gpu_device(index as u32)
            .gpu_allocator(Box::new(reference_trainer::cuda::TorchCudaStats { device: index }));
    }
    let mut prof = builder.start()?;
    eprintln!("diagnose: recording into {}", out.display());
    // Each epoch printed as it ends, so that a killed run shows how far it got.
    let mut print_epoch = |e: &reference_trainer::EpochReport| {
        let line = format!("epoch {}: train loss {:.4}, val loss {:.4}, ST-IoU {:.3}, mAP@0.5 {:.3}, {:.1} s",
            e.epoch, e.train_loss, e.val.loss, e.val.st_iou, e.val.map50, e.seconds);
        if bar.is_hidden() { emit(&format!("{line}\n")) } else { bar.println(line) }
    };
    reference_trainer::train_with(&cfg, &mut prof as &mut dyn Marker, &mut print_epoch);
    let stopped = prof.stop_requested();
    prof.finish()?;
    bar.finish_and_clear();

    let analysis = report::rebuild(&out)?;
    emit(&report::text_summary(&analysis));
    emit(&format!("reports: {}\n", out.display()));
    if stopped {
        emit(&format!("stopped early (--stop-on-leak): growth confirmed after {} of {} epochs\n", analysis.epochs, cfg.epochs));
        return Ok(exit_because(EXIT_LEAK, "--stop-on-leak stopped the run"));
    }
    Ok(shared::verdict_exit(&analysis, args.fail_on_leak))
}
