//! Runs the reference trainer on its own, with no profiling, printing each epoch's
//! metrics. `diagnose run` runs the same trainer instrumented; `diagnose watch --
//! reference-trainer ...` watches it from outside, its boundaries sent over the marker
//! socket.

use clap::Parser;
use reference_trainer::{train_with, TrainerArgs};

// The default build runs on the profiler's jemalloc; `--no-default-features` on the
// system allocator, with no profiler linked (the overhead benchmark's baseline).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOC: profiler::ProfilerAlloc = profiler::ProfilerAlloc;

/// A stage-2 few-shot trainer with the seed incident's knobs and switchable leaks.
#[derive(Parser)]
#[command(name = "reference-trainer", version)]
struct Cli {
    #[command(flatten)]
    trainer: TrainerArgs,
}

/// Sends boundaries to `diagnose watch`. At an epoch end, first hands jemalloc's kept
/// freed pages back to the OS (the profiler's allocator keeps them for speed), so that the
/// RSS a watcher samples at that moment is what the trainer holds.
struct WatchedMarker(profiler_api::SocketMarker);

impl profiler_api::Marker for WatchedMarker {
    fn mark(&mut self, boundary: profiler_api::Boundary) {
        #[cfg(feature = "jemalloc")]
        if boundary.phase == profiler_api::Phase::EpochEnd && self.0.is_active() {
            profiler::purge_freed_pages();
        }
        self.0.mark(boundary);
    }
}

fn main() {
    let cli = Cli::parse();
    let cfg = match cli.trainer.resolve() {
        Ok(cfg) => cfg,
        Err(message) => {
            eprintln!("error: {message}");
            std::process::exit(2);
        }
    };
    let started = std::time::Instant::now();
    // Under `diagnose watch`, boundaries go to its marker socket; otherwise nowhere.
    let mut marker = WatchedMarker(profiler_api::SocketMarker::from_env());
    // Each epoch printed as it ends: a run killed by the OOM killer shows how far it got.
    let mut print_epoch = |e: &reference_trainer::EpochReport| {
        use std::io::Write;
        println!(
            "epoch {} train_loss {:.4} val_loss {:.4} st_iou {:.3} map50 {:.3} triplets {} leak_bytes {} {:.1}s",
            e.epoch, e.train_loss, e.val.loss, e.val.st_iou, e.val.map50, e.triplet_batches, e.leak_bytes, e.seconds
        );
        let _ = std::io::stdout().flush();
    };
    train_with(&cfg, &mut marker, &mut print_epoch);
    println!("training wall time {:.3} s", started.elapsed().as_secs_f64());
}
