//! `--heap exact`: dhat attributes the live Rust heap at every epoch end and writes DHAT's
//! own JSON per epoch. dhat sees every Rust allocation exactly and no C++ one, so:
//! the leaks that hold host arrays (the seed's validation lists, an unbounded frame cache)
//! are named with their true slope; the clean trainer and its full, bounded frame cache
//! blame no site; a leak of libtorch tensors is reported as outside what dhat sees.

use crate::common::*;

use std::path::Path;
use std::sync::Mutex;

/// dhat's lock spins: exact runs side by side on two cores take 3× longer. One at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A 4-epoch exact run; returns the run folder's owner and summary.json.
fn run_exact(leak: Option<&str>) -> (tempfile::TempDir, serde_json::Value) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut args = vec!["--epochs", "4", "--heap", "exact"];
    args.extend_from_slice(QUICK);
    if let Some(l) = leak {
        args.extend_from_slice(&["--leak", l]);
    }
    let (_, s) = run_into(&out, &args);
    assert_eq!(s["sites_source"], "dhat-exact", "{:#}", s["sites_source"]);
    (dir, s)
}

/// Live bytes per epoch from DHAT's JSON (`eb` summed over program points), checking the
/// file is what DHAT's viewer reads.
fn dhat_live_bytes(run: &Path, epoch: u32) -> u64 {
    let path = run.join("dhat").join(format!("epoch-{epoch}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let j: serde_json::Value = serde_json::from_str(&text).expect("DHAT JSON parses");
    assert_eq!(j["dhatFileVersion"], 2);
    assert_eq!(j["mode"], "rust-heap");
    let ftbl = j["ftbl"].as_array().unwrap().len() as u64;
    let pps = j["pps"].as_array().unwrap();
    assert!(!pps.is_empty());
    for pp in pps {
        assert!(pp["fs"].as_array().unwrap().iter().all(|f| f.as_u64().unwrap() < ftbl), "frame index out of ftbl");
    }
    pps.iter().map(|pp| pp["eb"].as_u64().unwrap()).sum()
}

/// Live bytes per epoch by heap_sites.csv (all sites).
fn site_bytes(run: &Path, epoch: u32) -> u64 {
    let mut r = csv::Reader::from_path(run.join("heap_sites.csv")).unwrap();
    r.deserialize::<(u32, u32, u64)>().map(Result::unwrap).filter(|row| row.0 == epoch).map(|row| row.2).sum()
}

#[test]
fn validation_lists_are_named_and_dhat_json_agrees_with_the_sites() {
    let (dir, s) = run_exact(Some("validation-accumulators"));
    let run = dir.path().join("run");
    let top = growing_sites(&s).into_iter().next().unwrap_or_else(|| panic!("no growing site: {:#}", s["sites"]));
    assert!(top["function"].as_str().unwrap().contains("validate_epoch"), "{top:#}");
    assert!(top["location"].as_str().unwrap().starts_with("reference-trainer/src/validate.rs"), "{top:#}");
    // The lists' bytes, exactly: every growing site is in validate_epoch, and its sites
    // (one per list; the small lists are below the noise floor on their own) together
    // grow by what the trainer says the lists retain.
    let growing = growing_sites(&s);
    assert!(growing.iter().all(|v| v["function"].as_str().unwrap().contains("validate_epoch")), "{growing:#?}");
    let in_validate = s["sites"].as_array().unwrap().iter().filter(|v| v["function"].as_str().unwrap().contains("validate_epoch"));
    let held: f64 = in_validate.filter_map(|v| v["slope_bytes_per_epoch"].as_f64()).sum();
    let truth = s["user_bytes_per_epoch"].as_f64().unwrap();
    assert!((held - truth).abs() < 0.05 * truth, "validate_epoch's sites grow {held:.0} B/epoch, the lists {truth:.0}");
    assert_eq!(series(&s, "heap_exact_bytes")["class"], "growing");
    // One instant, two views: DHAT's file and our rows hold the same bytes.
    for epoch in 0..4 {
        assert_eq!(dhat_live_bytes(&run, epoch), site_bytes(&run, epoch), "epoch {epoch}");
    }
    assert!(run.join("dhat-heap.json").exists() && run.join("growth.svg").exists() && run.join("callsites.png").exists());
    let md = std::fs::read_to_string(run.join("summary.md")).unwrap();
    assert!(md.contains("dhat/epoch-N.json") && md.contains("exact live Rust heap"), "{md}");
}

#[test]
fn frame_cache_leak_is_named_with_its_true_slope() {
    let (_dir, s) = run_exact(Some("frame-cache"));
    let top = growing_sites(&s).into_iter().next().unwrap_or_else(|| panic!("no growing site: {:#}", s["sites"]));
    assert!(top["function"].as_str().unwrap().contains("decode_into_cache"), "{top:#}");
    assert!(top["location"].as_str().unwrap().starts_with("reference-trainer/src/data.rs"), "{top:#}");
    let slope = top["slope_bytes_per_epoch"].as_f64().unwrap();
    let truth = s["user_bytes_per_epoch"].as_f64().unwrap();
    assert!((slope - truth).abs() < 0.05 * truth, "site {slope:.0} B/epoch, frames over capacity {truth:.0}");
}

#[test]
fn clean_trainer_blames_no_site_and_its_full_frame_cache_is_not_growing() {
    let (_dir, s) = run_exact(None);
    assert!(growing_sites(&s).is_empty(), "{:#?}", growing_sites(&s));
    assert_ne!(series(&s, "heap_exact_bytes")["class"], "growing");
    // The cache reached its capacity (500 frames of 3×64×64 bytes) and stayed there.
    let cache = s["sites"].as_array().unwrap().iter().find(|v| v["function"] == "decode_into_cache").expect("the frame cache's site");
    let last = cache["bytes_by_epoch"].as_array().unwrap().last().unwrap()[1].as_f64().unwrap();
    let full = 500.0 * 3.0 * 64.0 * 64.0;
    assert!(last >= full && last < 1.01 * full, "cache holds {last} B, full is {full}");
    assert_ne!(cache["class"], "growing");
}

#[test]
fn tensor_leak_is_reported_as_outside_what_dhat_sees() {
    let (_dir, s) = run_exact(Some("model-cache"));
    assert_eq!(series(&s, "je_allocated_bytes")["class"], "growing");
    let ledger = s["ledger"].to_string();
    assert!(ledger.contains("outside the Rust heap that dhat sees") && ledger.contains("--attribute"), "{ledger}");
}
