//! Issue 19: `scripts/diagnose` leaves the user where they are. Its set-up and build change
//! folder and PATH (scripts/env.sh), but the command it watches runs in the user's folder,
//! with the user's PATH and so the user's `python`, and the reports land there too.

use crate::common::*;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

#[test]
fn scripts_diagnose_keeps_the_users_folder_path_and_python() {
    let _turn = serial();
    let dir = tempfile::tempdir().unwrap();
    // The user's own `python`, first on their PATH: not the checkout's venv.
    let userbin = dir.path().join("bin");
    std::fs::create_dir(&userbin).unwrap();
    let python = userbin.join("python");
    std::fs::write(&python, "#!/bin/sh\nexec /usr/bin/python3 \"$@\"\n").unwrap();
    std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
    let work = dir.path().join("project");
    std::fs::create_dir(&work).unwrap();
    std::fs::write(work.join("train.py"), "import os, sys\nprint('python', sys.executable)\nprint('cwd', os.getcwd())\nfor e in range(3):\n    print(f'epoch {e}', flush=True)\n").unwrap();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/diagnose");
    let path = format!("{}:{}", userbin.display(), std::env::var("PATH").unwrap_or_default());
    let o = Command::new(script).env("PATH", path).current_dir(&work).args(["watch", "--out", "out", "--interval", "200ms", "--", "python", "train.py"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{}", stderr(&o));
    assert!(stdout.contains("python /usr/bin/python3"), "not the user's python: {stdout}");
    assert!(stdout.contains(&format!("cwd {}", work.display())), "not the user's folder: {stdout}");
    assert_eq!(summary(&work.join("out"))["epochs"], 3);
}
