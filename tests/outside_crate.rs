//! `profiler` as a dependency of someone else's crate: a crate outside this workspace
//! (tests/fixtures/outside-crate) adds `profiler` by path, with no [patch] section, builds,
//! and its release-mode test harness (no line tables) names its own leaking function.

use std::path::Path;
use std::process::Command;

#[test]
#[ignore = "soak: SOAK=1 scripts/test (a cold build of the profiler's dependencies, 1-2 min)"]
fn an_outside_crate_builds_with_profiler_alone_and_names_its_own_function() {
    let ws = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixture = ws.join("tests/fixtures/outside-crate");
    let dir = tempfile::tempdir().unwrap();
    let krate = dir.path().join("userproj");
    for sub in ["src", "tests"] {
        std::fs::create_dir_all(krate.join(sub)).unwrap();
    }
    for file in ["src/lib.rs", "tests/flat.rs"] {
        std::fs::copy(fixture.join(file), krate.join(file)).unwrap();
    }
    let manifest = std::fs::read_to_string(fixture.join("Cargo.toml.in")).unwrap().replace("@PROFILER@", ws.join("profiler").to_str().unwrap());
    assert!(!manifest.lines().any(|l| l.starts_with("[patch")));
    std::fs::write(krate.join("Cargo.toml"), manifest).unwrap();
    // The workspace's lock: the same dependency versions, already downloaded.
    std::fs::copy(ws.join("Cargo.lock"), krate.join("Cargo.lock")).unwrap();
    // A target folder of its own that outlives the test, so that reruns are quick
    // (scripts/test builds it before the tests run).
    let target = ws.join("target/outside-crate");
    let o = Command::new(env!("CARGO"))
        .args(["test", "--release", "--", "--nocapture"])
        .current_dir(&krate)
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_PROFILE_RELEASE_DEBUG")
        .output()
        .unwrap();
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "the outside crate did not build or its test failed:\n{err}\n{out}");
    // Anywhere in a line: one test at a time (RUST_TEST_THREADS=1), libtest prints the
    // test's name before its output on the same line.
    let top = out.lines().find_map(|l| l.find("TOP SITE: ").map(|i| &l[i..])).unwrap_or_else(|| panic!("{out}"));
    assert!(top.contains("userproj::step"), "{top}\n{out}");
    assert!(top.contains("line-tables-only") && top.contains("Growing"), "{top}");
}
