//! The verdict's sensitivity on real noise: a recorded clean 5-epoch run of the reference
//! trainer, with a heap leak of 1 % of the working set (RSS) per epoch added on top, is
//! growing with the right slope; unchanged, or with a leak under the noise floor, flat. (Across seeds, see `soak_false_alarms.rs`.)

use crate::common::fixture;
use profiler::{analyze, read_timeline, Row};

/// A heap leak of `fraction` of the working set (median RSS at epoch ends) per epoch: the
/// same bytes are added to heap allocated, active, resident and RSS, from each epoch on.
fn inject(rows: &mut [Row], fraction: f64) -> u64 {
    let mut rss: Vec<u64> = rows.iter().filter(|r| r.phase == "epoch_end").filter_map(|r| r.rss_bytes).collect();
    rss.sort_unstable();
    let step = (rss[rss.len() / 2] as f64 * fraction) as u64;
    for r in rows.iter_mut() {
        // Bytes leaked so far: one step per completed epoch, the current one at its end.
        let leaked = step * r.epoch.map_or(0, |e| e as u64 + u64::from(r.phase == "epoch_end"));
        for field in [&mut r.je_allocated_bytes, &mut r.je_active_bytes, &mut r.je_resident_bytes, &mut r.rss_bytes] {
            *field = field.map(|b| b + leaked);
        }
    }
    step
}

#[test]
fn clean_recording_is_flat() {
    let t = read_timeline(&fixture("clean-5epochs.csv")).unwrap();
    assert_eq!(analyze(&t).verdict, "flat");
}

#[test]
fn one_percent_per_epoch_is_growing_within_five_epochs() {
    let mut t = read_timeline(&fixture("clean-5epochs.csv")).unwrap();
    let step = inject(&mut t.rows, 0.01);
    let a = analyze(&t);
    assert_eq!(a.verdict, "growing");
    let heap = a.series("je_allocated_bytes").unwrap();
    assert_eq!(heap.class, profiler::analysis::Class::Growing);
    let slope = heap.slope_bytes_per_epoch.unwrap();
    assert!((slope - step as f64).abs() < 0.1 * step as f64, "measured {slope:.0} B/epoch for {step} injected");
}

#[test]
fn a_leak_under_the_noise_floor_is_flat() {
    let mut t = read_timeline(&fixture("clean-5epochs.csv")).unwrap();
    let step = inject(&mut t.rows, 0.0004);
    assert!(step < 512 * 1024);
    assert_eq!(analyze(&t).verdict, "flat", "{step} B/epoch is below the documented 512 KiB floor");
}
