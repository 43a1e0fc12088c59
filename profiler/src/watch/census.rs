//! `--python-objects`: the census helper injected into a watched Python trainer, and the
//! requests that make it take a census at each epoch end.
//!
//! A folder holding `sitecustomize.py` and `diagnose_census.py` (both from `python/`,
//! compiled into this binary) goes first on the child's PYTHONPATH. In the first Python
//! process of the tree, the helper binds `census-<pid>.sock` in that folder and waits; a
//! datagram `census N` makes it write `<out>/objects/epoch-N.json`.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// The injected `sitecustomize.py`.
const SITECUSTOMIZE: &str = include_str!("../../../python/inject/sitecustomize.py");
/// The census itself.
const CENSUS: &str = include_str!("../../../python/diagnose_census.py");

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
        let sender = UnixDatagram::unbound()?;
        sender.set_nonblocking(true)?;
        Ok(CensusHelper { dir: dir.to_path_buf(), sender })
    }

    /// The folder to put first on PYTHONPATH.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Ask the helper in `pid` (the first of `pids` that has one) for a census of `epoch`.
    /// Returns whether a request was sent.
    pub fn request(&self, pids: &[u32], epoch: u32) -> bool {
        pids.iter().any(|pid| {
            let sock = self.dir.join(format!("census-{pid}.sock"));
            sock.exists() && self.sender.send_to(format!("census {epoch}").as_bytes(), &sock).is_ok()
        })
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
