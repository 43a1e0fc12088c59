//! Reports: one file per format, all built from the same [`Analysis`] (never from live
//! profiler state), so `diagnose report` can rebuild them from `timeline.csv` alone.

mod compare;
mod csv;
mod html;
mod json;
pub(crate) mod markdown;
mod merge;
mod png;

pub use compare::{comparable_columns, compare, compare_all, ComparedPhase, ComparedSeries, Comparison};
pub use html::{markdown_to_html, report_html};
pub use png::{draw_memory, memory_svg, plan_memory, DrawnPanel, DrawnSeries, HoverBand, MemoryPlot};
pub use markdown::text_summary;
pub(crate) use json::text as summary_json;
pub use merge::{merge, Merged, MergedRow};
// The unit formatting lives in `crate::format`, which analysis uses too; kept here under
// its old path for callers of `report::human_bytes`.
pub use crate::format::{human_bytes, human_seconds, plural, signed_bytes};

use std::path::{Path, PathBuf};

use crate::analysis::Analysis;
use crate::error::Error;

/// The files [`write_all`] writes, relative to the run folder.
pub const REPORT_FILES: &[&str] = &["phases.csv", "summary.json", "summary.md", "memory.png", "report.html"];

/// Write every report file of `analysis` into `dir`; returns their paths.
pub fn write_all(analysis: &Analysis, dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let paths: Vec<PathBuf> = REPORT_FILES.iter().map(|f| dir.join(f)).collect();
    csv::write_phases(analysis, &paths[0])?;
    json::write(analysis, &paths[1])?;
    write_text(&paths[2], &markdown::summary(analysis))?;
    png::draw_memory(analysis, &paths[3])?;
    write_text(&paths[4], &html::report_html(analysis).map_err(|message| Error::Plot { path: paths[4].clone(), message })?)?;
    let mut paths = paths;
    if !analysis.sites.is_empty() {
        let (csv_path, png_path) = (dir.join("callsites.csv"), dir.join("callsites.png"));
        csv::write_sites(analysis, &csv_path)?;
        png::draw_sites(analysis, &png_path)?;
        paths.extend([csv_path, png_path]);
    }
    if let Some(g) = &analysis.gpu_allocator {
        let (stats, sites) = (dir.join("gpu_allocator.csv"), dir.join("gpu_sites.csv"));
        csv::write_gpu_allocator(g, &stats)?;
        paths.push(stats);
        if !g.sites.is_empty() {
            csv::write_gpu_sites(g, &sites)?;
            paths.push(sites);
        }
    }
    if !analysis.native_sites.is_empty() {
        let path = dir.join(crate::heap::native::NATIVE_SITES_FILE);
        csv::write_site_verdicts(&analysis.native_sites, &path)?;
        paths.push(path);
    }
    if analysis.censuses.is_some() {
        let path = dir.join("objects.csv");
        csv::write_objects(analysis, &path)?;
        paths.push(path);
    }
    Ok(paths)
}

/// Rebuild every report in `dir` from `dir/timeline.csv` alone. Reads and analyses
/// first, so a bad timeline overwrites nothing. The rows stream through the analysis one
/// at a time: a week of them is never in memory at once.
pub fn rebuild(dir: &Path) -> Result<Analysis, Error> {
    let mut analyzer = crate::analysis::Analyzer::new(crate::analysis::Tolerance::default());
    let mut exact = false;
    // Only the ranks' verdicts need rows again (their epoch ends), and only a watch with
    // processes.csv has ranks.
    let keep_ends = dir.join("processes.csv").exists();
    let mut ends = Vec::new();
    let (meta, truncated, _) = crate::timeline::stream_timeline(&dir.join("timeline.csv"), |row| {
        exact |= row.heap_exact_bytes.is_some();
        analyzer.add(&row);
        if keep_ends && row.phase == "epoch_end" {
            ends.push(row);
        }
    })?;
    let mut analysis = analyzer.finish(&meta, truncated);
    if let Some((sites, rows)) = crate::heap::read_sites(dir)? {
        // Exact mode is the only one that fills heap_exact_bytes, and its sites come from dhat.
        let source = if exact {
            crate::heap::StackSource::DhatExact
        } else {
            crate::heap::StackSource::JemallocSampled
        };
        analysis = analysis.with_sites(crate::analysis::classify_sites(&sites, &rows, source), source);
    }
    if let Some((sites, rows)) = crate::heap::read_sites(&dir.join(crate::heap::native::NATIVE_DIR))? {
        analysis = analysis.with_native_sites(crate::analysis::classify_sites(&sites, &rows, crate::heap::StackSource::JemallocSampled));
    }
    if let Some(ranks) = crate::analysis::read_ranks(dir, &ends)? {
        analysis = analysis.with_ranks(ranks);
    }
    if let Some(processes) = crate::analysis::read_processes(dir, &ends)? {
        analysis = analysis.with_processes(processes);
    }
    if let Some(censuses) = crate::analysis::read_censuses(dir)? {
        analysis = analysis.with_censuses(censuses);
    }
    match crate::analysis::read_gpu(dir)? {
        Some(gpu) => analysis = analysis.with_gpu(gpu),
        // watch --gpu-sites makes the folder; the helper fills it once CUDA is up.
        None if dir.join(crate::watch::census::GPU_DIR).is_dir() => analysis = analysis.with_gpu_unrecorded(),
        None => {}
    }
    write_all(&analysis, dir)?;
    Ok(analysis)
}

/// What a report of `dir` cannot say because `run.json` is missing beside its timeline
/// (format 3 and later keep the run's facts there): `None` when it is there, or when the
/// timeline carries them in its first line (formats 1 and 2).
pub fn missing_facts(dir: &Path) -> Option<String> {
    if dir.join(crate::timeline::RUN_FILE).exists() {
        return None;
    }
    let text = std::fs::read_to_string(dir.join("timeline.csv")).ok()?;
    if text.starts_with("# ") {
        return None;
    }
    Some(format!(
        "{} has no {}: the memory limit, the GPU state and what recorded the run are unknown, so there is no out-of-memory projection against the machine's or the recorded limit",
        dir.display(),
        crate::timeline::RUN_FILE
    ))
}

/// Make `dir` ready for a new run: create it, or refuse if it holds files and `force` is
/// off. Checks that it is writable, so a bad path fails before any work.
pub fn prepare_out_dir(dir: &Path, force: bool) -> Result<(), Error> {
    let io = |source| Error::Output { path: dir.to_path_buf(), source };
    if dir.exists() {
        if !dir.is_dir() {
            return Err(io(std::io::Error::other("exists and is not a folder")));
        }
        let mut entries = std::fs::read_dir(dir).map_err(io)?;
        if entries.next().is_some() && !force {
            return Err(Error::OutputNotEmpty(dir.to_path_buf()));
        }
    }
    std::fs::create_dir_all(dir).map_err(io)?;
    let probe = dir.join(".write-test");
    std::fs::write(&probe, b"").map_err(io)?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// Replace `path` whole: write a temporary file beside it, then rename it over, so that
/// a reader (a collector, a person, a kill) sees the previous file or this one, never half.
pub(crate) fn replace_text(path: &Path, text: &str) -> Result<(), Error> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    write_text(&tmp, text)?;
    std::fs::rename(&tmp, path).map_err(|source| Error::Output { path: path.to_path_buf(), source })
}

pub(crate) fn write_text(path: &Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text).map_err(|source| Error::Output { path: path.to_path_buf(), source })
}

/// Why the verdict is what it is, in one line: the primary series that grow (with their
/// slopes), or why nothing could be judged, or that nothing grows.
pub fn verdict_reason(a: &Analysis) -> String {
    use crate::analysis::{Class, PRIMARY_SERIES};
    let rss = if a.series("rss_in_use_bytes").is_some() { "rss_in_use_bytes" } else { "rss_bytes" };
    let primary: Vec<&crate::analysis::SeriesVerdict> =
        PRIMARY_SERIES.iter().filter_map(|c| a.series(if *c == "rss_in_use_bytes" { rss } else { c })).collect();
    let slope = |s: Option<f64>| format!("{}/epoch", signed_bytes(s.unwrap_or(0.0)));
    match a.verdict {
        "insufficient" => format!("{} recorded; 3 after warm-up are needed to judge growth, so at least 4 (the first is warm-up)", plural(a.epochs, "epoch end")),
        "growing" => {
            let mut parts: Vec<String> = primary
                .iter()
                .filter(|s| s.class == Class::Growing)
                .map(|s| {
                    let since = s.growing_since.map(|e| format!(" since epoch {e}")).unwrap_or_default();
                    format!("{} grows {}{since}", s.name, slope(s.slope_bytes_per_epoch))
                })
                .collect();
            parts.extend(a.ranks.iter().filter(|r| r.class == Class::Growing).map(|r| format!("rank {} grows {}", r.rank, slope(r.slope_bytes_per_epoch))));
            if parts.is_empty() { "a primary series grows".into() } else { parts.join("; ") }
        }
        _ => {
            let judged: Vec<String> = primary
                .iter()
                .filter(|s| s.class != Class::Insufficient)
                .map(|s| match &s.cause {
                    Some(c) => format!("{} {} ({c})", s.name, s.class.as_str()),
                    None => format!("{} {}", s.name, s.class.as_str()),
                })
                .collect();
            format!("nothing grows after warm-up: {}", judged.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::analysis::{Analyzer, Tolerance};
    use crate::timeline::{Row, TimelineMeta};

    fn analysis(rows: &[Row]) -> Analysis {
        let mut a = Analyzer::new(Tolerance::default());
        rows.iter().for_each(|r| a.add(r));
        a.finish(&TimelineMeta { recorder: Some("watch".into()), ..TimelineMeta::default() }, false)
    }

    fn epoch(e: u32, pss: u64) -> Row {
        Row { t_s: e as f64 + 1.0, phase: "epoch_end".into(), epoch: Some(e), tree_pss_bytes: Some(pss), main_uss_bytes: Some(pss / 2), ..Row::default() }
    }

    #[test]
    fn insufficient_is_said_once_and_one_epoch_is_singular() {
        let a = analysis(&[Row { phase: "start".into(), ..Row::default() }, epoch(0, 100 << 20)]);
        assert_eq!(a.verdict, "insufficient");
        let text = text_summary(&a);
        assert!(text.starts_with("verdict: insufficient (1 epoch, "), "{text}");
        assert_eq!(text.matches("needs 3 after warm-up").count(), 1, "{text}");
        assert!(verdict_reason(&a).starts_with("1 epoch end recorded"), "{}", verdict_reason(&a));
    }

    #[test]
    fn a_command_diagnose_stopped_is_not_said_killed() {
        let mut rows: Vec<Row> = (0..4).map(|e| epoch(e, (100 + 20 * e as u64) << 20)).collect();
        rows.push(Row { t_s: 5.0, phase: "kill_at_limit".into(), label: "stopping the command (--kill-at-limit)".into(), ..Row::default() });
        rows.push(Row { t_s: 6.0, phase: "finish".into(), label: "signal=15".into(), ..Row::default() });
        let a = analysis(&rows);
        let ledger = a.ledger.join("\n");
        assert!(ledger.contains("diagnose stopped the command (--kill-at-limit; SIGTERM)"), "{ledger}");
        assert!(!ledger.contains("killed by signal"), "{ledger}");
    }
}
