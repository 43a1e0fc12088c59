//! One out-of-memory projection, on what the kernel charges: the memory cgroup's
//! unreclaimable memory (anon + shmem) against the cgroup's limit, or, with no cgroup
//! limit, the machine's memory in use against MemTotal. The kernel kills at an epoch's
//! high point (validation's temporaries on top of what is kept), so the level projected
//! is each epoch's peak, not its end. Projected at the slope of the recent epochs (a
//! leak's rate is what it is now, not its average since warm-up), with a range from the
//! slope's interval; against the machine, at the run's own rate (the machine's memory
//! moves with every other job on it).

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
    /// Its value at the last epoch's peak (on the fitted line through the recent peaks).
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

/// What to project.
pub struct OomInput<'a> {
    /// The timeline series of `level`.
    pub column: &'a str,
    /// How the projection names it.
    pub name: &'a str,
    /// (epoch, seconds, bytes at the epoch's peak) of the charged series.
    pub level: &'a [(u32, f64, f64)],
    /// (epoch, seconds, bytes) of the series whose slope is projected, where it is not
    /// `level` itself (the run's own memory against the machine's).
    pub rate: Option<&'a [(u32, f64, f64)]>,
    /// The limit.
    pub limit: u64,
    /// `cgroup`, `meminfo`, ...
    pub limit_source: &'a str,
}

/// Project `input` against its limit. `None` when too few epochs, or when the recent
/// epochs do not grow beyond noise.
pub fn project(input: &OomInput, tol: Tolerance) -> Option<OomProjection> {
    let recent = |points: &'_ [(u32, f64, f64)]| -> Vec<(u32, f64, f64)> {
        let kept = &points[warmup_epochs(points.len())..];
        kept[kept.len().saturating_sub(RECENT_EPOCHS)..].to_vec()
    };
    let level = recent(input.level);
    let rate = input.rate.map_or_else(|| level.clone(), recent);
    if level.is_empty() || rate.len() < 3 {
        return None;
    }
    let xy: Vec<(f64, f64)> = rate.iter().map(|p| (p.0 as f64, p.2)).collect();
    let trend = theil_sen(&xy)?;
    let last = level[level.len() - 1];
    // The recent epochs span a few epochs only: the tolerance per epoch, unscaled.
    let noise = tol.floor_bytes.max(tol.relative * rate[rate.len() - 1].2);
    if trend.low <= 0.0 || trend.slope <= noise {
        return None;
    }
    // The level now: on the line through the recent peaks (one high validation does not
    // move it), or the last peak where only the rate is fitted.
    let now = if input.rate.is_none() {
        let mut residuals: Vec<f64> = level.iter().map(|p| p.2 - trend.slope * p.0 as f64).collect();
        residuals.sort_by(|a, b| a.total_cmp(b));
        residuals[residuals.len() / 2] + trend.slope * last.0 as f64
    } else {
        last.2
    };
    let remaining = (input.limit as f64 - now).max(0.0);
    let epochs = remaining / trend.slope;
    let first = rate[0];
    let seconds_per_epoch = (last.1 - first.1) / (last.0.saturating_sub(first.0)).max(1) as f64;
    Some(OomProjection {
        column: input.column.into(),
        name: input.name.into(),
        limit_bytes: input.limit,
        limit_source: input.limit_source.into(),
        last_bytes: now as u64,
        slope_bytes_per_epoch: trend.slope,
        epochs_to_limit: epochs,
        epochs_range: (remaining / trend.high.max(trend.slope), (trend.low > 0.0).then_some(remaining / trend.low)),
        at_epoch: last.0 as f64 + epochs,
        seconds_to_limit: (seconds_per_epoch > 0.0).then_some(seconds_per_epoch * epochs),
        fitted_epochs: rate.iter().map(|p| p.0).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: f64 = 1024.0 * 1024.0;

    fn input<'a>(level: &'a [(u32, f64, f64)], rate: Option<&'a [(u32, f64, f64)]>, limit: u64) -> OomInput<'a> {
        OomInput { column: "c", name: "c", level, rate, limit, limit_source: "cgroup" }
    }

    #[test]
    fn the_machine_is_projected_at_the_runs_own_rate() {
        // The machine's memory rises +22 MiB/epoch (another job beside us), the run's own
        // +10: the run's rate, against what is left.
        let machine: Vec<(u32, f64, f64)> = (0..8u32).map(|e| (e, e as f64, 4000.0 * MB + 22.0 * MB * e as f64)).collect();
        let own: Vec<(u32, f64, f64)> = (0..8u32).map(|e| (e, e as f64, 500.0 * MB + 10.0 * MB * e as f64)).collect();
        let p = project(&OomInput { limit_source: "meminfo", ..input(&machine, Some(&own), (5000.0 * MB) as u64) }, Tolerance::default()).unwrap();
        assert!((p.slope_bytes_per_epoch - 10.0 * MB).abs() < 1.0, "{p:?}");
        assert!((p.epochs_to_limit - (1000.0 - 154.0) / 10.0).abs() < 1e-6, "{p:?}");
    }

    #[test]
    fn projects_the_recent_slope() {
        // Flat for 10 epochs, then +50 MB/epoch: the projection follows the new rate.
        let pts: Vec<(u32, f64, f64)> = (0..15u32).map(|e| (e, e as f64 * 60.0, 1000.0 * MB + 50.0 * MB * e.saturating_sub(10) as f64)).collect();
        let p = project(&input(&pts, None, (2000.0 * MB) as u64), Tolerance::default()).unwrap();
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
        assert_eq!(project(&input(&flat, None, 1 << 40), Tolerance::default()), None);
        let short: Vec<(u32, f64, f64)> = (0..3u32).map(|e| (e, e as f64, 100.0 * MB * e as f64)).collect();
        assert_eq!(project(&input(&short, None, 1 << 40), Tolerance::default()), None);
    }
}
