//! Before/after comparison of two runs' per-phase peaks, like the seed's table.

use std::fmt::Write;
use std::path::Path;

use super::{human_bytes, signed_bytes, write_text};
use crate::analysis::Analysis;
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

/// The comparison of one series across phases.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Comparison {
    /// The series compared.
    pub column: String,
    /// Per phase, in the order of the first run (then phases only in the second).
    pub phases: Vec<ComparedPhase>,
    /// Verdicts of both runs.
    pub verdicts: (String, String),
}

/// Compare peak `column` per phase.
pub fn compare(before: &Analysis, after: &Analysis, column: &str) -> Comparison {
    let mut names: Vec<String> = before.phases.iter().map(|p| p.phase.clone()).collect();
    for p in &after.phases {
        if !names.contains(&p.phase) {
            names.insert(names.len().saturating_sub(1), p.phase.clone());
        }
    }
    let peak = |a: &Analysis, name: &str| a.phases.iter().find(|p| p.phase == name).and_then(|p| p.peak(column));
    Comparison {
        column: column.to_string(),
        phases: names.iter().map(|n| ComparedPhase { phase: n.clone(), before: peak(before, n), after: peak(after, n) }).collect(),
        verdicts: (before.verdict.to_string(), after.verdict.to_string()),
    }
}

impl Comparison {
    /// A Markdown table: phase | before | after | change.
    pub fn to_markdown(&self) -> String {
        let mut s = format!("Peak {} per phase\n\n| Phase | Before | After | Change |\n|---|---|---|---|\n", self.column);
        let cell = |v: Option<u64>| v.map_or("–".to_string(), |v| human_bytes(v as f64));
        for p in &self.phases {
            let change = match (p.before, p.after) {
                (Some(b), Some(a)) if b > 0 => {
                    let d = a as f64 - b as f64;
                    format!("{} ({:+.0} %)", signed_bytes(d), 100.0 * d / b as f64)
                }
                _ => "–".into(),
            };
            let _ = writeln!(s, "| {} | {} | {} | {} |", p.phase, cell(p.before), cell(p.after), change);
        }
        let _ = writeln!(s, "\nVerdict: before {}, after {}", self.verdicts.0, self.verdicts.1);
        s
    }

    /// Write the table as `compare.md` and the data as `compare.csv` in `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), Error> {
        write_text(&dir.join("compare.md"), &self.to_markdown())?;
        let mut csv = String::from("phase,before_peak_bytes,after_peak_bytes,change_bytes\n");
        for p in &self.phases {
            let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
            let change = match (p.before, p.after) {
                (Some(b), Some(a)) => (a as i64 - b as i64).to_string(),
                _ => String::new(),
            };
            let _ = writeln!(csv, "{},{},{},{}", p.phase, opt(p.before), opt(p.after), change);
        }
        write_text(&dir.join("compare.csv"), &csv)
    }
}
