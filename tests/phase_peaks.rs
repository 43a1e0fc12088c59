//! Each phase's own peak: the seed's table (Triplet Batch 8 GB -> 1 GB while Training Batch
//! stayed 2 GB) must be visible in ours. seed-before vs seed-after (triplet batch 64 vs 8):
//! the triplet row falls by far more than the training row, and in seed-before it is the
//! higher of the two.

use crate::common::*;

fn phase_peak(s: &serde_json::Value, phase: &str, column: &str) -> f64 {
    let row = s["phases"].as_array().unwrap().iter().find(|p| p["phase"] == phase).unwrap_or_else(|| panic!("no phase {phase}"));
    row["stats"].as_array().unwrap().iter().find(|st| st["column"] == column).unwrap_or_else(|| panic!("{phase}: no {column}"))["peak"].as_f64().unwrap()
}

#[test]
fn the_triplet_batches_peak_is_told_apart_from_training() {
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut summaries = Vec::new();
    for preset in ["seed-before", "seed-after"] {
        let out = dir.path().join(preset);
        // One epoch: a phase's peak needs no trend.
        let mut args = vec!["--preset", preset, "--epochs", "1"];
        args.extend_from_slice(QUICK);
        summaries.push(run_into(&out, &args).1);
    }
    let (before, after) = (&summaries[0], &summaries[1]);
    let peak = |s, phase| phase_peak(s, phase, "heap_peak_bytes");
    let (train_b, trip_b) = (peak(before, "training episodes"), peak(before, "triplet batches"));
    let (train_a, trip_a) = (peak(after, "training episodes"), peak(after, "triplet batches"));
    let mib = |b: f64| b / 1048576.0;
    let table = format!("training {:.0} -> {:.0} MiB, triplet {:.0} -> {:.0} MiB", mib(train_b), mib(train_a), mib(trip_b), mib(trip_a));
    assert!(trip_b > train_b, "seed-before: the triplet batches need more than training: {table}");
    assert!(trip_b - trip_a > 1.5 * (train_b - train_a), "the triplet row falls by far more: {table}");
    // A boundary row sees only its moment; the peak is above it.
    assert!(trip_b > phase_peak(before, "triplet batches", "je_allocated_bytes"), "{table}");

    // compare shows those peaks by default.
    let (b, a) = (dir.path().join("seed-before"), dir.path().join("seed-after"));
    let o = run(&["compare", b.to_str().unwrap(), a.to_str().unwrap(), "--out", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let table_md = String::from_utf8_lossy(&o.stdout);
    assert!(table_md.contains("(heap_peak_bytes) per phase"), "{table_md}");
}
