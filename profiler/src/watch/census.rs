//! The helper injected into a watched Python trainer (unless --no-inject): it finds
//! epochs from DataLoader passes and, with `--python-objects`, takes a census when asked
//! at each epoch end.
//!
//! A folder holding `sitecustomize.py` and `diagnose_census.py` (both from `python/`,
//! compiled into this binary) goes first on the child's PYTHONPATH. In the first Python
//! process of the tree, the helper binds `census-<pid>.sock` in that folder and waits; a
//! datagram `census N` makes it write `<out>/objects/epoch-N.json`. Processes it forks
//! (DataLoader workers) bind their own socket and write `epoch-N-worker-PID.json`.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// The injected `sitecustomize.py`.
const SITECUSTOMIZE: &str = include_str!("../../../python/inject/sitecustomize.py");
/// The census itself.
const CENSUS: &str = include_str!("../../../python/diagnose_census.py");
/// The CUDA allocator's figures and call sites at epoch ends.
const GPU: &str = include_str!("../../../python/diagnose_gpu.py");

/// Where the CUDA allocator's figures go, under a run folder (`gpu/epoch-N.json`).
pub const GPU_DIR: &str = "gpu";
/// Heap dumps of the preloaded jemalloc (--native-sites).
const NATIVE: &str = include_str!("../../../python/diagnose_native.py");

/// Where censuses are written, under a run folder.
pub const OBJECTS_DIR: &str = "objects";

/// The injected folder and a socket to send requests from.
pub struct CensusHelper {
    dir: PathBuf,
    sender: UnixDatagram,
}

impl CensusHelper {
    /// Write the helper into `dir` (created, inside the watch's private folder).
    pub fn install(dir: &Path) -> std::io::Result<CensusHelper> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("sitecustomize.py"), SITECUSTOMIZE)?;
        std::fs::write(dir.join("diagnose_census.py"), CENSUS)?;
        std::fs::write(dir.join("diagnose_gpu.py"), GPU)?;
        std::fs::write(dir.join("diagnose_native.py"), NATIVE)?;
        let sender = UnixDatagram::unbound()?;
        sender.set_nonblocking(true)?;
        Ok(CensusHelper { dir: dir.to_path_buf(), sender })
    }

    /// The folder to put first on PYTHONPATH.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Ask every process of `pids` that has a helper (the trainer, and the workers it
    /// forked) for a census of `epoch`, and remove the sockets of processes that have
    /// ended (workers recreated every epoch leave one each). Returns how many were asked.
    pub fn request(&self, pids: &[u32], epoch: u32) -> usize {
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                let name = e.file_name();
                let pid = name.to_str().and_then(|n| n.strip_prefix("census-")?.strip_suffix(".sock")?.parse::<u32>().ok());
                // Gone, not merely outside the last sample: a worker forked since is kept.
                if pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        let ask = format!("census {epoch}");
        pids.iter().filter(|pid| self.sender.send_to(ask.as_bytes(), self.dir.join(format!("census-{pid}.sock"))).is_ok()).count()
    }
}

impl CensusHelper {
    /// Tell the helpers of `pids` that the boundary of `epoch` they sent was sampled:
    /// the training loop waits (2 s at most) for it. With `census`, the loop takes the
    /// census itself, between two steps, where graphs can be walked safely.
    pub fn ack(&self, pids: &[u32], epoch: u32, census: bool) {
        let ack = format!("{} {epoch}", if census { "ack+census" } else { "ack" });
        for pid in pids {
            let _ = self.sender.send_to(ack.as_bytes(), self.dir.join(format!("census-{pid}.sock")));
        }
    }
}

/// PYTHONPATH with `first` in front of what the environment had.
pub fn python_path(first: &Path) -> std::ffi::OsString {
    let mut v = first.as_os_str().to_owned();
    if let Some(old) = std::env::var_os("PYTHONPATH").filter(|o| !o.is_empty()) {
        v.push(":");
        v.push(old);
    }
    v
}
