//! The marker socket: a Unix datagram socket in a folder only this user can enter, on
//! which a watched program sends one short line per boundary (`epoch_end 3`,
//! `validation_start 3`, `phase augment 3 17`). Its path reaches the child in
//! [`MARKER_ENV`]; `python/diagnose_markers.py` and `profiler_api::SocketMarker` send.
//!
//! Lines are parsed strictly; a malformed or oversized datagram, or one whose sender
//! (SO_PASSCRED) is another user, is counted and dropped, never a crash.

use std::io::IoSliceMut;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::socket::{recvmsg, setsockopt, sockopt::PassCred, ControlMessageOwned, MsgFlags, UnixAddr, UnixCredentials};
use profiler_api::{Boundary, Phase};

pub use profiler_api::MARKER_ENV;

/// The longest line accepted.
pub const MAX_MARKER_BYTES: usize = 256;

/// One parsed marker.
#[derive(Clone, Debug, PartialEq)]
pub struct MarkerMsg {
    /// The boundary it marks.
    pub boundary: Boundary,
    /// The sender's `RANK`, when it sent one.
    pub rank: Option<u32>,
    /// The sender's pid, from its credentials.
    pub pid: Option<u32>,
    /// The sender's CUDA caching-allocator figures (torch.cuda), when it sent them.
    pub gpu: Option<profiler_api::GpuAllocatorSnapshot>,
    /// Found by our injected helper (`auto=1`: a new pass over the training DataLoader),
    /// not marked by the program: explicit markers win over it.
    pub auto: bool,
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// Parse one datagram. Grammar (fields separated by single spaces):
/// `epoch_end E` | `validation_start E` | `validation_end E` | `episode_end E STEP` |
/// `phase NAME E [STEP]`, each optionally followed by `rank=R`, the four `gpu_*=N`
/// fields, and `auto=1` (a boundary our injected helper found).
pub fn parse_marker(bytes: &[u8]) -> Result<MarkerMsg, String> {
    if bytes.len() > MAX_MARKER_BYTES {
        return Err(format!("{} bytes, more than {MAX_MARKER_BYTES}", bytes.len()));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    let text = text.strip_suffix('\n').unwrap_or(text);
    let mut words: Vec<&str> = text.split(' ').collect();
    // Trailing key=value fields: rank, and a framework's GPU allocator figures.
    let mut rank = None;
    let mut auto = false;
    let mut gpu = [None; 4];
    const GPU_KEYS: [&str; 4] = ["gpu_allocated", "gpu_reserved", "gpu_peak_allocated", "gpu_peak_reserved"];
    while let Some((key, value)) = words.last().and_then(|w| w.split_once('=')) {
        let n = value.parse::<u64>().map_err(|_| format!("bad {key} '{value}'"))?;
        match key {
            "rank" => rank = Some(u32::try_from(n).map_err(|_| "rank out of range".to_string())?),
            "auto" if n == 1 => auto = true,
            k => match GPU_KEYS.iter().position(|g| *g == k) {
                Some(i) => gpu[i] = Some(n),
                None => return Err(format!("unknown field '{}'", key.chars().take(32).collect::<String>())),
            },
        }
        words.pop();
    }
    let gpu = match gpu {
        [Some(allocated), Some(reserved), Some(peak_allocated), Some(peak_reserved)] => {
            Some(profiler_api::GpuAllocatorSnapshot { allocated, reserved, peak_allocated, peak_reserved })
        }
        [None, None, None, None] => None,
        _ => return Err("GPU fields come as all four".into()),
    };
    let num = |w: Option<&&str>, what: &str| -> Result<u64, String> {
        let w = w.ok_or(format!("missing {what}"))?;
        w.parse::<u64>().map_err(|_| format!("bad {what} '{w}'"))
    };
    let epoch = |w: Option<&&str>| -> Result<u32, String> {
        u32::try_from(num(w, "epoch")?).map_err(|_| "epoch out of range".to_string())
    };
    let (boundary, expected_len) = match words.first().copied() {
        Some(k @ ("epoch_end" | "validation_start" | "validation_end")) => {
            (Boundary::new(k.parse().expect("infallible")).epoch(epoch(words.get(1))?), 2)
        }
        Some("episode_end") => {
            (Boundary::new(Phase::EpisodeEnd).epoch(epoch(words.get(1))?).episode(num(words.get(2), "step")?), 3)
        }
        Some("phase") => {
            let name = words.get(1).copied().filter(|n| valid_name(n)).ok_or("bad or missing phase name")?;
            let phase: Phase = name.parse().expect("infallible");
            if matches!(phase, Phase::Start | Phase::Finish) {
                return Err(format!("'{name}' is reserved"));
            }
            let mut b = Boundary::new(phase).epoch(epoch(words.get(2))?);
            if words.len() > 3 {
                b = b.episode(num(words.get(3), "step")?);
            }
            let n = words.len().clamp(3, 4);
            (b, n)
        }
        Some(other) => return Err(format!("unknown marker '{}'", other.chars().take(32).collect::<String>())),
        None => return Err("empty".into()),
    };
    if words.len() != expected_len {
        return Err("wrong number of fields".into());
    }
    Ok(MarkerMsg { boundary, rank, pid: None, gpu, auto })
}

/// The bound socket and the private folder holding it (removed when dropped).
pub struct MarkerSocket {
    dir: tempfile::TempDir,
    /// Where the socket is bound: in `dir`, or at a path the caller gave.
    path: PathBuf,
    /// The path was given: the socket file is removed when dropped.
    given: bool,
    socket: UnixDatagram,
    rejected: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl MarkerSocket {
    /// Bind a socket in a new 0700 folder under the temporary directory.
    pub fn bind() -> std::io::Result<MarkerSocket> {
        Self::bind_at(None)
    }

    /// Bind a socket at `at`, or, with `None`, in the private folder. A given path must
    /// not exist yet and lie in a folder owned by this user that no one else may write
    /// to (else another user could put a socket of theirs there first): a process watched
    /// with `--pid` learns it from whoever started the watch (`diagnose_memory.watching()`).
    pub fn bind_at(at: Option<&Path>) -> std::io::Result<MarkerSocket> {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::Builder::new().prefix("diagnose-").tempdir()?;
        // tempfile makes the folder 0700; say so explicitly rather than rely on it.
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        let path = match at {
            None => dir.path().join("markers.sock"),
            Some(p) => {
                let parent = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
                let meta = std::fs::metadata(parent).map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", parent.display())))?;
                if meta.uid() != nix::unistd::geteuid().as_raw() || meta.mode() & 0o022 != 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::PermissionDenied,
                        format!("{} must be a folder of yours that no one else can write to (mode 0700)", parent.display()),
                    ));
                }
                p.to_path_buf()
            }
        };
        let socket = UnixDatagram::bind(&path).map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        setsockopt(&socket, PassCred, &true).map_err(std::io::Error::from)?;
        socket.set_read_timeout(Some(Duration::from_millis(200)))?;
        Ok(MarkerSocket { dir, given: at.is_some(), path, socket, rejected: Arc::new(AtomicU64::new(0)), stop: Arc::new(AtomicBool::new(false)) })
    }

    /// The path to give the child in [`MARKER_ENV`].
    pub fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// The folder holding it.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Datagrams dropped so far (malformed, oversized, or from another user).
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// Receive on a thread, handing each accepted marker to `deliver`, until dropped.
    pub fn listen(&self, mut deliver: impl FnMut(MarkerMsg) + Send + 'static) -> std::io::Result<()> {
        let socket = self.socket.try_clone()?;
        let (rejected, stop) = (self.rejected.clone(), self.stop.clone());
        let uid = nix::unistd::geteuid().as_raw();
        std::thread::Builder::new().name("diagnose-markers".into()).spawn(move || {
            let mut buf = [0u8; MAX_MARKER_BYTES + 1];
            while !stop.load(Ordering::Relaxed) {
                match receive(&socket, &mut buf) {
                    Ok(Some((len, cred))) => {
                        let from_us = cred.is_some_and(|c| c.uid() == uid);
                        // An oversized datagram reports its full length: reject it whole.
                        let parsed = if len > MAX_MARKER_BYTES { Err(String::new()) } else { parse_marker(&buf[..len]) };
                        match parsed {
                            Ok(mut m) if from_us => {
                                m.pid = cred.map(|c| c.pid() as u32);
                                deliver(m);
                            }
                            _ => {
                                rejected.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    Ok(None) => {} // timeout: look at the stop flag
                    Err(_) => {
                        rejected.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })?;
        Ok(())
    }
}

impl Drop for MarkerSocket {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if self.given {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// One datagram: its length (more than the buffer's last byte means truncated) and the
/// sender's credentials. `Ok(None)` on timeout.
fn receive(socket: &UnixDatagram, buf: &mut [u8]) -> std::io::Result<Option<(usize, Option<UnixCredentials>)>> {
    let mut cmsg = nix::cmsg_space!(UnixCredentials);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = match recvmsg::<UnixAddr>(socket.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::MSG_TRUNC) {
        Ok(m) => m,
        Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut cred = None;
    for c in msg.cmsgs().map_err(std::io::Error::from)? {
        if let ControlMessageOwned::ScmCredentials(uc) = c {
            cred = Some(uc);
        }
    }
    // MSG_TRUNC makes the kernel report the datagram's full length: oversized ones parse
    // as too long.
    Ok(Some((msg.bytes, cred)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn parses_the_protocol() {
        let m = parse_marker(b"epoch_end 3").unwrap();
        assert_eq!((m.boundary.phase, m.boundary.epoch, m.rank), (Phase::EpochEnd, Some(3), None));
        let m = parse_marker(b"validation_start 2 rank=1\n").unwrap();
        assert_eq!((m.boundary.phase, m.rank), (Phase::ValidationStart, Some(1)));
        let m = parse_marker(b"phase augment 3 17").unwrap();
        assert_eq!((m.boundary.phase, m.boundary.epoch, m.boundary.episode), (Phase::Custom("augment".into()), Some(3), Some(17)));
        assert_eq!(parse_marker(b"phase triplet_end 1").unwrap().boundary.phase, Phase::TripletEnd);
        assert_eq!(parse_marker(b"episode_end 1 40").unwrap().boundary.episode, Some(40));
        let g = parse_marker(b"epoch_end 2 gpu_allocated=10 gpu_reserved=20 gpu_peak_allocated=30 gpu_peak_reserved=40 rank=1").unwrap();
        assert_eq!((g.gpu.unwrap().reserved, g.gpu.unwrap().peak_reserved, g.rank), (20, 40, Some(1)));
        assert!(parse_marker(b"epoch_end 2 gpu_allocated=10").is_err(), "all four or none");
        assert!(parse_marker(b"epoch_end 2 secret=hunter2").is_err());
        assert!(parse_marker(b"epoch_end 2 auto=1").unwrap().auto && !parse_marker(b"epoch_end 2").unwrap().auto);
        assert!(parse_marker(b"epoch_end 2 auto=2").is_err());
        for bad in [&b""[..], b"epoch_end", b"epoch_end x", b"epoch_end 1 2", b"epoch_end -1", b"epoch_end 99999999999", b"nonsense 1",
            b"phase 1", b"phase bad/name 1", b"phase finish 1", b"epoch_end 1 rank=x", b"epoch_end  1", b"\xff\xfe", &[b'a'; 300][..]] {
            assert!(parse_marker(bad).is_err(), "{:?} accepted", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn socket_delivers_good_lines_and_counts_bad_ones() {
        let sock = MarkerSocket::bind().unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(sock.dir()).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o700);
        let (tx, rx) = mpsc::channel();
        sock.listen(move |m| tx.send(m).unwrap()).unwrap();
        let sender = UnixDatagram::unbound().unwrap();
        sender.send_to(b"garbage here", sock.path()).unwrap();
        sender.send_to(&[b'x'; 4000], sock.path()).unwrap();
        sender.send_to(b"epoch_end 7", sock.path()).unwrap();
        let m = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(m.boundary.epoch, Some(7));
        assert_eq!(m.pid, Some(std::process::id()));
        assert_eq!(sock.rejected(), 2);
    }

    #[test]
    fn a_given_path_must_be_in_a_private_folder_and_is_removed_after() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.sock");
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        let err = MarkerSocket::bind_at(Some(&path)).err().expect("a world-writable folder is refused");
        assert!(err.to_string().contains("no one else can write"), "{err}");
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        let sock = MarkerSocket::bind_at(Some(&path)).unwrap();
        assert_eq!(sock.path(), path);
        let (tx, rx) = mpsc::channel();
        sock.listen(move |m| tx.send(m).unwrap()).unwrap();
        UnixDatagram::unbound().unwrap().send_to(b"epoch_end 4", &path).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap().boundary.epoch, Some(4));
        assert!(MarkerSocket::bind_at(Some(&path)).is_err(), "a second bind at a taken path");
        drop(sock);
        assert!(!path.exists());
    }
}
