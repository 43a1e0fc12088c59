//! Each other injected leak raises jemalloc's allocated bytes at every epoch end and is
//! called growing; the clean trainer with the same settings is not.

mod common;
use common::*;

fn heap_verdict(leak: Option<&str>) -> (String, f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut args = vec!["--epochs", "4"];
    args.extend_from_slice(QUICK);
    if let Some(l) = leak {
        args.extend_from_slice(&["--leak", l]);
    }
    let (_, s) = run_into(&out, &args);
    let heap = series(&s, "je_allocated_bytes");
    (
        heap["class"].as_str().unwrap().to_string(),
        heap["slope_bytes_per_epoch"].as_f64().unwrap(),
        heap["tolerance_bytes_per_epoch"].as_f64().unwrap(),
    )
}

#[test]
fn clean_quick_config_is_flat() {
    let (class, slope, tol) = heap_verdict(None);
    assert_eq!(class, "flat", "slope {slope:.0} B/epoch, tolerance {tol:.0}");
}

#[test]
fn model_cache_leak_grows() {
    let (class, slope, tol) = heap_verdict(Some("model-cache"));
    assert_eq!(class, "growing", "slope {slope:.0} tolerance {tol:.0}");
}

#[test]
fn frame_cache_leak_grows() {
    let (class, slope, tol) = heap_verdict(Some("frame-cache"));
    assert_eq!(class, "growing", "slope {slope:.0} tolerance {tol:.0}");
}

#[test]
fn autograd_graph_leak_grows() {
    let (class, slope, tol) = heap_verdict(Some("autograd-graph"));
    assert_eq!(class, "growing", "slope {slope:.0} tolerance {tol:.0}");
}
