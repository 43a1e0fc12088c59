//! Issue 19: the light `diagnose` builds where there is no torch. `cargo build -p diagnose`
//! with no LIBTORCH, no LIBTORCH_USE_PYTORCH and no Python that can import torch on PATH;
//! nothing of tch is in its dependency tree, nothing of libtorch in its binary; it watches
//! a command; and `diagnose run` without `diagnose-run` in reach says in one line how to
//! build it.

use crate::common::*;

use std::path::{Path, PathBuf};
use std::process::Command;

/// cargo, in an environment without torch: PATH holds cargo's folder and the system's
/// (whose python3 has no torch), and none of the variables that point tch at a libtorch.
fn cargo_without_torch() -> Command {
    let cargo = PathBuf::from(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    let cargo_dir = cargo.parent().map(Path::to_path_buf).unwrap_or_default();
    let path = format!("{}:/usr/bin:/bin", cargo_dir.display());
    let o = Command::new("/usr/bin/env").args(["-i", &format!("PATH={path}"), "python3", "-c", "import torch"]).output().unwrap();
    assert!(!o.status.success(), "torch is importable from {path}: the test would prove nothing");
    let mut c = Command::new(&cargo);
    c.env_remove("LIBTORCH").env_remove("LIBTORCH_USE_PYTORCH").env_remove("LIBTORCH_LIB").env_remove("VIRTUAL_ENV").env("PATH", path).current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

#[test]
#[ignore = "soak: SOAK=1 scripts/test (a build of its own, about 30 s warm; tests/wheel.rs builds the light CLI by default)"]
fn the_light_cli_builds_and_watches_without_torch() {
    let _turn = serial();
    let tree = cargo_without_torch().args(["tree", "--offline", "-p", "diagnose", "-e", "normal,build", "--prefix", "none"]).output().unwrap();
    assert!(tree.status.success(), "cargo tree: {}", stderr(&tree));
    let tree = String::from_utf8_lossy(&tree.stdout);
    for heavy in ["tch ", "torch-sys ", "reference-trainer "] {
        assert!(!tree.lines().any(|l| l.starts_with(heavy)), "diagnose depends on {heavy}:\n{tree}");
    }

    // The shared target folder: its dependencies are already built there (scripts/test).
    let started = std::time::Instant::now();
    let o = cargo_without_torch().args(["build", "--release", "-p", "diagnose"]).output().unwrap();
    assert!(o.status.success(), "cargo build -p diagnose without torch failed:\n{}", stderr(&o));
    eprintln!("cargo build --release -p diagnose without torch: {:.1} s", started.elapsed().as_secs_f64());
    let exe = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/diagnose");
    let ldd = Command::new("ldd").arg(&exe).output().unwrap();
    assert!(!String::from_utf8_lossy(&ldd.stdout).contains("torch"), "{}", String::from_utf8_lossy(&ldd.stdout));

    // A copy alone in its folder: watches a command; `run` finds no diagnose-run.
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("diagnose");
    std::fs::copy(&exe, &bin).unwrap();
    let out = dir.path().join("out");
    let o = Command::new(&bin)
        .env("PATH", "/usr/bin:/bin")
        .args(["watch", "--out", out.to_str().unwrap(), "--interval", "100ms", "--", "sh", "-c", "for e in 0 1 2 3; do echo \"epoch $e\"; sleep 0.3; done"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(summary(&out)["epochs"], 4, "{}", stderr(&o));

    let o = Command::new(&bin).env("PATH", "/usr/bin:/bin").args(["run", "--epochs", "1"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("diagnose-run") && err.contains("cargo build --release -p diagnose-run"), "{err}");
}
