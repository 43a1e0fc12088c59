//! Classifies one memory series as flat, bounded or growing from its values at epoch
//! ends, after warm-up.
//!
//! ```text
//!   epoch-end values ──drop warm-up──▶ Theil–Sen slope b, 90 % interval [lo, hi]
//!        │
//!        ├─ fewer than 3 epochs ................................. insufficient
//!        ├─ lo > 0 and b > tolerance* ─▶ last half flat? ── yes ─ bounded
//!        │                                              └─ no ── growing
//!        ├─ rose by > tolerance overall, last half flat ......... bounded
//!        └─ otherwise ........................................... flat
//! ```
//!
//! (*) with only two points after warm-up, also > 10 % of the level per epoch.
//!
//! The tolerance is the larger of an absolute floor and a fraction of the series' level,
//! so allocator jitter on a 2 GB working set is not a leak, while 1 % of the working set
//! per epoch is.

use serde::Serialize;

use super::trend::{theil_sen, Trend};

/// The class of a series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// No growth beyond noise after warm-up.
    Flat,
    /// Rose, then levelled off (a cache filling to capacity).
    Bounded,
    /// Keeps rising epoch after epoch.
    Growing,
    /// Too few epochs after warm-up to judge.
    Insufficient,
}

impl Class {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Flat => "flat",
            Class::Bounded => "bounded",
            Class::Growing => "growing",
            Class::Insufficient => "insufficient",
        }
    }
}

/// Thresholds of the classification.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Tolerance {
    /// Growth per epoch below this many bytes is noise.
    pub floor_bytes: f64,
    /// Growth per epoch below this fraction of the series' median level is noise.
    pub relative: f64,
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance { floor_bytes: 512.0 * 1024.0, relative: 0.004 }
    }
}

/// With only two epochs after warm-up, growth must exceed this fraction of the level per
/// epoch to be called growing (RSS at epoch ends jitters by a few % with allocator decay).
pub const SHORT_RUN_RELATIVE: f64 = 0.10;

/// How many leading epochs are warm-up: a fifth of them, at least one, leaving two.
pub fn warmup_epochs(n: usize) -> usize {
    if n < 3 {
        0
    } else {
        (n / 5).max(1).min(n - 2)
    }
}

/// The classification of one series.
#[derive(Clone, Debug, Serialize)]
pub struct Classified {
    /// The class.
    pub class: Class,
    /// The fit over the points after warm-up (`None` if insufficient).
    pub trend: Option<Trend>,
    /// Bytes per epoch below which growth counts as noise, for this series.
    pub tolerance_bytes: f64,
    /// How many leading points were excluded as warm-up.
    pub warmup: usize,
    /// With class growing: the x (epoch) from which it grows. The first fitted one when
    /// the whole run grows; later when growth started late (see [`late_growth`]), and
    /// then `trend` is the fit from there on.
    pub growing_since: Option<f64>,
    /// With late growth: the x where its fit starts (later points only were fitted).
    pub late_fit_from: Option<f64>,
}

impl Classified {
    /// The points its trend was fitted on: after warm-up, and from where late growth
    /// began; `x` gives a point's epoch. Serves series with other values per point too.
    pub fn fitted<T: Copy>(&self, points: &[T], x: impl Fn(&T) -> f64) -> Vec<T> {
        points[self.warmup.min(points.len())..].iter().copied().filter(|p| self.late_fit_from.is_none_or(|from| x(p) >= from)).collect()
    }
}

/// Classify epoch-end points `(epoch, bytes)`, in epoch order, excluding warm-up.
pub fn classify(points: &[(f64, f64)], tol: Tolerance) -> Classified {
    let warmup = warmup_epochs(points.len());
    let kept = &points[warmup..];
    let mut c = classify_measured(kept, tol);
    c.warmup = warmup;
    if points.len() < 3 {
        c.class = Class::Insufficient;
        c.trend = None;
    } else if let Some((since, from, trend)) = late_growth(kept, tol) {
        // Growing from some epoch on: say where it began and, if that was after the first
        // fitted epoch (always so when the fit over all epochs missed it), fit the slope
        // from there on.
        (c.class, c.growing_since) = (Class::Growing, Some(since));
        if from > kept[0].0 {
            (c.trend, c.late_fit_from) = (Some(trend), Some(from));
        }
    }
    c
}

/// The (upper) median of the points' values; 0 without points.
pub(crate) fn median_level(points: &[(f64, f64)]) -> f64 {
    let mut levels: Vec<f64> = points.iter().map(|p| p.1).collect();
    levels.sort_by(|a, b| a.total_cmp(b));
    levels.get(levels.len() / 2).copied().unwrap_or(0.0)
}

/// The median level of `points` and the growth per epoch below which they count as
/// noise there: the larger of the floor and the relative tolerance of that level.
fn noise_tolerance(points: &[(f64, f64)], tol: Tolerance) -> (f64, f64) {
    let level = median_level(points);
    (level, tol.floor_bytes.max(tol.relative * level))
}

/// Fewest points after a change for late growth to be confirmed.
pub const LATE_GROWTH_POINTS: usize = 4;

/// Growth that started after the run had been flat for a while, which a fit over all
/// epochs discounts (the flat epochs outnumber the rising ones). Confirmed when, from
/// some epoch on, at least [`LATE_GROWTH_POINTS`] points are growing by themselves
/// (interval above zero, slope above the noise tolerance, not levelling off) *and* each
/// of the last three points stands above every point before them by more than the
/// tolerance: a one-epoch spike, a cache that filled and stopped, or noise do not. Returns
/// the first epoch that rose, where the fit starts, and the fit from there on.
pub fn late_growth(kept: &[(f64, f64)], tol: Tolerance) -> Option<(f64, f64, Trend)> {
    let n = kept.len();
    if n < LATE_GROWTH_POINTS {
        return None;
    }
    let (_, noise) = noise_tolerance(kept, tol);
    let before_last3 = kept[..n - 3].iter().map(|p| p.1).fold(f64::MIN, f64::max);
    if kept[n - 3..].iter().any(|p| p.1 <= before_last3 + noise) {
        return None;
    }
    // The earliest start from which the rest grows by itself.
    (0..=n - LATE_GROWTH_POINTS).find_map(|k| {
        let tail = &kept[k..];
        let c = classify_measured(tail, tol);
        if c.class != Class::Growing {
            return None;
        }
        // Name the first epoch of the tail that rose above the level before it; rising
        // from the first fitted point on, it grew before the fit began.
        let base = kept[..=k].iter().map(|p| p.1).fold(f64::MIN, f64::max);
        let first_above = tail.iter().position(|p| p.1 > base + noise).unwrap_or(0);
        let since = if k == 0 && first_above <= 1 { tail[0].0 } else { tail[first_above].0 };
        // The slope from the last flat epoch on: the flat ones before would flatten it.
        let knee = (k + first_above).saturating_sub(1).max(k);
        let trend = if knee > k { theil_sen(&kept[knee..]) } else { c.trend };
        Some((since, kept[knee].0, trend?))
    })
}

/// Classify points that are all past warm-up (the caller chose which).
pub fn classify_measured(kept: &[(f64, f64)], tol: Tolerance) -> Classified {
    let warmup = 0;
    let (level, tolerance_bytes) = noise_tolerance(kept, tol);

    let Some(trend) = theil_sen(kept) else {
        return Classified { class: Class::Insufficient, trend: None, tolerance_bytes, warmup, growing_since: None, late_fit_from: None };
    };
    // The last half levelling off marks saturation; it needs enough points to say so.
    let last_half_flat = kept.len() >= 4 && {
        let tail = &kept[kept.len() - kept.len().div_ceil(2)..];
        theil_sen(tail).is_some_and(|t| t.slope <= tolerance_bytes)
    };
    let rise = kept.last().map_or(0.0, |l| l.1) - kept[0].1;
    // Two points give no interval: only growth far above noise is called growing then.
    let needed = if kept.len() < 3 { tolerance_bytes.max(SHORT_RUN_RELATIVE * level) } else { tolerance_bytes };
    let class = if trend.low > 0.0 && trend.slope > needed {
        if last_half_flat {
            Class::Bounded
        } else {
            Class::Growing
        }
    } else if rise > tolerance_bytes && last_half_flat && trend.slope > 0.0 {
        Class::Bounded
    } else {
        Class::Flat
    };
    let growing_since = (class == Class::Growing).then(|| kept[0].0);
    Classified { class, trend: Some(trend), tolerance_bytes, warmup, growing_since, late_fit_from: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: f64 = 1024.0 * 1024.0;

    fn series(n: usize, f: impl Fn(usize) -> f64) -> Vec<(f64, f64)> {
        (0..n).map(|i| (i as f64, f(i))).collect()
    }

    /// Deterministic noise of about ±amp.
    fn noise(i: usize, seed: usize, amp: f64) -> f64 {
        let h = (i * 2654435761 + seed * 40503) % 1000;
        (h as f64 / 1000.0 - 0.5) * 2.0 * amp
    }

    #[test]
    fn flat_with_noise_is_flat() {
        for seed in 0..50 {
            let pts = series(10, |i| 500.0 * MB + noise(i, seed, 0.5 * MB));
            assert_eq!(classify(&pts, Tolerance::default()).class, Class::Flat, "seed {seed}");
        }
    }

    #[test]
    fn one_percent_of_working_set_per_epoch_is_growing_within_five_epochs() {
        for seed in 0..50 {
            let pts = series(5, |i| 500.0 * MB + 5.0 * MB * i as f64 + noise(i, seed, 0.5 * MB));
            let c = classify(&pts, Tolerance::default());
            assert_eq!(c.class, Class::Growing, "seed {seed}: {c:?}");
            let slope = c.trend.unwrap().slope;
            assert!((slope - 5.0 * MB).abs() < 1.0 * MB, "slope {slope}");
        }
    }

    #[test]
    fn filling_cache_is_bounded_not_growing() {
        // Warm-up, then a cache that fills over 4 epochs and stays full.
        let pts = series(12, |i| 300.0 * MB + 20.0 * MB * (i.min(5) as f64));
        assert_eq!(classify(&pts, Tolerance::default()).class, Class::Bounded);
    }

    #[test]
    fn warmup_growth_alone_is_flat() {
        let pts = series(6, |i| if i == 0 { 100.0 * MB } else { 400.0 * MB });
        let c = classify(&pts, Tolerance::default());
        assert_eq!((c.class, c.warmup), (Class::Flat, 1));
    }

    #[test]
    fn three_epochs_need_large_growth() {
        let jitter = series(3, |i| [500.0, 490.0, 521.0][i] * MB);
        assert_eq!(classify(&jitter, Tolerance::default()).class, Class::Flat);
        let leak = series(3, |i| 500.0 * MB + 80.0 * MB * i as f64);
        assert_eq!(classify(&leak, Tolerance::default()).class, Class::Growing);
    }

    #[test]
    fn two_epochs_are_insufficient() {
        let c = classify(&series(2, |i| i as f64 * 100.0 * MB), Tolerance::default());
        assert_eq!(c.class, Class::Insufficient);
        assert_eq!(warmup_epochs(3), 1);
        assert_eq!(warmup_epochs(10), 2);
    }
}
