//! Growth that starts late is caught, and nothing else is: a real clean 16-epoch timeline
//! of the reference trainer (tests/fixtures/clean-16epochs, recorded by `diagnose run`),
//! with memory added from some epoch on. The verdict must say "growing since epoch N" for
//! a leak starting anywhere, even near the end, and stay quiet on the clean run, a cache
//! that fills and stops, and a one-epoch spike.

use profiler::analysis::Class;
use profiler::{analyze, read_timeline, Analysis, Timeline};

const MIB: u64 = 1 << 20;

/// The series a leak of live objects raises (RSS, PSS, heap, allocator pages).
fn add(t: &mut Timeline, bytes_at: impl Fn(u32) -> u64) {
    for row in &mut t.rows {
        let Some(epoch) = row.epoch else { continue };
        let extra = bytes_at(epoch);
        for v in [&mut row.rss_bytes, &mut row.peak_rss_bytes, &mut row.pss_bytes, &mut row.je_allocated_bytes, &mut row.je_active_bytes, &mut row.je_resident_bytes, &mut row.je_mapped_bytes] {
            if let Some(v) = v.as_mut() {
                *v += extra;
            }
        }
    }
}

fn clean() -> Timeline {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clean-16epochs");
    let t = read_timeline(&dir.join("timeline.csv")).unwrap();
    assert_eq!(t.rows.iter().filter(|r| r.phase == "epoch_end").count(), 16);
    t
}

/// The series the verdict reads (the machine's memory moves with other processes, and is
/// not one of them), growing, with where they started.
fn growing(a: &Analysis) -> Vec<(String, Option<u32>)> {
    let read = |c: &str| profiler::analysis::PRIMARY_SERIES.contains(&c) || c == "rss_bytes";
    a.series.iter().filter(|s| s.class == Class::Growing && read(&s.column)).map(|s| (s.column.clone(), s.growing_since)).collect()
}

#[test]
fn the_clean_run_is_flat() {
    let a = analyze(&clean());
    assert_eq!((a.verdict, growing(&a)), ("flat", vec![]), "{:?}", a.ledger);
}

#[test]
fn a_leak_is_caught_wherever_it_starts_with_its_start_and_slope() {
    for start in [1u32, 5, 8, 11, 12, 13] {
        let mut t = clean();
        add(&mut t, |e| if e >= start { (e - start + 1) as u64 * 8 * MIB } else { 0 });
        let a = analyze(&t);
        assert_eq!(a.verdict, "growing", "leak from epoch {start}: {:?}", a.series.iter().map(|s| (&s.column, s.class)).collect::<Vec<_>>());
        let heap = a.series("je_allocated_bytes").unwrap();
        assert_eq!(heap.class, Class::Growing, "from {start}");
        let since = heap.growing_since.unwrap();
        // A leak from the start is growing from the first epoch after warm-up.
        let expected = start.max(heap.fitted.unwrap().first);
        assert!(since.abs_diff(expected) <= 1, "leak from epoch {start}: growing since {since}");
        let slope = heap.slope_bytes_per_epoch.unwrap() / MIB as f64;
        assert!((slope - 8.0).abs() < 1.0, "leak from epoch {start}: {slope:.2} MiB/epoch, 8 added");
        assert!(profiler::report::text_summary(&a).contains(&format!("growing since epoch {since}")));
    }
}

#[test]
fn a_cache_that_fills_and_stops_is_not_growing() {
    for start in [3u32, 7] {
        let mut t = clean();
        add(&mut t, |e| if e >= start { (e - start + 1).min(4) as u64 * 20 * MIB } else { 0 });
        let a = analyze(&t);
        assert_eq!(a.verdict, "flat", "cache from {start}: {:?}", growing(&a));
    }
}

#[test]
fn a_one_epoch_spike_is_not_growing() {
    for at in [4u32, 9, 14, 15] {
        let mut t = clean();
        add(&mut t, |e| if e == at { 300 * MIB } else { 0 });
        let a = analyze(&t);
        assert_eq!(a.verdict, "flat", "spike at {at}: {:?}", growing(&a));
    }
}
