//! `diagnose watch -- torchrun --nproc-per-node 2 ...` (gloo on CPU, the venv's torch):
//! each rank's subtree is recognised from its environment, its epochs marked with its
//! rank are joined into the run's epochs, and the rank that leaks, and only it, grows.

mod common;
use common::*;

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
    let class = |r: u64| ranks.iter().find(|v| v["rank"] == r).unwrap()["class"].as_str().unwrap().to_string();
    assert_eq!(class(1), "growing");
    assert_ne!(class(0), "growing");
    let slope = ranks.iter().find(|v| v["rank"] == 1).unwrap()["slope_bytes_per_epoch"].as_f64().unwrap();
    assert!((slope / 1048576.0 - 16.0).abs() < 1.6, "rank 1 +{:.1} MiB/epoch, it keeps 16", slope / 1048576.0);
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
    let ranks = s["ranks"].as_array().unwrap_or_else(|| panic!("no ranks: {s:#}"));
    let class = |r: u64| ranks.iter().find(|v| v["rank"] == r).unwrap_or_else(|| panic!("rank {r}: {ranks:?}"))["class"].as_str().unwrap().to_string();
    assert_eq!((class(0).as_str(), class(1).as_str()), ("flat", "growing"), "{ranks:?}");
    let slope = ranks.iter().find(|v| v["rank"] == 1).unwrap()["slope_bytes_per_epoch"].as_f64().unwrap();
    assert!((slope / 1048576.0 - 8.0).abs() < 1.0, "rank 1 +{:.1} MiB/epoch, it keeps 8", slope / 1048576.0);
}
