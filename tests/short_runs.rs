//! Issue 24: an answer from the first epochs, for every process.
//!
//! - `diagnose run --epochs 3` (the README's first command) says flat on the clean
//!   trainer and growing on the seed's leak, from boundaries paired with the same
//!   boundary one epoch later, and says how many pairs it rests on;
//! - a watched 4-epoch Python loop (3 epoch ends) is judged the same way, both ways;
//! - three ranks from `torch.multiprocessing.spawn`: the one that grows is named with its
//!   pid, the one whose last epoch end was read while it shut down is not called anything
//!   from that point.

use crate::common::*;

/// A short run of the reference trainer: 3 epochs, as the README's first command.
fn three_epochs(name: &str, extra: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(name);
    let mut args = vec!["--epochs", "3", "--no-progress"];
    args.extend_from_slice(extra);
    let (_, s) = run_into(&out, &args);
    s
}

/// `diagnose watch --out OUT ARGS -- CMD`, at watch's own default interval (1 s), as a
/// user runs it.
fn watch_as_users_do(out: &std::path::Path, args: &[&str], cmd: &[&str]) -> serde_json::Value {
    let mut all = vec!["watch", "--out", out.to_str().unwrap()];
    all.extend_from_slice(args);
    all.push("--");
    all.extend_from_slice(cmd);
    let o = run(&all);
    assert!(o.status.success(), "{}", stderr(&o));
    summary(out)
}

fn paired_of(s: &serde_json::Value, column: &str) -> serde_json::Value {
    series(s, column)["paired"].clone()
}

#[test]
fn three_epochs_of_the_clean_trainer_are_flat_and_of_the_seeds_leak_growing() {
    let _turn = serial();
    let clean = three_epochs("clean", &[]);
    assert_eq!(clean["verdict"], "flat", "{}", ledger(&clean));
    let p = paired_of(&clean, "je_allocated_bytes");
    assert!(p["pairs"].as_u64().unwrap() >= 30, "{p}");
    assert!(ledger(&clean).contains("pairs of boundaries at the same point of consecutive epochs"), "{}", ledger(&clean));

    let leak = three_epochs("leak", &["--leak", "validation-accumulators"]);
    // The seed's leak keeps about 13 MiB per epoch at the default 10 validation episodes.
    // The frame cache is still filling in the first 13 episodes of epoch 1 (those pairs
    // read +5.9, -1.7, -9.2 MiB where the rest read +13.2), so heap allocated's pairs
    // alone could not tell; its epoch ends rise by 13.2 MiB at every step (95.9, 109.1,
    // 122.4 MiB), and that steady rise decides: growing.
    assert_eq!(leak["verdict"], "growing", "{}", ledger(&leak));
    let heap = series(&leak, "je_allocated_bytes");
    assert_eq!(heap["class"], "growing", "{}", ledger(&leak));
    assert!(!heap["paired"]["steady_ends"].is_null(), "{heap}");
    let grown: Vec<&serde_json::Value> = ["je_allocated_bytes", "rss_in_use_bytes"].iter().map(|c| series(&leak, c)).filter(|s| s["class"] == "growing").collect();
    for s in &grown {
        let slope = s["slope_bytes_per_epoch"].as_f64().unwrap() / (1u64 << 20) as f64;
        assert!((6.0..20.0).contains(&slope), "{}: slope {slope:.1} MiB/epoch", s["name"]);
        assert!(s["slope_interval"][0].as_f64().unwrap() > 0.0, "{s}");
        assert!(s["paired"]["pairs"].as_u64().unwrap() >= 30, "{s}");
    }
    let heap_slope = heap["slope_bytes_per_epoch"].as_f64().unwrap() / (1u64 << 20) as f64;
    assert!((12.5..14.0).contains(&heap_slope), "heap {heap_slope:.2} MiB/epoch: the epoch ends rise 13.2");
    for c in ["je_allocated_bytes", "rss_in_use_bytes"] {
        assert_ne!(series(&leak, c)["class"], "flat", "{}", ledger(&leak));
    }
    assert!(ledger(&leak).contains("pairs of boundaries at the same point of consecutive epochs"), "{}", ledger(&leak));
}

fn three_epochs_find(leaks: &[&str]) {
    let _turn = serial();
    for leak in leaks {
        let s = three_epochs(leak, &["--leak", leak]);
        assert_eq!(s["verdict"], "growing", "--leak {leak}: {}", ledger(&s));
    }
}

#[test]
#[ignore = "soak: SOAK=1 scripts/test (about 27 s; the seed's leak is found in 3 epochs by default)"]
fn three_epochs_find_a_graph_kept_by_validation() {
    three_epochs_find(&["autograd-graph"]);
}

#[test]
#[ignore = "soak: SOAK=1 scripts/test (about 30 s)"]
fn three_epochs_find_the_trainers_caches_that_leak() {
    three_epochs_find(&["model-cache", "frame-cache"]);
}

/// `diagnose watch` of tests/python/short_loop.py, 4 epochs: 3 epoch ends.
fn watched_loop(name: &str, extra: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(name);
    let py = python();
    let script = py_script("short_loop.py");
    let mut cmd = vec![py.to_str().unwrap(), script.as_str(), "--epochs", "4", "--workers", "2"];
    cmd.extend_from_slice(extra);
    let s = watch_as_users_do(&out, &[], &cmd);
    assert_eq!(s["epochs"], 3, "{s:#}");
    s
}

#[test]
fn a_watched_loop_of_four_epochs_is_judged_both_ways() {
    let _turn = serial();
    let clean = watched_loop("clean", &[]);
    assert_eq!(clean["verdict"], "flat", "{}", ledger(&clean));
    let leak = watched_loop("leak", &["--leak-mib", "16"]);
    assert_eq!(leak["verdict"], "growing", "{}", ledger(&leak));
    let main = series(&leak, "main_uss_bytes");
    let slope = main["slope_bytes_per_epoch"].as_f64().unwrap() / (1u64 << 20) as f64;
    assert!((10.0..24.0).contains(&slope), "main USS {slope:.1} MiB/epoch for 16 kept: {main}");
    assert!(main["paired"]["pairs"].as_u64().unwrap() >= 8, "{main}");
}

#[test]
fn a_spawned_rank_that_grows_is_named_and_a_rank_shutting_down_is_not_judged_on_it() {
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ranks");
    let py = python();
    let script = py_script("spawn_teardown.py");
    let o = run(&["watch", "--out", out.to_str().unwrap(), "--", py.to_str().unwrap(), script.as_str(), "--epochs", "7"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = summary(&out);
    let procs = s["processes"].as_array().unwrap();
    let growing: Vec<&serde_json::Value> = procs.iter().filter(|p| p["class"] == "growing").collect();
    assert_eq!(growing.len(), 1, "exactly the rank that keeps 8 MiB/epoch: {procs:#?}");
    let slope = growing[0]["slope_bytes_per_epoch"].as_f64().unwrap() / (1u64 << 20) as f64;
    assert!((6.5..10.5).contains(&slope), "{slope:.1} MiB/epoch for 8 kept: {:#}", growing[0]);
    assert_eq!(s["verdict"], "growing", "{}", ledger(&s));
    let pid = growing[0]["pid"].as_u64().unwrap();
    assert!(ledger(&s).contains(&format!("(pid {pid}) grows")), "{}", ledger(&s));
    // The live lines name it too, before the end.
    let live = stderr(&o);
    assert!(live.lines().any(|l| l.contains("diagnose: epoch") && l.contains(&format!("(pid {pid}) grows"))), "{live}");
    // The ranks that keep nothing are not growing, the one freeing 11 MiB as it shuts
    // down included (its last epoch end is left out).
    let ranks = procs.iter().filter(|p| p["name"].as_str().is_some_and(|n| n.starts_with("python")) && p["pid"] != pid);
    for p in ranks {
        assert_ne!(p["class"], "growing", "{p:#}");
    }
}
