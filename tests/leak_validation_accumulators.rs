//! The seed's root cause, reproduced: validation lists kept across epochs. The verdict is
//! growing, --fail-on-leak exits 3, and the measured heap slope matches the bytes the
//! trainer says the leak retained (within 30 %), and attribution names validate_epoch.

use crate::common::*;

#[test]
fn validation_accumulators_leak_is_growing_with_the_true_slope() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("leak");
    let (output, s) = run_into(&out, &["--leak", "validation-accumulators", "--epochs", "6", "--episodes-per-epoch", "10", "--fail-on-leak", "--attribute", "--no-progress"]);
    assert_eq!(output.status.code(), Some(3), "exit code 3 for a leak with --fail-on-leak");
    assert_eq!(s["verdict"], "growing", "{s:#}");
    let heap = series(&s, "je_allocated_bytes");
    assert_eq!(heap["class"], "growing");
    let measured = heap["slope_bytes_per_epoch"].as_f64().unwrap();
    let truth = s["user_bytes_per_epoch"].as_f64().unwrap();
    assert!(truth > 1e6, "the trainer reports the leak's bytes: {truth}");
    let error = (measured - truth).abs() / truth;
    assert!(error < 0.30, "measured {measured:.0} B/epoch vs retained {truth:.0} B/epoch ({:.0} % off)", error * 100.0);
    let top = *growing_sites(&s).first().expect("a growing site");
    assert!(top["function"].as_str().unwrap().contains("validate_epoch"), "{top:#}");
    assert!(top["location"].as_str().unwrap().contains("reference-trainer/src/validate.rs"), "{top:#}");
    assert_plain_csv(&out, &["timeline.csv", "phases.csv", "callsites.csv", "sites.csv", "heap_sites.csv"]);
    // One path convention: relative to the source root, never this machine's absolute paths.
    let sites = std::fs::read_to_string(out.join("callsites.csv")).unwrap();
    assert!(!sites.contains("/rustc/") && !sites.contains("/.cargo/registry/"), "absolute paths in callsites.csv");
    let ledger = s["ledger"].to_string();
    assert!(ledger.contains("validate_epoch") && ledger.contains("/epoch, growing"), "{ledger}");
    assert!(ledger.contains("Live heap allocations grow"), "{ledger}");
}
