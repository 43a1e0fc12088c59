//! The profiler does not become what it hunts: recording many boundaries does not grow
//! its memory. Default: 100,000 boundaries; `SOAK=1 scripts/test` adds 1,000,000.

use profiler::source::JemallocSource;
use profiler::{Marker, Profiler};

#[global_allocator]
static ALLOC: profiler::ProfilerAlloc = profiler::ProfilerAlloc;

const MIB: u64 = 1 << 20;

fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    profiler::source::parse_status(&status).0.unwrap()
}

/// Record `n` boundaries after a warm-up; returns (RSS growth, heap growth) in bytes.
fn growth(n: u64) -> (i64, i64) {
    let dir = tempfile::tempdir().unwrap();
    let mut prof = Profiler::builder(dir.path()).pss(false).start().unwrap();
    let je = JemallocSource::new().unwrap();
    for i in 0..1000 {
        prof.episode_end(0, i);
    }
    let (rss0, heap0) = (rss(), je.read().unwrap().allocated);
    for i in 0..n {
        prof.episode_end((i / 1000) as u32, i);
    }
    let (rss1, heap1) = (rss(), je.read().unwrap().allocated);
    prof.finish().unwrap();
    (rss1 as i64 - rss0 as i64, heap1 as i64 - heap0 as i64)
}

fn check(n: u64) {
    let (rss, heap) = growth(n);
    eprintln!("{n} boundaries: RSS {rss:+} B, heap {heap:+} B");
    assert!(heap < MIB as i64, "heap grew by {heap} bytes over {n} boundaries");
    assert!(rss < 4 * MIB as i64, "RSS grew by {rss} bytes over {n} boundaries");
}

#[test]
fn hundred_thousand_boundaries_stay_bounded() {
    check(100_000);
}

#[test]
#[ignore = "soak: SOAK=1 scripts/test"]
fn million_boundaries_stay_bounded() {
    check(1_000_000);
}
