//! The clean reference trainer, run as the README runs it: every report is written, the
//! verdict is flat (4 epochs: 3 after warm-up, the fewest that can say flat), and `diagnose report` rebuilds the same verdict from the timeline.

use crate::common::*;

#[test]
fn clean_run_is_flat_and_reports_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("clean");
    let (output, s) = run_into(&out, &["--epochs", "4", "--fail-on-leak", "--no-progress"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(s["verdict"], "flat", "{s:#}");
    assert_eq!(s["epochs"], 4);
    for f in ["timeline.csv", "phases.csv", "summary.json", "summary.md", "memory.png", "report.html"] {
        let len = std::fs::metadata(out.join(f)).unwrap_or_else(|_| panic!("{f} missing")).len();
        assert!(len > 100, "{f} is nearly empty");
    }
    assert!(std::fs::metadata(out.join("memory.png")).unwrap().len() > 20_000, "plot has content");
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(md.contains("- GPU: not recorded: the run did not use a GPU"), "{md}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("verdict: flat"), "{stdout}");

    let phases = std::fs::read_to_string(out.join("phases.csv")).unwrap();
    for phase in ["training episodes", "triplet batches", "validation", "epoch end", "peak total"] {
        assert!(phases.contains(phase), "phases.csv lacks {phase}:\n{phases}");
    }

    // Every CSV opens in a reader that knows nothing about us; the facts are in run.json.
    assert_plain_csv(&out, &["timeline.csv", "phases.csv"]);
    let facts: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!((facts["format"].as_u64(), facts["recorder"].as_str()), (Some(3), Some("run")), "{facts}");
    assert!(facts["mem_limit_bytes"].as_u64().unwrap() > 0, "{facts}");

    // Rebuild from the timeline alone, after deleting the reports.
    let before = std::fs::read_to_string(out.join("summary.json")).unwrap();
    for f in ["phases.csv", "summary.json", "summary.md", "memory.png"] {
        std::fs::remove_file(out.join(f)).unwrap();
    }
    let rebuilt = run(&["report", out.to_str().unwrap(), "--fail-on-leak"]);
    assert_eq!(rebuilt.status.code(), Some(0), "{}", stderr(&rebuilt));
    assert_eq!(std::fs::read_to_string(out.join("summary.json")).unwrap(), before);
    assert!(out.join("memory.png").exists());
}
