//! Each other injected leak raises jemalloc's allocated bytes at every epoch end, is
//! called growing, and attribution names the function holding it; the clean trainer with
//! the same settings is flat and no call site of it is classed growing (its frame cache
//! fills to capacity, which is bounded, not growth).

use crate::common::*;

/// Epochs of a leak run. The model cache keeps about 4 MiB/epoch in the quick config,
/// and a site's tolerance is twice the slope's sampling deviation: over four epochs (three
/// past warm-up) that is about 4.3 MiB at its level, so half the runs missed it; over six
/// (five fitted) it is about 2 MiB.
const LEAK_EPOCHS: &str = "6";

/// Run the quick config with attribution for `epochs`; returns (summary, heap class).
fn run_leak(leak: Option<&str>, epochs: &str) -> (serde_json::Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut args = vec!["--epochs", epochs, "--attribute"];
    args.extend_from_slice(QUICK);
    if let Some(l) = leak {
        args.extend_from_slice(&["--leak", l]);
    }
    let (_, s) = run_into(&out, &args);
    assert!(out.join("callsites.csv").exists() && out.join("callsites.png").exists());
    let class = series(&s, "je_allocated_bytes")["class"].as_str().unwrap().to_string();
    (s, class)
}

/// The top growing site: (function, location, stack).
fn top_growing_site(s: &serde_json::Value) -> (String, String, String) {
    let site = growing_sites(s).into_iter().next().unwrap_or_else(|| panic!("no growing site: {:#}", s["sites"]));
    let text = |k: &str| site[k].as_str().unwrap().to_string();
    (text("function"), text("location"), text("stack"))
}

#[test]
fn clean_quick_config_is_flat_with_no_growing_site() {
    let (s, class) = run_leak(None, "4");
    assert_eq!(class, "flat", "{:#}", series(&s, "je_allocated_bytes"));
    let growing = growing_sites(&s);
    assert!(growing.is_empty(), "sites blamed on the clean trainer: {growing:#?}");
}

#[test]
fn model_cache_leak_grows_in_cache_prototypes() {
    let (s, class) = run_leak(Some("model-cache"), LEAK_EPOCHS);
    assert_eq!(class, "growing");
    let (function, location, _) = top_growing_site(&s);
    assert!(function.contains("cache_prototypes") && location.contains("model.rs"), "{function} {location}");
}

#[test]
fn frame_cache_leak_grows_in_decode_into_cache() {
    let (s, class) = run_leak(Some("frame-cache"), LEAK_EPOCHS);
    assert_eq!(class, "growing");
    let (function, location, _) = top_growing_site(&s);
    assert!(function.contains("decode_into_cache") && location.contains("data.rs"), "{function} {location}");
}

#[test]
fn autograd_graph_leak_grows_in_the_forward_kept_by_validation() {
    let (s, class) = run_leak(Some("autograd-graph"), LEAK_EPOCHS);
    assert_eq!(class, "growing");
    let (function, location, stack) = top_growing_site(&s);
    assert!(function.contains("features") && location.contains("model.rs"), "{function} {location}");
    assert!(stack.contains("validate_epoch"), "the activations come from validation's forward: {stack}");
    let via = growing_sites(&s)[0]["via"].as_str().unwrap().to_string();
    assert!(via.contains("validate_epoch"), "{via}");
}
