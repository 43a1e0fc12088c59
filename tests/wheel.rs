//! Issue 19: the Python user's path. `scripts/build-wheel` builds the `diagnose-memory`
//! wheel; it goes into a fresh venv that sees neither cargo nor this checkout's `target/`,
//! with torch visible through a `.pth` file (as a user's own torch would be). From that
//! install, in the user's own folder, `diagnose watch --python-objects -- python train.py`
//! names the leak, `diagnose report DIR` rebuilds the report, and
//! `python -m diagnose_memory watch ...` and `import diagnose_markers` work.

use crate::common::wheel::*;
use crate::common::*;

#[test]
fn the_wheel_alone_watches_a_pytorch_trainer_and_names_its_leak() {
    let _turn = serial();
    let Installed { wheel, venv, root } = installed();
    let size = std::fs::metadata(wheel).unwrap().len();
    assert!(size < 8 << 20, "wheel is {size} bytes, goal under 8 MB");
    let name = wheel.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("diagnose_memory-") && name.contains("manylinux"), "{name}");
    eprintln!("wheel {name}: {:.1} MB", size as f64 / 1e6);

    // The fresh venv is of the same Python as the project venv (torch's extensions are
    // built for it), seeing the project venv's site-packages as the user's own torch.
    let work = root.join("wheel-project");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir(&work).unwrap();
    assert!(venv.join("bin/diagnose").exists(), "pip put no diagnose into the venv's bin");
    assert!(venv.join("bin/libdiagnose_jemalloc.so").exists(), "pip put no libdiagnose_jemalloc.so next to diagnose");

    // Nothing of the build is in reach: no cargo, and `diagnose` is the venv's.
    let o = in_venv(venv, &work, "sh").args(["-c", "command -v cargo; command -v diagnose"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), venv.join("bin/diagnose").to_str().unwrap(), "{}", stderr(&o));

    // The user's script in the user's folder, run by the user's `python`.
    std::fs::copy(py_script("census_trainer.py"), work.join("train.py")).unwrap();
    let o = in_venv(venv, &work, "diagnose")
        .args(["watch", "--out", "out", "--interval", "200ms", "--python-objects", "--", "python", "train.py", "--mode", "self-lists", "--epochs", "6"])
        .output()
        .unwrap();
    ok(&o, "diagnose watch from the wheel");
    let out = work.join("out");
    let s = summary(&out);
    let g = growing_objects(&s);
    assert_eq!(g.first().map(|o| o["name"].as_str().unwrap()), Some("Trainer.all_pred_bboxes"), "{g:?}\n{}", ledger(&s));
    assert!(ledger(&s).contains("Python: Trainer.all_pred_bboxes (list"), "{}", ledger(&s));

    // --native-sites finds the wheel's jemalloc and preloads it (mallctl is its symbol).
    let o = in_venv(venv, &work, "diagnose")
        .args(["watch", "--out", "out-native", "--native-sites", "--", "python", "-c", "import ctypes; ctypes.CDLL(None).mallctl"])
        .output()
        .unwrap();
    ok(&o, "diagnose watch --native-sites from the wheel");

    // The report is rebuilt from the folder alone.
    for f in ["summary.json", "summary.md"] {
        std::fs::remove_file(out.join(f)).unwrap();
    }
    let o = in_venv(venv, &work, "diagnose").args(["report", "out"]).output().unwrap();
    ok(&o, "diagnose report");
    assert!(String::from_utf8_lossy(&o.stdout).contains("Python: Trainer.all_pred_bboxes"), "{}", String::from_utf8_lossy(&o.stdout));
    assert_eq!(growing_objects(&summary(&out))[0]["name"], "Trainer.all_pred_bboxes");

    // `python -m diagnose_memory` is the same command; the markers module came with it.
    let script = "import diagnose_markers as dm, time\nfor e in range(4):\n    time.sleep(0.3)\n    dm.epoch_end(e)\nprint(dm.__file__)\n";
    std::fs::write(work.join("marked.py"), script).unwrap();
    let o = in_venv(venv, &work, "python").args(["-m", "diagnose_memory", "watch", "--out", "out-m", "--interval", "200ms", "--", "python", "marked.py"]).output().unwrap();
    ok(&o, "python -m diagnose_memory watch");
    assert!(String::from_utf8_lossy(&o.stdout).contains(venv.to_str().unwrap()), "diagnose_markers not the wheel's: {}", String::from_utf8_lossy(&o.stdout));
    let s = summary(&work.join("out-m"));
    assert_eq!(s["epochs"], 4, "{s}");
}
