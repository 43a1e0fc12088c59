//! The verdict's sensitivity on real noise: a recorded clean 5-epoch run of the reference
//! trainer, with a leak of 1 % of the working set per epoch added on top, is growing;
//! unchanged it is flat. (Across seeds, see `soak_false_alarms.rs`.)

mod common;
use common::fixture;
use profiler::{analyze, read_timeline, Row};

/// Add `fraction` of each series' epoch-end median per epoch, from the epoch's first row on.
fn inject(rows: &mut [Row], fraction: f64) {
    let median = |f: fn(&Row) -> Option<u64>| {
        let mut v: Vec<u64> = rows.iter().filter(|r| r.phase == "epoch_end").filter_map(f).collect();
        v.sort_unstable();
        v[v.len() / 2] as f64
    };
    let heap_step = (median(|r| r.je_allocated_bytes) * fraction) as u64;
    let rss_step = (median(|r| r.rss_bytes) * fraction) as u64;
    for r in rows.iter_mut() {
        // Bytes leaked so far: one step per completed epoch, the current one at its end.
        let epochs_done = r.epoch.map_or(0, |e| e as u64 + u64::from(r.phase == "epoch_end"));
        r.je_allocated_bytes = r.je_allocated_bytes.map(|b| b + heap_step * epochs_done);
        r.rss_bytes = r.rss_bytes.map(|b| b + rss_step * epochs_done);
    }
}

#[test]
fn clean_recording_is_flat() {
    let t = read_timeline(&fixture("clean-5epochs.csv")).unwrap();
    assert_eq!(analyze(&t).verdict, "flat");
}

#[test]
fn one_percent_per_epoch_is_growing_within_five_epochs() {
    let mut t = read_timeline(&fixture("clean-5epochs.csv")).unwrap();
    inject(&mut t.rows, 0.01);
    let a = analyze(&t);
    assert_eq!(a.verdict, "growing");
    let heap = a.series("je_allocated_bytes").unwrap();
    assert_eq!(heap.class, profiler::analysis::Class::Growing);
}

#[test]
fn a_quarter_percent_per_epoch_is_below_the_noise_tolerance() {
    let mut t = read_timeline(&fixture("clean-5epochs.csv")).unwrap();
    inject(&mut t.rows, 0.0025);
    assert_eq!(analyze(&t).verdict, "flat", "below the documented 0.4 %/epoch tolerance");
}
