//! No false alarm on the clean trainer across 10 seeds (5 epochs each). Slow (about
//! 10 minutes on 2 cores): run with `SOAK=1 scripts/test`.

use crate::common::*;

#[test]
#[ignore = "soak: SOAK=1 scripts/test"]
fn clean_trainer_is_flat_across_ten_seeds() {
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for seed in 0..10 {
        let out = dir.path().join(format!("seed{seed}"));
        let (_, s) = run_into(&out, &["--epochs", "5", "--seed", &seed.to_string(), "--no-progress"]);
        let heap = series(&s, "je_allocated_bytes");
        let rss = series(&s, "rss_bytes");
        eprintln!("seed {seed}: verdict {}, heap {} {:.0} B/epoch, RSS {} {:.0} B/epoch", s["verdict"], heap["class"],
            heap["slope_bytes_per_epoch"].as_f64().unwrap(), rss["class"], rss["slope_bytes_per_epoch"].as_f64().unwrap());
        if s["verdict"] != "flat" {
            failures.push(seed);
        }
    }
    assert!(failures.is_empty(), "false alarms on seeds {failures:?}");
}
