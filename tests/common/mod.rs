//! Helpers for the end-to-end tests: run the `diagnose` binary, read its outputs.
#![allow(dead_code)]

pub mod wheel;

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

/// The project's venv python (scripts/env.sh installs it with torch).
pub fn python() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python")
}

/// A test script under tests/python.
pub fn py_script(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python").join(name).to_string_lossy().into_owned()
}

/// A binary of the workspace, built next to this test's own (scripts/test builds them all).
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().parent().unwrap().join(name);
    assert!(path.exists(), "{} not built: run scripts/test (it builds every binary first)", path.display());
    path
}

/// Run diagnose with `args` and `extra_env`, capturing its output.
pub fn run_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    diagnose().args(args).envs(env.iter().copied()).output().expect("diagnose starts")
}

/// `diagnose watch --out OUT --interval 200ms ARGS -- CMD...`; returns its output and,
/// when written, summary.json.
pub fn watch(out: &Path, args: &[&str], cmd: &[&str]) -> (Output, Option<serde_json::Value>) {
    let mut all = vec!["watch", "--out", out.to_str().unwrap(), "--interval", "200ms"];
    all.extend_from_slice(args);
    all.push("--");
    all.extend_from_slice(cmd);
    let output = run(&all);
    let summary = std::fs::read_to_string(out.join("summary.json")).ok().map(|t| serde_json::from_str(&t).expect("summary.json parses"));
    (output, summary)
}

/// The class of a series in a summary ("" when the series is absent).
pub fn class_of(summary: &serde_json::Value, column: &str) -> String {
    summary["series"].as_array().unwrap().iter().find(|s| s["column"] == column).map_or(String::new(), |s| s["class"].as_str().unwrap().to_string())
}

/// The ledger lines of a summary, joined.
pub fn ledger(summary: &serde_json::Value) -> String {
    summary["ledger"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect::<Vec<_>>().join("\n")
}

/// Tests that run real trainers take turns: they measure memory, and 2 cores are few.
pub static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Take the turn, even if a test that held it failed.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Wait until `dir/timeline.csv` holds `epochs` epoch ends (a run in progress), at most
/// `limit`.
pub fn wait_for_epochs(dir: &Path, epochs: usize, limit: std::time::Duration) {
    let timeline = dir.join("timeline.csv");
    let deadline = std::time::Instant::now() + limit;
    while std::fs::read_to_string(&timeline).map_or(0, |t| t.matches(",epoch_end,").count()) < epochs {
        assert!(std::time::Instant::now() < deadline, "{epochs} epochs not recorded in {limit:?}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Open every CSV under `dir` with Python's own csv module (tests/common/plain_csv.py):
/// a header first, rows as long as it, numbers in numeric columns. `expected` must be
/// among them. Returns the script's per-file lines.
pub fn assert_plain_csv(dir: &Path, expected: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/plain_csv.py");
    let o = Command::new("python3").arg(&script).arg(dir).output().expect("python3 runs");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "a CSV in {} does not open as plain CSV: {}{out}", dir.display(), stderr(&o));
    for f in expected {
        assert!(out.lines().any(|l| l.starts_with(&format!("{f}:"))), "{f} was not read: {out}");
    }
    out
}

/// The Python objects (containers and lone tensors, not type rows) of a watch summary
/// classed growing, growing-first order kept.
pub fn growing_objects(summary: &serde_json::Value) -> Vec<&serde_json::Value> {
    summary["censuses"]["objects"].as_array().unwrap().iter().filter(|o| o["kind"] != "type" && o["class"] == "growing").collect()
}

/// The bytes-per-epoch slope of a series or object entry of a summary.
pub fn slope_of(v: &serde_json::Value) -> f64 {
    v["slope_bytes_per_epoch"].as_f64().unwrap()
}

/// A memory cgroup of its own (v1, as on these machines) with a limit, removed when
/// dropped; `None` where one cannot be made (not root, cgroup v2).
pub struct Cgroup(pub PathBuf);

impl Cgroup {
    /// `/sys/fs/cgroup/memory/diagnose-test-NAME-PID` limited to `limit` bytes.
    pub fn new(name: &str, limit: u64) -> Option<Cgroup> {
        let dir = Path::new("/sys/fs/cgroup/memory").join(format!("diagnose-test-{name}-{}", std::process::id()));
        std::fs::create_dir(&dir).ok()?;
        let cg = Cgroup(dir);
        std::fs::write(cg.0.join("memory.limit_in_bytes"), limit.to_string()).ok()?;
        let _ = std::fs::write(cg.0.join("memory.swappiness"), "0");
        Some(cg)
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// `diagnose watch --out OUT --interval 100ms -- CMD...` run inside the memory cgroup
/// `cg`: diagnose joins it first, and its child inherits it.
pub fn watch_in_cgroup(cg: &Cgroup, out: &Path, cmd: &[String]) -> Output {
    let script = format!("echo $$ > {}/cgroup.procs && exec \"$@\"", cg.0.display());
    let mut args: Vec<String> = vec!["-c".into(), script, "sh".into(), env!("CARGO_BIN_EXE_diagnose").into(), "watch".into(), "--out".into(), out.to_str().unwrap().into(), "--interval".into(), "100ms".into(), "--".into()];
    args.extend(cmd.iter().cloned());
    Command::new("sh").args(&args).output().expect("sh runs")
}
