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

/// What `--metrics-listen` adds to a boundary: the row taken by the exporter (re-rendered
/// page; at an epoch end, the live verdict over the epochs so far), while a scraper reads
/// the page in a loop on another thread.
fn metrics(c: &mut Criterion) {
    use std::io::{Read, Write};
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut m = profiler::metrics::MetricsExporter::start(profiler::metrics::live_meta(), Some(addr), None).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let scraper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut scrapes = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(mut s) = std::net::TcpStream::connect(addr) {
                    let _ = write!(s, "GET /metrics HTTP/1.0\r\n\r\n");
                    let _ = s.read_to_end(&mut Vec::new());
                    scrapes += 1;
                }
            }
            scrapes
        })
    };
    let mut row = Row { phase: "episode_end".into(), rss_bytes: Some(1 << 30), je_allocated_bytes: Some(1 << 29), ..Row::default() };
    c.bench_function("metrics/episode end: observe, under a scrape loop", |b| b.iter(|| m.observe(&row)));
    // 100 epochs recorded; then the 101st epoch end, measured (each time it replaces itself).
    row.phase = "epoch_end".into();
    for e in 0..100u32 {
        row.epoch = Some(e);
        row.je_allocated_bytes = Some((1 << 29) + e as u64 * 4096);
        m.observe(&row);
    }
    row.epoch = Some(100);
    c.bench_function("metrics/epoch end after 100 epochs: observe + live verdict, under a scrape loop", |b| b.iter(|| m.observe(&row)));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    eprintln!("scrapes served during the bench: {}", scraper.join().unwrap());
}

criterion_group!(benches, sources, boundary, metrics);
criterion_main!(benches);
