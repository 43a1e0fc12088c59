//! Every build of the workspace compiles each dependency once. Cargo enables a
//! dependency's features from the packages a command builds, so `cargo test` (dev
//! dependencies: criterion wants serde's "alloc") and the wheel's `-p diagnose` (no tch:
//! no zerocopy "derive", no cc "parallel") each rebuilt part of what `cargo build
//! --workspace` had built. cc's feature reached jemalloc's build script: the wheel re-ran
//! jemalloc's configure, 2.5 minutes of a fresh clone's suite; serde's rebuilt the
//! profiler and everything on serde before the tests. profiler/Cargo.toml pins those
//! features; this test reads cargo's feature resolution (no build) and names any
//! dependency that a new one splits again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

/// Package (name and version) → the feature sets `cargo tree` resolves it with.
fn resolved(args: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
    let o = Command::new(env!("CARGO"))
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .args(["tree", "--offline", "--prefix", "none", "--format", "{p}|{f}"])
        .args(args)
        .output()
        .expect("cargo tree");
    assert!(o.status.success(), "cargo tree {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    let mut sets: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        let line = line.trim_end_matches(" (*)");
        let Some((package, features)) = line.split_once('|') else { continue };
        // "name v1.2.3 (/path)" for ours: the name and version say which.
        let package: String = package.split(' ').take(2).collect::<Vec<_>>().join(" ");
        sets.entry(package).or_default().insert(features.to_string());
    }
    assert!(sets.len() > 50, "cargo tree printed too little: {sets:?}");
    sets
}

/// The packages of `other` resolved with a feature set that `workspace` never uses.
fn split(other: &BTreeMap<String, BTreeSet<String>>, workspace: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    other
        .iter()
        .filter_map(|(package, sets)| {
            let ws = workspace.get(package)?;
            let new: Vec<&String> = sets.difference(ws).collect();
            (!new.is_empty()).then(|| format!("{package}: {new:?}, where the workspace build has {ws:?}"))
        })
        .collect()
}

#[test]
fn the_tests_and_the_wheel_reuse_the_workspace_build() {
    let workspace = resolved(&["--workspace", "-e", "normal,build"]);
    let tests = resolved(&["--workspace", "-e", "normal,build,dev"]);
    let wheel = resolved(&["-p", "diagnose", "-e", "normal,build"]);
    let (tests, wheel) = (split(&tests, &workspace), split(&wheel, &workspace));
    assert!(tests.is_empty(), "`cargo test` would rebuild these with other features (pin them in profiler/Cargo.toml):\n{}", tests.join("\n"));
    assert!(wheel.is_empty(), "the wheel's `-p diagnose` would rebuild these with other features (pin them in profiler/Cargo.toml):\n{}", wheel.join("\n"));
}
