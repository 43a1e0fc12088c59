//! Robust trend fitting: the Theil–Sen slope (median of pairwise slopes) with Sen's
//! distribution-free confidence interval. One outlier epoch cannot move it, unlike least
//! squares.

/// A fitted line `y = intercept + slope * x` with an interval on the slope.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Trend {
    /// Median pairwise slope.
    pub slope: f64,
    /// Lower end of the slope's confidence interval.
    pub low: f64,
    /// Upper end of the slope's confidence interval.
    pub high: f64,
    /// Median of `y - slope * x`.
    pub intercept: f64,
    /// How many points were fitted.
    pub points: usize,
}

impl Trend {
    /// The slope's interval; `None` through two points, where `low == high == slope`
    /// says nothing about its uncertainty.
    pub fn interval(&self) -> Option<(f64, f64)> {
        (self.points > 2).then_some((self.low, self.high))
    }
}

/// z for a two-sided 90 % interval.
const Z_90: f64 = 1.645;

/// The `k`-th smallest (0-based) of `v`, reordering it: O(n), not a sort.
fn select(v: &mut [f64], k: usize) -> f64 {
    *v.select_nth_unstable_by(k, |a, b| a.total_cmp(b)).1
}

/// The median of `v`, reordering it.
pub(crate) fn select_median(v: &mut [f64]) -> f64 {
    let n = v.len();
    let upper = select(v, n / 2);
    if n % 2 == 1 {
        upper
    } else {
        // The largest of the lower half, which the selection left before `n / 2`.
        let lower = v[..n / 2].iter().copied().fold(f64::MIN, f64::max);
        (lower + upper) / 2.0
    }
}

/// Fit `points` (x, y). `None` with fewer than two distinct x.
///
/// All pairwise slopes: O(n²) time and memory, so callers thin long series first
/// (see `verdict::thin`); the median and the interval's ranks are found by selection.
pub fn theil_sen(points: &[(f64, f64)]) -> Option<Trend> {
    let mut slopes = Vec::with_capacity(points.len() * points.len().saturating_sub(1) / 2);
    for (i, &(x1, y1)) in points.iter().enumerate() {
        for &(x2, y2) in &points[i + 1..] {
            if x2 != x1 {
                slopes.push((y2 - y1) / (x2 - x1));
            }
        }
    }
    if slopes.is_empty() {
        return None;
    }
    let slope = select_median(&mut slopes);

    // Sen (1968): ranks of the interval ends among the N sorted slopes, from the variance
    // of Kendall's S. With few points this widens to the full range of pairwise slopes.
    let n = points.len() as f64;
    let big_n = slopes.len() as f64;
    let c = Z_90 * (n * (n - 1.0) * (2.0 * n + 5.0) / 18.0).sqrt();
    let lower_rank = ((big_n - c) / 2.0).round().max(1.0) as usize; // 1-based
    let upper_rank = (((big_n + c) / 2.0).round() as usize + 1).min(slopes.len());
    let count = slopes.len();
    let low = select(&mut slopes, lower_rank.min(count) - 1);
    let high = select(&mut slopes, upper_rank.max(1) - 1);

    let mut residuals: Vec<f64> = points.iter().map(|&(x, y)| y - slope * x).collect();
    Some(Trend { slope, low, high, intercept: select_median(&mut residuals), points: points.len() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_line() {
        let pts: Vec<_> = (0..6).map(|x| (x as f64, 10.0 + 3.0 * x as f64)).collect();
        let t = theil_sen(&pts).unwrap();
        assert_eq!((t.slope, t.low, t.high, t.intercept), (3.0, 3.0, 3.0, 10.0));
    }

    #[test]
    fn one_outlier_does_not_move_the_slope() {
        let mut pts: Vec<_> = (0..10).map(|x| (x as f64, 2.0 * x as f64)).collect();
        pts[5].1 = 1000.0;
        let t = theil_sen(&pts).unwrap();
        assert!((t.slope - 2.0).abs() < 1e-9, "{t:?}");
        assert!(t.low <= 2.0 && t.high >= 2.0);
    }

    #[test]
    fn interval_covers_noise_and_narrows_with_n() {
        // Deterministic jitter around slope 1.
        let jitter = |i: usize| if i % 2 == 0 { 0.3 } else { -0.3 };
        let pts = |n: usize| (0..n).map(|i| (i as f64, i as f64 + jitter(i))).collect::<Vec<_>>();
        let small = theil_sen(&pts(5)).unwrap();
        let large = theil_sen(&pts(40)).unwrap();
        assert!(small.low <= 1.0 && small.high >= 1.0);
        assert!(large.low <= 1.0 && large.high >= 1.0);
        assert!(large.high - large.low < small.high - small.low);
    }

    #[test]
    fn too_few_points() {
        assert!(theil_sen(&[(1.0, 1.0)]).is_none());
        assert!(theil_sen(&[(1.0, 1.0), (1.0, 2.0)]).is_none());
    }
}

#[cfg(test)]
mod interval_tests {
    use super::*;

    #[test]
    fn two_points_have_no_interval() {
        let t = theil_sen(&[(0.0, 1.0), (1.0, 3.0)]).unwrap();
        assert_eq!((t.slope, t.interval()), (2.0, None));
        assert!(theil_sen(&[(0.0, 1.0), (1.0, 3.0), (2.0, 4.0)]).unwrap().interval().is_some());
    }
}
