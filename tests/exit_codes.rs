//! Each subcommand's `--help` lists exactly the exit codes it returns, and each listed
//! code is produced here (or, where that needs a training run, by the test named).

use crate::common::*;

use std::collections::BTreeSet;
use std::path::Path;

use profiler::timeline::{Row, TimelineMeta, TimelineWriter};

/// The codes a subcommand's help lists under "Exit codes:" (lines "  N  meaning").
fn listed_codes(command: &str) -> BTreeSet<u8> {
    let o = run(&[command, "--help"]);
    assert_eq!(o.status.code(), Some(0));
    let help = String::from_utf8_lossy(&o.stdout).into_owned();
    let section = help.split("Exit codes:").nth(1).unwrap_or_else(|| panic!("{command} --help lists no exit codes:\n{help}"));
    section
        .lines()
        .filter_map(|l| l.trim_start().split_whitespace().next()?.parse::<u8>().ok().filter(|_| l.starts_with("  ")))
        .collect()
}

/// A run folder whose heap grows 8 MiB per epoch over 6 epochs: verdict growing.
fn growing_run(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let meta = TimelineMeta { recorder: Some("run".into()), gpu: Some("not-requested;no-driver:x".into()), ..TimelineMeta::default() };
    let mut w = TimelineWriter::create(&dir.join("timeline.csv"), &meta).unwrap();
    w.append(&Row { phase: "start".into(), rss_bytes: Some(100 << 20), je_allocated_bytes: Some(50 << 20), ..Row::default() }).unwrap();
    for e in 0..6u64 {
        let grown = (e * 8) << 20;
        w.append(&Row {
            t_s: (e + 1) as f64,
            phase: "epoch_end".into(),
            epoch: Some(e as u32),
            rss_bytes: Some((200 << 20) + grown),
            je_allocated_bytes: Some((100 << 20) + grown),
            je_active_bytes: Some((110 << 20) + grown),
            je_resident_bytes: Some((120 << 20) + grown),
            ..Row::default()
        })
        .unwrap();
    }
    w.append(&Row { t_s: 7.0, phase: "finish".into(), ..Row::default() }).unwrap();
}

fn code(args: &[&str]) -> u8 {
    let o = run(args);
    o.status.code().unwrap_or_else(|| panic!("{args:?} was killed")) as u8
}

#[test]
fn help_lists_exactly_the_codes_each_subcommand_returns() {
    let dir = tempfile::tempdir().unwrap();
    let d = |p: &str| dir.path().join(p).to_str().unwrap().to_string();
    let clean = d("clean");
    std::fs::create_dir_all(&clean).unwrap();
    for f in ["timeline.csv", "run.json"] {
        std::fs::copy(fixture("clean-16epochs").join(f), Path::new(&clean).join(f)).unwrap();
    }
    let grows = d("grows");
    growing_run(Path::new(&grows));

    // (subcommand, code, how it is produced: arguments, or the test that produces it)
    enum How<'a> {
        Args(Vec<&'a str>),
        Test(&'static str, &'static str),
    }
    let py = python();
    let py = py.to_str().unwrap();
    let (w0, w1, w3, w4) = (d("w0"), d("w1"), d("w3"), d("w4"));
    let cases: Vec<(&str, u8, How)> = vec![
        ("run", 0, How::Test("tests/clean_run.rs", "assert_eq!(output.status.code(), Some(0)")),
        ("run", 1, How::Args(vec!["run", "--out", "/proc/self/nope"])),
        ("run", 2, How::Args(vec!["run", "--epochz", "3"])),
        ("run", 3, How::Test("tests/stop_on_leak.rs", "Some(3)")),
        ("report", 0, How::Args(vec!["report", &clean])),
        ("report", 1, How::Args(vec!["report", "/nonexistent/run"])),
        ("report", 2, How::Args(vec!["report"])),
        ("report", 3, How::Args(vec!["report", &grows, "--fail-on-leak"])),
        ("compare", 0, How::Args(vec!["compare", &clean, &grows])),
        ("compare", 1, How::Args(vec!["compare", &clean, "/nonexistent/run"])),
        ("compare", 2, How::Args(vec!["compare", &clean, &grows, "--series", "nosuch_bytes"])),
        ("watch", 0, How::Args(vec!["watch", "--out", &w0, "--", "true"])),
        ("watch", 1, How::Args(vec!["watch", "--out", &w1, "--", "/nonexistent/command"])),
        ("watch", 2, How::Args(vec!["watch", "--epoch-pattern", "(", "--", "true"])),
        ("watch", 3, How::Args(vec!["watch", "--interval", "100ms", "--fail-on-leak", "--out", &w3, "--", py, "tests/python/grow.py", "--steps", "8", "--sleep", "0.3"])),
        ("watch", 4, How::Args(vec!["watch", "--interval", "100ms", "--max-memory", "1K", "--out", &w4, "--", "sleep", "1"])),
    ];
    for command in ["run", "report", "compare", "watch"] {
        let produced: BTreeSet<u8> = cases.iter().filter(|c| c.0 == command).map(|c| c.1).collect();
        assert_eq!(listed_codes(command), produced, "{command} --help lists other exit codes than it returns");
    }
    for (command, expected, how) in &cases {
        match how {
            How::Args(args) => assert_eq!(code(args), *expected, "{command}: {args:?}"),
            How::Test(file, needle) => {
                let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap();
                assert!(text.contains(needle), "{file} should produce {command}'s exit code {expected}");
            }
        }
    }
    // watch passes the command's own code on, and says whose code it is.
    let o = run(&["watch", "--out", &d("w7"), "--", "sh", "-c", "exit 7"]);
    assert_eq!(o.status.code(), Some(7));
    assert!(stderr(&o).contains("diagnose: exit 7: the command's own exit code"), "{}", stderr(&o));
    // A gate says it is the gate.
    let o = run(&["report", &grows, "--fail-on-leak"]);
    assert!(stderr(&o).contains("diagnose: exit 3: --fail-on-leak"), "{}", stderr(&o));
}
