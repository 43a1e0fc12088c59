//! The OOM projection names the epoch of the kill when the kill comes at an epoch's high
//! point, well above its end (issue 18): a script that keeps 8 MiB per epoch and holds
//! 64 MiB of temporaries in each, watched inside a real cgroup-v1 memory cgroup. From the
//! first 5 epochs only, the projection must name the kill's epoch within 10 %; the same
//! projection from epoch-end levels would be far too late (checked, so that the test can
//! fail the old way). The same for `diagnose run` on the reference trainer with the seed's
//! leak (slow: `SOAK=1 scripts/test`).

use crate::common::*;
use std::path::Path;
use std::process::Command;

/// The timeline of `out` cut after its `epochs`-th epoch end, reported in `into`.
fn report_first_epochs(out: &Path, into: &Path, epochs: usize) -> serde_json::Value {
    let text = std::fs::read_to_string(out.join("timeline.csv")).unwrap();
    let mut cut = String::new();
    let mut seen = 0;
    for line in text.lines() {
        cut.push_str(line);
        cut.push('\n');
        if line.contains(",epoch_end,") {
            seen += 1;
            if seen == epochs {
                break;
            }
        }
    }
    std::fs::create_dir(into).unwrap();
    std::fs::write(into.join("timeline.csv"), cut).unwrap();
    std::fs::copy(out.join("run.json"), into.join("run.json")).unwrap();
    let o = run(&["report", into.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    summary(into)
}

#[test]
#[ignore = "soak: SOAK=1 scripts/test (about 14 s; a_settling_trainers_kill_is_projected_from_five_epochs projects a watched kill from 5 epochs by default)"]
fn the_kill_at_an_epochs_peak_is_projected_from_five_epochs() {
    let Some(cg) = Cgroup::new("peak", 240 << 20) else {
        eprintln!("SKIPPED: cannot create a cgroup-v1 memory cgroup here (needs root and /sys/fs/cgroup/memory)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("oom");
    let grow = [python().to_string_lossy().into_owned(), py_script("grow.py"), "--steps".into(), "80".into(), "--mib".into(), "8".into(), "--peak-mib".into(), "64".into(), "--hold".into(), "0.4".into()];
    let o = watch_in_cgroup(&cg, &out, &grow);
    assert_eq!(o.status.code(), Some(137), "{}", stderr(&o));
    let s = summary(&out);
    assert_eq!(s["end"]["oom_killed"], true, "{s}");
    let killed_in = s["end"]["last_epoch"].as_f64().unwrap() + 1.0;
    assert!(killed_in > 10.0, "killed in epoch {killed_in}");

    let early = report_first_epochs(&out, &dir.path().join("early"), 5);
    let p = &early["oom"];
    let projected = p["at_epoch"].as_f64().expect("a projection from 5 epochs");
    // What the epoch ends alone would have said: the charged series' own verdict.
    let ends = series(&early, "cgroup_unreclaimable_bytes");
    let (limit, slope) = (p["limit_bytes"].as_f64().unwrap(), p["slope_bytes_per_epoch"].as_f64().unwrap());
    let from_ends = 4.0 + (limit - ends["last_bytes"].as_f64().unwrap()) / slope;
    eprintln!("killed in epoch {killed_in}; projected from 5 epochs' peaks: {projected:.1}; from their ends it would be {from_ends:.1}");
    assert!((projected - killed_in).abs() <= 0.1 * killed_in, "projected epoch {projected:.1}, killed in epoch {killed_in}");
    assert_kill_inside_the_range(p, killed_in);
    assert!((from_ends - killed_in).abs() > 0.1 * killed_in, "epoch ends would do as well ({from_ends:.1}): the test does not test peaks");
}

/// A watched PyTorch trainer whose slope settles after warm-up (issue 24, item 5): it keeps
/// its validation logits with their graphs while a per-item cache fills (63 %, 23 %, 9 %,
/// ... of its items in successive epochs). Its first epoch ends rise faster than the leak
/// alone; from 5 epochs, the projection must still name the kill's epoch within 10 %.
#[test]
fn a_settling_trainers_kill_is_projected_from_five_epochs() {
    let Some(cg) = Cgroup::new("settle", 1280 << 20) else {
        eprintln!("SKIPPED: cannot create a cgroup-v1 memory cgroup here (needs root and /sys/fs/cgroup/memory)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("oom");
    let trainer: Vec<String> = [python().to_string_lossy().into_owned(), py_script("real_trainer.py")]
        .into_iter()
        .chain(["--mode", "graph", "--val-batches", "8", "--item-cache-kib", "512", "--epochs", "60"].map(String::from))
        .collect();
    let o = watch_in_cgroup(&cg, &out, &trainer);
    assert_eq!(o.status.code(), Some(137), "{}", stderr(&o));
    let s = summary(&out);
    assert_eq!(s["end"]["oom_killed"], true, "{s}");
    let killed_in = s["end"]["last_epoch"].as_f64().unwrap() + 1.0;
    assert!(killed_in > 10.0, "killed in epoch {killed_in}");
    let early = report_first_epochs(&out, &dir.path().join("early"), 5);
    let p = &early["oom"];
    let projected = p["at_epoch"].as_f64().unwrap_or_else(|| panic!("a projection from 5 epochs: {}", ledger(&early)));
    // What the fit over all of the first epoch ends would say (the series' own slope).
    let ends = series(&early, "cgroup_unreclaimable_bytes");
    let whole = 4.0 + (p["limit_bytes"].as_f64().unwrap() - ends["last_bytes"].as_f64().unwrap()) / ends["slope_bytes_per_epoch"].as_f64().unwrap();
    eprintln!("killed in epoch {killed_in}; projected from 5 epochs: {projected:.1} (fitted on {}); the whole fit: {whole:.1}", p["fitted_epochs"]);
    // As in `run`'s test below: 15.3 says the limit is crossed between the peaks of
    // epochs 15 and 16, so the kill comes in epoch 16. Measured 2026-12-04, 11 runs:
    // projected 14.8-15.6, killed in epoch 16 every time; the whole fit 13.6-14.2.
    assert_kill_epoch_projected(p, killed_in);
}

/// `diagnose run`: the reference trainer keeping its validation outputs (the seed's leak,
/// 40 validation episodes a epoch) under a cgroup cap; the peaks come from peak RSS.
#[test]
#[ignore = "soak: SOAK=1 scripts/test (about 2 minutes)"]
fn run_the_seed_leak_kill_is_projected_from_five_epochs() {
    let Some(cg) = Cgroup::new("peak-run", 1200 << 20) else {
        eprintln!("SKIPPED: cannot create a cgroup-v1 memory cgroup here (needs root and /sys/fs/cgroup/memory)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("oom");
    let script = format!("echo $$ > {}/cgroup.procs && exec \"$@\"", cg.0.display());
    let args: Vec<String> = ["-c", &script, "sh", env!("CARGO_BIN_EXE_diagnose"), "run", "--out", out.to_str().unwrap(), "--no-progress", "--leak", "validation-accumulators", "--val-episodes", "40", "--episodes-per-epoch", "4", "--epochs", "1000"].iter().map(|s| s.to_string()).collect();
    let o = Command::new("sh").args(&args).output().unwrap();
    // The trainer runs inside diagnose: the OOM killer's SIGKILL ends diagnose itself.
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(o.status.signal(), Some(9), "{}", stderr(&o));
    // The killed run's data: rebuild its report, then read how far it got.
    let o = run(&["report", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&out);
    let killed_in = s["epochs"].as_f64().unwrap();
    let early = report_first_epochs(&out, &dir.path().join("early"), 5);
    let projected = early["oom"]["at_epoch"].as_f64().expect("a projection from 5 epochs");
    eprintln!("run: killed in epoch {killed_in}; projected from 5 epochs' peaks: {projected:.1} ({})", early["oom"]["name"]);
    // The projection is continuous: 11.1 says epoch 11's peak stands at the limit, so the
    // kill comes in the first epoch whose peak passes it, epoch 12. Measured 2026-11-30:
    // projected 10.7 and 11.1, killed in epoch 12 both times (the first epoch past the
    // limit: 11 and 12); from the epoch ends it would have been 16.4 (37 % late).
    assert_kill_epoch_projected(&early["oom"], killed_in);
}

/// The kill comes in the first epoch whose peak passes the continuous projection (its
/// ceiling): that epoch is within 10 % of the kill's, and the printed range holds it.
fn assert_kill_epoch_projected(oom: &serde_json::Value, killed_in: f64) {
    let projected = oom["at_epoch"].as_f64().unwrap();
    let first_past = projected.ceil();
    assert!((first_past - killed_in).abs() <= 0.1 * killed_in, "projected epoch {projected:.1} (killed in the first past it, {first_past}), killed in epoch {killed_in}: {oom}");
    assert_kill_inside_the_range(oom, killed_in);
}

/// The printed range holds the kill: killed during epoch k, the limit was crossed
/// between the peaks of epochs k-1 and k (the projection is continuous).
fn assert_kill_inside_the_range(oom: &serde_json::Value, killed_in: f64) {
    let from = oom["at_epoch"].as_f64().unwrap() - oom["epochs_to_limit"].as_f64().unwrap();
    let soonest = from + oom["epochs_range"][0].as_f64().unwrap();
    let latest = oom["epochs_range"][1].as_f64().map_or(f64::INFINITY, |l| from + l);
    eprintln!("range: epochs {soonest:.1} to {latest:.1}; killed in epoch {killed_in}");
    assert!(soonest <= killed_in && latest > killed_in - 1.0, "killed in epoch {killed_in}, outside the printed range {soonest:.1} to {latest:.1}: {oom}");
}
