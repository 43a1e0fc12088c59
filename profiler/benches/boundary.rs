//! Cost of one boundary: each source alone, and a whole `mark` (all sources but GPU,
//! row serialised and flushed to disk). Target: median ≤ 100 µs.
//!
//! `cargo bench -p profiler --bench boundary`

use criterion::{criterion_group, criterion_main, Criterion};
use profiler::source::{JemallocSource, ProcessSource, Source};
use profiler::{Marker, Profiler, Row};

#[global_allocator]
static ALLOC: profiler::ProfilerAlloc = profiler::ProfilerAlloc;

fn sources(c: &mut Criterion) {
    let mut row = Row::default();
    let mut status_only = ProcessSource::new(false);
    c.bench_function("source/process (RSS, peak)", |b| b.iter(|| status_only.sample(&mut row)));
    let mut with_pss = ProcessSource::new(true);
    let mut epoch_row = Row { phase: "epoch_end".into(), ..Row::default() };
    c.bench_function("source/process (RSS, peak, PSS)", |b| b.iter(|| with_pss.sample(&mut epoch_row)));
    let mut je = JemallocSource::new().unwrap();
    c.bench_function("source/jemalloc (epoch + 6 stats)", |b| b.iter(|| je.sample(&mut row)));
}

fn boundary(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut prof = Profiler::builder(dir.path()).start().unwrap();
    let mut i = 0u64;
    c.bench_function("boundary/episode end: all sources but GPU, written and flushed", |b| {
        b.iter(|| {
            prof.episode_end(0, i);
            i += 1;
        })
    });
    c.bench_function("boundary/epoch end: same plus PSS", |b| {
        b.iter(|| {
            prof.epoch_end(i as u32);
            i += 1;
        })
    });
    prof.finish().unwrap();
}

criterion_group!(benches, sources, boundary);
criterion_main!(benches);
