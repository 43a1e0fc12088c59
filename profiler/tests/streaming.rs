//! The timeline is streamed: a process killed with SIGKILL leaves every completed row,
//! and the reader takes the possibly partial tail as end of data. Bad output paths fail
//! at start.

use std::process::Command;
use std::time::{Duration, Instant};

use profiler::{Marker, Profiler};

#[global_allocator]
static ALLOC: profiler::ProfilerAlloc = profiler::ProfilerAlloc;

const CHILD_ENV: &str = "PROFILER_TEST_CHILD_DIR";

/// Run as a child by `killed_run_leaves_its_rows`: records boundaries until killed.
#[test]
#[ignore = "helper: runs only as the child of killed_run_leaves_its_rows"]
fn child_records_until_killed() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let mut prof = Profiler::builder(dir).start().unwrap();
    for i in 0u64.. {
        prof.episode_end((i / 100) as u32, i);
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn killed_run_leaves_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "child_records_until_killed", "--nocapture"])
        .env(CHILD_ENV, dir.path())
        .spawn()
        .unwrap();
    let path = dir.path().join("timeline.csv");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(&path).map_or(0, |t| t.lines().count()) < 50 {
        assert!(Instant::now() < deadline, "child wrote no rows");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let t = profiler::read_timeline(&path).unwrap();
    assert!(t.rows.len() >= 47, "only {} rows survived", t.rows.len());
    assert_eq!(t.rows[0].phase, "start");
    // Episodes are consecutive: no row in the middle was lost.
    for (i, row) in t.rows[1..].iter().enumerate() {
        assert_eq!(row.episode, Some(i as u64));
    }
    let a = profiler::analyze(&t);
    assert!(a.incomplete, "a killed run is reported as incomplete");
}

#[test]
fn unwritable_output_fails_at_start() {
    let err = Profiler::builder("/proc/no-such-dir/run").start().err().unwrap().to_string();
    assert!(err.contains("/proc/no-such-dir/run"), "{err}");
    let file = tempfile::NamedTempFile::new().unwrap();
    let err = Profiler::builder(file.path()).start().err().unwrap().to_string();
    assert!(err.contains("cannot write"), "{err}");
}
