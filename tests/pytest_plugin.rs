//! Issue 26: flat-memory regression tests for Python code, and a watch from inside a
//! notebook or script, both from the `diagnose-memory` wheel alone. The wheel goes into a
//! fresh venv (pytest and pytest-xdist visible through a `.pth` file, as a user's own
//! would be); pytest finds the plugin through the `pytest11` entry point, with no flag.
//! Every verdict is the bundled binary's, watching the test's own process.
//!
//! Leaks here are b"\x01" * 8 MiB per repeat (every byte written, so resident): the
//! slopes the plugin reports are checked against it.

use crate::common::wheel::*;
use crate::common::*;

use std::path::{Path, PathBuf};
use std::process::Output;

const MIB: f64 = 1048576.0;

/// The suite's wheel install (tests/common/wheel.rs), where pytest (the user's packages,
/// through the .pth) and the plugin (the wheel's alone) import: checked once.
fn with_pytest() -> &'static Installed {
    static CHECKED: std::sync::Once = std::sync::Once::new();
    let i = installed();
    CHECKED.call_once(|| {
        let o = in_venv(&i.venv, &i.root, "python").args(["-c", "import pytest, xdist, diagnose_memory.pytest_plugin as p; print(p.__file__)"]).output().unwrap();
        ok(&o, "import pytest, xdist and the plugin in the fresh venv (scripts/test installs pytest and pytest-xdist into the project venv)");
        assert!(String::from_utf8_lossy(&o.stdout).starts_with(i.venv.to_str().unwrap()), "the plugin is not the wheel's: {}", String::from_utf8_lossy(&o.stdout));
    });
    i
}

/// A folder of the user's with the suite's files copied in as `test_*.py`.
fn project(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = with_pytest().root.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // The user's project: its own pytest.ini makes it pytest's rootdir.
    std::fs::write(dir.join("pytest.ini"), "[pytest]\n").unwrap();
    for (from, to) in files {
        std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python").join(from), dir.join(to)).unwrap();
    }
    dir
}

/// `python -m pytest ARGS` in `dir`, in the fresh venv's world (pytest is the user's, seen
/// through the .pth: its `pytest` script is in the project venv); returns its output and stdout.
fn pytest(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (Output, String) {
    let started = std::time::Instant::now();
    let o = in_venv(&with_pytest().venv, dir, "python").args(["-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA"]).args(args).envs(env.iter().copied()).output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    eprintln!("pytest {args:?}: {:.1} s", started.elapsed().as_secs_f64());
    (o, text)
}

/// The growth per repeat the plugin's failure message gives for `test`, in bytes, and
/// its interval: "memory grows by +8.0 MiB per repeat (90% interval +7.9 MiB to +8.1 MiB)".
fn reported_growth(text: &str, test: &str) -> (f64, f64, f64) {
    let section = text.split(&format!("_ {test} _")).nth(1).unwrap_or_else(|| panic!("no failure section for {test}:\n{text}"));
    let line = section.lines().find(|l| l.contains("memory grows by")).unwrap_or_else(|| panic!("no growth line for {test}:\n{text}"));
    let mib = |s: &str| -> f64 {
        let s = s.trim().trim_end_matches(',');
        let (n, unit) = s.rsplit_once(' ').unwrap();
        let n: f64 = n.trim_start_matches('+').parse().unwrap_or_else(|_| panic!("'{s}' in {line}"));
        n * match unit {
            "KiB" => 1024.0,
            "MiB" => MIB,
            "GiB" => 1024.0 * MIB,
            _ => 1.0,
        }
    };
    let after = line.split("memory grows by ").nth(1).unwrap();
    let slope = mib(after.split(" per repeat").next().unwrap());
    let iv = after.split("(90% interval ").nth(1).unwrap_or_else(|| panic!("no interval: {line}"));
    let (lo, hi) = iv.split_once(" to ").unwrap();
    (slope, mib(lo), mib(hi.split(')').next().unwrap()))
}

fn summary_of(dir: &Path) -> serde_json::Value {
    summary(dir)
}

/// The pids `processes.csv` of a report names as the main process, and every process name.
fn processes(dir: &Path) -> (Vec<u32>, Vec<String>) {
    let text = std::fs::read_to_string(dir.join("processes.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let (pid, role, name) = (col("pid"), col("role"), col("name"));
    let mut mains = Vec::new();
    let mut names = Vec::new();
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        if f[role] == "main" && !mains.contains(&f[pid].parse().unwrap()) {
            mains.push(f[pid].parse().unwrap());
        }
        names.push(f[name].to_string());
    }
    (mains, names)
}

#[test]
fn a_leaking_test_fails_saying_how_much_grows_and_a_clean_one_passes() {
    let _turn = serial();
    let dir = project("marked", &[("pytest_flat/marked.py", "test_marked.py")]);
    let (o, text) = pytest(&dir, &["test_marked.py", "--diagnose-memory-out", "reports"], &[("FLAT_TEST_PIDS", "pids")]);
    assert_eq!(o.status.code(), Some(1), "{text}\n{}", stderr(&o));
    assert!(text.contains("1 failed, 2 passed"), "{text}");
    assert!(text.contains("FAILED test_marked.py::test_keeps_a_buffer_per_call"), "{text}");
    let (slope, lo, hi) = reported_growth(&text, "test_keeps_a_buffer_per_call");
    eprintln!("leak of 8.0 MiB per repeat: reported {:+.2} MiB/repeat [{:+.2}, {:+.2}]", slope / MIB, lo / MIB, hi / MIB);
    assert!((7.0 * MIB..=10.0 * MIB).contains(&slope), "8 MiB kept per repeat, reported {slope}:\n{text}");
    assert!(lo <= slope && slope <= hi && lo > 0.0, "{lo} {slope} {hi}");
    assert!(text.contains("main process USS") && text.contains("report: "), "{text}");

    // The reports are the binary's, of this very process, without the watcher in its tree.
    let leak = dir.join("reports/test_marked.py_test_keeps_a_buffer_per_call");
    let clean = dir.join("reports/test_marked.py_test_frees_what_it_allocates");
    assert_eq!(summary_of(&leak)["verdict"], "growing");
    assert_eq!(summary_of(&clean)["verdict"], "flat", "{}", ledger(&summary_of(&clean)));
    assert_eq!(summary_of(&clean)["epochs"], 6);
    for f in ["timeline.csv", "summary.md", "memory.png", "report.html"] {
        assert!(leak.join(f).exists(), "{f} not written");
    }
    let (mains, names) = processes(&leak);
    let pid: u32 = std::fs::read_to_string(dir.join("pids/test_keeps_a_buffer_per_call")).unwrap().trim().parse().unwrap();
    assert_eq!(mains, [pid], "the report watched another process than the test's");
    assert!(!names.iter().any(|n| n == "diagnose"), "the watcher counted itself: {names:?}");
    // The unmarked test ran once, untouched, with no report.
    assert!(!dir.join("reports/test_marked.py_test_unmarked_runs_once").exists());
    assert!(text.contains("PASSED test_marked.py::test_unmarked_runs_once"), "{text}");
    // The terminal summary lists each checked test's one line.
    assert!(text.contains("flat memory (diagnose)") && text.contains("test_frees_what_it_allocates: memory is flat over 6 repeats"), "{text}");
}

#[test]
fn the_census_names_the_growing_container_and_a_filling_cache_passes() {
    let _turn = serial();
    let dir = project("census", &[("pytest_flat/census.py", "test_census.py")]);
    let (o, text) = pytest(&dir, &["test_census.py", "--diagnose-memory-out", "reports"], &[]);
    assert_eq!(o.status.code(), Some(1), "{text}\n{}", stderr(&o));
    assert!(text.contains("2 failed, 1 passed"), "{text}");
    let section = text.split("_ test_recorder_keeps_its_history _").nth(1).expect("failure section");
    assert!(section.contains("Python objects that grow") && section.contains("Recorder.history (list)"), "{text}");
    // A second census test in the session takes its own censuses, graphs walked.
    let section = text.split("_ test_outputs_kept_with_their_graphs _").nth(1).expect("failure section");
    assert!(section.contains("Python objects that grow") && section.contains("Tap.outputs (list)"), "{text}");
    let graphs = summary_of(&dir.join("reports/test_census.py_test_outputs_kept_with_their_graphs"));
    assert!(!ledger(&graphs).contains("walked no autograd graphs"), "{}", ledger(&graphs));
    let (slope, _, _) = reported_growth(&text, "test_recorder_keeps_its_history");
    assert!((5.0 * MIB..=8.5 * MIB).contains(&slope), "6 MiB kept per repeat, reported {slope}");
    // The cache: not growing, and said to level off where the binary finds it bounded.
    let cache = summary_of(&dir.join("reports/test_census.py_test_cache_fills_then_holds"));
    assert_ne!(cache["verdict"], "growing", "{}", ledger(&cache));
    assert!(text.contains("PASSED test_census.py::test_cache_fills_then_holds"), "{text}");
    let line = text.lines().find(|l| l.starts_with("test_census.py::test_cache_fills_then_holds: ")).expect("summary line");
    assert_eq!(class_of(&cache, "main_uss_bytes"), "bounded", "{}", ledger(&cache));
    assert!(line.contains("levelled off (bounded, like a cache that fills: passes)"), "{line}");
}

#[test]
fn the_fixture_checks_a_step_after_a_set_up_done_once() {
    let _turn = serial();
    let dir = project("fixture", &[("pytest_flat/fixture.py", "test_fixture.py")]);
    let (o, text) = pytest(&dir, &["test_fixture.py"], &[]);
    assert_eq!(o.status.code(), Some(1), "{text}\n{}", stderr(&o));
    assert!(text.contains("2 failed, 1 passed"), "{text}");
    let (slope, _, _) = reported_growth(&text, "test_step_that_keeps_its_outputs");
    assert!((5.0 * MIB..=8.0 * MIB).contains(&slope), "6 MiB kept per step, reported {slope}:\n{text}");
    assert!(text.contains("PASSED test_fixture.py::test_step_that_frees_its_outputs"), "{text}");
    assert!(text.contains("repeats=1 is too few"), "{text}");

    // No binary: a clear error, not a traceback from inside.
    let marked = project("nobinary", &[("pytest_flat/marked.py", "test_marked.py")]);
    let (o, text) = pytest(&marked, &["test_marked.py", "-k", "frees"], &[("DIAGNOSE_BIN", "/nonexistent/diagnose")]);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(text.contains("the diagnose binary is missing") && text.contains("DIAGNOSE_BIN"), "{text}");
}

#[test]
fn each_xdist_worker_watches_itself() {
    let _turn = serial();
    let dir = project("xdist", &[("pytest_flat/marked.py", "test_marked.py")]);
    let (o, text) = pytest(&dir, &["-n", "2", "test_marked.py", "--diagnose-memory-out", "reports"], &[("FLAT_TEST_PIDS", "pids")]);
    assert_eq!(o.status.code(), Some(1), "{text}\n{}", stderr(&o));
    assert!(text.contains("1 failed, 2 passed"), "{text}");
    let (slope, _, _) = reported_growth(&text, "test_keeps_a_buffer_per_call");
    assert!((7.0 * MIB..=10.0 * MIB).contains(&slope), "{slope}");
    // Each report is under its worker's folder and watched that worker's process.
    let mut seen = 0;
    for test in ["test_keeps_a_buffer_per_call", "test_frees_what_it_allocates"] {
        let pid: u32 = std::fs::read_to_string(dir.join("pids").join(test)).unwrap().trim().parse().unwrap();
        for worker in ["gw0", "gw1"] {
            let report = dir.join("reports").join(worker).join(format!("test_marked.py_{test}"));
            if report.exists() {
                assert_eq!(processes(&report).0, [pid], "{}", report.display());
                seen += 1;
            }
        }
    }
    assert_eq!(seen, 2, "one report per marked test under reports/gw*");
    assert!(text.contains("flat memory (diagnose)") && text.contains("test_frees_what_it_allocates: memory is flat"), "the controller's summary: {text}");
}

#[test]
fn watching_a_loop_from_inside_leaking_and_clean() {
    let _turn = serial();
    let dir = project("watching", &[("pytest_flat/watching_loop.py", "loop.py")]);
    let run = |mode: &str| -> serde_json::Value {
        let started = std::time::Instant::now();
        let o = in_venv(&with_pytest().venv, &dir, "python").args(["loop.py", mode, mode]).output().unwrap();
        ok(&o, &format!("watching() loop, {mode}"));
        eprintln!("watching() {mode}: {:.1} s", started.elapsed().as_secs_f64());
        serde_json::from_str(String::from_utf8_lossy(&o.stdout).lines().last().unwrap()).unwrap()
    };
    let leak = run("leak");
    eprintln!("watching() leak: {leak}");
    assert_eq!(leak["verdict"], "growing", "{leak}");
    assert_eq!(leak["epochs"], 6);
    let slope = leak["uss_slope"].as_f64().unwrap();
    assert!((7.0 * MIB..=10.0 * MIB).contains(&slope), "8 MiB kept per epoch, main USS slope {slope}");
    assert_eq!((leak["running_inside"].as_bool(), leak["running_after"].as_bool()), (Some(true), Some(false)));
    assert!(leak["html_has_plot"].as_bool().unwrap() && leak["html_has_ledger"].as_bool().unwrap(), "{leak}");
    for f in ["timeline.csv", "summary.json", "summary.md", "memory.png", "report.html"] {
        assert!(dir.join("leak").join(f).exists(), "{f} not written");
    }
    // Every mark became a row of the timeline: phases, validation, epoch ends.
    let timeline = std::fs::read_to_string(dir.join("leak/timeline.csv")).unwrap();
    for (phase, n) in [(",train,", 6), (",validation_start,", 6), (",validation_end,", 6), (",epoch_end,", 6)] {
        assert_eq!(timeline.matches(phase).count(), n, "{phase}");
    }
    // The binary's advice for a census is the one that works from inside.
    assert!(ledger(&summary(&dir.join("leak"))).contains("rerun with a census: diagnose_memory.watching(python_objects=True)"), "{}", ledger(&summary(&dir.join("leak"))));
    let clean = run("clean");
    assert_eq!(clean["verdict"], "flat", "{clean}\n{}", ledger(&summary(&dir.join("clean"))));

    // Bad input: an output folder that holds files, a binary that is not there.
    let script = "import diagnose_memory\ntry:\n    diagnose_memory.watching(out='leak').start()\nexcept diagnose_memory.WatchError as e:\n    print('error:', e)\n";
    let o = in_venv(&with_pytest().venv, &dir, "python").args(["-c", script]).output().unwrap();
    ok(&o, "watching() into a used folder");
    assert!(String::from_utf8_lossy(&o.stdout).contains("error: diagnose watch exited at start"), "{}", String::from_utf8_lossy(&o.stdout));
    let script = "import diagnose_memory\ntry:\n    diagnose_memory.watching(out='x', binary='/nonexistent').start()\nexcept FileNotFoundError as e:\n    print('error:', e)\n";
    let o = in_venv(&with_pytest().venv, &dir, "python").args(["-c", script]).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("error: diagnose binary '/nonexistent'"), "{}", String::from_utf8_lossy(&o.stdout));
}
