//! Readings that only a watched process tree has: copy-on-write in workers (USS rising
//! while RSS stays: shared pages turning private, not new memory), and how the watched
//! command ended.

use serde::Serialize;

use super::trend::theil_sen;
use super::verdict::Class;
use super::SeriesVerdict;

/// The cause given to series whose growth is copy-on-write.
pub const COPY_ON_WRITE: &str = "copy-on-write";

/// Growth of the private pages (USS, or the tree's PSS) that RSS does not share is pages
/// changing from shared to private: RSS may rise by at most this fraction of it.
const COW_RSS_SHARE: f64 = 0.3;

/// Growth slowing to this fraction of its earlier rate, or less, is levelling off.
const DECELERATION: f64 = 0.6;

/// For each (private series, RSS of the same processes): if the private series grows
/// beyond its noise tolerance while RSS stays (the pages that turned private, its growth
/// less RSS's, exceed the tolerance too), mark it copy-on-write with RSS as its ceiling, and class it bounded:
/// pages changing from shared to private can never pass the RSS they were counted in, so
/// this is not a leak however fast it goes now. `points(column)` gives a series' fitted
/// (epoch, bytes) points; [`decelerating`] on them tells the ledger whether it levels off.
pub fn mark_copy_on_write(series: &mut [SeriesVerdict], points: impl Fn(&str) -> Vec<(f64, f64)>) {
    const PAIRS: &[(&str, &str)] = &[("workers_uss_bytes", "workers_rss_bytes"), ("main_uss_bytes", "main_rss_bytes"), ("tree_pss_bytes", "tree_rss_bytes"), ("tree_uss_bytes", "tree_rss_bytes")];
    for (private, rss) in PAIRS {
        let rss_slope = series.iter().find(|s| s.column == *rss).and_then(|s| s.slope_bytes_per_epoch);
        let rss_last = series.iter().find(|s| s.column == *rss).map(|s| s.last_bytes);
        let Some(v) = series.iter_mut().find(|s| s.column == *private) else { continue };
        let (Some(slope), Some(rss_slope)) = (v.slope_bytes_per_epoch, rss_slope) else { continue };
        if !matches!(v.class, Class::Growing | Class::Bounded) || !is_copy_on_write(slope, rss_slope, v.tolerance_bytes_per_epoch) {
            continue;
        }
        v.cause = Some(COPY_ON_WRITE.into());
        v.ceiling_bytes = rss_last;
        v.class = Class::Bounded;
        v.levelling_off = Some(decelerating(&points(private)));
    }
}

/// Whether private memory rising `slope` a epoch while the RSS of the same processes
/// rises `rss_slope` is pages turning private: RSS rises by at most [`COW_RSS_SHARE`] of
/// it, and what turned private exceeds what RSS's share leaves of the noise tolerance (no
/// cause for noise; a series growing by more than its tolerance with RSS flat always has
/// one: 2 clean persistent workers at +1.077 MiB/epoch, RSS +28 KiB, tolerance 1 MiB,
/// missed it by 0 bytes when the whole tolerance was asked of the difference).
pub fn is_copy_on_write(slope: f64, rss_slope: f64, tolerance_bytes: f64) -> bool {
    slope > 0.0 && rss_slope <= COW_RSS_SHARE * slope && slope - rss_slope.max(0.0) > (1.0 - COW_RSS_SHARE) * tolerance_bytes
}

/// Whether the second half of the points rises at most [`DECELERATION`] times as fast
/// as the first half.
pub fn decelerating(points: &[(f64, f64)]) -> bool {
    if points.len() < 4 {
        return false;
    }
    let half = points.len() / 2;
    match (theil_sen(&points[..=half]), theil_sen(&points[half..])) {
        (Some(a), Some(b)) => a.slope > 0.0 && b.slope <= DECELERATION * a.slope,
        _ => false,
    }
}

/// How a watched command ended, from the label of the timeline's `finish` row
/// (`exit=0`, `signal=9 oom_kill=0->1`, `ended`, `detached`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CommandEnd {
    /// Its exit code.
    pub code: Option<i32>,
    /// The signal that killed it.
    pub signal: Option<i32>,
    /// SIGKILL while its cgroup's OOM-kill counter rose.
    pub oom_killed: bool,
    /// `--pid`: the watch was stopped while the process ran on.
    pub detached: bool,
    /// Seconds into the watch.
    pub t_s: f64,
    /// The last epoch that ended before it.
    pub last_epoch: Option<u32>,
}

/// Parse a `finish` row's label; `None` for labels `watch` does not write (a `run`).
pub fn parse_end(label: &str, t_s: f64, last_epoch: Option<u32>) -> Option<CommandEnd> {
    let mut end = CommandEnd { t_s, last_epoch, ..CommandEnd::default() };
    let mut known = false;
    for word in label.split_whitespace() {
        match word.split_once('=') {
            Some(("exit", v)) => end.code = v.parse().ok(),
            Some(("signal", v)) => end.signal = v.parse().ok(),
            Some(("oom_kill", _)) => end.oom_killed = true,
            None if word == "detached" => end.detached = true,
            None if word == "ended" => {}
            _ => return None,
        }
        known = true;
    }
    known.then_some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_parse() {
        let e = parse_end("signal=9 oom_kill=0->1", 12.0, Some(4)).unwrap();
        assert_eq!((e.signal, e.oom_killed, e.last_epoch), (Some(9), true, Some(4)));
        assert_eq!(parse_end("exit=3", 1.0, None).unwrap().code, Some(3));
        assert!(parse_end("detached", 1.0, None).unwrap().detached);
        assert_eq!(parse_end("", 1.0, None), None);
        assert_eq!(parse_end("my own label", 1.0, None), None);
    }

    #[test]
    fn deceleration() {
        let slowing: Vec<(f64, f64)> = [0.0, 73.0, 127.0, 169.0, 201.0, 227.0, 247.0].iter().enumerate().map(|(i, v)| (i as f64, *v)).collect();
        assert!(decelerating(&slowing));
        let steady: Vec<(f64, f64)> = (0..7).map(|i| (i as f64, 27.0 * i as f64)).collect();
        assert!(!decelerating(&steady));
    }
}
