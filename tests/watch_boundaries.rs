//! Where epochs come from when the program says nothing: a progress bar that names an
//! epoch from its start, no boundary at all for a long time (fixed windows by
//! themselves), and a process watched with --pid (whose advice is --window).

use crate::common::*;

const MIB: f64 = 1048576.0;

#[test]
fn a_progress_bar_naming_its_epoch_at_the_start_ends_it_at_the_next_bar() {
    // tqdm(range, desc=f"Epoch {e}"), redrawn with \r; 8 MiB kept at each epoch's end,
    // after its bar has started: read as the end of epoch e, the growth would come one
    // epoch early and the first point would stand before any epoch ran.
    let code = [
        "import time, tqdm",
        "kept = []",
        "for e in range(6):",
        "    for _ in tqdm.tqdm(range(10), desc=f'Epoch {e}', mininterval=0):",
        "        time.sleep(0.02)",
        "    kept.append(bytearray(8 << 20))",
        "    time.sleep(0.3)",
    ]
    .join("\n");
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let (o, s) = watch(&dir.path().join("bars"), &["--no-inject"], &[python().to_str().unwrap(), "-c", &code]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = s.unwrap();
    // Epochs 0-4 end when the bars of 1-5 start; the last bar's end is not an epoch end.
    assert_eq!(s["epochs"], 5, "{}", ledger(&s));
    let pss = series(&s, "tree_pss_bytes");
    assert_eq!(pss["class"], "growing", "{}", ledger(&s));
    let per_epoch = pss["slope_bytes_per_epoch"].as_f64().unwrap() / MIB;
    assert!((per_epoch - 8.0).abs() < 1.0, "+{per_epoch:.1} MiB/epoch, 8 kept");
    // Each epoch's point holds that epoch's 8 MiB: epoch 0's is 8 MiB above the start.
    // No census was taken: the next step is to take one, not a guess.
    assert!(ledger(&s).contains("rerun with a census: diagnose watch --python-objects"), "{}", ledger(&s));
    let first = pss["first_bytes"].as_f64().unwrap();
    let start = std::fs::read_to_string(dir.path().join("bars/timeline.csv")).unwrap();
    assert!(first > 0.0 && start.contains(",epoch_end,0,"), "{start}");
}

#[test]
fn with_no_boundary_for_long_the_watch_falls_back_to_windows_and_says_so() {
    let leak = "import time\nkept = []\nfor _ in range(50):\n    kept.append(bytearray(2 << 20)); time.sleep(0.1)\n";
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let (o, s) = watch(&dir.path().join("leak"), &["--auto-window", "2s", "--no-inject"], &["python3", "-c", leak]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("no epoch boundary in 2s: fixed windows of 200ms from now on"), "{}", stderr(&o));
    let s = s.unwrap();
    assert_ne!(s["verdict"], "insufficient");
    assert_eq!(s["verdict"], "growing", "{}", ledger(&s));
    assert!(ledger(&s).contains("No epoch boundary came in the first 2 s: from then on fixed windows of 0.2 s stood in for epochs"), "{}", ledger(&s));
    let run: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("leak/run.json")).unwrap()).unwrap();
    assert_eq!((run["window_s"].as_f64(), run["windows_after_s"].as_f64()), (Some(0.2), Some(2.0)));
    // The same without growth: windows, and flat.
    let idle = "import time\nx = bytearray(64 << 20)\ntime.sleep(5)\n";
    let (o, s) = watch(&dir.path().join("idle"), &["--auto-window", "2s", "--no-inject"], &["python3", "-c", idle]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(s.unwrap()["verdict"], "flat");
}

#[test]
fn a_pid_watched_without_epochs_is_told_to_use_windows() {
    let mut target = std::process::Command::new("python3").args(["-c", "import time; time.sleep(3)"]).spawn().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pid");
    let o = run(&["watch", "--out", out.to_str().unwrap(), "--interval", "100ms", "--pid", &target.id().to_string()]);
    target.wait().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let l = ledger(&summary(&out));
    assert!(l.contains("watched with --pid sends no log lines, and markers only to a --marker-socket") && l.contains("--window 60s"), "{l}");
    assert!(!l.contains("print \"Epoch N\""), "{l}");
}

#[test]
fn a_census_asked_for_by_a_marker_is_taken_and_said_once_when_it_cannot_be() {
    // The marker module alone, as a user copies it (python/ also holds the census).
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/python/diagnose_markers.py"), dir.path().join("diagnose_markers.py")).unwrap();
    let code = [
        "import sys, time",
        &format!("sys.path.insert(0, {:?})", dir.path()),
        "import diagnose_markers as dm",
        "kept = [[] for _ in range(20)]",
        "for e in range(4):",
        "    kept.append(list(range(1000)))",
        "    dm.epoch_end(e, census=True)",
        "    time.sleep(0.2)",
    ]
    .join("\n");
    let _turn = serial();
    // Injected (the default), without --python-objects: the census is taken all the same.
    let (o, s) = watch(&dir.path().join("asked"), &[], &["python3", "-c", &code]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(s.unwrap()["censuses"]["count"], 4);
    // With --no-inject it cannot be: said once, not once per epoch.
    let (o, s) = watch(&dir.path().join("refused"), &["--no-inject"], &["python3", "-c", &code]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stderr(&o).matches("epoch_end(census=True) takes no census").count(), 1, "{}", stderr(&o));
    assert!(s.unwrap()["censuses"].is_null());
}

#[test]
fn the_training_loader_is_the_one_whose_passes_run_backward_not_the_largest() {
    let script = py_script("loader_passes.py");
    let inject = concat!(env!("CARGO_MANIFEST_DIR"), "/python/inject/sitecustomize.py");
    let o = std::process::Command::new(python()).args([script.as_str(), inject]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let sent = String::from_utf8_lossy(&o.stdout).lines().map(str::to_string).collect::<Vec<_>>();
    // The sanity pass is taken for training until backward() has run; from then on each
    // epoch is one training pass and one validation phase, and 3 epochs end twice.
    let expected = [
        "validation_start 0 auto=1", // epoch 0's training pass, before any backward()
        "validation_end 0 auto=1",
        "validation_start 0 auto=1",
        "validation_end 0 auto=1",
        "epoch_end 0 auto=1",
        "validation_start 1 auto=1",
        "validation_end 1 auto=1",
        "epoch_end 1 auto=1",
        "validation_start 2 auto=1",
        "validation_end 2 auto=1",
    ];
    assert_eq!(sent, expected, "{}", stderr(&o));
}

#[test]
fn past_the_first_epoch_ends_short_epochs_read_pss_only_as_the_budget_allows() {
    // 60 epochs of 20 ms: reading PSS and USS (a page walk) at every one would take a few
    // % of a core. The first 12 epoch ends are read in full, later ones while the walks
    // stay under 0.5 %, and the ledger counts the others; `--pss-budget off` reads all.
    let code = "import time\nkept = []\nfor e in range(60):\n    kept.append(bytearray(1 << 20)); time.sleep(0.02)\n    print(f'Epoch {e}', flush=True)\n";
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    // Each process's PSS summed (--no-own-cgroup), as where no cgroup can be made.
    for (name, budget) in [("budget", "0.5%"), ("off", "off")] {
        let out = dir.path().join(name);
        let (o, s) = watch(&out, &["--no-inject", "--no-own-cgroup", "--pss-budget", budget], &["python3", "-c", code]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let s = s.unwrap();
        let epochs = s["epochs"].as_u64().unwrap();
        let rss_only = s["rss_only_epoch_ends"].as_u64().unwrap();
        let rows = std::fs::read_to_string(out.join("timeline.csv")).unwrap();
        let ends: Vec<Vec<String>> = rows.lines().filter(|l| l.contains(",epoch_end,")).map(|l| l.split(',').map(String::from).collect()).collect();
        let header: Vec<&str> = rows.lines().find(|l| l.starts_with("t_s,")).unwrap().split(',').collect();
        let pss = header.iter().position(|c| *c == "tree_pss_bytes").unwrap();
        let read: Vec<bool> = ends.iter().map(|r| !r[pss].is_empty()).collect();
        assert!(epochs >= 50, "{epochs} epochs");
        assert!(read.iter().take(12).all(|r| *r), "{read:?}");
        assert_eq!(read.iter().filter(|r| !**r).count() as u64, rss_only, "{read:?}");
        let said = ledger(&s).contains(&format!("PSS and USS were read at {} of {epochs} epoch ends", epochs - rss_only));
        if budget == "off" {
            assert_eq!(rss_only, 0, "{read:?}");
            assert!(!said, "{}", ledger(&s));
        } else {
            assert!(rss_only > 0, "{read:?}");
            assert!(said, "{}", ledger(&s));
            assert_eq!(s["pss_budget"]["cpu_share"].as_f64(), Some(0.005));
        }
        // Read or not, the leak is seen.
        assert_eq!(s["verdict"], "growing", "{}", ledger(&s));
    }    // In a cgroup of its own (where this test may make one): the tree's PSS at every epoch
    // end, for no page walk; each process's USS where memory moved (here at every epoch
    // end) within 4 times the share, and the ledger says at how many.
    let out = dir.path().join("own");
    let (o, s) = watch(&out, &["--no-inject"], &["python3", "-c", code]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = s.unwrap();
    let run: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    if run["tree_pss_from_cgroup"].is_null() {
        eprintln!("SKIPPED (own cgroup): none could be made here; {}", ledger(&s));
        return;
    }
    let rows = std::fs::read_to_string(out.join("timeline.csv")).unwrap();
    let header: Vec<&str> = rows.lines().find(|l| l.starts_with("t_s,")).unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|c| *c == name).unwrap();
    let ends: Vec<Vec<&str>> = rows.lines().filter(|l| l.contains(",epoch_end,")).map(|l| l.split(',').collect()).collect();
    assert!(ends.iter().all(|r| !r[col("tree_pss_bytes")].is_empty()), "tree PSS at every epoch end");
    let epochs = s["epochs"].as_u64().unwrap();
    let uss_read = ends.iter().filter(|r| !r[col("tree_uss_bytes")].is_empty()).count() as u64;
    assert_eq!(epochs - uss_read, s["rss_only_epoch_ends"].as_u64().unwrap());
    assert!(uss_read >= 4 && uss_read < epochs, "USS at {uss_read} of {epochs} epoch ends");
    assert!(ledger(&s).contains(&format!("USS (and a rank's PSS) was read at {uss_read} of {epochs} epoch ends")), "{}", ledger(&s));
    assert!(ledger(&s).contains("The tree's PSS is the count of its memory cgroup"), "{}", ledger(&s));
    assert_eq!(s["verdict"], "growing", "{}", ledger(&s));
}
