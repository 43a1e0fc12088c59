//! The Python user's install: `scripts/build-wheel`, then the wheel into a fresh venv that
//! sees neither cargo nor this checkout's `target/`, with the project venv's packages
//! (torch, pytest) visible through a `.pth` file, as a user's own would be.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use super::{python, stderr};

/// A site-packages folder of `python`.
pub fn purelib(python: &Path) -> PathBuf {
    let o = Command::new(python).args(["-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    PathBuf::from(String::from_utf8(o.stdout).unwrap().trim())
}

/// Build the wheel with the repository's one command; returns its path.
pub fn build_wheel() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new(root.join("scripts/build-wheel"));
    // scripts/test installs maturin into the project venv; without it the script
    // installs its own.
    let maturin = root.join(".venv/bin/maturin");
    if maturin.exists() {
        cmd.env("MATURIN", &maturin);
    }
    let o = cmd.output().expect("scripts/build-wheel starts");
    assert!(o.status.success(), "scripts/build-wheel failed: {}", stderr(&o));
    let path = PathBuf::from(String::from_utf8(o.stdout).unwrap().lines().last().expect("a wheel path printed").trim());
    assert!(path.exists(), "{} not written", path.display());
    path
}

/// A command in `venv`'s world alone: its bin folder, then the system's. No cargo, no
/// `target/`, no project venv; the folder is the user's.
pub fn in_venv(venv: &Path, cwd: &Path, program: &str) -> Command {
    let mut c = Command::new(program);
    c.env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", venv.join("bin").display()))
        .env("HOME", std::env::var_os("HOME").unwrap_or_default())
        .env("VIRTUAL_ENV", venv)
        .current_dir(cwd);
    c
}

/// Exit code 0, or a panic with both outputs.
pub fn ok(o: &Output, what: &str) {
    assert_eq!(o.status.code(), Some(0), "{what} failed:\n{}\n{}", String::from_utf8_lossy(&o.stdout), stderr(o));
}

/// A fresh venv at `venv` of the same Python as the project venv (torch's extensions are
/// built for it), seeing the project venv's site-packages as the user's own packages;
/// returns its python.
pub fn fresh_venv(venv: &Path) -> PathBuf {
    let base = Command::new(python()).args(["-c", "import sys; print(sys._base_executable)"]).output().unwrap();
    let base = String::from_utf8(base.stdout).unwrap().trim().to_string();
    ok(&Command::new(&base).args(["-m", "venv"]).arg(venv).output().unwrap(), "python -m venv");
    let venv_python = venv.join("bin/python");
    std::fs::write(purelib(&venv_python).join("users-torch.pth"), format!("{}\n", purelib(&python()).display())).unwrap();
    venv_python
}

/// `pip install WHEEL` (offline) into `venv`, run in `cwd`.
pub fn pip_install_wheel(venv: &Path, cwd: &Path, wheel: &Path) {
    let o = in_venv(venv, cwd, "pip").args(["install", "--quiet", "--disable-pip-version-check", "--no-index"]).arg(wheel).output().unwrap();
    ok(&o, "pip install the wheel");
}

/// The wheel, built once and installed into a fresh venv once, for every test of the suite
/// that needs it (tests/wheel.rs, tests/pytest_plugin.rs): one build, one venv.
pub struct Installed {
    pub wheel: PathBuf,
    pub venv: PathBuf,
    /// A folder of the user's, beside the venv: tests make their projects in it.
    pub root: PathBuf,
}

pub fn installed() -> &'static Installed {
    static ONCE: OnceLock<Installed> = OnceLock::new();
    ONCE.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("wheel-user-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let started = std::time::Instant::now();
        let wheel = build_wheel();
        let venv = root.join("venv");
        fresh_venv(&venv);
        pip_install_wheel(&venv, &root, &wheel);
        eprintln!("wheel built and installed in {:.1} s", started.elapsed().as_secs_f64());
        Installed { wheel, venv, root }
    })
}
