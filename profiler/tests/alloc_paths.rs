//! The allocator: jemalloc counts what Rust (and C) allocate, dhat's exact mode counts Rust
//! allocations, and blocks may cross from one path to the other. One test, one process:
//! allocator counters are process-wide.

use profiler::source::JemallocSource;
use profiler::{HeapMode, Marker, Profiler};

#[global_allocator]
static ALLOC: profiler::ProfilerAlloc = profiler::ProfilerAlloc;

const MIB: u64 = 1 << 20;

fn last_row(dir: &std::path::Path) -> profiler::Row {
    let t = profiler::read_timeline(&dir.join("timeline.csv")).unwrap();
    t.rows.last().unwrap().clone()
}

#[test]
fn jemalloc_exact_mode_and_cross_path_frees() {
    // jemalloc is configured from our malloc_conf symbol.
    let background: bool = unsafe { tikv_jemalloc_ctl::raw::read(b"opt.background_thread\0") }.unwrap();
    assert!(background, "malloc_conf was not picked up: background_thread is off");
    let decay: isize = unsafe { tikv_jemalloc_ctl::raw::read(b"opt.dirty_decay_ms\0") }.unwrap();
    assert_eq!(decay, -1, "malloc_conf's dirty_decay_ms was not applied");
    let conf = profiler::JEMALLOC_CONF;
    assert!(conf.contains("background_thread:true") && conf.contains("dirty_decay_ms:-1"));

    // 1. jemalloc allocated rises while a buffer is held and falls after.
    let je = JemallocSource::new().unwrap();
    let base = je.read().unwrap().allocated;
    let held = vec![7u8; 64 * MIB as usize];
    let during = je.read().unwrap().allocated;
    assert!(during >= base + 63 * MIB, "allocated {base} -> {during}");
    drop(held);
    let after = je.read().unwrap().allocated;
    assert!(after < during - 60 * MIB, "allocated did not fall: {during} -> {after}");

    // 2. Blocks allocated on the jemalloc path, freed in exact mode (dhat ignores them).
    let before_exact: Vec<Vec<u8>> = (0..100).map(|i| vec![i as u8; 10_000]).collect();
    let dir = tempfile::tempdir().unwrap();
    let mut prof = Profiler::builder(dir.path()).heap(HeapMode::Exact).start().unwrap();
    assert!(profiler::exact_mode());
    drop(before_exact);
    prof.epoch_end(0);
    let r0 = last_row(dir.path());

    // 3. Exact mode counts Rust allocations exactly.
    let exact_held = vec![1u8; 8 * MIB as usize];
    prof.epoch_end(1);
    let r1 = last_row(dir.path());
    let grew = r1.heap_exact_bytes.unwrap() - r0.heap_exact_bytes.unwrap();
    assert!(grew >= 8 * MIB, "exact heap grew by {grew}");
    assert!(r1.je_allocated_bytes.unwrap() >= r0.je_allocated_bytes.unwrap() + 8 * MIB, "jemalloc stats stay valid in exact mode");

    // 4. Blocks allocated in exact mode, freed on the jemalloc path after it ends.
    let from_exact: Vec<Vec<u8>> = (0..100).map(|i| vec![i as u8; 10_000]).collect();
    prof.finish().unwrap();
    assert!(!profiler::exact_mode());
    let before_frees = je.read().unwrap().allocated;
    drop(from_exact);
    drop(exact_held);
    let end = je.read().unwrap().allocated;
    let freed = before_frees - end;
    assert!(freed >= 8 * MIB + 900_000, "jemalloc freed only {freed} bytes of blocks from exact mode");
    let dhat_json = std::fs::read_to_string(dir.path().join("dhat-heap.json")).unwrap();
    assert!(dhat_json.contains("\"dhatFileVersion\""), "dhat-heap.json is DHAT's format");
}
