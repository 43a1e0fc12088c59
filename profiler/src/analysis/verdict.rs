//! Classifies one memory series as flat, bounded or growing from its values at epoch
//! ends, after warm-up.
//!
//! ```text
//!   epoch-end values ──drop warm-up──▶ thin to ≤ MAX_FIT_POINTS ──▶ Theil–Sen slope b, 90 % interval [lo, hi]
//!        │
//!        ├─ fewer than 3 points after warm-up ─▶ each step > 10 % of the level? ─ yes ─ growing (so far)
//!        │                                                                     └─ no ── insufficient
//!        ├─ lo > 0 and b > tolerance ─▶ last half flat and slowed down? ── yes ─ bounded
//!        │                                                          └─ no ── growing
//!        ├─ rose by > tolerance overall, last half flat and slowed down ...... bounded
//!        └─ otherwise ........................................................ flat
//! ```
//!
//! The tolerance is the larger of an absolute floor and a fraction of the series' level,
//! so allocator jitter on a 2 GB working set is not a leak, while 1 % of the working set
//! per epoch is. It is a budget for the whole span judged, not a rate per epoch: up to
//! [`Tolerance::span_epochs`] epochs it allows `floor_bytes` (or `relative` of the level)
//! per epoch, and over a longer span that same total, spread over its epochs. So the
//! same run gives the same verdict whether it is marked as 10, 168, 2000 or 10,000 epochs
//! (or fixed windows): a rate per epoch would shrink a leak under the tolerance just by
//! cutting the run finer.
//!
//! Each judgment costs a bounded amount however long the run: a series of more than
//! [`MAX_FIT_POINTS`] points is thinned to that many (the medians of consecutive runs of
//! points) before the fit, whose pairwise slopes grow with the square of the points.

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
    /// Growth per epoch below this many bytes is noise (over a span of up to
    /// `span_epochs`; over a longer span, this times `span_epochs` in all).
    pub floor_bytes: f64,
    /// Growth per epoch below this fraction of the series' median level is noise (over
    /// a span of up to `span_epochs`; over a longer span, this times `span_epochs` in all).
    pub relative: f64,
    /// The span, in epochs, past which the tolerance stops growing with the span: the
    /// budget for the whole span is then fixed, whatever the number of epochs it holds.
    pub span_epochs: f64,
    /// A young fit's budget: growth per epoch below this fraction of the level is noise
    /// over a span of up to [`SETTLING_SPAN_EPOCHS`], and below this times that span in
    /// all over a longer one (so that it fades into `relative` past a few epochs). A
    /// process still settles in its first epochs (allocator arenas, interpreter caches,
    /// pages of forked DataLoader workers): clean PyTorch Lightning with 2 workers made
    /// anew each epoch rose +2.2 to +2.9 MiB/epoch at its first 4 epoch ends after warm-up
    /// in 3 of 13 runs (0.45-0.57 % of its 510 MiB), steadily enough to read growing at
    /// 0.4 %. A leak of 1 % of the level per epoch still reads growing from 5 epochs. 0:
    /// none (the flat-memory check's own strict budget).
    pub settling: f64,
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance { floor_bytes: 512.0 * 1024.0, relative: 0.004, span_epochs: REFERENCE_SPAN_EPOCHS, settling: 0.0075 }
    }
}

/// The span over which a young fit's budget ([`Tolerance::settling`]) is a rate per
/// epoch: 0.75 %/epoch over 3 epochs, 2.25 % in all over longer spans (0.56 %/epoch over
/// 4, the long-run 0.4 % from 5.6 epochs on).
pub const SETTLING_SPAN_EPOCHS: f64 = 3.0;

/// Past this many epochs judged, the tolerance is a fixed budget for the span (5 MiB or
/// 4 % of the level with the defaults), not a rate per epoch.
pub const REFERENCE_SPAN_EPOCHS: f64 = 10.0;

impl Tolerance {
    /// Growth per epoch below which a fit over `span` epochs at `level` bytes is noise.
    pub fn per_epoch(&self, level: f64, span: f64) -> f64 {
        let base = self.floor_bytes.max(self.relative * level);
        let long = if span > self.span_epochs { base * self.span_epochs / span } else { base };
        let settling = self.settling * level * (SETTLING_SPAN_EPOCHS / span.max(1.0)).min(1.0);
        long.max(settling)
    }

    /// The most a series at `level` may rise over `span` epochs and still be noise.
    pub fn over_span(&self, level: f64, span: f64) -> f64 {
        self.per_epoch(level, span) * span
    }
}

/// With only two epochs after warm-up, growth must exceed this fraction of the level per
/// epoch to be called growing (RSS at epoch ends jitters by a few % with allocator decay).
pub const SHORT_RUN_RELATIVE: f64 = 0.10;

/// The most leading epochs counted as warm-up by their number (a fifth of them, at least
/// one): a week of 10,000 windows does not lose 2,000 of them.
pub const MAX_WARMUP_EPOCHS: usize = 10;

/// With fixed windows (`watch --window`), every window that ended within this many
/// seconds of the command's start is warm-up: an interpreter importing torch and
/// DataLoader workers starting take seconds, and windows cut through them blindly.
pub const STARTUP_SECONDS: f64 = 10.0;

/// Fewest points after warm-up for a verdict other than "insufficient" (or "growing so
/// far"): two points have no interval, and cannot tell jitter from a trend.
pub const MIN_FIT_POINTS: usize = 3;

/// The most points a fit uses: longer series are thinned to this many first.
pub const MAX_FIT_POINTS: usize = 120;

/// How many leading epochs are warm-up: a fifth of them, at least one, at most
/// [`MAX_WARMUP_EPOCHS`], leaving two.
pub fn warmup_epochs(n: usize) -> usize {
    if n < 3 {
        0
    } else {
        (n / 5).clamp(1, MAX_WARMUP_EPOCHS).min(n - 2)
    }
}

/// Warm-up bounded in time as well: besides [`warmup_epochs`], every point that ended
/// within `startup_s` seconds of the start (`times` are the points' seconds). Start-up
/// (an interpreter importing torch, workers starting) is never growth, however finely
/// fixed windows cut it; this may leave fewer points than a verdict needs.
pub fn warmup_timed(times: &[f64], startup_s: f64) -> usize {
    warmup_epochs(times.len()).max(times.iter().take_while(|t| **t < startup_s).count())
}

/// The classification of one series.
#[derive(Clone, Debug, Serialize)]
pub struct Classified {
    /// The class.
    pub class: Class,
    /// The fit over the points after warm-up (`None` if insufficient).
    pub trend: Option<Trend>,
    /// Bytes per epoch below which growth counts as noise, for this series over the
    /// span it was judged on.
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

    /// Whether the class rests on a fit with an interval (at least [`MIN_FIT_POINTS`]
    /// points): "growing" from two points is only "growing so far".
    pub fn confirmed(&self) -> bool {
        self.trend.is_some_and(|t| t.points >= MIN_FIT_POINTS)
    }
}

/// Classify epoch-end points `(epoch, bytes)`, in epoch order, excluding warm-up.
pub fn classify(points: &[(f64, f64)], tol: Tolerance) -> Classified {
    classify_after(points, warmup_epochs(points.len()), tol)
}

/// Classify epoch-end points excluding the first `warmup` of them (see [`warmup_timed`]).
pub fn classify_after(points: &[(f64, f64)], warmup: usize, tol: Tolerance) -> Classified {
    let warmup = warmup.min(points.len());
    let kept = thin(&points[warmup..], MAX_FIT_POINTS);
    let mut c = classify_measured(&kept, tol);
    c.warmup = warmup;
    if points.len() < 3 {
        c.class = Class::Insufficient;
        c.trend = None;
    } else if let Some((since, from, trend)) = late_growth(&kept, tol) {
        // Growing from some epoch on: say where it began and, if that was after the first
        // fitted epoch (always so when the fit over all epochs missed it), fit the slope
        // from there on.
        (c.class, c.growing_since) = (Class::Growing, Some(since));
        if from > kept[0].0 {
            (c.trend, c.late_fit_from) = (Some(trend), Some(from));
        }
    }
    // Growing from the first fitted point: that is the first epoch after warm-up, not
    // the middle of the first run of thinned points.
    if c.growing_since.is_some() && c.growing_since == kept.first().map(|p| p.0) {
        c.growing_since = points.get(warmup).map(|p| p.0);
    }
    c
}

/// At most `max` points: the series itself when it has no more, else the medians (of x
/// and of y) of `max` consecutive runs of nearly equal length. A linear series stays on
/// its line; a one-point spike vanishes in its run's median, as it would in the fit.
pub fn thin(points: &[(f64, f64)], max: usize) -> Vec<(f64, f64)> {
    let n = points.len();
    if n <= max || max == 0 {
        return points.to_vec();
    }
    let mut ys = Vec::with_capacity(n / max + 1);
    (0..max)
        .map(|b| {
            let run = &points[b * n / max..(b + 1) * n / max];
            ys.clear();
            ys.extend(run.iter().map(|p| p.1));
            ys.sort_by(|a, b| a.total_cmp(b));
            let m = ys.len();
            let y = if m % 2 == 1 { ys[m / 2] } else { (ys[m / 2 - 1] + ys[m / 2]) / 2.0 };
            let x = (run[(m - 1) / 2].0 + run[m / 2].0) / 2.0;
            (x, y)
        })
        .collect()
}

/// The (upper) median of the points' values; 0 without points.
pub(crate) fn median_level(points: &[(f64, f64)]) -> f64 {
    let mut levels: Vec<f64> = points.iter().map(|p| p.1).collect();
    if levels.is_empty() {
        return 0.0;
    }
    let k = levels.len() / 2;
    *levels.select_nth_unstable_by(k, |a, b| a.total_cmp(b)).1
}

/// The epochs `points` span (last x minus first), at least one.
fn span(points: &[(f64, f64)]) -> f64 {
    match (points.first(), points.last()) {
        (Some(a), Some(b)) => (b.0 - a.0).max(1.0),
        _ => 1.0,
    }
}

/// The median level of `points` and the growth per epoch below which they count as
/// noise there, over their span.
fn noise_tolerance(points: &[(f64, f64)], tol: Tolerance) -> (f64, f64) {
    let level = median_level(points);
    (level, tol.per_epoch(level, span(points)))
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

/// Epoch ends a plateau needs after its knee before a rise counts as levelled off.
pub const PLATEAU_POINTS: usize = 3;

/// Whether the last [`PLATEAU_POINTS`] points stand at a plateau already reached before
/// them: none above the highest earlier point by more than the tolerance, or a tenth of
/// the rise to it (a full cache's bookkeeping still moves by a few KiB). One low last
/// point after a rise is not a plateau; three epoch ends that rose no further are.
pub fn plateau_holds(kept: &[(f64, f64)], tolerance_bytes: f64) -> bool {
    let n = kept.len();
    if n <= PLATEAU_POINTS {
        return false;
    }
    let reached = kept[..n - PLATEAU_POINTS].iter().map(|p| p.1).fold(f64::MIN, f64::max);
    let slack = tolerance_bytes.max(0.1 * (reached - kept[0].1));
    kept[n - PLATEAU_POINTS..].iter().all(|p| p.1 <= reached + slack)
}

/// Whether growth goes on in the latest epochs: the last point above every point up to
/// two epoch ends before it by more than the tolerance. A cache that filled and stopped
/// fails this from the second epoch end after it filled; a leak passes it at every one.
/// On a long run a slow leak under jitter (+1 MiB/epoch, epoch ends 4 MiB apart) seldom
/// has its last point on top: there the latest quarter of the epoch ends (8 to
/// [`MAX_FIT_POINTS`] of them) rising, its slope's interval above zero and its slope
/// above the tolerance, says so too. A cache that stopped filling fails that once the
/// quarter lies past the knee.
pub fn still_rising(kept: &[(f64, f64)], tolerance_bytes: f64) -> bool {
    let n = kept.len();
    if n < 3 {
        return false;
    }
    let before = kept[..n - 2].iter().map(|p| p.1).fold(f64::MIN, f64::max);
    if kept[n - 1].1 > before + tolerance_bytes {
        return true;
    }
    if n < 2 * RECENT_POINTS {
        return false;
    }
    let recent = &kept[n - (n / 4).clamp(RECENT_POINTS, MAX_FIT_POINTS)..];
    theil_sen(recent).is_some_and(|t| t.low > 0.0 && t.slope > tolerance_bytes)
}

/// The fewest latest epoch ends that [`still_rising`] fits on a long run.
const RECENT_POINTS: usize = 8;

/// A last half that levels off after a first half that rose: its slope within the
/// tolerance, and at most half the first half's, with a plateau of at least
/// [`PLATEAU_POINTS`] epoch ends after the knee ([`plateau_holds`]). A straight line
/// never does, however its slope compares with the tolerance.
fn levels_off(kept: &[(f64, f64)], tolerance_bytes: f64) -> bool {
    if kept.len() < 4 || !plateau_holds(kept, tolerance_bytes) {
        return false;
    }
    let half = kept.len() / 2;
    let (first, last) = (theil_sen(&kept[..=half]), theil_sen(&kept[kept.len() - kept.len().div_ceil(2)..]));
    match (first, last) {
        (Some(f), Some(l)) => l.slope <= tolerance_bytes && l.slope <= 0.5 * f.slope.max(0.0),
        _ => false,
    }
}

/// Classify points that are all past warm-up (the caller chose which). Long series are
/// thinned to [`MAX_FIT_POINTS`] first.
pub fn classify_measured(kept: &[(f64, f64)], tol: Tolerance) -> Classified {
    classify_fit(kept, tol, true)
}

/// [`classify_measured`]; with `drop_ok`, a trend the points before a low last one
/// confirm stands (one level deep: two low points are a change, not a drop).
fn classify_fit(kept: &[(f64, f64)], tol: Tolerance, drop_ok: bool) -> Classified {
    let thinned;
    let kept = if kept.len() > MAX_FIT_POINTS {
        thinned = thin(kept, MAX_FIT_POINTS);
        &thinned[..]
    } else {
        kept
    };
    let warmup = 0;
    let (level, tolerance_bytes) = noise_tolerance(kept, tol);

    let Some(trend) = theil_sen(kept) else {
        return Classified { class: Class::Insufficient, trend: None, tolerance_bytes, warmup, growing_since: None, late_fit_from: None };
    };
    let rise = kept.last().map_or(0.0, |l| l.1) - kept[0].1;
    let class = if kept.len() < MIN_FIT_POINTS {
        // Two points give no interval: "growing so far" when they rise far above noise,
        // else nothing can be said yet (never "flat").
        let needed = tolerance_bytes.max(SHORT_RUN_RELATIVE * level);
        if trend.slope > needed {
            Class::Growing
        } else {
            Class::Insufficient
        }
    } else if trend.low > 0.0 && trend.slope > tolerance_bytes {
        if levels_off(kept, tolerance_bytes) {
            Class::Bounded
        } else {
            Class::Growing
        }
    } else if rise > tolerance_bytes * span(kept) && trend.slope > 0.0 && levels_off(kept, tolerance_bytes) {
        Class::Bounded
    } else if trend.slope > tolerance_bytes && trend.low < 0.0 {
        // Growing by its slope, but its interval reaches below zero (a spike at one epoch
        // end): the data cannot say flat. (A watched leak of 1.6 % of the level per epoch
        // read "flat +6.1 MiB/epoch [-9.6, +6.9]" from 6 epochs.) An interval that ends at
        // zero is a step: most pairs of points equal, as when glibc moves a freed 8 MiB
        // buffer into its heap once (a clean loop: 15, 15, 15, 23, 23, 23 MiB); flat, as
        // one step does not make a trend.
        Class::Insufficient
    } else {
        Class::Flat
    };
    // One low last epoch end does not overturn a trend the others confirm: a plateau
    // takes three (see `plateau_holds`), a drop one more point than it can judge.
    if drop_ok && class != Class::Growing && kept.len() > MIN_FIT_POINTS + 1 {
        let before = classify_fit(&kept[..kept.len() - 1], tol, false);
        if before.class == Class::Growing && kept[kept.len() - 1].1 < kept[kept.len() - 2].1 {
            return before;
        }
    }
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
    fn one_low_last_point_is_not_a_plateau_and_three_at_the_top_are() {
        // A leak of 25 MiB/epoch whose last epoch end was read low (the HF test's shape).
        let low_last = series(6, |i| if i == 5 { 500.0 * MB + 60.0 * MB } else { 500.0 * MB + 25.0 * MB * i as f64 });
        assert_eq!(classify(&low_last, Tolerance::default()).class, Class::Growing);
        // A cache filling over 3 epochs, then 2 epoch ends at the top: not yet bounded.
        let two_at_top = series(6, |i| 500.0 * MB + 40.0 * MB * (i.min(3) as f64));
        assert_ne!(classify(&two_at_top, Tolerance::default()).class, Class::Bounded);
        // The same with 3 epoch ends after the knee: bounded.
        let three_at_top = series(7, |i| 500.0 * MB + 40.0 * MB * (i.min(3) as f64));
        assert_eq!(classify(&three_at_top, Tolerance::default()).class, Class::Bounded);
        assert!(plateau_holds(&three_at_top[1..], 2.0 * MB) && !plateau_holds(&two_at_top[1..], 2.0 * MB));
    }

    #[test]
    fn a_slow_leak_under_jitter_is_still_rising_and_a_cache_that_stopped_is_not() {
        // +1 MiB/epoch with up to 4 MiB of jitter (the verdict bench's week): the last
        // point is seldom on top, but the latest epochs rise.
        let mib = (1u64 << 20) as f64;
        let jitter = |e: u64| (e.wrapping_mul(2654435761) % 4096) as f64 * 1024.0;
        let tol = 0.25 * mib;
        for n in [40u64, 200, 1000, 5000] {
            let leak: Vec<(f64, f64)> = (0..n).map(|e| (e as f64, 700.0 * mib + e as f64 * mib + jitter(e))).collect();
            assert!(still_rising(&leak, tol), "{n} epochs");
            // The same, filled by epoch n/2 and flat since.
            let cache: Vec<(f64, f64)> = (0..n).map(|e| (e as f64, 700.0 * mib + e.min(n / 2) as f64 * mib + jitter(e))).collect();
            assert!(!still_rising(&cache, tol), "{n} epochs");
        }
    }

    #[test]
    fn still_rising_tells_a_filled_cache_from_a_leak() {
        let tol = 2.0 * MB;
        let cache = series(5, |i| 300.0 * MB + 14.5 * MB * (i.min(2) as f64));
        assert!(!still_rising(&cache[1..], tol), "filled at epoch 2, no higher since");
        let leak = series(5, |i| 300.0 * MB + 7.0 * MB * i as f64);
        assert!(still_rising(&leak[1..], tol));
    }

    #[test]
    fn warmup_growth_alone_is_flat() {
        let pts = series(6, |i| if i == 0 { 100.0 * MB } else { 400.0 * MB });
        let c = classify(&pts, Tolerance::default());
        assert_eq!((c.class, c.warmup), (Class::Flat, 1));
    }

    #[test]
    fn three_epochs_need_large_growth() {
        // Two points after warm-up: jitter says nothing yet (never "flat").
        let jitter = series(3, |i| [500.0, 490.0, 521.0][i] * MB);
        assert_eq!(classify(&jitter, Tolerance::default()).class, Class::Insufficient);
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

    #[test]
    fn too_few_points_are_insufficient_or_growing_so_far_never_flat() {
        let tol = Tolerance::default();
        // Ctrl-C at epoch 2: +20 MiB/epoch on 1 GiB is neither flat nor (yet) a trend.
        let c = classify(&series(3, |i| 1024.0 * MB + 20.0 * MB * i as f64), tol);
        assert_eq!((c.class, c.confirmed()), (Class::Insufficient, false));
        // An obvious leak stopped at 3 epochs: growing so far, not confirmed.
        let c = classify(&series(3, |i| 500.0 * MB + 120.0 * MB * i as f64), tol);
        assert_eq!((c.class, c.confirmed()), (Class::Growing, false));
        // A fourth epoch gives a fit with an interval: flat is flat then.
        let c = classify(&series(4, |_| 500.0 * MB), tol);
        assert_eq!((c.class, c.confirmed()), (Class::Flat, true));
        // Start-up eating all but two points leaves nothing to judge.
        let times: Vec<f64> = (0..6).map(|i| i as f64).collect();
        let w = warmup_timed(&times, 3.5);
        assert_eq!(w, 4);
        let c = classify_after(&series(6, |i| 500.0 * MB + i as f64 * MB), w, tol);
        assert_eq!(c.class, Class::Insufficient);
    }

    #[test]
    fn warm_up_is_bounded_in_epochs_and_covers_start_up() {
        assert_eq!(warmup_epochs(2000), MAX_WARMUP_EPOCHS);
        assert_eq!(warmup_epochs(16), 3);
        // One-second windows: the first 10 s are start-up whatever their number.
        let times: Vec<f64> = (1..=100).map(|i| i as f64).collect();
        assert_eq!(warmup_timed(&times, 10.0), 10);
        let minutes: Vec<f64> = (1..=100).map(|i| 60.0 * i as f64).collect();
        assert_eq!(warmup_timed(&minutes, 10.0), 10, "the count rule, capped");
    }

    #[test]
    fn a_straight_line_is_never_bounded() {
        // Slow and fast, short and long, at every level: growing, or flat when its whole
        // rise is within the tolerance; never "rose and levelled off".
        for n in [6usize, 20, 168, 2000, 10_000] {
            for total in [1.0, 3.0, 40.0, 400.0, 2000.0] {
                let pts = series(n, |i| 748.0 * MB + total * MB * i as f64 / n as f64);
                let c = classify(&pts, Tolerance::default());
                assert_ne!(c.class, Class::Bounded, "{n} epochs, +{total} MiB in all: {c:?}");
                if total >= 400.0 {
                    assert_eq!(c.class, Class::Growing, "{n} epochs, +{total} MiB in all");
                }
            }
        }
    }

    #[test]
    fn thinning_keeps_a_line_and_drops_a_spike() {
        let mut pts = series(10_000, |i| 3.0 * i as f64);
        pts[5000].1 = 1e12;
        let t = thin(&pts, MAX_FIT_POINTS);
        assert_eq!(t.len(), MAX_FIT_POINTS);
        // On the line, within one point where the spike shifted its run's median.
        assert!(t.iter().all(|p| (p.1 - 3.0 * p.0).abs() <= 3.0), "{:?}", t.iter().find(|p| (p.1 - 3.0 * p.0).abs() > 3.0));
        assert_eq!(thin(&pts[..50], MAX_FIT_POINTS).len(), 50);
    }

    /// One week of a memory curve, as a function of the fraction of the run elapsed
    /// (0..1), cut into `n` epochs: the value at each epoch end, with noise of ±6 MiB
    /// that does not depend on the cut (it is a function of time).
    fn cut(n: usize, shape: impl Fn(f64) -> f64) -> Vec<(f64, f64)> {
        (0..n)
            .map(|i| {
                let f = (i + 1) as f64 / n as f64;
                let tick = (f * 1e6) as usize;
                (i as f64, shape(f) + noise(tick, 7, 6.0 * MB))
            })
            .collect()
    }

    /// The granularity property: the same run, marked as 10, 168, 2000 or 10,000 epochs,
    /// gets the same verdict. Both ways: leaks grow at every cut, and a clean run, a cache
    /// that fills, a validation spike and a start-up climb stay flat at every cut.
    #[test]
    fn the_verdict_does_not_depend_on_how_finely_the_run_is_cut() {
        let base = 748.0 * MB;
        type Shape = Box<dyn Fn(f64) -> f64>;
        let growing: [(&str, Shape); 3] = [
            ("the issue's leak, 748 MiB to 2.7 GiB", Box::new(move |f| base + 2000.0 * MB * f)),
            ("a leak of 10 % of the level over the run", Box::new(move |f| base + 75.0 * MB * f)),
            ("a leak from the middle of the run", Box::new(move |f| base + 300.0 * MB * (f - 0.5).max(0.0))),
        ];
        let quiet: [(&str, Shape); 5] = [
            ("clean", Box::new(move |_| base)),
            ("a cache filling over the first 30 %", Box::new(move |f| base + 200.0 * MB * (f / 0.3).min(1.0))),
            ("a validation spike every 1/7 of the run", Box::new(move |f| base + if (f * 7.0).fract() < 0.01 { 400.0 * MB } else { 0.0 })),
            ("a start-up climb in the first 2 %", Box::new(move |f| base + 300.0 * MB * (f / 0.02).min(1.0))),
            ("a slow drift within the tolerance (+1 % in all)", Box::new(move |f| base + 7.5 * MB * f)),
        ];
        for n in [10usize, 168, 2000, 10_000] {
            for (name, shape) in &growing {
                let c = classify(&cut(n, shape), Tolerance::default());
                assert_eq!(c.class, Class::Growing, "{name}, cut into {n}: {c:?}");
            }
            for (name, shape) in &quiet {
                let c = classify(&cut(n, shape), Tolerance::default());
                assert!(matches!(c.class, Class::Flat | Class::Bounded), "{name}, cut into {n}: {c:?}");
            }
        }
    }

    #[test]
    fn a_judgment_at_ten_thousand_epochs_is_cheap() {
        let pts = cut(10_000, |f| 748.0 * MB + 2000.0 * MB * f);
        let start = std::time::Instant::now();
        for _ in 0..10 {
            let c = classify(&pts, Tolerance::default());
            assert_eq!((c.class, c.growing_since), (Class::Growing, Some(MAX_WARMUP_EPOCHS as f64)));
        }
        let each = start.elapsed().as_secs_f64() / 10.0;
        assert!(each < 0.05, "{each:.4} s per judgment at 10k epochs");
    }
}
