//! `summary.md` and the short text summary printed at the end of a run.

use std::fmt::Write;

use super::{human_bytes, human_seconds, signed_bytes};
use crate::analysis::{Analysis, Class, SeriesVerdict, PHASE_SERIES};

/// "+2.1 MiB/epoch [+1.9 MiB, +2.3 MiB]", or a dash without a fit.
fn slope_cell(slope: Option<f64>, interval: Option<(f64, f64)>) -> String {
    match (slope, interval) {
        (Some(b), Some((lo, hi))) => format!("{}/epoch [{}, {}]", signed_bytes(b), signed_bytes(lo), signed_bytes(hi)),
        _ => "–".into(),
    }
}

fn projection_cell(s: &SeriesVerdict) -> String {
    match &s.projection {
        Some(p) => {
            let when = p.seconds_to_limit.map(|t| format!(", about {}", human_seconds(t))).unwrap_or_default();
            format!("{} limit ({}) in {:.1} epochs{when}", human_bytes(p.limit_bytes as f64), p.limit_source, p.epochs_to_limit)
        }
        None => String::new(),
    }
}

fn epochs_list(e: &[u32]) -> String {
    if e.is_empty() {
        "none".into()
    } else {
        e.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", ")
    }
}

/// The Markdown report.
pub fn summary(a: &Analysis) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Memory report\n");
    let _ = writeln!(s, "**Verdict: {}**\n", a.verdict);
    let _ = writeln!(s, "- epochs recorded: {} ({} boundaries, {:.1} s{})", a.epochs, a.boundaries, a.duration_s,
        a.seconds_per_epoch.map(|x| format!(", {x:.1} s per epoch")).unwrap_or_default());
    if let Some(limit) = a.mem_limit_bytes {
        let _ = writeln!(s, "- memory limit: {}", human_bytes(limit as f64));
    }
    let gpu = crate::analysis::gpu_empty_reason(&a.gpu).map_or_else(|| a.gpu.replace('_', " "), |why| format!("not recorded: {why}"));
    let _ = writeln!(s, "- GPU: {gpu}");
    if let Some(u) = a.user_bytes_per_epoch.filter(|u| *u != 0.0) {
        let _ = writeln!(s, "- the program reports its own counter (user_bytes) changing by {}/epoch", signed_bytes(u));
    }
    let _ = writeln!(s, "\n## What the ledger says\n");
    for line in &a.ledger {
        let _ = writeln!(s, "- {line}");
    }
    let _ = writeln!(s, "\n## Series at epoch ends\n");
    let _ = writeln!(s, "| series | class | slope (90 % interval) | first → last | warm-up epochs | projection |");
    let _ = writeln!(s, "|---|---|---|---|---|---|");
    for v in &a.series {
        let _ = writeln!(s, "| {} | {} | {} | {} → {} | {} | {} |", v.name, v.class.as_str(), slope_cell(v.slope_bytes_per_epoch, v.slope_interval),
            human_bytes(v.first_bytes as f64), human_bytes(v.last_bytes as f64), epochs_list(&v.warmup_epochs), projection_cell(v));
    }
    let _ = writeln!(s, "\nNoise tolerance per series: growth below the larger of 512 KiB and 0.4 % of its level per epoch is flat; with only two epochs after warm-up, growth must also exceed 10 % of the level per epoch.");
    if !a.sites.is_empty() {
        let source = a.sites_source.map_or("live heap", |s| s.describe());
        let _ = writeln!(s, "\n## Call sites ({source} at epoch ends, growing first)\n");
        let _ = writeln!(s, "| site | class | slope (90 % interval) | live at last epoch end |");
        let _ = writeln!(s, "|---|---|---|---|");
        for v in a.sites.iter().take(10) {
            let slope = slope_cell(v.slope_bytes_per_epoch, v.slope_interval);
            let last = v.bytes_by_epoch.last().map_or(0, |b| b.1);
            let _ = writeln!(s, "| `{}` | {} | {} | {} |", v.name().replace('|', "\\|"), v.class.as_str(), slope, human_bytes(last as f64));
        }
        let _ = writeln!(s, "\nFull stacks in callsites.csv; the growth between the first post-warm-up snapshot and the last in growth.pb.gz (pprof) and growth.svg (flamegraph).");
        if a.sites_source == Some(crate::heap::StackSource::DhatExact) {
            let _ = writeln!(s, "DHAT's own profile of the live heap at each epoch end: dhat/epoch-N.json (open it in DHAT's viewer, dh_view.html); of the whole run: dhat-heap.json.");
        }
    }
    let _ = writeln!(s, "\n## Memory per phase (peak / mean at its boundaries)\n");
    let present: Vec<_> = PHASE_SERIES.iter().filter(|(c, _)| a.phases.iter().any(|p| p.peak(c).is_some())).collect();
    let _ = write!(s, "| phase | boundaries |");
    for (_, name) in &present {
        let _ = write!(s, " {name} |");
    }
    let _ = writeln!(s, "\n|---|---|{}", "---|".repeat(present.len()));
    for p in &a.phases {
        let _ = write!(s, "| {} | {} |", p.phase, p.count);
        for (c, _) in &present {
            match p.stats.iter().find(|st| st.column == *c) {
                Some(st) => {
                    let _ = write!(s, " {} / {} |", human_bytes(st.peak as f64), human_bytes(st.mean));
                }
                None => s.push_str(" – |"),
            }
        }
        s.push('\n');
    }
    s
}

/// A few lines for the terminal.
pub fn text_summary(a: &Analysis) -> String {
    let mut s = format!("verdict: {} ({} epochs, {:.0} s)\n", a.verdict, a.epochs, a.duration_s);
    for v in a.series.iter().filter(|v| matches!(v.column.as_str(), "rss_bytes" | "rss_in_use_bytes" | "je_allocated_bytes" | "gpu_allocated_bytes" | "gpu_reserved_bytes" | "heap_exact_bytes")) {
        let proj = projection_cell(v);
        let _ = writeln!(s, "  {:<16} {:<12} {}{}", v.name, v.class.as_str(), slope_cell(v.slope_bytes_per_epoch, v.slope_interval),
            if proj.is_empty() || v.class != Class::Growing { String::new() } else { format!("; {proj}") });
    }
    for line in &a.ledger {
        let _ = writeln!(s, "  - {line}");
    }
    s
}
