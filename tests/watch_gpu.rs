//! GPU cause and call site without a GPU: the helper's reduction of
//! torch.cuda.memory._snapshot() on made dicts (tests/python/gpu_reduce_test.py), and
//! `diagnose watch --gpu-sites` on a trainer whose torch is a fake with a CUDA device
//! (tests/python/fake_cuda, tests/python/gpu_fake_trainer.py): memory_stats and snapshots
//! of PyTorch 2.11's shapes, through the real injected helper, marker socket, analysis and
//! ledger. Each case is told apart: leak (the line named), caching, fragmentation,
//! near-OOM, clean.

use crate::common::*;

const MIB: f64 = 1048576.0;

#[test]
fn the_reduction_keeps_live_bytes_per_user_line_bounded() {
    let root = env!("CARGO_MANIFEST_DIR");
    let o = std::process::Command::new(python()).arg(py_script("gpu_reduce_test.py")).env("PYTHONPATH", format!("{root}/python")).output().unwrap();
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("OK"), "{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
}

/// Watch the fake trainer in `mode`; returns summary.json and the run folder.
fn gpu_watch(mode: &str) -> (serde_json::Value, tempfile::TempDir) {
    let _turn = serial();
    let root = env!("CARGO_MANIFEST_DIR");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let py = python().to_string_lossy().into_owned();
    let script = py_script("gpu_fake_trainer.py");
    let o = diagnose()
        .args(["watch", "--out", out.to_str().unwrap(), "--interval", "200ms", "--gpu-sites", "--", &py, &script, "--mode", mode])
        .env("PYTHONPATH", format!("{root}/tests/python/fake_cuda:{root}/python"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    // History was switched on at the first CUDA initialisation, with bounded settings.
    assert!(stdout.contains("'context': 'state', 'stacks': 'python', 'max_entries': 1000, 'after_init': True"), "{stdout}");
    (summary(&out), dir)
}

fn gpu_ledger(s: &serde_json::Value) -> String {
    ledger(s).lines().filter(|l| l.starts_with("GPU")).collect::<Vec<_>>().join("\n")
}

#[test]
fn a_leak_names_its_line_at_its_slope() {
    let (s, dir) = gpu_watch("leak");
    let l = gpu_ledger(&s);
    assert_eq!(s["gpu_allocator"]["cause"], "leak", "{l}");
    assert_eq!(s["verdict"], "growing");
    assert!(l.contains("GPU: a leak. Allocated CUDA memory grows +40.0 MiB/epoch"), "{l}");
    assert!(l.contains("gpu_fake_trainer.py:44 in validate: +40.0 MiB/epoch of CUDA memory kept (via aten::addmm)"), "{l}");
    let sites = s["gpu_allocator"]["sites"].as_array().unwrap();
    let growing: Vec<_> = sites.iter().filter(|x| x["class"] == "growing").collect();
    assert_eq!(growing.len(), 1, "only the kept line grows: {sites:?}");
    assert!((slope_of(growing[0]) / (40.0 * MIB) - 1.0).abs() < 0.01);
    assert!(sites.iter().any(|x| x["function"] == "build" && x["class"] == "flat"), "the weights' line is flat");
    assert!(!sites.iter().any(|x| x["function"] == "step" || x["function"] == "elsewhere"), "pending-free blocks and other devices are not counted");
    let csv = std::fs::read_to_string(dir.path().join("run/gpu_sites.csv")).unwrap();
    assert!(csv.starts_with("site,function,op,class,slope_bytes_per_epoch,slope_low,slope_high,bytes_epoch_0,"), "{csv}");
    assert!(csv.lines().nth(1).unwrap().contains("gpu_fake_trainer.py:44,validate,aten::addmm,growing,41943040"), "{csv}");
    assert!(std::fs::read_to_string(dir.path().join("run/gpu_allocator.csv")).unwrap().starts_with("epoch,allocated,reserved,active,inactive_split,segments,alloc_retries,ooms"));
}

#[test]
fn caching_is_not_a_leak() {
    let (s, _dir) = gpu_watch("caching");
    let l = gpu_ledger(&s);
    assert_eq!(s["gpu_allocator"]["cause"], "caching", "{l}");
    assert!(l.contains("GPU: caching, not a leak. Reserved CUDA memory grows +64.0 MiB/epoch") && l.contains("nvidia-smi shows") && l.contains("expandable_segments:True"), "{l}");
    assert!(l.contains("no allocating line's live CUDA memory grows"), "{l}");
}

#[test]
fn fragmentation_is_not_a_leak() {
    let (s, _dir) = gpu_watch("fragmentation");
    let l = gpu_ledger(&s);
    assert_eq!(s["gpu_allocator"]["cause"], "fragmentation", "{l}");
    assert!(l.contains("GPU: fragmentation, not a leak. Inactive split bytes climb +48.0 MiB/epoch"), "{l}");
}

#[test]
fn retries_without_growth_are_close_to_an_oom() {
    let (s, _dir) = gpu_watch("near-oom");
    let l = gpu_ledger(&s);
    assert_eq!(s["gpu_allocator"]["cause"], "near_oom", "{l}");
    assert!(l.contains("GPU: close to an out-of-memory error. cudaMalloc failed and the allocator freed its cache and retried 21 time(s) after warm-up"), "{l}");
}

#[test]
fn the_clean_trainer_is_flat() {
    let (s, _dir) = gpu_watch("clean");
    let l = gpu_ledger(&s);
    assert_eq!(s["gpu_allocator"]["cause"], "flat", "{l}");
    assert!(l.contains("GPU: allocated, reserved and inactive-split CUDA memory are flat across 8 epoch ends"), "{l}");
    assert!(l.contains("no allocating line's live CUDA memory grows"), "{l}");
    assert!(!s["gpu_allocator"]["sites"].as_array().unwrap().iter().any(|x| x["class"] == "growing"));
}

#[test]
fn a_malformed_gpu_file_is_a_clear_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(fixture("clean-16epochs")).unwrap().flatten() {
        std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
    }
    std::fs::create_dir(dir.path().join("gpu")).unwrap();
    std::fs::write(dir.path().join("gpu/epoch-3.json"), "{\"epoch\": 3, \"stats\": [").unwrap();
    let o = run(&["report", dir.path().to_str().unwrap()]);
    let err = stderr(&o);
    assert!(!o.status.success() && err.contains("epoch-3.json: not a GPU allocator file") && !err.contains("panicked"), "{err}");
}
