//! Before/after comparison of two runs: each primary series' class and slope at epoch
//! ends, before → after, then the per-phase peaks of the chosen series, like the seed's
//! table. Phases that neither run measured are left out, and so is `start` (the moment
//! before the command or the training started: nothing to compare).

use std::fmt::Write;
use std::path::{Path, PathBuf};

use super::{human_bytes, signed_bytes, write_text};
use crate::analysis::{Analysis, SeriesVerdict, PHASE_SERIES, PRIMARY_SERIES};
use crate::error::Error;

/// One phase's peaks in both runs.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ComparedPhase {
    /// Phase name.
    pub phase: String,
    /// Peak in the first run.
    pub before: Option<u64>,
    /// Peak in the second run.
    pub after: Option<u64>,
}

/// One primary series' verdict in both runs.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ComparedSeries {
    /// Timeline column.
    pub column: String,
    /// Display name.
    pub name: String,
    /// (class, slope in bytes/epoch) in the first run.
    pub before: Option<(String, Option<f64>)>,
    /// The same in the second run.
    pub after: Option<(String, Option<f64>)>,
}

/// The comparison of two runs.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Comparison {
    /// Verdicts of both runs.
    pub verdicts: (String, String),
    /// The primary series of either run, before → after.
    pub trends: Vec<ComparedSeries>,
    /// Per compared series (column, display name): its peak per phase, in the order of
    /// the first run (then phases only in the second).
    pub peaks: Vec<(String, String, Vec<ComparedPhase>)>,
}

/// The columns `compare --series` accepts: the per-phase series either run recorded.
pub fn comparable_columns(before: &Analysis, after: &Analysis) -> Vec<&'static str> {
    PHASE_SERIES
        .iter()
        .map(|(c, _)| *c)
        .filter(|c| [before, after].iter().any(|a| a.phases.iter().any(|p| p.peak(c).is_some())))
        .collect()
}

/// Compare two runs: primary series' trends, and the peak per phase of each of `columns`.
/// Fails, naming the valid columns, if one of `columns` has no per-phase peaks in either run.
pub fn compare_all(before: &Analysis, after: &Analysis, columns: &[String]) -> Result<Comparison, String> {
    let valid = comparable_columns(before, after);
    if let Some(bad) = columns.iter().find(|c| !valid.contains(&c.as_str())) {
        let known = if PHASE_SERIES.iter().any(|(c, _)| c == bad) { "is not recorded in either run" } else { "is not a series" };
        return Err(format!("--series {bad} {known}; series these runs can compare: {}", valid.join(", ")));
    }
    fn side<'a>(a: &'a Analysis, c: &str) -> Option<&'a SeriesVerdict> {
        let c = if c == "rss_in_use_bytes" && a.series(c).is_none() { "rss_bytes" } else { c };
        a.series(c)
    }
    let trends = PRIMARY_SERIES
        .iter()
        .filter(|c| side(before, c).is_some() || side(after, c).is_some())
        .map(|c| {
            let v = |a: &Analysis| side(a, c).map(|s| (s.class.as_str().to_string(), s.slope_bytes_per_epoch));
            let name = side(before, c).or(side(after, c)).map_or(c.to_string(), |s| s.name.clone());
            ComparedSeries { column: c.to_string(), name, before: v(before), after: v(after) }
        })
        .collect();
    let peaks = columns.iter().map(|c| {
        let name = PHASE_SERIES.iter().find(|(col, _)| col == c).map_or(c.as_str(), |p| p.1).to_string();
        (c.clone(), name, compare(before, after, c))
    });
    Ok(Comparison { verdicts: (before.verdict.to_string(), after.verdict.to_string()), trends, peaks: peaks.collect() })
}

/// Peak `column` per phase, leaving out `start` and phases neither run measured it in.
pub fn compare(before: &Analysis, after: &Analysis, column: &str) -> Vec<ComparedPhase> {
    let mut names: Vec<String> = before.phases.iter().map(|p| p.phase.clone()).collect();
    for p in &after.phases {
        if !names.contains(&p.phase) {
            names.insert(names.len().saturating_sub(1), p.phase.clone());
        }
    }
    let peak = |a: &Analysis, name: &str| a.phases.iter().find(|p| p.phase == name).and_then(|p| p.peak(column));
    names
        .iter()
        .filter(|n| n.as_str() != "start")
        .map(|n| ComparedPhase { phase: n.clone(), before: peak(before, n), after: peak(after, n) })
        .filter(|p| p.before.is_some() || p.after.is_some())
        .collect()
}

fn trend_cell(v: &Option<(String, Option<f64>)>) -> String {
    match v {
        Some((class, Some(slope))) => format!("{class}, {}/epoch", signed_bytes(*slope)),
        Some((class, None)) => class.clone(),
        None => "–".into(),
    }
}

impl Comparison {
    /// Markdown: verdicts, the trends table, one peak table per compared series.
    pub fn to_markdown(&self) -> String {
        let mut s = format!("Verdict: before {} → after {}\n\n", self.verdicts.0, self.verdicts.1);
        s.push_str("Trend at epoch ends (class, slope after warm-up)\n\n| Series | Before | After |\n|---|---|---|\n");
        for t in &self.trends {
            let _ = writeln!(s, "| {} | {} | {} |", t.name, trend_cell(&t.before), trend_cell(&t.after));
        }
        let cell = |v: Option<u64>| v.map_or("–".to_string(), |v| human_bytes(v as f64));
        for (column, name, phases) in &self.peaks {
            let _ = write!(s, "\nPeak {name} ({column}) per phase\n\n| Phase | Before | After | Change |\n|---|---|---|---|\n");
            for p in phases {
                let change = match (p.before, p.after) {
                    (Some(b), Some(a)) if b > 0 => {
                        let d = a as f64 - b as f64;
                        format!("{} ({:+.0} %)", signed_bytes(d), 100.0 * d / b as f64)
                    }
                    _ => "–".into(),
                };
                let _ = writeln!(s, "| {} | {} | {} | {} |", p.phase, cell(p.before), cell(p.after), change);
            }
        }
        s
    }

    /// Write the tables as `compare.md` and the peaks as `compare.csv` in `dir`; returns
    /// their paths.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>, Error> {
        let (md, csv_path) = (dir.join("compare.md"), dir.join("compare.csv"));
        write_text(&md, &self.to_markdown())?;
        let mut csv = String::from("series,phase,before_peak_bytes,after_peak_bytes,change_bytes\n");
        for (column, _, phases) in &self.peaks {
            for p in phases {
                let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
                let change = match (p.before, p.after) {
                    (Some(b), Some(a)) => (a as i64 - b as i64).to_string(),
                    _ => String::new(),
                };
                let _ = writeln!(csv, "{column},{},{},{},{}", p.phase, opt(p.before), opt(p.after), change);
            }
        }
        write_text(&csv_path, &csv)?;
        Ok(vec![md, csv_path])
    }
}
