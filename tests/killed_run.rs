//! A run killed with SIGKILL leaves its data on disk, and `diagnose report` rebuilds the
//! reports from it.

use crate::common::*;
use std::time::Duration;

#[test]
fn killed_run_can_be_reported() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("killed");
    let mut child = diagnose()
        .args(["run", "--out", out.to_str().unwrap(), "--epochs", "50"])
        .args(QUICK)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_epochs(&out, 3, Duration::from_secs(300));
    child.kill().unwrap();
    child.wait().unwrap();
    // The live verdict left the summary of the last epoch end; the other reports come
    // from `report`.
    assert_eq!(summary(&out)["incomplete"], true);
    assert!(!out.join("memory.png").exists());
    std::fs::remove_file(out.join("summary.json")).unwrap();
    let o = run(&["report", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&out);
    assert_eq!(s["incomplete"], true);
    assert!(s["epochs"].as_u64().unwrap() >= 3);
    assert!(out.join("memory.png").exists());
}
