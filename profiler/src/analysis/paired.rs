//! Paired evidence inside epochs: an answer from the first epochs.
//!
//! Epoch ends alone give one point per epoch, and a trend needs several after warm-up.
//! But every epoch records many boundaries (episode ends, triplet batches, validation
//! start and end; a watch's samples): each can be compared with the same point of the
//! next epoch. A leak shifts every such pair by the bytes it keeps per epoch; churn
//! inside an epoch cancels out, pair by pair.
//!
//! ```text
//!   rows of epoch e ──key each──▶ (phase, k-th of its phase)   run: episode 7, validation_end 0
//!                                 (sample, 20th of the epoch)   watch: samples by when they fell
//!   profile(e+1) − profile(e), key by key ──▶ differences d_k, in the epoch's order
//!   per step: median(d_k); over steps: their mean ──▶ bytes per epoch
//!   interval: moving-block bootstrap of the d_k (blocks of √n keep the pairs' correlation)
//! ```
//!
//! Pairs of one epoch step are correlated (a level that moved for the whole epoch moves
//! them all), so the interval resamples blocks of neighbouring pairs, not single pairs,
//! and the verdict says how many pairs and steps it rests on. The epoch-end trend stays
//! what long runs are judged on: paired evidence decides only while the fit has fewer
//! than [`PAIRED_UNTIL_FITTED`] points.
//!
//! Bounded cost: profiles are kept for the first [`MAX_PROFILED_EPOCHS`] epochs only (the
//! only ones it decides for), with at most [`MAX_KEYS`] keys each; the open epoch keeps
//! at most [`MAX_OPEN_ROWS`] rows, halving its samples beyond.

use serde::Serialize;

use super::trend::select_median;
use crate::timeline::Row;

/// Columns paired evidence is kept for beyond those the verdict reads
/// ([`super::PRIMARY_SERIES`]): raw RSS, and the RSS that stands in for a watch's USS and
/// PSS between boundaries ([`STAND_INS`]).
/// And the number of processes in a watched tree, which says which pairs of a sum compare
/// like with like.
const EXTRA_SERIES: &[&str] = &["rss_bytes", "main_rss_bytes", "tree_rss_bytes", "workers_rss_bytes", "tree_processes"];
const N: usize = super::PRIMARY_SERIES.len() + EXTRA_SERIES.len();

/// A watch reads PSS and USS only at boundaries and every `--pss-interval`; its samples
/// between read RSS alone. Where the private series has too few pairs, the RSS of the
/// same processes stands in: a leak moves both alike from one epoch to the next, and
/// pages shared at the same point of each epoch cancel out in the difference.
pub const STAND_INS: &[(&str, &str)] = &[("main_uss_bytes", "main_rss_bytes"), ("tree_pss_bytes", "tree_rss_bytes"), ("workers_uss_bytes", "workers_rss_bytes")];

/// The `i`-th column kept: the verdict's, then the extra ones.
fn column(i: usize) -> &'static str {
    let primary = super::PRIMARY_SERIES;
    if i < primary.len() {
        primary[i]
    } else {
        EXTRA_SERIES[i - primary.len()]
    }
}

/// Paired evidence decides a series while its epoch-end fit has fewer points than this.
pub const PAIRED_UNTIL_FITTED: usize = 4;

/// Epochs whose profiles are kept: past them the epoch-end fit has points enough.
pub const MAX_PROFILED_EPOCHS: usize = 12;

/// Keys kept per epoch profile.
pub const MAX_KEYS: usize = 256;

/// Rows of the open epoch kept before its samples are halved.
pub const MAX_OPEN_ROWS: usize = 4096;

/// Samples (rows at no boundary) are keyed by which of this many equal parts of the
/// epoch they fell in.
pub const SAMPLE_BINS: u32 = 20;

/// A boundary phase with more occurrences in an epoch than this is keyed by buckets of
/// consecutive occurrences (their median), this many.
pub const MAX_SLOTS_PER_PHASE: u32 = 64;

/// Fewest pairs for paired evidence to speak.
pub const MIN_PAIRS: usize = 8;

/// Bootstrap resamples for the interval.
const RESAMPLES: usize = 1000;

/// Phases that are not a point of an epoch's work.
const NOT_A_POINT: &[&str] = &["start", "finish", "census", "stop_on_leak", "kill_at_limit", "max_memory", "gpu_sites"];

type Values = [Option<u64>; N];

fn values(row: &Row) -> Values {
    std::array::from_fn(|i| row.series(column(i)))
}

/// One epoch's points, keyed, in the order they fell.
#[derive(Clone, Debug)]
struct Profile {
    epoch: u32,
    points: Vec<(u32, Values)>,
}

/// The open epoch's rows: (seconds, phase id, values).
#[derive(Clone, Debug, Default)]
struct OpenEpoch {
    rows: Vec<(f64, u8, Values)>,
    start_t: Option<f64>,
    /// Keep one sample in `stride` (halved beyond the cap).
    stride: u32,
    seen_samples: u32,
}

/// Collects per-epoch profiles from timeline rows.
#[derive(Clone, Debug, Default)]
pub struct EpochProfiles {
    phases: Vec<String>,
    open: OpenEpoch,
    done: Vec<Profile>,
}

/// The paired evidence on one series.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Paired {
    /// Bytes per epoch: the mean over epoch steps of each step's median difference.
    pub bytes_per_epoch: f64,
    /// 90 % interval (moving-block bootstrap).
    pub interval: (f64, f64),
    /// Pairs it rests on.
    pub pairs: usize,
    /// Epoch steps (e → e+1) they span.
    pub steps: usize,
    /// First and last epoch of the steps.
    pub epochs: (u32, u32),
    /// The series the pairs were read on: the one judged, or its RSS standing in
    /// ([`STAND_INS`]).
    pub on: &'static str,
    /// Where the epoch ends rose by the same amount at every step: that rise decided
    /// the class and the slope, whatever the pairs read.
    pub steady_ends: Option<SteadyEnds>,
}

/// Epoch ends that rose by the same amount at every step, warm-up's included.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct SteadyEnds {
    /// The median step, per epoch.
    pub bytes_per_epoch: f64,
    /// The least and the largest step.
    pub interval: (f64, f64),
    /// How many steps.
    pub steps: usize,
    /// First and last epoch end.
    pub epochs: (u32, u32),
}

/// How far a rise's steps may spread and still count as steady: 10 % of their median.
/// The heap allocated at the reference trainer's epoch ends (its quiet points) moved by
/// at most 0.07 MiB a step in 20 clean 3-epoch runs, and rose by 2.65-2.68 MiB at every
/// step in 20 runs leaking 3 % of it, while its pairs, shifted by a cache's 7.5 MiB
/// churn, read anything from -11.8 to +17.6 MiB/epoch.
pub const STEADY_SPREAD: f64 = 0.1;

/// The steady rise of epoch ends `xy` (epoch, bytes), every one of them counted: at
/// least 2 steps, each above `tolerance`, spread by at most [`STEADY_SPREAD`] of their
/// median. A cache that fills in its first epoch and stops has one large step and then
/// none; noise seldom steps twice alike.
pub fn steady_rise(xy: &[(f64, f64)], tolerance: f64) -> Option<SteadyEnds> {
    if xy.len() < 3 {
        return None;
    }
    let mut steps: Vec<f64> = xy.windows(2).map(|w| (w[1].1 - w[0].1) / (w[1].0 - w[0].0).max(1.0)).collect();
    steps.sort_by(|a, b| a.total_cmp(b));
    let (lo, hi, mid) = (steps[0], steps[steps.len() - 1], steps[steps.len() / 2]);
    (lo > tolerance && hi - lo <= STEADY_SPREAD * mid).then_some(SteadyEnds {
        bytes_per_epoch: mid,
        interval: (lo, hi),
        steps: steps.len(),
        epochs: (xy[0].0 as u32, xy[xy.len() - 1].0 as u32),
    })
}

impl EpochProfiles {
    fn phase_id(&mut self, phase: &str) -> Option<u8> {
        if let Some(i) = self.phases.iter().position(|p| p == phase) {
            return Some(i as u8);
        }
        if self.phases.len() >= 32 {
            return None;
        }
        self.phases.push(phase.to_string());
        Some((self.phases.len() - 1) as u8)
    }

    /// Take one row (every row, in order).
    pub fn add(&mut self, row: &Row) {
        if self.open.start_t.is_none() {
            self.open.start_t = Some(row.t_s);
        }
        if NOT_A_POINT.contains(&row.phase.as_str()) || self.done.len() >= MAX_PROFILED_EPOCHS {
            if row.phase == "epoch_end" {
                self.open = OpenEpoch { start_t: Some(row.t_s), ..OpenEpoch::default() };
            }
            return;
        }
        let Some(id) = self.phase_id(&row.phase) else { return };
        let v = values(row);
        if v.iter().all(Option::is_none) {
            return;
        }
        if row.phase == "epoch_end" {
            self.close(row, id, v);
            return;
        }
        let open = &mut self.open;
        if row.phase == "sample" {
            open.seen_samples += 1;
            if open.seen_samples % open.stride.max(1) != 0 {
                return;
            }
        }
        open.rows.push((row.t_s, id, v));
        if open.rows.len() >= MAX_OPEN_ROWS {
            // Halve the samples kept; boundaries are few and all kept.
            let sample = self.phases.iter().position(|p| p == "sample").map(|i| i as u8);
            let mut k = 0;
            open.rows.retain(|r| {
                if Some(r.1) != sample {
                    return true;
                }
                k += 1;
                k % 2 == 1
            });
            open.stride = open.stride.max(1) * 2;
        }
    }

    fn close(&mut self, end: &Row, end_id: u8, end_values: Values) {
        let open = std::mem::take(&mut self.open);
        self.open.start_t = Some(end.t_s);
        // An epoch end read after the command exited measured the tree shutting down.
        if end.label == super::AFTER_EXIT {
            return;
        }
        let epoch = end.epoch.unwrap_or(self.done.len() as u32);
        let (t0, t1) = (open.start_t.unwrap_or(end.t_s), end.t_s);
        let sample = self.phases.iter().position(|p| p == "sample").map(|i| i as u8);
        let counts = {
            let mut c = [0u32; 32];
            for r in &open.rows {
                c[r.1 as usize] += 1;
            }
            c
        };
        // Key each row; rows sharing a key are merged into their median below.
        let mut seen = [0u32; 32];
        let mut keyed: Vec<(u32, Values)> = Vec::with_capacity(open.rows.len() + 1);
        for (t, id, v) in &open.rows {
            let slot = if Some(*id) == sample {
                let f = if t1 > t0 { ((t - t0) / (t1 - t0)).clamp(0.0, 0.999_999) } else { 0.0 };
                (f * SAMPLE_BINS as f64) as u32
            } else {
                let k = seen[*id as usize];
                seen[*id as usize] += 1;
                let n = counts[*id as usize];
                if n > MAX_SLOTS_PER_PHASE {
                    k * MAX_SLOTS_PER_PHASE / n
                } else {
                    k
                }
            };
            keyed.push(((*id as u32) << 16 | slot, *v));
        }
        keyed.push(((end_id as u32) << 16, end_values));
        let mut points: Vec<(u32, Values)> = Vec::new();
        let mut i = 0;
        while i < keyed.len() && points.len() < MAX_KEYS {
            let key = keyed[i].0;
            // Rows of one key are consecutive (a bucket of one phase, a bin of samples),
            // except where other phases interleave: merge the run that starts here.
            let group: Vec<&Values> = keyed[i..].iter().take_while(|k| k.0 == key).map(|k| &k.1).collect();
            i += group.len();
            if points.iter().any(|p| p.0 == key) {
                continue;
            }
            let merged: Values = std::array::from_fn(|s| median_u64(group.iter().filter_map(|v| v[s])));
            points.push((key, merged));
        }
        self.done.push(Profile { epoch, points });
    }

    /// The paired evidence on `column` from the epochs after the first `warmup` epoch
    /// ends (at least one: the first epoch holds start-up); `None` when there are fewer
    /// than [`MIN_PAIRS`] pairs.
    pub fn judge(&self, column: &str, warmup: usize) -> Option<Paired> {
        self.judge_on(column, warmup).or_else(|| {
            let (_, stand_in) = STAND_INS.iter().find(|(c, _)| *c == column)?;
            self.judge_on(stand_in, warmup)
        })
    }

    fn judge_on(&self, column: &str, warmup: usize) -> Option<Paired> {
        let s = (0..N).position(|i| self::column(i) == column)?;
        // A sum over the tree compares like with like only where the tree holds as many
        // processes at both points: DataLoader workers made anew each epoch are there at
        // one point and gone at its pair (each with hundreds of MiB of RSS). (Even so, a
        // worker forked after the main process kept 8 MiB maps those pages too: with 4
        // workers made anew each epoch the summed RSS read such a leak as +80 MiB/epoch;
        // the main USS hid it, shared with the workers; the ledger says the sum's slope is
        // an upper bound.)
        let count = (column.starts_with("tree_") || column.starts_with("workers_")).then(|| (0..N).position(|i| self::column(i) == "tree_processes")).flatten();
        let profiles = &self.done[warmup.max(1).min(self.done.len())..];
        let mut steps: Vec<Vec<f64>> = Vec::new();
        for w in profiles.windows(2) {
            let (a, b) = (&w[0], &w[1]);
            let gap = b.epoch.saturating_sub(a.epoch).max(1) as f64;
            let diffs: Vec<f64> = a
                .points
                .iter()
                .filter_map(|(key, va)| {
                    let vb = b.points.iter().find(|p| p.0 == *key)?.1;
                    if let Some(c) = count {
                        if va[c].zip(vb[c]).is_some_and(|(x, y)| x != y) {
                            return None;
                        }
                    }
                    Some((vb[s]? as f64 - va[s]? as f64) / gap)
                })
                .collect();
            if !diffs.is_empty() {
                steps.push(diffs);
            }
        }
        let pairs: usize = steps.iter().map(Vec::len).sum();
        if pairs < MIN_PAIRS {
            return None;
        }
        // Medians reorder what they are given: the steps keep their epoch order (the
        // bootstrap's blocks are neighbours), so the estimate takes a copy once.
        let estimate = |mut steps: Vec<Vec<f64>>| steps.iter_mut().map(|d| select_median(d)).sum::<f64>() / steps.len() as f64;
        let bytes_per_epoch = estimate(steps.clone());
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let mut stats: Vec<f64> = (0..RESAMPLES)
            .map(|_| {
                let resampled: Vec<Vec<f64>> = steps.iter().map(|d| block_resample(d, &mut rng)).collect();
                estimate(resampled)
            })
            .collect();
        stats.sort_by(|a, b| a.total_cmp(b));
        let interval = (stats[RESAMPLES * 5 / 100], stats[RESAMPLES * 95 / 100 - 1]);
        Some(Paired { bytes_per_epoch, interval, pairs, steps: steps.len(), epochs: (profiles[0].epoch, profiles[profiles.len() - 1].epoch), on: self::column(s), steady_ends: None })
    }
}

/// A moving-block bootstrap resample of `d`: blocks of ⌈√n⌉ neighbours, drawn with
/// replacement until n values.
fn block_resample(d: &[f64], rng: &mut XorShift) -> Vec<f64> {
    let n = d.len();
    let len = (n as f64).sqrt().ceil().max(1.0) as usize;
    let starts = n - len + 1;
    let mut out = Vec::with_capacity(n + len);
    while out.len() < n {
        let s = (rng.next() % starts as u64) as usize;
        out.extend_from_slice(&d[s..s + len]);
    }
    out.truncate(n);
    out
}

fn median_u64(values: impl Iterator<Item = u64>) -> Option<u64> {
    let mut v: Vec<u64> = values.collect();
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(v[v.len() / 2])
}

/// A small deterministic generator: the same timeline always gets the same interval.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1 << 20;

    #[test]
    fn epoch_ends_that_rise_alike_at_every_step_are_steady_and_others_are_not() {
        let mib = MB as f64;
        let ends = |v: &[f64]| -> Vec<(f64, f64)> { v.iter().enumerate().map(|(e, b)| (e as f64, b * mib)).collect() };
        let tol = mib;
        // The reference trainer leaking 3 % of its heap (recorded: error-rates bench).
        let s = steady_rise(&ends(&[85.31, 87.98, 90.64]), tol).expect("steady");
        assert!((s.bytes_per_epoch / mib - 2.66).abs() < 0.02 && s.steps == 2 && s.epochs == (0, 2), "{s:?}");
        // Clean: the same trainer's epoch ends moved by at most 0.07 MiB.
        assert_eq!(steady_rise(&ends(&[82.63, 82.70, 82.68]), tol), None);
        // A cache that filled in the first epoch and stopped.
        assert_eq!(steady_rise(&ends(&[80.0, 90.0, 90.1]), tol), None);
        // Noise that rose twice, unlike.
        assert_eq!(steady_rise(&ends(&[100.0, 105.0, 112.0]), tol), None);
        // Two epoch ends are one step: never steady.
        assert_eq!(steady_rise(&ends(&[100.0, 110.0]), tol), None);
    }

    /// An epoch of 30 episode ends and a validation, heap = base + churn + leak × epoch.
    fn epochs(n: u32, leak: u64, seed: u64) -> EpochProfiles {
        let mut p = EpochProfiles::default();
        let mut rng = XorShift(seed * 7919 + 1);
        let mut t = 0.0;
        for e in 0..n {
            for k in 0..32u64 {
                t += 1.0;
                let phase = match k {
                    30 => "validation_start",
                    31 => "validation_end",
                    _ => "episode_end",
                };
                // ±12 MiB of churn, and the within-epoch shape every epoch repeats.
                let churn = rng.next() % (24 * MB);
                let heap = 400 * MB + (k % 5) * 3 * MB + churn + leak * e as u64 + leak * k / 32;
                p.add(&Row { t_s: t, phase: phase.into(), epoch: Some(e), je_allocated_bytes: Some(heap), ..Row::default() });
            }
            t += 1.0;
            p.add(&Row { t_s: t, phase: "epoch_end".into(), epoch: Some(e), je_allocated_bytes: Some(412 * MB + leak * (e as u64 + 1)), ..Row::default() });
        }
        p
    }

    #[test]
    fn three_epochs_pair_every_boundary_with_the_next_epochs() {
        let p = epochs(3, 13 * MB, 1).judge("je_allocated_bytes", 1).unwrap();
        assert_eq!((p.pairs, p.steps, p.epochs), (33, 1, (1, 2)));
        assert!((p.bytes_per_epoch - 13.0 * MB as f64).abs() < 4.0 * MB as f64, "{p:?}");
        assert!(p.interval.0 > 0.0, "{p:?}");
    }

    #[test]
    fn clean_epochs_straddle_zero_in_most_runs() {
        // The interval holds zero in at least 80 % of clean runs (90 % nominal; blocks
        // make it honest under correlation, not exact).
        let held = (0..100).filter(|&seed| {
            let p = epochs(3, 0, seed).judge("je_allocated_bytes", 1).unwrap();
            p.interval.0 <= 0.0 && p.interval.1 >= 0.0
        });
        assert!(held.count() >= 80);
    }

    #[test]
    fn too_few_epochs_or_pairs_say_nothing() {
        assert!(epochs(2, 13 * MB, 1).judge("je_allocated_bytes", 1).is_none(), "one epoch after warm-up: no step");
        assert!(epochs(3, 13 * MB, 1).judge("tree_pss_bytes", 1).is_none(), "a series not recorded");
        assert!(epochs(3, 13 * MB, 1).judge("no_such_column", 1).is_none());
    }

    #[test]
    fn samples_pair_by_their_place_in_the_epoch() {
        let mut p = EpochProfiles::default();
        let mut t = 0.0;
        for e in 0..3u64 {
            // Epochs of different lengths: samples pair by fraction, not by count.
            let n = 40 + e * 10;
            for k in 0..n {
                t += 0.5;
                let f = k as f64 / n as f64;
                let uss = 300 * MB + (f * 50.0) as u64 * MB + 8 * MB * e;
                p.add(&Row { t_s: t, phase: "sample".into(), main_uss_bytes: Some(uss), ..Row::default() });
            }
            t += 0.5;
            p.add(&Row { t_s: t, phase: "epoch_end".into(), epoch: Some(e as u32), main_uss_bytes: Some(300 * MB + 8 * MB * e), ..Row::default() });
        }
        let v = p.judge("main_uss_bytes", 1).unwrap();
        assert_eq!(v.pairs, SAMPLE_BINS as usize + 1);
        assert!((v.bytes_per_epoch / MB as f64 - 8.0).abs() < 2.5, "{v:?}");
    }

    #[test]
    fn profiles_stay_bounded_however_long_the_run() {
        let mut p = EpochProfiles::default();
        for i in 0..200_000u64 {
            let phase = if i % 10_000 == 9_999 { "epoch_end" } else { "sample" };
            p.add(&Row { t_s: i as f64, phase: phase.into(), epoch: Some((i / 10_000) as u32), rss_bytes: Some(MB), ..Row::default() });
            assert!(p.open.rows.len() <= MAX_OPEN_ROWS);
        }
        assert_eq!(p.done.len(), MAX_PROFILED_EPOCHS);
        assert!(p.done.iter().all(|d| d.points.len() <= MAX_KEYS));
    }
}
