//! The per-phase table: peak and mean of each memory series over the boundaries of each
//! phase, the measured version of the seed's "Expected Memory Usage" table.
//!
//! A phase's row shows only the series measured at every one of its boundaries. PSS and
//! USS are read at boundaries and only every `--pss-interval` between them: over a
//! watch's samples they are a handful of readings, whose "peak" (the first minute's, say)
//! would stand far below the memory the process held. The "peak total" row keeps every
//! reading.

use serde::Serialize;

use crate::timeline::Row;

/// The series summarised per phase, with their display names.
pub const PHASE_SERIES: &[(&str, &str)] = &[
    ("rss_bytes", "RSS"),
    ("peak_rss_bytes", "peak RSS"),
    ("heap_peak_bytes", "heap peak"),
    ("je_allocated_bytes", "heap allocated"),
    ("je_resident_bytes", "allocator resident"),
    ("gpu_allocated_bytes", "GPU allocated"),
    ("gpu_reserved_bytes", "GPU reserved"),
    ("tree_rss_bytes", "summed RSS"),
    ("tree_pss_bytes", "tree PSS"),
    ("main_uss_bytes", "main USS"),
    ("workers_uss_bytes", "workers USS"),
];

/// The table's name for a recorded phase: validation's start and end form one phase.
pub fn phase_group(phase: &str) -> &str {
    match phase {
        "episode_end" => "training episodes",
        "triplet_end" => "triplet batches",
        "validation_start" | "validation_end" => "validation",
        "epoch_end" => "epoch end",
        "start" => "start",
        "finish" => "finish",
        other => other,
    }
}

/// Peak and mean of one series over one phase's boundaries.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Stat {
    /// Column name.
    pub column: String,
    /// Largest value seen.
    pub peak: u64,
    /// Mean value.
    pub mean: f64,
}

/// One row of the table.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PhaseStats {
    /// Display name of the phase.
    pub phase: String,
    /// How many boundaries it had.
    pub count: u64,
    /// Per series measured at every boundary of the phase (the "peak total" row: with at
    /// least one value).
    pub stats: Vec<Stat>,
}

impl PhaseStats {
    /// The peak of a series in this phase, if recorded.
    pub fn peak(&self, column: &str) -> Option<u64> {
        self.stats.iter().find(|s| s.column == column).map(|s| s.peak)
    }
}

/// Running accumulation of the table, one row at a time (no rows kept).
#[derive(Clone, Default)]
pub struct PhaseTable {
    // (phase, count, per series (peak, sum, n))
    groups: Vec<(String, u64, Vec<(u64, f64, u64)>)>,
}

impl PhaseTable {
    /// Count one row.
    pub fn add(&mut self, row: &Row) {
        let name = phase_group(&row.phase);
        let idx = match self.groups.iter().position(|g| g.0 == name) {
            Some(i) => i,
            None => {
                self.groups.push((name.to_string(), 0, vec![(0, 0.0, 0); PHASE_SERIES.len()]));
                self.groups.len() - 1
            }
        };
        let group = &mut self.groups[idx];
        group.1 += 1;
        for (acc, (column, _)) in group.2.iter_mut().zip(PHASE_SERIES) {
            if let Some(v) = row.series(column) {
                acc.0 = acc.0.max(v);
                acc.1 += v as f64;
                acc.2 += 1;
            }
        }
    }

    /// The finished table, plus a "peak total" row over all boundaries.
    pub fn finish(self) -> Vec<PhaseStats> {
        let mut total = vec![(0u64, 0.0f64, 0u64); PHASE_SERIES.len()];
        let mut count = 0;
        let mut out: Vec<PhaseStats> = Vec::new();
        for (phase, n, accs) in self.groups {
            count += n;
            for ((t, a), (column, _)) in total.iter_mut().zip(&accs).zip(PHASE_SERIES) {
                // A watched tree's start row is taken before the command's exec (the
                // watcher's fork): never the command's memory, so never its peak.
                let tree = ["tree_", "main_", "workers_"].iter().any(|p| column.starts_with(p));
                if phase == "start" && tree {
                    continue;
                }
                t.0 = t.0.max(a.0);
                t.1 += a.1;
                t.2 += a.2;
            }
            out.push(PhaseStats { phase, count: n, stats: to_stats(&accs, n) });
        }
        out.push(PhaseStats { phase: "peak total".into(), count, stats: to_stats(&total, 1) });
        out
    }
}

/// The stats of the series read at least `needed` times.
fn to_stats(accs: &[(u64, f64, u64)], needed: u64) -> Vec<Stat> {
    accs.iter()
        .zip(PHASE_SERIES)
        .filter(|(a, _)| a.2 >= needed.max(1))
        .map(|(a, (column, _))| Stat { column: column.to_string(), peak: a.0, mean: a.1 / a.2 as f64 })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_validation_and_totals() {
        let mut t = PhaseTable::default();
        for (phase, rss) in [("episode_end", 10), ("episode_end", 20), ("validation_start", 30), ("validation_end", 50), ("epoch_end", 25)] {
            t.add(&Row { phase: phase.into(), rss_bytes: Some(rss), ..Row::default() });
        }
        let table = t.finish();
        let names: Vec<_> = table.iter().map(|p| p.phase.as_str()).collect();
        assert_eq!(names, ["training episodes", "validation", "epoch end", "peak total"]);
        assert_eq!(table[0].peak("rss_bytes"), Some(20));
        assert_eq!(table[0].stats[0].mean, 15.0);
        assert_eq!(table[1].peak("rss_bytes"), Some(50));
        assert_eq!(table[3].peak("rss_bytes"), Some(50));
        assert_eq!(table[3].count, 5);
        assert_eq!(table[0].peak("gpu_allocated_bytes"), None);
    }

    /// PSS read at 1 sample of 3 (every --pss-interval) gives that phase no PSS peak: the
    /// one reading, early and low, is not the phase's height. The total keeps it.
    #[test]
    fn a_series_read_at_some_boundaries_of_a_phase_is_not_its_peak() {
        let mut t = PhaseTable::default();
        for (phase, rss, pss) in [("sample", 900, Some(202)), ("sample", 950, None), ("sample", 940, None), ("epoch_end", 930, Some(880))] {
            t.add(&Row { phase: phase.into(), tree_rss_bytes: Some(rss), tree_pss_bytes: pss, ..Row::default() });
        }
        let table = t.finish();
        assert_eq!(table[0].phase, "sample");
        assert_eq!(table[0].peak("tree_rss_bytes"), Some(950));
        assert_eq!(table[0].peak("tree_pss_bytes"), None, "{:?}", table[0]);
        assert_eq!(table[1].peak("tree_pss_bytes"), Some(880));
        assert_eq!(table[2].phase, "peak total");
        assert_eq!(table[2].peak("tree_pss_bytes"), Some(880));
    }
}
