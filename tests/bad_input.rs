//! Bad input gets a clear message and a non-zero exit, and overwrites nothing.

use crate::common::*;

fn copy_fixture(dir: &std::path::Path, text: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("timeline.csv"), text).unwrap();
}

#[test]
fn report_on_a_missing_timeline_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(&["report", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("timeline.csv"), "{}", stderr(&o));
}

#[test]
fn garbled_timeline_names_file_and_line_and_overwrites_nothing() {
    let text = std::fs::read_to_string(fixture("clean-5epochs.csv")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[7] = "12.5,episode_end,0,4,,lots-of-bytes";
    copy_fixture(dir.path(), &(lines.join("\n") + "\n"));
    std::fs::write(dir.path().join("summary.json"), "previous").unwrap();
    let o = run(&["report", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("timeline.csv:8:"), "{err}");
    assert_eq!(std::fs::read_to_string(dir.path().join("summary.json")).unwrap(), "previous");
    assert!(!dir.path().join("memory.png").exists());
}

#[test]
fn foreign_file_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture(dir.path(), "a,b\n1,2\n");
    let o = run(&["report", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not a profiler timeline"), "{}", stderr(&o));
}

#[test]
fn truncated_timeline_still_reports() {
    let text = std::fs::read_to_string(fixture("clean-5epochs.csv")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    copy_fixture(dir.path(), &text[..text.len() * 2 / 3]);
    let o = run(&["report", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(dir.path());
    assert_eq!(s["incomplete"], true);
    assert!(std::fs::read_to_string(dir.path().join("summary.md")).unwrap().contains("did not finish"));
}

#[test]
fn run_refuses_a_non_empty_out_dir_without_force() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keep.txt"), "mine").unwrap();
    let o = run(&["run", "--out", dir.path().to_str().unwrap(), "--epochs", "1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(dir.path().join("keep.txt")).unwrap(), "mine");
}

#[test]
fn run_fails_at_start_on_an_unwritable_out_dir() {
    let o = run(&["run", "--out", "/proc/self/nope", "--epochs", "1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("/proc/self/nope"), "{}", stderr(&o));
}

#[test]
fn bad_flags_are_usage_errors() {
    for (args, needle) in [
        (&["run", "--n-way", "0"][..], "--n-way"),
        (&["run", "--frame-cache-size", "-3"][..], "-3"),
        (&["run", "--leak", "everything"][..], "everything"),
        (&["run", "--epochz", "3"][..], "--epochz"),
        (&["run", "--device", "cuda:7"][..], "cuda"),
        (&["watch", "--pss-budget", "0.5", "--", "true"][..], "0.5%"),
        (&["watch", "--pss-budget", "0%", "--", "true"][..], "above 0%"),
    ] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn compare_prints_a_before_after_table() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    copy_fixture(&a, &std::fs::read_to_string(fixture("clean-5epochs.csv")).unwrap());
    copy_fixture(&b, &std::fs::read_to_string(fixture("seed-before-3epochs.csv")).unwrap());
    let o = run(&["compare", a.to_str().unwrap(), b.to_str().unwrap(), "--out", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    for needle in ["| Phase | Before | After | Change |", "triplet batches", "validation", "peak total"] {
        assert!(table.contains(needle), "{needle} missing:\n{table}");
    }
    // Trends before → after; no `start` row (the moment before training).
    assert!(table.contains("| Series | Before | After |"), "{table}");
    assert!(!table.contains("| start |"), "{table}");
    // compare.md holds every series shown, not only the first.
    let md = std::fs::read_to_string(dir.path().join("compare.md")).unwrap();
    assert_eq!(md.matches("| Phase | Before | After | Change |").count(), table.matches("| Phase | Before | After | Change |").count());
    assert!(md.matches("| Phase |").count() >= 2, "{md}");
    assert_plain_csv(dir.path(), &["compare.csv"]);
    let missing = run(&["compare", a.to_str().unwrap(), "/nonexistent/run"]);
    assert_eq!(missing.status.code(), Some(1));
    // Without --out it prints only, says so, and writes nothing into either run.
    let printed = run(&["compare", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(printed.status.code(), Some(0), "{}", stderr(&printed));
    assert!(String::from_utf8_lossy(&printed.stdout).contains("printed only"));
    assert!(!b.join("compare.md").exists() && !a.join("compare.md").exists());
    // An unknown series is a usage error naming the valid ones.
    let bad = run(&["compare", a.to_str().unwrap(), b.to_str().unwrap(), "--series", "nosuch_bytes"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("nosuch_bytes") && stderr(&bad).contains("peak_rss_bytes"), "{}", stderr(&bad));
}

#[test]
fn report_without_run_json_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("clean-16epochs").join("timeline.csv"), dir.path().join("timeline.csv")).unwrap();
    let o = run(&["report", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("has no run.json") && stderr(&o).contains("out-of-memory projection"), "{}", stderr(&o));
    // With it, nothing is said.
    std::fs::copy(fixture("clean-16epochs").join("run.json"), dir.path().join("run.json")).unwrap();
    let o = run(&["report", dir.path().to_str().unwrap()]);
    assert!(!stderr(&o).contains("run.json"), "{}", stderr(&o));
    // One epoch is "1 epoch", and an insufficient verdict is explained once.
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(!text.contains("(1 epochs"), "{text}");
}
