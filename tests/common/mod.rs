//! Helpers for the end-to-end tests: run the `diagnose` binary, read its outputs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The diagnose binary cargo built for these tests.
pub fn diagnose() -> Command {
    Command::new(env!("CARGO_BIN_EXE_diagnose"))
}

/// Run diagnose with `args`; returns its output.
pub fn run(args: &[&str]) -> Output {
    diagnose().args(args).output().expect("diagnose starts")
}

/// A small trainer configuration: enough epochs for a verdict, quick on 2 cores.
pub const QUICK: &[&str] = &["--episodes-per-epoch", "8", "--val-episodes", "5", "--no-progress"];

/// `diagnose run` into `out` with `extra` flags; panics with its stderr on failure
/// other than the leak exit code.
pub fn run_into(out: &Path, extra: &[&str]) -> (Output, serde_json::Value) {
    let mut args = vec!["run", "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    let output = run(&args);
    let code = output.status.code();
    assert!(matches!(code, Some(0) | Some(3)), "diagnose {args:?} failed ({code:?}):\n{}", String::from_utf8_lossy(&output.stderr));
    (output, summary(out))
}

/// summary.json of a run folder.
pub fn summary(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("summary.json")).expect("summary.json written");
    serde_json::from_str(&text).expect("summary.json parses")
}

/// The verdict entry of one series.
pub fn series<'a>(summary: &'a serde_json::Value, column: &str) -> &'a serde_json::Value {
    summary["series"].as_array().unwrap().iter().find(|s| s["column"] == column).unwrap_or_else(|| panic!("no series {column}"))
}

/// The call sites classed growing in a summary, growing-first order kept (top first).
pub fn growing_sites(summary: &serde_json::Value) -> Vec<&serde_json::Value> {
    summary["sites"].as_array().unwrap().iter().filter(|v| v["class"] == "growing").collect()
}

/// A recorded fixture's path.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// Text of stderr.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
