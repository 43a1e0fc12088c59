//! A [`Marker`] that sends each boundary to `diagnose watch` over its marker socket, so a
//! program watched from outside marks its epochs without linking the profiler.
//!
//! The socket's path comes from the environment variable [`MARKER_ENV`]; without it the
//! marker does nothing. Sends never block and never fail the program: a datagram that
//! cannot be sent is dropped.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;

use crate::{Boundary, Marker, Phase};

/// The environment variable holding the marker socket's path.
pub const MARKER_ENV: &str = "DIAGNOSE_MARKER_SOCKET";

/// Sends boundaries as one-line datagrams (`epoch_end 3`, `phase augment 3 17`).
#[derive(Debug)]
pub struct SocketMarker {
    target: Option<(UnixDatagram, PathBuf)>,
    rank: Option<u32>,
}

impl SocketMarker {
    /// A marker for the socket named in [`MARKER_ENV`]; a no-op when it is unset or the
    /// socket cannot be created. Adds `rank=R` when the `RANK` variable holds a number.
    pub fn from_env() -> Self {
        let target = std::env::var_os(MARKER_ENV).and_then(|path| {
            let socket = UnixDatagram::unbound().ok()?;
            socket.set_nonblocking(true).ok()?;
            Some((socket, PathBuf::from(path)))
        });
        let rank = std::env::var("RANK").ok().and_then(|r| r.parse().ok());
        SocketMarker { target, rank }
    }

    /// Whether a watcher is listening (the variable was set).
    pub fn is_active(&self) -> bool {
        self.target.is_some()
    }

    /// The line sent for `b`, or `None` for boundaries the watcher records itself.
    pub fn line(b: &Boundary, rank: Option<u32>) -> Option<String> {
        let epoch = b.epoch.unwrap_or(0);
        let mut line = match &b.phase {
            Phase::Start | Phase::Finish => return None,
            Phase::EpochEnd | Phase::ValidationStart | Phase::ValidationEnd => format!("{} {epoch}", b.phase),
            Phase::EpisodeEnd => format!("episode_end {epoch} {}", b.episode.unwrap_or(0)),
            other => match b.episode {
                Some(step) => format!("phase {other} {epoch} {step}"),
                None => format!("phase {other} {epoch}"),
            },
        };
        if let Some(r) = rank {
            line.push_str(&format!(" rank={r}"));
        }
        Some(line)
    }
}

impl Marker for SocketMarker {
    fn mark(&mut self, boundary: Boundary) {
        if let (Some((socket, path)), Some(line)) = (&self.target, Self::line(&boundary, self.rank)) {
            let _ = socket.send_to(line.as_bytes(), path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_follow_the_protocol() {
        let line = |b: Boundary| SocketMarker::line(&b, None);
        assert_eq!(line(Boundary::new(Phase::EpochEnd).epoch(3)).unwrap(), "epoch_end 3");
        assert_eq!(line(Boundary::new(Phase::EpisodeEnd).epoch(1).episode(9)).unwrap(), "episode_end 1 9");
        assert_eq!(line(Boundary::new(Phase::Custom("augment".into())).epoch(3).episode(17)).unwrap(), "phase augment 3 17");
        assert_eq!(SocketMarker::line(&Boundary::new(Phase::ValidationEnd).epoch(2), Some(1)).unwrap(), "validation_end 2 rank=1");
        assert_eq!(line(Boundary::new(Phase::Start)), None);
    }

    #[test]
    fn sends_to_a_listener() {
        let dir = std::env::temp_dir().join(format!("socket-marker-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        let mut m = SocketMarker { target: Some((UnixDatagram::unbound().unwrap(), path.clone())), rank: None };
        m.epoch_end(4);
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"epoch_end 4");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(!SocketMarker { target: None, rank: None }.is_active());
    }
}
