//! The native sites' reduction on a real heap dump: this test process's own (it runs on
//! the profiler's jemalloc, profiling compiled in), resolved as if it came from another
//! process, from the dump's own mappings and the mapped files only. (A test of its own
//! file: the profiler's sources under src/heap/ count as the profiler's plumbing.)

use profiler::heap::native::{NativeSites, DUMPS_DIR, NATIVE_DIR};

#[global_allocator]
static ALLOC: profiler::ProfilerAlloc = profiler::ProfilerAlloc;

#[inline(never)]
fn a_native_keeper(n: usize) -> Vec<Vec<u8>> {
    // 64 blocks of 256 KiB: 16 MiB kept, about 32 samples at 512 KiB.
    (0..64).map(|i| std::hint::black_box(vec![i as u8; n])).collect()
}

#[test]
fn a_real_dump_resolves_out_of_process_to_the_function_that_keeps_memory() {
    assert!(profiler::heap::profiling_available(), "the profiler's jemalloc has profiling");
    let dir = tempfile::tempdir().unwrap();
    let mut sites = NativeSites::create(dir.path()).unwrap();
    let dumps = dir.path().join(DUMPS_DIR);
    profiler::heap::activate_sampling(true).unwrap();
    let kept = a_native_keeper(256 * 1024);
    // As the helper does: written under a temporary name, renamed when complete.
    profiler::heap::dump_profile(&dumps.join("epoch-0.heap.tmp")).unwrap();
    profiler::heap::activate_sampling(false).unwrap();
    assert_eq!(sites.reduce_ready().unwrap(), 0, "an incomplete dump is not read");
    std::fs::rename(dumps.join("epoch-0.heap.tmp"), dumps.join("epoch-0.heap")).unwrap();
    assert_eq!(sites.reduce_ready().unwrap(), 1);
    assert_eq!(sites.reduce_ready().unwrap(), 0, "a dump is reduced once");
    drop(kept);

    let (infos, rows) = profiler::heap::read_sites(&dir.path().join(NATIVE_DIR)).unwrap().unwrap();
    let keeper = infos.iter().find(|s| s.function.contains("a_native_keeper"));
    let keeper = keeper.unwrap_or_else(|| panic!("no site names a_native_keeper: {infos:#?}"));
    assert!(keeper.location.starts_with("profiler/tests/native_dump.rs:") || keeper.location.starts_with("tests/native_dump.rs:"), "resolved with line tables from the file: {keeper:?}");
    let bytes: u64 = rows.iter().filter(|r| r.site == keeper.site).map(|r| r.bytes).sum();
    let mib = bytes as f64 / 1048576.0;
    eprintln!("{} ({}) via {}: {mib:.1} MiB", keeper.function, keeper.location, keeper.via);
    // 16 MiB estimated from ~32 samples: within ±60 % (over 3.5 standard deviations).
    assert!((6.4..25.6).contains(&mib), "{mib:.1} MiB at {keeper:?}");
    // A dump is deleted once reduced, but the latest (kept for jeprof).
    assert!(dumps.join("epoch-0.heap").exists());
}
