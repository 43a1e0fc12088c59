//! The current state of a run in Prometheus' text exposition format: served on
//! `--metrics-listen ADDR` (GET /metrics, nothing else) and/or written atomically to
//! `--metrics-textfile DIR/diagnose.prom` for node_exporter's textfile collector.
//!
//! Metrics (all names start with `diagnose_`, bytes in bytes, seconds in seconds):
//! `memory_bytes{series}` (the latest value of each memory series),
//! `series_class{series,class}` (a state set: 1 for the current class),
//! `series_slope_bytes_per_epoch{series}` and `series_slope_bytes_per_second{series}`,
//! `verdict_growing`, `oom_seconds_remaining`, `oom_epochs_remaining`,
//! `memory_limit_bytes`, `epoch`, `boundaries_total`, and with ranks
//! `rank_memory_bytes{rank,kind}`. Labels hold series, class and kind names and rank
//! numbers only: never command lines, paths or environment values.

use std::fmt::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::analysis::Analysis;
use crate::live::LiveVerdict;
use crate::error::Error;
use crate::timeline::{Row, TimelineMeta, MEMORY_SERIES};

/// The file name written in the textfile directory.
pub const TEXTFILE_NAME: &str = "diagnose.prom";

/// The facts a live verdict needs before the timeline is read back: the memory limit.
pub fn live_meta() -> TimelineMeta {
    let limit = crate::limits::memory_limit();
    TimelineMeta { mem_limit_bytes: limit.as_ref().map(|l| l.bytes), mem_limit_source: limit.map(|l| l.source.to_string()), ..TimelineMeta::default() }
}

/// Keeps the rendered state and publishes it.
pub struct MetricsExporter {
    text: Arc<Mutex<String>>,
    textfile: Option<PathBuf>,
    meta: TimelineMeta,
    /// The verdict so far, judged at each epoch end.
    live: LiveVerdict,
    boundaries: u64,
    /// The latest row with every series and the epoch carried forward: a quick sample
    /// (RSS only) must not make PSS vanish from the scrape.
    latest: Row,
    /// Per rank and kind (rss, pss, uss, gpu): the latest bytes, carried forward.
    ranks: std::collections::BTreeMap<(u32, &'static str), u64>,
}

impl MetricsExporter {
    /// Serve on `listen` and/or write into `textfile_dir`. Binding fails here, before the
    /// run starts, with the address in the message.
    pub fn start(meta: TimelineMeta, listen: Option<SocketAddr>, textfile_dir: Option<&Path>) -> Result<Self, Error> {
        let text = Arc::new(Mutex::new(String::new()));
        if let Some(addr) = listen {
            let server = tiny_http::Server::http(addr).map_err(|e| Error::Config(format!("cannot listen on {addr} for metrics: {e}")))?;
            let text = text.clone();
            std::thread::Builder::new()
                .name("diagnose-metrics".into())
                .spawn(move || serve(server, text))
                .map_err(|e| Error::Config(format!("cannot start the metrics server: {e}")))?;
        }
        let textfile = textfile_dir.map(|d| d.join(TEXTFILE_NAME));
        if let Some(dir) = textfile_dir {
            std::fs::create_dir_all(dir).map_err(|source| Error::Output { path: dir.to_path_buf(), source })?;
        }
        let live = LiveVerdict::new(meta.clone(), None);
        Ok(MetricsExporter { text, textfile, meta, live, boundaries: 0, latest: Row::default(), ranks: Default::default() })
    }

    /// Take each rank's memory at the sample the next row comes from (watch with ranks).
    pub fn observe_ranks<const N: usize>(&mut self, ranks: impl Iterator<Item = (u32, [(&'static str, Option<u64>); N])>) {
        for (rank, kinds) in ranks {
            for (kind, value) in kinds {
                if let Some(v) = value {
                    self.ranks.insert((rank, kind), v);
                }
            }
        }
    }

    /// Take one recorded row: re-render, and re-judge at an epoch end.
    pub fn observe(&mut self, row: &Row) {
        self.boundaries += 1;
        self.live.observe(row);
        carry_forward(&mut self.latest, row);
        let mut text = render(&self.latest, self.live.latest(), self.boundaries, &self.meta);
        if !self.ranks.is_empty() {
            text.push_str("# HELP diagnose_rank_memory_bytes Memory of each distributed rank's processes (the rank and its workers).\n# TYPE diagnose_rank_memory_bytes gauge\n");
            for ((rank, kind), v) in &self.ranks {
                let _ = writeln!(text, "diagnose_rank_memory_bytes{{rank=\"{rank}\",kind=\"{kind}\"}} {v}");
            }
        }
        if let Some(path) = &self.textfile {
            // Atomic for the collector (node_exporter ignores the .tmp name).
            let _ = crate::report::replace_text(path, &text);
        }
        *self.text.lock().expect("metrics lock") = text;
    }
}

/// Copy into `latest` every value `row` has, keeping the others.
fn carry_forward(latest: &mut Row, row: &Row) {
    let mut fresh = row.clone();
    macro_rules! keep {
        ($($f:ident),*) => { $( if fresh.$f.is_none() { fresh.$f = latest.$f; } )* };
    }
    keep!(epoch, rss_bytes, pss_bytes, je_allocated_bytes, je_active_bytes, je_resident_bytes, je_retained_bytes, heap_exact_bytes,
        gpu_device_used_bytes, gpu_process_used_bytes, gpu_allocated_bytes, gpu_reserved_bytes, tree_rss_bytes, tree_pss_bytes, tree_uss_bytes,
        main_rss_bytes, main_uss_bytes, workers_rss_bytes, workers_uss_bytes, cgroup_anon_bytes, cgroup_shmem_bytes, cgroup_limit_bytes,
        system_used_bytes, shm_used_bytes, gpu_tree_used_bytes);
    *latest = fresh;
}

fn serve(server: tiny_http::Server, text: Arc<Mutex<String>>) {
    for request in server.incoming_requests() {
        let (status, body) = match (request.method(), request.url()) {
            (tiny_http::Method::Get, "/metrics") => (200, text.lock().map(|t| t.clone()).unwrap_or_default()),
            (_, "/metrics") => (405, "only GET\n".to_string()),
            _ => (404, "metrics are at /metrics\n".to_string()),
        };
        let header = tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"text/plain; version=0.0.4; charset=utf-8"[..]).expect("valid header");
        let _ = request.respond(tiny_http::Response::from_string(body).with_status_code(status).with_header(header));
    }
}

/// A series' label: its column without the `_bytes` suffix.
fn series_label(column: &str) -> &str {
    column.strip_suffix("_bytes").unwrap_or(column)
}

/// The exposition text for the latest `row` and the verdicts so far.
pub fn render(row: &Row, analysis: Option<&Analysis>, boundaries: u64, meta: &TimelineMeta) -> String {
    let mut s = String::new();
    let family = |s: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(s, "# HELP diagnose_{name} {help}\n# TYPE diagnose_{name} {kind}");
    };
    family(&mut s, "memory_bytes", "gauge", "Latest value of each memory series (see the timeline.csv columns in docs/output-files.md).");
    for (column, _) in MEMORY_SERIES {
        if let Some(v) = row.series(column) {
            let _ = writeln!(s, "diagnose_memory_bytes{{series=\"{}\"}} {v}", series_label(column));
        }
    }
    if let Some(limit) = meta.mem_limit_bytes.or(row.cgroup_limit_bytes) {
        family(&mut s, "memory_limit_bytes", "gauge", "The memory limit: the smaller of MemTotal and the cgroup limit.");
        let _ = writeln!(s, "diagnose_memory_limit_bytes {limit}");
    }
    if let Some(e) = row.epoch {
        family(&mut s, "epoch", "gauge", "The epoch of the latest boundary.");
        let _ = writeln!(s, "diagnose_epoch {e}");
    }
    family(&mut s, "boundaries_total", "counter", "Boundaries and samples recorded.");
    let _ = writeln!(s, "diagnose_boundaries_total {boundaries}");
    let Some(a) = analysis else { return s };
    family(&mut s, "verdict_growing", "gauge", "1 when the verdict so far is growing.");
    let _ = writeln!(s, "diagnose_verdict_growing {}", u8::from(a.verdict == "growing"));
    family(&mut s, "series_class", "gauge", "The class of each series at epoch ends so far (a state set).");
    for v in &a.series {
        for class in ["flat", "bounded", "growing", "insufficient"] {
            let _ = writeln!(s, "diagnose_series_class{{series=\"{}\",class=\"{class}\"}} {}", series_label(&v.column), u8::from(v.class.as_str() == class));
        }
    }
    family(&mut s, "series_slope_bytes_per_epoch", "gauge", "Robust slope of each series after warm-up, bytes per epoch.");
    for v in &a.series {
        if let Some(b) = v.slope_bytes_per_epoch {
            let _ = writeln!(s, "diagnose_series_slope_bytes_per_epoch{{series=\"{}\"}} {b}", series_label(&v.column));
        }
    }
    if let Some(spe) = a.seconds_per_epoch.filter(|x| *x > 0.0) {
        family(&mut s, "series_slope_bytes_per_second", "gauge", "The same slope per second of run time.");
        for v in &a.series {
            if let Some(b) = v.slope_bytes_per_epoch {
                let _ = writeln!(s, "diagnose_series_slope_bytes_per_second{{series=\"{}\"}} {}", series_label(&v.column), b / spe);
            }
        }
    }
    if let Some(p) = &a.oom {
        family(&mut s, "oom_epochs_remaining", "gauge", "Epochs until memory runs out at the recent epochs' slope.");
        let _ = writeln!(s, "diagnose_oom_epochs_remaining {}", p.epochs_to_limit);
        if let Some(t) = p.seconds_to_limit {
            family(&mut s, "oom_seconds_remaining", "gauge", "Seconds until memory runs out at the recent epochs' slope.");
            let _ = writeln!(s, "diagnose_oom_seconds_remaining {t}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_series_classes_and_counters() {
        let meta = TimelineMeta { mem_limit_bytes: Some(1 << 34), mem_limit_source: Some("meminfo".into()), ..TimelineMeta::default() };
        let dir = tempfile::tempdir().unwrap();
        let mut m = MetricsExporter::start(meta, None, Some(dir.path())).unwrap();
        for e in 0..6u32 {
            m.observe(&Row { t_s: e as f64 * 10.0, phase: "epoch_end".into(), epoch: Some(e), tree_pss_bytes: Some((1 << 30) + e as u64 * (64 << 20)), ..Row::default() });
        }
        let text = std::fs::read_to_string(dir.path().join(TEXTFILE_NAME)).unwrap();
        assert!(text.contains("diagnose_memory_bytes{series=\"tree_pss\"} 1409286144"), "{text}");
        assert!(text.contains("diagnose_series_class{series=\"tree_pss\",class=\"growing\"} 1"), "{text}");
        assert!(text.contains("diagnose_series_class{series=\"tree_pss\",class=\"flat\"} 0"));
        assert!(text.contains("diagnose_series_slope_bytes_per_epoch{series=\"tree_pss\"} 67108864"));
        assert!(text.contains("diagnose_series_slope_bytes_per_second{series=\"tree_pss\"} 6710886.4"));
        assert!(text.contains("diagnose_verdict_growing 1") && text.contains("diagnose_boundaries_total 6") && text.contains("diagnose_epoch 5"));
        assert!(text.contains("# TYPE diagnose_boundaries_total counter"));
        m.observe_ranks([(1u32, [("pss", Some(42u64)), ("gpu", None)])].into_iter());
        // A quick sample between epochs keeps the last PSS and epoch on the page.
        m.observe(&Row { t_s: 61.0, phase: "sample".into(), tree_rss_bytes: Some(5), ..Row::default() });
        let text = std::fs::read_to_string(dir.path().join(TEXTFILE_NAME)).unwrap();
        assert!(text.contains("diagnose_memory_bytes{series=\"tree_pss\"} 1409286144") && text.contains("diagnose_epoch 5"), "{text}");
        assert!(text.contains("diagnose_rank_memory_bytes{rank=\"1\",kind=\"pss\"} 42") && !text.contains("kind=\"gpu\""), "{text}");
        // Every sample line is `name{labels} value` or `name value`, as the format wants.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
