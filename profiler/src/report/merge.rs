//! `diagnose report --merge DIR...`: one report over several run folders (one per node,
//! or per run, e.g. on a shared filesystem): a row per node, or per node × rank where the
//! run had ranks, with its class, slope and projection; one plot line each; the overall
//! verdict. A folder that is not a run folder is an error naming it; a run that did not
//! finish is merged and marked.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{human_bytes, markdown::oom_headline, signed_bytes, write_text};
use crate::analysis::{Analysis, Class};
use crate::error::Error;
use crate::timeline::{last_epoch_ends, read_timeline, Row};

/// One node (or one rank of a node).
#[derive(Clone, Debug, Serialize)]
pub struct MergedRow {
    /// The folder's name.
    pub node: String,
    /// The rank, for a distributed run.
    pub rank: Option<u32>,
    /// The series judged (tree PSS, RSS in use, ...; a rank's processes' PSS).
    pub series: String,
    /// Its class.
    pub class: Class,
    /// Its slope, bytes per epoch.
    pub slope_bytes_per_epoch: Option<f64>,
    /// The node's out-of-memory headline, if memory grows.
    pub projection: Option<String>,
    /// Epoch ends recorded.
    pub epochs: usize,
    /// Why the run is incomplete, if it is (killed, crashed).
    pub incomplete: Option<String>,
    /// (epoch, bytes) for the plot.
    pub points: Vec<(u32, u64)>,
}

/// The merged report.
#[derive(Clone, Debug, Serialize)]
pub struct Merged {
    /// "growing" if any row grows, else "flat".
    pub verdict: &'static str,
    /// One per node, or per node × rank.
    pub rows: Vec<MergedRow>,
}

/// The series a node is judged on: the tree's PSS when watched, RSS in use (else RSS)
/// when recorded in-process.
fn node_series(a: &Analysis) -> &'static str {
    ["tree_pss_bytes", "rss_in_use_bytes", "rss_bytes"].into_iter().find(|c| a.series(c).is_some()).unwrap_or("rss_bytes")
}

/// Merge the run folders `dirs`.
pub fn merge(dirs: &[PathBuf]) -> Result<Merged, Error> {
    let mut rows = Vec::new();
    for dir in dirs {
        let timeline_path = dir.join("timeline.csv");
        if !timeline_path.is_file() {
            return Err(Error::Config(format!("{} is not a run folder (it has no timeline.csv)", dir.display())));
        }
        let timeline = read_timeline(&timeline_path)?;
        let mut a = crate::analysis::analyze(&timeline);
        if let Some(ranks) = crate::analysis::read_ranks(dir, &timeline.rows)? {
            a = a.with_ranks(ranks);
        }
        let node = dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned());
        let incomplete = match &a.end {
            Some(e) if e.oom_killed => Some(format!("OOM-killed after epoch {}", e.last_epoch.map_or("-".into(), |x| x.to_string()))),
            Some(e) if e.signal.is_some() => Some(format!("killed by signal {} after epoch {}", e.signal.unwrap_or(0), e.last_epoch.map_or("-".into(), |x| x.to_string()))),
            _ if a.incomplete => Some("did not finish (killed or crashed)".into()),
            _ => None,
        };
        let projection = oom_headline(&a);
        if a.ranks.is_empty() {
            let column = node_series(&a);
            let v = a.series(column);
            rows.push(MergedRow {
                node,
                rank: None,
                series: v.map_or(column.to_string(), |v| v.name.clone()),
                class: v.map_or(Class::Insufficient, |v| v.class),
                slope_bytes_per_epoch: v.and_then(|v| v.slope_bytes_per_epoch),
                projection,
                epochs: a.epochs,
                incomplete,
                points: epoch_points(&timeline.rows, column),
            });
        } else {
            for r in &a.ranks {
                rows.push(MergedRow {
                    node: node.clone(),
                    rank: Some(r.rank),
                    series: "rank PSS".into(),
                    class: r.class,
                    slope_bytes_per_epoch: r.slope_bytes_per_epoch,
                    projection: projection.clone(),
                    epochs: a.epochs,
                    incomplete: incomplete.clone(),
                    points: r.by_epoch.iter().map(|b| (b.0, b.1)).collect(),
                });
            }
        }
    }
    let verdict = if rows.iter().any(|r| r.class == Class::Growing) { "growing" } else { "flat" };
    Ok(Merged { verdict, rows })
}

/// (epoch, value) of `column` at each epoch end, the last mark of an epoch kept.
fn epoch_points(rows: &[Row], column: &str) -> Vec<(u32, u64)> {
    last_epoch_ends(rows).into_iter().filter_map(|r| Some((r.epoch?, r.series(column)?))).collect()
}

impl Merged {
    /// The table in Markdown, with the verdict.
    pub fn to_markdown(&self) -> String {
        let mut s = format!("# Merged memory report\n\n**Verdict: {}**\n\n", self.verdict);
        let _ = writeln!(s, "| node | rank | series | class | slope | epochs | projection | complete |");
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
        for r in &self.rows {
            let last = r.points.last().map_or(String::new(), |p| format!(" (last {})", human_bytes(p.1 as f64)));
            let _ = writeln!(s, "| {} | {} | {}{last} | {} | {} | {} | {} | {} |", r.node, r.rank.map_or("–".into(), |x| x.to_string()), r.series, r.class.as_str(),
                r.slope_bytes_per_epoch.map_or("–".into(), |b| format!("{}/epoch", signed_bytes(b))), r.epochs, r.projection.clone().unwrap_or_default(),
                r.incomplete.clone().map_or("yes".into(), |why| format!("no: {why}")));
        }
        s
    }

    /// Write merged.md, merged.csv and merged.png into `out`.
    pub fn write(&self, out: &Path) -> Result<Vec<PathBuf>, Error> {
        std::fs::create_dir_all(out).map_err(|source| Error::Output { path: out.to_path_buf(), source })?;
        let md = out.join("merged.md");
        write_text(&md, &self.to_markdown())?;
        let csv_path = out.join("merged.csv");
        let err = |e: csv::Error| Error::Output { path: csv_path.clone(), source: std::io::Error::other(e.to_string()) };
        let mut w = csv::Writer::from_path(&csv_path).map_err(err)?;
        w.write_record(["node", "rank", "series", "class", "slope_bytes_per_epoch", "epochs", "projection", "incomplete"]).map_err(err)?;
        for r in &self.rows {
            w.write_record([r.node.clone(), r.rank.map_or(String::new(), |x| x.to_string()), r.series.clone(), r.class.as_str().into(),
                r.slope_bytes_per_epoch.map_or(String::new(), |b| format!("{b:.0}")), r.epochs.to_string(), r.projection.clone().unwrap_or_default(), r.incomplete.clone().unwrap_or_default()])
                .map_err(err)?;
        }
        w.flush().map_err(|source| Error::Output { path: csv_path.clone(), source })?;
        let png = out.join("merged.png");
        let lines: Vec<(String, Vec<(u32, u64)>)> = self
            .rows
            .iter()
            .map(|r| (format!("{}{} [{}]", r.node, r.rank.map_or(String::new(), |x| format!(" rank {x}")), r.class.as_str()), r.points.clone()))
            .collect();
        super::png::draw_epoch_lines(&png, &format!("Nodes and ranks at epoch ends: verdict {}", self.verdict), "memory", &lines)?;
        Ok(vec![md, csv_path, png])
    }
}
