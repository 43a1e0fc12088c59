//! The flat-memory harness, tested both ways: a steady workload passes; a leaking one
//! fails with a message naming the series and, with attribution, the leaking function;
//! an allowed site is not blamed; a peak limit fires. Sequential in one test: allocator
//! counters are process-wide.

use profiler::FlatMemory;

#[global_allocator]
static ALLOC: profiler::ProfilerAlloc = profiler::ProfilerAlloc;

const MIB: usize = 1 << 20;

/// Allocates and frees: flat.
fn steady_step() {
    let v = vec![3u8; 4 * MIB];
    std::hint::black_box(&v);
}

/// Keeps 2 MiB per call.
#[inline(never)]
fn leaky_step(kept: &mut Vec<Vec<u8>>) {
    kept.push(vec![5u8; 2 * MIB]);
}

#[test]
fn harness_passes_flat_and_fails_growing_with_the_site() {
    // 1. A steady workload passes.
    let report = FlatMemory::new().warmup(2).iterations(8).assert(|_| steady_step());
    assert!(report.failures.is_empty());

    // 2. A leak fails, naming heap allocated.
    let mut kept = Vec::new();
    let err = FlatMemory::new().warmup(2).iterations(8).check(|_| leaky_step(&mut kept)).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("heap allocated grows +2.0 MiB/iteration"), "{text}");
    drop(kept);

    // 3. With attribution the failure names the function holding it.
    let mut kept = Vec::new();
    let err = FlatMemory::new().warmup(2).iterations(8).attribute(true).check(|_| leaky_step(&mut kept)).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("top growing site: leaky_step (") && text.contains("flat_harness.rs:"), "{text}");
    drop(kept);

    // 4. An allowed (known bounded) site is neither counted nor blamed.
    let mut kept = Vec::new();
    let ok = FlatMemory::new().warmup(2).iterations(8).allow_site("leaky_step").check(|_| leaky_step(&mut kept));
    assert!(ok.is_ok(), "{}", ok.unwrap_err());
    drop(kept);

    // 5. A peak limit fires on a transient peak.
    let err = FlatMemory::new().warmup(1).iterations(3).peak_limit(16 * MIB as u64).check(|_| steady_step()).unwrap_err();
    assert!(err.to_string().contains("peak RSS"), "{err}");

    // 6. The panicking form panics with the report.
    let mut kept = Vec::new();
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        FlatMemory::new().warmup(1).iterations(5).assert(|_| leaky_step(&mut kept));
    }))
    .unwrap_err();
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(message.starts_with("memory is not flat:"), "{message}");
}
