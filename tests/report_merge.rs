//! `diagnose report --merge DIR...`: folders with different epoch counts, recorded in
//! process and watched from outside, and a run that was killed merge into one report that
//! says which is incomplete; a folder that is not a run folder is a clear error.

use crate::common::*;

#[test]
fn merges_nodes_and_marks_the_incomplete_one() {
    let dir = tempfile::tempdir().unwrap();
    // Node a: a recorded clean 5-epoch run of the reference trainer (in process).
    let a = dir.path().join("node-a");
    std::fs::create_dir(&a).unwrap();
    std::fs::copy(fixture("clean-5epochs.csv"), a.join("timeline.csv")).unwrap();
    // Node b: a watched 8-epoch leak (4 MiB per epoch).
    let b = dir.path().join("node-b");
    let grow = [python().to_string_lossy().into_owned(), py_script("grow.py"), "--steps".into(), "8".into(), "--mib".into(), "4".into()];
    let (o, _) = watch(&b, &[], &grow.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // Node c: the same run, its recorder killed after its sixth epoch end (no finish row).
    let c = dir.path().join("node-c");
    std::fs::create_dir(&c).unwrap();
    let text = std::fs::read_to_string(b.join("timeline.csv")).unwrap();
    let mut cut = String::new();
    for line in text.lines() {
        cut.push_str(line);
        cut.push('\n');
        if line.contains(",epoch_end,5,") {
            break;
        }
    }
    std::fs::write(c.join("timeline.csv"), cut).unwrap();

    let out = dir.path().join("merged");
    let o = run(&["report", "--merge", a.to_str().unwrap(), b.to_str().unwrap(), c.to_str().unwrap(), "--out", out.to_str().unwrap(), "--fail-on-leak"]);
    assert_eq!(o.status.code(), Some(3), "growing nodes fail the gate: {}", stderr(&o));
    let md = std::fs::read_to_string(out.join("merged.md")).unwrap();
    assert!(md.contains("**Verdict: growing**"), "{md}");
    let row = |node: &str| md.lines().find(|l| l.starts_with(&format!("| {node} |"))).unwrap_or_else(|| panic!("no row for {node}: {md}")).to_string();
    assert!(!row("node-a").contains("| growing |") && row("node-a").contains("| 5 |") && row("node-a").ends_with("| yes |"), "{}", row("node-a"));
    assert!(row("node-b").contains("| growing |") && row("node-b").contains("| 8 |"), "{}", row("node-b"));
    assert!(row("node-c").contains("| 6 |") && row("node-c").contains("no: did not finish"), "{}", row("node-c"));
    assert!(out.join("merged.png").exists());
    assert_plain_csv(&out, &["merged.csv"]);

    let o = run(&["report", "--merge", a.to_str().unwrap(), dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is not a run folder (it has no timeline.csv)"), "{}", stderr(&o));
}
