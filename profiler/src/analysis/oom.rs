//! One out-of-memory projection, on what the kernel charges: the memory cgroup's
//! unreclaimable memory (anon + shmem) against the cgroup's limit, or, with no cgroup
//! limit, the machine's memory in use against MemTotal. Projected at the slope of the
//! recent epochs (a leak's rate is what it is now, not its average since warm-up), with
//! a range from the slope's interval.

use serde::Serialize;

use super::trend::theil_sen;
use super::verdict::{warmup_epochs, Tolerance};

/// How many of the latest post-warm-up epochs the projection's slope is fitted on.
pub const RECENT_EPOCHS: usize = 5;

/// When memory reaches the limit, if growth goes on as in the recent epochs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OomProjection {
    /// The timeline series projected.
    pub column: String,
    /// Its name in words.
    pub name: String,
    /// The limit it is compared against.
    pub limit_bytes: u64,
    /// `cgroup` or `meminfo`.
    pub limit_source: String,
    /// Its value at the last epoch end.
    pub last_bytes: u64,
    /// Bytes per epoch over the recent epochs.
    pub slope_bytes_per_epoch: f64,
    /// Epochs from the last one recorded until the limit.
    pub epochs_to_limit: f64,
    /// Soonest and latest (none: the slope's interval reaches zero) epochs to the limit.
    pub epochs_range: (f64, Option<f64>),
    /// The epoch index at which the limit is reached.
    pub at_epoch: f64,
    /// Seconds to the limit, at the recent epochs' duration.
    pub seconds_to_limit: Option<f64>,
    /// The epochs the slope was fitted on.
    pub fitted_epochs: Vec<u32>,
}

/// Project `points` (epoch, seconds, bytes) at epoch ends against `limit`. `None` when
/// too few epochs, or when the recent epochs do not grow beyond noise.
pub fn project(column: &str, name: &str, points: &[(u32, f64, f64)], limit: u64, limit_source: &str, tol: Tolerance) -> Option<OomProjection> {
    let kept = &points[warmup_epochs(points.len())..];
    let recent = &kept[kept.len().saturating_sub(RECENT_EPOCHS)..];
    if recent.len() < 3 {
        return None;
    }
    let xy: Vec<(f64, f64)> = recent.iter().map(|p| (p.0 as f64, p.2)).collect();
    let trend = theil_sen(&xy)?;
    let last = recent[recent.len() - 1];
    let noise = tol.floor_bytes.max(tol.relative * last.2);
    if trend.low <= 0.0 || trend.slope <= noise {
        return None;
    }
    let remaining = (limit as f64 - last.2).max(0.0);
    let epochs = remaining / trend.slope;
    let seconds_per_epoch = (last.1 - recent[0].1) / (last.0 - recent[0].0).max(1) as f64;
    Some(OomProjection {
        column: column.into(),
        name: name.into(),
        limit_bytes: limit,
        limit_source: limit_source.into(),
        last_bytes: last.2 as u64,
        slope_bytes_per_epoch: trend.slope,
        epochs_to_limit: epochs,
        epochs_range: (remaining / trend.high.max(trend.slope), (trend.low > 0.0).then(|| remaining / trend.low)),
        at_epoch: last.0 as f64 + epochs,
        seconds_to_limit: (seconds_per_epoch > 0.0).then(|| seconds_per_epoch * epochs),
        fitted_epochs: recent.iter().map(|p| p.0).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: f64 = 1024.0 * 1024.0;

    #[test]
    fn projects_the_recent_slope() {
        // Flat for 10 epochs, then +50 MB/epoch: the projection follows the new rate.
        let pts: Vec<(u32, f64, f64)> = (0..15u32).map(|e| (e, e as f64 * 60.0, 1000.0 * MB + 50.0 * MB * e.saturating_sub(10) as f64)).collect();
        let p = project("c", "c", &pts, (2000.0 * MB) as u64, "cgroup", Tolerance::default()).unwrap();
        assert_eq!(p.fitted_epochs, vec![10, 11, 12, 13, 14]);
        assert!((p.slope_bytes_per_epoch - 50.0 * MB).abs() < 1.0);
        assert!((p.epochs_to_limit - 16.0).abs() < 1e-6, "{p:?}");
        assert!((p.at_epoch - 30.0).abs() < 1e-6);
        assert!((p.seconds_to_limit.unwrap() - 960.0).abs() < 1e-6);
        assert!(p.epochs_range.0 <= p.epochs_to_limit && p.epochs_range.1.unwrap() >= p.epochs_to_limit);
    }

    #[test]
    fn no_projection_when_flat_or_short() {
        let flat: Vec<(u32, f64, f64)> = (0..8u32).map(|e| (e, e as f64, 1000.0 * MB + (e % 2) as f64 * MB)).collect();
        assert_eq!(project("c", "c", &flat, 1 << 40, "meminfo", Tolerance::default()), None);
        let short: Vec<(u32, f64, f64)> = (0..3u32).map(|e| (e, e as f64, 100.0 * MB * e as f64)).collect();
        assert_eq!(project("c", "c", &short, 1 << 40, "meminfo", Tolerance::default()), None);
    }
}
