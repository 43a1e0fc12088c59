//! `diagnose watch` on real PyTorch trainers with DataLoader workers (tests/python/
//! loader_trainer.py): each verdict asserted both ways, the slope against the bytes the
//! script knows it kept.

use crate::common::*;

const MIB: f64 = 1048576.0;

fn trainer(mode: &str, extra: &[&str]) -> Vec<String> {
    let mut v = vec![python().to_string_lossy().into_owned(), py_script("loader_trainer.py"), "--mode".into(), mode.into(), "--epochs".into(), "7".into(), "--sleep".into(), "0.4".into()];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// Watch with --fail-on-leak, expecting it to pass (exit code 0).
fn watch_trainer(mode: &str, extra: &[&str]) -> (tempfile::TempDir, std::process::Output, serde_json::Value) {
    watch_trainer_gated(mode, extra, 0)
}

/// Watch with --fail-on-leak, expecting exit code `code` (3: growing).
fn watch_trainer_gated(mode: &str, extra: &[&str], code: i32) -> (tempfile::TempDir, std::process::Output, serde_json::Value) {
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(mode);
    let cmd = trainer(mode, extra);
    let cmd: Vec<&str> = cmd.iter().map(|s| s.as_str()).collect();
    let (o, s) = watch(&out, &["--fail-on-leak"], &cmd);
    assert_eq!(o.status.code(), Some(code), "{}", stderr(&o));
    (dir, o, s.expect("summary written"))
}

fn slope(s: &serde_json::Value, column: &str) -> f64 {
    series(s, column)["slope_bytes_per_epoch"].as_f64().unwrap()
}

#[test]
fn clean_trainer_with_workers_is_flat() {
    let (dir, o, s) = watch_trainer_gated("clean", &["--workers", "2"], 0);
    assert_eq!(s["verdict"], "flat", "{}", ledger(&s));
    // The injected helper's DataLoader passes mark the epochs (they win over the script's
    // epoch lines): a new pass ends the epoch before, so the last epoch has no end.
    assert_eq!(s["epochs"], 6);
    for c in ["tree_pss_bytes", "main_uss_bytes"] {
        assert_eq!(class_of(&s, c), "flat", "{c}: {}", ledger(&s));
    }
    // The workers came and went (non-persistent): processes.csv saw them.
    let procs = std::fs::read_to_string(dir.path().join("clean/processes.csv")).unwrap();
    assert!(procs.lines().next().unwrap().starts_with("t_s,phase,pid,ppid,role,rank,name,rss_bytes,pss_bytes,uss_bytes,swap_bytes,gpu_bytes"));
    assert!(procs.contains(",worker,"), "no worker rows");
    // The child's output passed through unchanged.
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("Epoch 6 loss") && stdout.contains("done"), "{stdout}");
}

#[test]
fn main_process_leak_is_growing_and_named() {
    let (dir, _o, s) = watch_trainer_gated("main-leak", &["--workers", "2", "--leak-mib", "16"], 3);
    assert_eq!(s["verdict"], "growing");
    assert_eq!(class_of(&s, "main_uss_bytes"), "growing");
    assert_eq!(class_of(&s, "tree_pss_bytes"), "growing");
    // Never less than what the script keeps; a little more is the main process's own
    // churn (workers forked each epoch share its pages for a while): 17.8 seen in CI.
    let per_epoch = slope(&s, "main_uss_bytes") / MIB;
    assert!((15.0..20.0).contains(&per_epoch), "main USS +{per_epoch:.1} MiB/epoch, the script keeps 16");
    assert!(ledger(&s).contains("The main process grows"), "{}", ledger(&s));
    assert!(!ledger(&s).contains("The workers grow"));
    // compare reads watch folders too, on the tree's series by default.
    let d = dir.path().join("main-leak");
    let o = run(&["compare", d.to_str().unwrap(), d.to_str().unwrap(), "--out", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let md = std::fs::read_to_string(dir.path().join("compare.md")).unwrap();
    assert!(md.contains("tree_pss_bytes") && md.contains("epoch end"), "{md}");
}

#[test]
fn worker_leak_is_growing_in_the_workers() {
    let (_d, _o, s) = watch_trainer_gated("worker-leak", &["--workers", "4", "--leak-mib", "16"], 3);
    assert_eq!(s["verdict"], "growing");
    assert_eq!(class_of(&s, "workers_uss_bytes"), "growing");
    assert_ne!(class_of(&s, "main_uss_bytes"), "growing");
    let per_epoch = slope(&s, "workers_uss_bytes") / MIB;
    assert!((per_epoch - 16.0).abs() < 2.4, "workers USS +{per_epoch:.1} MiB/epoch, the script keeps 16");
    let l = ledger(&s);
    assert!(l.contains("The workers grow") && l.contains("The main process does not grow"), "{l}");
}

#[test]
fn copy_on_read_workers_are_bounded_not_a_leak() {
    let (_d, _o, s) = watch_trainer("cow", &["--workers", "4", "--epochs", "8"]);
    assert_eq!(s["verdict"], "flat", "{}", ledger(&s));
    let w = series(&s, "workers_uss_bytes");
    // It did grow, a lot: the test must see the growth it excuses.
    assert!(w["slope_bytes_per_epoch"].as_f64().unwrap() > 8.0 * MIB, "{w}");
    assert_eq!((w["class"].as_str(), w["cause"].as_str()), (Some("bounded"), Some("copy-on-write")));
    assert_eq!(class_of(&s, "tree_rss_bytes"), "flat");
    let ceiling = series(&s, "tree_pss_bytes")["ceiling_bytes"].as_f64().unwrap();
    assert!(ceiling > series(&s, "tree_pss_bytes")["last_bytes"].as_f64().unwrap());
    let l = ledger(&s);
    assert!(l.contains("Copy-on-write, not a leak") && l.contains("numpy arrays"), "{l}");
    assert!(l.contains("counts a page shared between its processes once per process"), "{l}");
}

#[test]
fn markers_mark_epochs_and_supersede_log_lines() {
    // The default epoch pattern also matches the script's lines: markers win, once each.
    let (_d, _o, s) = watch_trainer("clean", &["--workers", "0", "--markers", "--epochs", "5"]);
    assert_eq!(s["epochs"], 5);
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("only-markers");
    let cmd = trainer("clean", &["--workers", "0", "--markers", "--epochs", "4"]);
    let cmd: Vec<&str> = cmd.iter().map(|s| s.as_str()).collect();
    let (o, s) = watch(&out, &["--epoch-pattern", "^NEVER$"], &cmd);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(s.unwrap()["epochs"], 4);
    let plain = trainer("clean", &["--workers", "0", "--epochs", "4"]);
    let plain: Vec<&str> = plain.iter().map(|s| s.as_str()).collect();
    let (o, s) = watch(&dir.path().join("none"), &["--epoch-pattern", "^NEVER$", "--no-inject"], &plain);
    assert_eq!(o.status.code(), Some(0));
    let s = s.unwrap();
    assert_eq!(s["epochs"], 0);
    assert!(ledger(&s).contains("No epoch boundary was seen"), "{}", ledger(&s));
}

#[test]
fn marker_module_is_a_safe_no_op_without_diagnose() {
    let code = "import sys; sys.path.insert(0, 'python'); import diagnose_markers as dm\n\
assert not dm.enabled()\n\
assert dm.epoch_end(3) is False and dm.phase('augment', 1, 2) is False\n\
import os; os.environ['DIAGNOSE_MARKER_SOCKET'] = '/nonexistent/socket'\n\
assert dm.enabled() and dm.epoch_end(3) is False and dm.epoch_end('x') is False and dm.phase('bad name', 1) is False\n\
print('ok')";
    let o = std::process::Command::new(python()).arg("-c").arg(code).current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "ok", "{}", stderr(&o));
}

#[test]
fn marker_module_installs_with_pip_from_the_checkout() {
    let dir = tempfile::tempdir().unwrap();
    // A copy, so that the build leaves nothing in the checkout.
    let src = tempfile::tempdir().unwrap();
    for f in ["pyproject.toml", "diagnose_markers.py"] {
        std::fs::copy(format!("{}/python/{f}", env!("CARGO_MANIFEST_DIR")), src.path().join(f)).unwrap();
    }
    let o = std::process::Command::new(python())
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-build-isolation", "--no-deps", "--target"])
        .arg(dir.path())
        .arg(src.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let o = std::process::Command::new(python())
        .args(["-c", "import diagnose_markers as dm; print(dm.__file__, dm.enabled())"])
        .env("PYTHONPATH", dir.path())
        .env_remove("DIAGNOSE_MARKER_SOCKET")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.starts_with(dir.path().to_str().unwrap()) && text.trim().ends_with("False"), "{text}{}", stderr(&o));
}

#[test]
fn gpu_allocator_figures_from_markers_reach_the_gpu_ledger() {
    // What diagnose_markers sends when torch uses CUDA (no GPU here: sent by hand).
    let code = [
        "import os, socket, time",
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)",
        "for e in range(6):",
        "    a = (1 << 30) + e * (64 << 20)",
        "    s.sendto(('epoch_end %d gpu_allocated=%d gpu_reserved=%d gpu_peak_allocated=%d gpu_peak_reserved=%d' % (e, a, 2 * a, a, 2 * a)).encode(), os.environ['DIAGNOSE_MARKER_SOCKET'])",
        "    time.sleep(0.2)",
    ]
    .join("\n");
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    let (o, s) = watch(&dir.path().join("gpu"), &[], &["python3", "-c", &code]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = s.unwrap();
    assert_eq!(s["epochs"], 6);
    let g = series(&s, "gpu_allocated_bytes");
    assert_eq!(g["class"], "growing");
    assert!((g["slope_bytes_per_epoch"].as_f64().unwrap() - 64.0 * MIB).abs() < 1.0);
    assert_eq!(s["verdict"], "growing");
    // The census helper's way: a `census` row after the epoch end completes its point.
    let code = code.replace("'epoch_end %d gpu", "'epoch_end %d' % e).encode(), os.environ['DIAGNOSE_MARKER_SOCKET']); s.sendto(('phase census %d gpu");
    let (o, s) = watch(&dir.path().join("gpu-census"), &[], &["python3", "-c", &code]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = s.unwrap();
    assert_eq!(s["epochs"], 6);
    assert_eq!(series(&s, "gpu_allocated_bytes")["class"], "growing", "{}", ledger(&s));
}
