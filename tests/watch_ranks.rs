//! `diagnose watch -- torchrun --nproc-per-node 2 ...` (gloo on CPU, the venv's torch):
//! each rank's subtree is recognised from its environment, its epochs marked with its
//! rank are joined into the run's epochs, and the rank that leaks, and only it, grows.

use crate::common::*;

/// (class, slope in MiB/epoch) of `rank` in a summary.
fn rank_class_and_slope(s: &serde_json::Value, rank: u64) -> (String, f64) {
    let ranks = s["ranks"].as_array().unwrap_or_else(|| panic!("no ranks: {s:#}"));
    let v = ranks.iter().find(|v| v["rank"] == rank).unwrap_or_else(|| panic!("rank {rank}: {ranks:?}"));
    (v["class"].as_str().unwrap().to_string(), v["slope_bytes_per_epoch"].as_f64().unwrap_or(0.0) / 1048576.0)
}

#[test]
fn the_leaking_rank_and_only_it_is_growing() {
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ddp");
    let py = python();
    let script = py_script("ddp_trainer.py");
    let textfile = dir.path().join("textfile");
    let (o, s) = watch(&out, &["--epoch-pattern", "^NEVER$", "--metrics-textfile", textfile.to_str().unwrap()], &[py.to_str().unwrap(), "-m", "torch.distributed.run", "--nproc-per-node", "2", &script, "--leak-rank", "1", "--epochs", "6"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = s.unwrap();
    assert_eq!(s["epochs"], 6, "one epoch end per epoch that both ranks reached");
    let ranks = s["ranks"].as_array().unwrap();
    assert_eq!(ranks.len(), 2, "{ranks:?}");
    let (class, slope) = rank_class_and_slope(&s, 1);
    assert_eq!(class, "growing");
    assert_ne!(rank_class_and_slope(&s, 0).0, "growing");
    assert!((slope - 16.0).abs() < 1.6, "rank 1 +{slope:.1} MiB/epoch, it keeps 16");
    assert_eq!(s["verdict"], "growing");
    assert!(ledger(&s).contains("Ranks: rank 1"), "{}", ledger(&s));
    let procs = std::fs::read_to_string(out.join("processes.csv")).unwrap();
    assert!(procs.lines().any(|l| l.contains(",worker,1,")), "rank column filled");
    // Metrics for the cluster: each rank labelled.
    let prom = std::fs::read_to_string(textfile.join("diagnose.prom")).unwrap();
    for r in [0, 1] {
        assert!(prom.contains(&format!("diagnose_rank_memory_bytes{{rank=\"{r}\",kind=\"pss\"}}")), "{prom}");
    }
}

/// A launcher whose children carry no `RANK` (tests/python/rank_launcher.py names itself
/// `pt_elastic`): its children are taken as ranks in the order they started.
#[test]
fn a_launchers_children_are_its_ranks_without_rank_in_their_environment() {
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("launcher");
    let py = python();
    let (o, s) = watch(&out, &[], &[py.to_str().unwrap(), &py_script("rank_launcher.py"), "--ranks", "2", "--mib", "8", "--steps", "8"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = s.unwrap();
    let ((class0, _), (class1, slope)) = (rank_class_and_slope(&s, 0), rank_class_and_slope(&s, 1));
    assert_eq!((class0.as_str(), class1.as_str()), ("flat", "growing"), "{}", s["ranks"]);
    assert!((slope - 8.0).abs() < 1.0, "rank 1 +{slope:.1} MiB/epoch, it keeps 8");
}

/// Ranks started by `torch.multiprocessing.spawn` carry no RANK: the injected helper,
/// active in every Python process of the tree, tells diagnose each one's rank when it
/// calls init_process_group. They are `rank N` in processes.csv, the ledger and the
/// metrics; their epochs are their DataLoader passes, joined across ranks; with
/// --python-objects each rank takes censuses, and the growing one's list is named.
#[test]
#[ignore = "soak: SOAK=1 scripts/test (about 25 s; short_runs names a spawned rank that grows by default)"]
fn spawned_ranks_are_named_by_the_helper() {
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("spawn");
    let py = python();
    let textfile = dir.path().join("textfile");
    let (o, s) = watch(&out, &["--python-objects", "--metrics-textfile", textfile.to_str().unwrap()], &[py.to_str().unwrap(), &py_script("spawn_ranks.py"), "--epochs", "7"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = s.unwrap();
    assert_eq!(s["epochs"], 6, "epochs from the ranks' DataLoader passes: {}", ledger(&s));
    let ranks = s["ranks"].as_array().unwrap_or_else(|| panic!("no ranks: {}", ledger(&s)));
    assert_eq!(ranks.len(), 2, "{ranks:?}");
    let ((class0, _), (class1, slope)) = (rank_class_and_slope(&s, 0), rank_class_and_slope(&s, 1));
    assert_eq!((class0.as_str(), class1.as_str()), ("flat", "growing"), "{}", ledger(&s));
    assert!((slope - 8.0).abs() < 1.5, "rank 1 +{slope:.1} MiB/epoch, it keeps 8");
    assert!(ledger(&s).contains("Ranks: rank 1"), "{}", ledger(&s));
    let procs = std::fs::read_to_string(out.join("processes.csv")).unwrap();
    for r in [0, 1] {
        assert!(procs.lines().any(|l| l.contains(&format!(",worker,{r},"))), "rank {r} in processes.csv");
    }
    let prom = std::fs::read_to_string(textfile.join("diagnose.prom")).unwrap();
    assert!(prom.contains("diagnose_rank_memory_bytes{rank=\"1\",kind=\"pss\"}"), "{prom}");
    let kept = growing_objects(&s).into_iter().find(|o| o["name"] == "rank 1: Trainer.kept").unwrap_or_else(|| panic!("{}", ledger(&s)));
    assert!((slope_of(kept) / 1048576.0 - 8.0).abs() < 0.5, "{kept}");
    assert!(!growing_objects(&s).iter().any(|o| o["name"].as_str().unwrap().starts_with("rank 0: ")), "{:?}", growing_objects(&s));
}
