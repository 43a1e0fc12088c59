//! `summary.md` and the short text summary printed at the end of a run.

use std::fmt::Write;

use super::{human_bytes, human_seconds, signed_bytes};
use crate::analysis::{Analysis, SeriesVerdict, SiteVerdict, PHASE_SERIES};

/// "+2.1 MiB/epoch [+1.9 MiB, +2.3 MiB]"; a slope through two epochs has no interval;
/// a dash without a fit.
fn slope_cell(slope: Option<f64>, interval: Option<(f64, f64)>) -> String {
    match (slope, interval) {
        (Some(b), Some((lo, hi))) => format!("{}/epoch [{}, {}]", signed_bytes(b), signed_bytes(lo), signed_bytes(hi)),
        (Some(b), None) => format!("{}/epoch, no interval (2 epochs after warm-up)", signed_bytes(b)),
        _ => "–".into(),
    }
}

/// The one out-of-memory headline: "out of memory in about 12 more epochs (9–17), about
/// 1.3 h: reaches the 8.0 GiB limit of its memory cgroup at epoch 20; now 7.1 GiB (...),
/// +70 MiB/epoch ...". The limit and the level now are said apart, so neither reads as
/// the level at the epoch of the kill.
pub(crate) fn oom_headline(a: &Analysis) -> Option<String> {
    let p = a.oom.as_ref()?;
    let range = match p.epochs_range {
        // An upper end ten times the estimate comes from a slope near zero at the
        // interval's low end: "1429–2925686" says no more than "at least 1429".
        (lo, Some(hi)) if hi <= 10.0 * p.epochs_to_limit.max(1.0) => format!(" ({lo:.0}–{hi:.0})"),
        (lo, _) if lo < p.epochs_to_limit => format!(" (at least {lo:.0})"),
        _ => String::new(),
    };
    let when = p.seconds_to_limit.map(|t| format!(", about {}", human_seconds(t))).unwrap_or_default();
    let fitted = match (p.fitted_epochs.first(), p.fitted_epochs.last()) {
        (Some(a), Some(b)) => format!("epochs {a}–{b}"),
        _ => "recent epochs".into(),
    };
    let limit = match p.limit_source.as_str() {
        "meminfo" => format!("the {} of the machine's memory", human_bytes(p.limit_bytes as f64)),
        "cgroup" | "cgroup-v1" | "cgroup-v2" => format!("the {} limit of its memory cgroup", human_bytes(p.limit_bytes as f64)),
        other => format!("the {} {other} limit", human_bytes(p.limit_bytes as f64)),
    };
    Some(format!(
        "out of memory in about {:.0} more epochs{range}{when}: reaches {limit} at epoch {:.0}; now {} ({}), {}/epoch over {fitted}",
        p.epochs_to_limit, p.at_epoch, human_bytes(p.last_bytes as f64), p.name, signed_bytes(p.slope_bytes_per_epoch)
    ))
}

/// "bounded (copy-on-write)", or the class alone.
fn class_cell(v: &SeriesVerdict) -> String {
    match (&v.cause, v.growing_since) {
        (Some(c), _) => format!("{} ({c})", v.class.as_str()),
        (None, Some(_)) if v.slope_interval.is_none() => "growing so far".to_string(),
        (None, Some(since)) => format!("growing since epoch {since}"),
        _ => v.class.as_str().to_string(),
    }
}

/// The warm-up epochs in words that cannot be misread as a count: "none", "epoch 0",
/// "epochs 0–9" (consecutive ones as a range, however many).
pub(crate) fn warmup_cell(e: &[u32]) -> String {
    match e {
        [] => "none".into(),
        [one] => format!("epoch {one}"),
        [first, .., last] if (*last - *first) as usize + 1 == e.len() => format!("epochs {first}–{last}"),
        _ => format!("epochs {}", e.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", ")),
    }
}

/// The Markdown report.
pub fn summary(a: &Analysis) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Memory report\n");
    let _ = writeln!(s, "**Verdict: {}**\n", a.verdict);
    if let Some(h) = oom_headline(a) {
        let _ = writeln!(s, "**{}{}**\n", h[..1].to_uppercase(), &h[1..]);
    }
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
    let _ = writeln!(s, "| series | class | slope (90 % interval) | first → last | warm-up (not judged) |");
    let _ = writeln!(s, "|---|---|---|---|---|");
    for v in &a.series {
        let _ = writeln!(s, "| {} | {} | {} | {} → {} | {} |", v.name, class_cell(v), slope_cell(v.slope_bytes_per_epoch, v.slope_interval),
            human_bytes(v.first_bytes as f64), human_bytes(v.last_bytes as f64), warmup_cell(&v.warmup_epochs));
    }
    let _ = writeln!(s, "\nNoise tolerance per series: growth below the larger of 512 KiB and 0.4 % of its level per epoch is flat, over at most 10 epochs: over a longer span, growth that adds less than 5 MiB and 4 % of the level in all is flat, however many epochs the span holds. With fewer than 3 epochs after warm-up nothing is flat: the class is insufficient, or growing so far when growth exceeds 10 % of the level per epoch.");
    if !a.sites.is_empty() {
        let source = a.sites_source.map_or("live heap", |s| s.describe());
        let _ = writeln!(s, "\n## Call sites ({source} at epoch ends, growing first)\n");
        site_table(&mut s, "site", &a.sites, SiteVerdict::name);
        let _ = writeln!(s, "\nFull stacks in callsites.csv; the growth between the first post-warm-up snapshot and the last in growth.pb.gz (pprof) and growth.svg (flamegraph).");
        if a.sites_source == Some(crate::heap::StackSource::DhatExact) {
            let _ = writeln!(s, "DHAT's own profile of the live heap at each epoch end: dhat/epoch-N.json (open it in DHAT's viewer, dh_view.html); of the whole run: dhat-heap.json.");
        }
    }
    if !a.native_sites.is_empty() {
        let _ = writeln!(s, "\n## Native call sites (the main Python process's C/C++ allocations, jemalloc samples at epoch ends, growing first)\n");
        site_table(&mut s, "function", &a.native_sites, SiteVerdict::short_name);
        let _ = writeln!(s, "\nFull names and stacks in native_sites.csv.");
    }
    if !a.ranks.is_empty() {
        let _ = writeln!(s, "\n## Ranks (PSS of each rank's processes at epoch ends)\n");
        let _ = writeln!(s, "| rank | class | slope (90 % interval) | first → last |");
        let _ = writeln!(s, "|---|---|---|---|");
        for r in &a.ranks {
            let (first, last) = (r.by_epoch.first().map_or(0, |b| b.1), r.by_epoch.last().map_or(0, |b| b.1));
            let _ = writeln!(s, "| {} | {} | {} | {} → {} |", r.rank, r.growing_since.map_or(r.class.as_str().to_string(), |e| format!("growing since epoch {e}")), slope_cell(r.slope_bytes_per_epoch, r.slope_interval), human_bytes(first as f64), human_bytes(last as f64));
        }
    }
    if !a.processes.is_empty() {
        let _ = writeln!(s, "\n## Processes (USS of each process at epoch ends, each judged on its own)\n");
        let _ = writeln!(s, "| process | class | slope (90 % interval) | first → last | epoch ends |");
        let _ = writeln!(s, "|---|---|---|---|---|");
        for p in &a.processes {
            let class = match (p.growing_since, &p.cause) {
                (_, Some(cause)) => format!("{} ({cause})", p.class.as_str()),
                (Some(e), None) if p.class == crate::analysis::Class::Growing => format!("growing since epoch {e}"),
                _ => p.class.as_str().to_string(),
            };
            let _ = writeln!(s, "| {} | {} | {} | {} → {} | {} |", p.who(), class, slope_cell(p.slope_bytes_per_epoch, p.slope_interval), human_bytes(p.first_uss_bytes as f64), human_bytes(p.last_uss_bytes as f64), p.epochs);
        }
    }
    if let Some(c) = &a.censuses {
        let _ = writeln!(s, "\n## Python objects (census at epoch ends, growing first)\n");
        let _ = writeln!(s, "| container or type | kind | class | slope (90 % interval) | items/epoch | bytes at the last census |");
        let _ = writeln!(s, "|---|---|---|---|---|---|");
        for o in c.objects.iter().filter(|o| o.kind == "container").take(10).chain(c.objects.iter().filter(|o| o.kind == "type").take(5)) {
            let last = o.by_epoch.last().map_or(0, |p| p.1);
            let _ = writeln!(s, "| `{}` | {} {} | {} | {} | {:+.0} | {} |", o.name.replace('|', "\\|"), o.kind, o.type_name, o.class.as_str(),
                slope_cell(o.slope_bytes_per_epoch, o.slope_interval), o.items_per_epoch.unwrap_or(0.0), human_bytes(last as f64));
        }
        let _ = writeln!(s, "\nAll rows in objects.csv; each census in objects/epoch-N.json (a worker's in epoch-N-worker-PID.json).");
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
    if a.phases.iter().any(|p| present.iter().any(|(c, _)| p.peak(c).is_none())) {
        let _ = writeln!(s, "\n–: not measured at every boundary of that phase (PSS and USS are read at boundaries and every --pss-interval, not at every sample).");
    }
    s
}

/// The series the terminal summary shows.
const TEXT_SERIES: &[&str] = &[
    "rss_bytes", "rss_in_use_bytes", "je_allocated_bytes", "gpu_allocated_bytes", "gpu_reserved_bytes", "heap_exact_bytes",
    "tree_pss_bytes", "tree_rss_bytes", "main_uss_bytes", "workers_uss_bytes", "gpu_tree_used_bytes",
];

/// A few lines for the terminal.
pub fn text_summary(a: &Analysis) -> String {
    let mut s = format!("verdict: {} ({}, {:.0} s)\n", a.verdict, super::plural(a.epochs, "epoch"), a.duration_s);
    if let Some(h) = oom_headline(a) {
        let _ = writeln!(s, "  {h}");
    }
    for v in a.series.iter().filter(|v| TEXT_SERIES.contains(&v.column.as_str())) {
        let _ = writeln!(s, "  {:<22} {:<26} {}", v.name, class_cell(v), slope_cell(v.slope_bytes_per_epoch, v.slope_interval));
    }
    for line in &a.ledger {
        let _ = writeln!(s, "  - {line}");
    }
    s
}

/// The top 10 sites as a table: name (by `name_of`), class, slope, live bytes at the last
/// epoch end.
fn site_table(s: &mut String, heading: &str, sites: &[SiteVerdict], name_of: fn(&SiteVerdict) -> String) {
    let _ = writeln!(s, "| {heading} | class | slope (90 % interval) | live at last epoch end |");
    let _ = writeln!(s, "|---|---|---|---|");
    for v in sites.iter().take(10) {
        let slope = slope_cell(v.slope_bytes_per_epoch, v.slope_interval);
        let last = v.bytes_by_epoch.last().map_or(0, |b| b.1);
        let _ = writeln!(s, "| `{}` | {} | {} | {} |", name_of(v).replace('|', "\\|"), v.class.as_str(), slope, human_bytes(last as f64));
    }
}
