//! What a verdict costs on long runs (issue 18): `report` on a generated week watched at
//! 1 Hz with 60-s windows (604,800 rows, 10,080 epochs), and the live verdict at an epoch
//! end after 10,000 epochs. Prints its figures (the README quotes them):
//!
//! ```text
//! cargo bench -p profiler --bench verdict
//! WINDOW_S=2 cargo bench -p profiler --bench verdict   # 302,400 epoch ends
//! WINDOW_S=2 ONLY=watcher cargo bench -p profiler --bench verdict   # the watcher's part alone
//! ```
//!
//! The week holds a linear leak of +1 MiB per window from 748 MiB: the verdict must say
//! growing at that slope, whatever it costs.

use std::time::Instant;

use profiler::live::LiveVerdict;
use profiler::timeline::TimelineWriter;
use profiler::{Row, TimelineMeta};

const MIB: u64 = 1 << 20;

/// Peak RSS since the last reset, and the reset (VmHWM, /proc/self/clear_refs).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok()).unwrap_or(0) * 1024
}

fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// A watch row at second `s` of the week: PSS read in full every 30 s and at window ends.
fn row(s: u64, window_s: u64) -> Row {
    let epoch = s / window_s;
    let end = s % window_s == window_s - 1;
    let jitter = (s.wrapping_mul(2654435761) % 4096) * 1024; // up to 4 MiB
    let level = 748 * MIB + s * MIB / window_s + jitter;
    let full = end || s % 30 == 0;
    Row {
        t_s: s as f64 + 0.5,
        phase: if end { "epoch_end".into() } else { "sample".into() },
        epoch: end.then_some(epoch as u32),
        label: if end { "window".into() } else { String::new() },
        tree_rss_bytes: Some(level + 300 * MIB),
        tree_pss_bytes: full.then_some(level),
        tree_uss_bytes: full.then_some(level - 100 * MIB),
        main_rss_bytes: Some(level),
        main_uss_bytes: full.then_some(level - 100 * MIB),
        tree_processes: Some(1),
        system_used_bytes: Some(8 << 30),
        ..Row::default()
    }
}

fn main() {
    // DURATION_S shortens the week (to profile the report under heaptrack).
    let week = std::env::var("DURATION_S").ok().and_then(|v| v.parse().ok()).unwrap_or(7 * 24 * 3600u64);
    // WINDOW_S=2 cuts the week into 302,400 epoch ends: what many epoch ends cost.
    let window: u64 = std::env::var("WINDOW_S").ok().and_then(|v| v.parse().ok()).filter(|w| *w >= 2).unwrap_or(60);
    let meta = TimelineMeta { mem_limit_bytes: Some(64 << 30), mem_limit_source: Some("meminfo".into()), recorder: Some("watch".into()), window_s: Some(window as f64), ..TimelineMeta::default() };
    // ONLY=watcher: the watcher's analysis alone, so that its memory is not the report's;
    // LIVE=0: the report alone.
    let watcher_only = std::env::var("ONLY").as_deref() == Ok("watcher");
    let report_only = std::env::var("LIVE").as_deref() == Ok("0");
    if !watcher_only {
        report_on_the_week(week, window, &meta);
        if report_only {
            return;
        }
        live_checkpoints(window, &meta);
    }
    if !report_only {
        watcher_over_the_week(week, window, meta);
    }
}

/// `report` on the generated week.
fn report_on_the_week(week: u64, window: u64, meta: &TimelineMeta) {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    {
        let mut w = TimelineWriter::create(&dir.path().join("timeline.csv"), meta).unwrap();
        for s in 0..week {
            w.append(&row(s, window)).unwrap();
        }
    }
    let size = std::fs::metadata(dir.path().join("timeline.csv")).unwrap().len();
    eprintln!("generated a week at 1 Hz: {week} rows, {} epochs, {} MiB, in {:.1} s", week / window, size >> 20, started.elapsed().as_secs_f64());

    reset_peak();
    let before = peak_rss();
    let started = Instant::now();
    let a = profiler::report::rebuild(dir.path()).unwrap();
    let took = started.elapsed().as_secs_f64();
    let peak = peak_rss();
    let pss = a.series("tree_pss_bytes").unwrap();
    println!(
        "report on a week at 1 Hz ({week} rows, {} epochs): {took:.2} s, peak RSS {} MiB ({} MiB above the bench's own {} MiB); verdict {}, tree PSS {} {:+.2} MiB/epoch",
        a.epochs,
        peak >> 20,
        peak.saturating_sub(before) >> 20,
        before >> 20,
        a.verdict,
        pss.class.as_str(),
        pss.slope_bytes_per_epoch.unwrap_or(0.0) / MIB as f64
    );
    assert_eq!(a.verdict, "growing");
}

/// The live verdict: one epoch end row per window (the samples between cost nothing to
/// judge), timed at the first epoch end judged from each epoch named on (after 1,000, one
/// in every n/1,000 is judged).
fn live_checkpoints(window: u64, meta: &TimelineMeta) {
    let mut live = LiveVerdict::new(meta.clone(), None);
    let mut checkpoints = vec![10_000u32, 1000, 100];
    let mut times = Vec::new();
    let mut total = 0.0;
    let started = Instant::now();
    for e in 0..=10_010u32 {
        let mut r = row(e as u64 * window + window - 1, window);
        r.t_s = (e as u64 * window) as f64 + window as f64 - 0.5;
        let t = Instant::now();
        let status = live.observe(&r);
        let dt = t.elapsed().as_secs_f64();
        total += dt;
        if let Some(status) = status.filter(|_| checkpoints.last().is_some_and(|c| e >= *c)) {
            checkpoints.pop();
            times.push((e, dt, status.line));
        }
    }
    for (e, dt, line) in &times {
        println!("live verdict at epoch {e}: {:.2} ms ({line})", dt * 1e3);
    }
    println!("live verdict over 10,011 epoch ends: {:.1} s in all, {:.2} ms each on average ({:.1} s wall)", total, total / 10_011.0 * 1e3, started.elapsed().as_secs_f64());
}

/// What the watcher's analysis costs over the week: every row (a sample a second, a
/// window end per window) through the live verdict, as `watch` feeds it; its peak RSS
/// read at the end of each day (flat: the live analyzer thins its epoch ends).
fn watcher_over_the_week(week: u64, window: u64, meta: TimelineMeta) {
    let mut live = LiveVerdict::new(meta, None);
    reset_peak();
    let before = peak_rss();
    let mut peaks = Vec::new();
    let started = Instant::now();
    let mut line = String::new();
    for s in 0..week {
        if let Some(status) = live.observe(&row(s, window)) {
            line = status.line;
        }
        if (s + 1) % (24 * 3600) == 0 {
            peaks.push(peak_rss() >> 20);
        }
    }
    let took = started.elapsed().as_secs_f64();
    println!(
        "the live analysis of a simulated week ({week} rows, {window}-s windows): {took:.1} s (wall, an upper bound of its CPU) for {week} s watched ({:.4} % of one core); peak RSS at the end of each day {:?} MiB (bench's own {} MiB before); last line: {line}",
        took / week as f64 * 100.0,
        peaks,
        before >> 20
    );
}
