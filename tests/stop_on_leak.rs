//! The verdict while the run goes: each epoch end prints it and rewrites summary.json (a
//! killed run leaves a current summary), and --stop-on-leak ends a leaking run early with
//! the full report and exit code 3, while a clean run completes. For `run` (the reference
//! trainer) and `watch` (a real PyTorch script, with log-line epochs and with fixed
//! windows), both ways.

use crate::common::*;

#[test]
#[ignore = "soak: SOAK=1 scripts/test (about 50 s; the watched trainer is stopped, and the clean one let run, by default: the same live verdict)"]
fn run_stops_the_seed_leak_early_and_lets_the_clean_run_finish() {
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("leak");
    let mut args = vec!["run", "--out", out.to_str().unwrap(), "--preset", "seed-before", "--leak", "validation-accumulators", "--epochs", "50", "--stop-on-leak"];
    args.extend_from_slice(QUICK);
    let o = run(&args);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let s = summary(&out);
    let epochs = s["epochs"].as_u64().unwrap();
    eprintln!("run --stop-on-leak: stopped after {epochs} of 50 epochs");
    assert!((3..=8).contains(&epochs), "stopped after {epochs} of 50 epochs");
    assert_eq!(s["verdict"], "growing");
    assert_eq!(s["incomplete"], false, "the full report, after the finish row");
    let err = stderr(&o);
    assert!(err.contains("growing since epoch") && err.contains("stopping (--stop-on-leak)"), "{err}");
    assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("stopped early (--stop-on-leak): growth confirmed after {epochs} of 50 epochs")));
    for f in ["timeline.csv", "run.json", "phases.csv", "summary.md", "memory.png"] {
        assert!(out.join(f).exists(), "{f}");
    }

    let clean = dir.path().join("clean");
    let mut args = vec!["run", "--out", clean.to_str().unwrap(), "--epochs", "8", "--stop-on-leak"];
    args.extend_from_slice(QUICK);
    let o = run(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(summary(&clean)["epochs"], 8);
    // Each epoch's verdict so far was printed as it ended.
    let err = stderr(&o);
    assert_eq!(err.matches("diagnose: epoch ").count(), 8, "{err}");
    assert!(err.contains("diagnose: epoch 7: heap allocated") && err.contains("flat so far"), "{err}");
}

#[test]
fn a_killed_run_leaves_a_current_summary() {
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("killed");
    let mut args = vec!["run", "--out", out.to_str().unwrap(), "--leak", "validation-accumulators", "--epochs", "50"];
    args.extend_from_slice(QUICK);
    let mut child = diagnose().args(&args).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    wait_for_epochs(&out, 4, std::time::Duration::from_secs(120));
    std::thread::sleep(std::time::Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    let s = summary(&out);
    assert!(s["epochs"].as_u64().unwrap() >= 4, "{}", s["epochs"]);
    assert_eq!(s["incomplete"], true);
    assert_eq!(s["verdict"], "growing", "the leak was already visible: {}", ledger(&s));
}

#[test]
fn watch_stops_a_leaking_python_trainer_and_not_a_clean_one() {
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let trainer = |mode: &str, epochs: &str| -> Vec<String> {
        [python().to_string_lossy().as_ref(), &py_script("loader_trainer.py"), "--mode", mode, "--epochs", epochs, "--workers", "0", "--leak-mib", "24", "--sleep", "0.3"].iter().map(|s| s.to_string()).collect()
    };
    let cmd = trainer("main-leak", "40");
    let cmd: Vec<&str> = cmd.iter().map(|s| s.as_str()).collect();
    let out = dir.path().join("leak");
    let (o, s) = watch(&out, &["--stop-on-leak"], &cmd);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let s = s.expect("summary written");
    let epochs = s["epochs"].as_u64().unwrap();
    eprintln!("watch --stop-on-leak: stopped after {epochs} of 40 epochs");
    assert!((3..=10).contains(&epochs), "stopped after {epochs} of 40 epochs");
    assert_eq!(s["verdict"], "growing");
    assert_eq!(s["end"]["signal"].as_i64(), Some(15), "SIGTERM ended it: {}", s["end"]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(!stdout.contains("Epoch 39"), "the trainer ran to the end");
    assert!(stdout.contains("stopped early (--stop-on-leak)"), "{stdout}");

    let cmd = trainer("clean", "6");
    let cmd: Vec<&str> = cmd.iter().map(|s| s.as_str()).collect();
    let (o, s) = watch(&dir.path().join("clean"), &["--stop-on-leak"], &cmd);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // Epochs from the DataLoader's passes: 6 epochs, 5 ends (the last pass ends none).
    assert_eq!(s.unwrap()["epochs"], 5);
    assert!(stderr(&o).contains("diagnose: epoch 4: tree PSS"), "{}", stderr(&o));
}

/// Fixed one-second windows cut through `import torch` and the DataLoader workers starting
/// (issue 18: a clean script was stopped after 3 s, "growing since epoch 1"). Start-up is
/// warm-up: the clean script runs to its end; the same script with a leak is stopped.
#[test]
#[ignore = "soak: SOAK=1 scripts/test (about 36 s)"]
fn watch_under_fixed_windows_never_stops_a_clean_job_and_stops_a_leak() {
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let trainer = |mode: &str| -> Vec<String> {
        // Persistent workers: they start once, in start-up. (Workers forked anew at each
        // pass live for part of a second: a 1-s window that catches them reads +16 MiB,
        // and in CI enough late windows did so to stop the clean job.)
        [python().to_string_lossy().as_ref(), &py_script("loader_trainer.py"), "--mode", mode, "--epochs", "30", "--workers", "2", "--persistent", "--leak-mib", "24", "--sleep", "0.5"].iter().map(|s| s.to_string()).collect()
    };
    let flags = ["--window", "1s", "--stop-on-leak", "--epoch-pattern", "^NEVER$"];
    let cmd = trainer("clean");
    let (o, s) = watch(&dir.path().join("clean"), &flags, &cmd.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = s.expect("summary written");
    assert_ne!(s["verdict"], "growing", "{}", ledger(&s));
    assert!(String::from_utf8_lossy(&o.stdout).contains("Epoch 29"), "the clean job ran to its end");
    let pss = series(&s, "tree_pss_bytes");
    eprintln!("clean under 1-s windows: {} windows, tree PSS {} ({} warm-up)", s["epochs"], pss["class"], pss["warmup_epochs"].as_array().unwrap().len());

    let cmd = trainer("main-leak");
    let (o, s) = watch(&dir.path().join("leak"), &flags, &cmd.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let s = s.expect("summary written");
    assert_eq!(s["verdict"], "growing", "{}", ledger(&s));
    assert!(!String::from_utf8_lossy(&o.stdout).contains("Epoch 29"), "the leaking job was stopped");
}
