//! A flat-memory assertion for your own `cargo test`: run a repeating workload (a training
//! step, an epoch, a request loop) for some warm-up iterations, then K measured ones, and
//! fail with a readable message if memory grows faster than you allow, or peaks too high.
//!
//! ```no_run
//! # fn train_one_step() {}
//! let report = profiler::FlatMemory::new()
//!     .warmup(3)
//!     .iterations(10)
//!     .max_growth_bytes(64 * 1024)  // per iteration
//!     .peak_limit(2 << 30)          // like pytest-memray's limit_memory
//!     .attribute(true)              // name the growing call site on failure
//!     .assert(|_i| train_one_step());
//! println!("{report}");
//! ```
//!
//! Run each such test in its own process (one per file under `tests/`): allocator
//! counters are process-wide, so tests running side by side would measure each other.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::analysis::{classify_measured, classify_sites_with, Class, Classified, SiteVerdict, Tolerance};
use crate::heap::{read_sites, HeapAttribution, StackSource};
use crate::format::{human_bytes, signed_bytes};
use crate::source::{JemallocSource, ProcessSource, Source};
use crate::timeline::Row;

/// Settings of a flat-memory check.
#[derive(Clone, Debug)]
pub struct FlatMemory {
    warmup: usize,
    iterations: usize,
    tolerance: Tolerance,
    peak_limit: Option<u64>,
    attribute: bool,
    allowed_sites: Vec<String>,
}

/// One measured series.
#[derive(Clone, Debug)]
pub struct SeriesCheck {
    /// Display name.
    pub name: &'static str,
    /// Bytes after each measured iteration.
    pub values: Vec<u64>,
    /// The classification (slope in bytes per iteration).
    pub verdict: Classified,
}

/// What a check measured.
#[derive(Clone, Debug)]
pub struct FlatReport {
    /// Heap allocated (jemalloc), minus allowed sites' bytes.
    pub heap: SeriesCheck,
    /// RSS in use (RSS minus allocator idle pages), minus allowed sites' bytes.
    pub rss_in_use: SeriesCheck,
    /// Highest RSS during the measured iterations.
    pub peak_rss: u64,
    /// Call sites (growing first), with attribution on.
    pub sites: Vec<SiteVerdict>,
    /// Why the check failed; empty if it passed.
    pub failures: Vec<String>,
}

impl Default for FlatMemory {
    fn default() -> Self {
        Self::new()
    }
}

static RUNS: AtomicU32 = AtomicU32::new(0);

impl FlatMemory {
    /// 3 warm-up and 10 measured iterations; growth tolerated: 64 KiB or 0.1 % of the heap
    /// per iteration, whichever is larger.
    pub fn new() -> Self {
        FlatMemory {
            warmup: 3,
            iterations: 10,
            // Per iteration, however many: the check runs a fixed, small number of them.
            tolerance: Tolerance { floor_bytes: 64.0 * 1024.0, relative: 0.001, span_epochs: f64::INFINITY, settling: 0.0 },
            peak_limit: None,
            attribute: false,
            allowed_sites: Vec::new(),
        }
    }
    /// Iterations run before measuring (caches fill, allocators warm up).
    pub fn warmup(mut self, n: usize) -> Self {
        self.warmup = n;
        self
    }
    /// Measured iterations (at least 3).
    pub fn iterations(mut self, n: usize) -> Self {
        self.iterations = n.max(3);
        self
    }
    /// Growth per iteration below this many bytes is noise.
    pub fn max_growth_bytes(mut self, bytes: u64) -> Self {
        self.tolerance.floor_bytes = bytes as f64;
        self
    }
    /// Growth per iteration below this fraction of the working set is noise.
    pub fn max_growth_fraction(mut self, fraction: f64) -> Self {
        self.tolerance.relative = fraction;
        self
    }
    /// Fail if RSS ever exceeds this many bytes during the measured iterations.
    pub fn peak_limit(mut self, bytes: u64) -> Self {
        self.peak_limit = Some(bytes);
        self
    }
    /// Attribute the heap to call sites (jemalloc sampling) and name the growing ones.
    pub fn attribute(mut self, on: bool) -> Self {
        self.attribute = on;
        self
    }
    /// A known bounded site, by a substring of its function or location: its (sampled)
    /// bytes are left out of both series and it is never blamed. Implies attribution.
    pub fn allow_site(mut self, pattern: impl Into<String>) -> Self {
        self.allowed_sites.push(pattern.into());
        self.attribute = true;
        self
    }

    /// Run `workload(i)` for warm-up and measured iterations, then judge.
    pub fn check(&self, mut workload: impl FnMut(usize)) -> Result<FlatReport, FlatReport> {
        let mut process = ProcessSource::new(false);
        let mut jemalloc = JemallocSource::new().ok();
        let dir = std::env::temp_dir().join(format!("flat-memory-{}-{}", std::process::id(), RUNS.fetch_add(1, Ordering::SeqCst)));
        let mut attribution = if self.attribute { HeapAttribution::start(&dir, StackSource::JemallocSampled).ok() } else { None };

        for i in 0..self.warmup {
            workload(i);
        }
        // A snapshot at the end of warm-up fills the symbol cache before measuring; its
        // rows (snapshot 0) are left out below.
        if let Some(a) = &mut attribution {
            let _ = a.snapshot(0);
        }
        let mut sample = || {
            let mut row = Row::default();
            process.sample(&mut row);
            if let Some(j) = &mut jemalloc {
                j.sample(&mut row);
            }
            row
        };
        let mut rows = vec![];
        let _ = sample(); // resets the peak to "since now"
        for k in 0..self.iterations {
            workload(self.warmup + k);
            rows.push(sample());
            if let Some(a) = &mut attribution {
                let _ = a.snapshot(k as u32 + 1);
            }
        }
        let sites = match attribution.take() {
            Some(mut a) => {
                let _ = a.finish(crate::analysis::warmup_epochs);
                drop(a);
                let sites = read_sites(&dir).ok().flatten().map(|(s, mut r)| {
                    r.retain(|row| row.epoch > 0);
                    classify_sites_per_iteration(&s, &r, self.tolerance)
                });
                let _ = std::fs::remove_dir_all(&dir);
                sites.unwrap_or_default()
            }
            None => Vec::new(),
        };

        let allowed = |s: &SiteVerdict| self.allowed_sites.iter().any(|p| s.function.contains(p.as_str()) || s.location.contains(p.as_str()));
        let allowed_bytes: Vec<u64> = (0..self.iterations)
            .map(|k| sites.iter().filter(|s| allowed(s)).map(|s| s.bytes_by_epoch.get(k).map_or(0, |b| b.1)).sum())
            .collect();
        let heap_values: Vec<u64> = rows.iter().zip(&allowed_bytes).map(|(r, a)| r.je_allocated_bytes.unwrap_or(0).saturating_sub(*a)).collect();
        let rss_values: Vec<u64> = rows.iter().zip(&allowed_bytes).map(|(r, a)| r.rss_in_use().or(r.rss_bytes).unwrap_or(0).saturating_sub(*a)).collect();
        let judge = |name, values: Vec<u64>| {
            let pts: Vec<(f64, f64)> = values.iter().enumerate().map(|(i, &v)| (i as f64, v as f64)).collect();
            SeriesCheck { name, verdict: classify_measured(&pts, self.tolerance), values }
        };
        let mut report = FlatReport {
            heap: judge("heap allocated", heap_values),
            rss_in_use: judge("RSS in use", rss_values),
            peak_rss: rows.iter().filter_map(|r| r.peak_rss_bytes).max().unwrap_or(0),
            sites: sites.into_iter().filter(|s| !allowed(s)).collect(),
            failures: Vec::new(),
        };
        for series in [&report.heap, &report.rss_in_use] {
            if series.verdict.class == Class::Growing {
                let t = series.verdict.trend.expect("growing has a trend");
                report.failures.push(format!(
                    "{} grows {}/iteration {} over {} iterations (tolerance {}/iteration): {}",
                    series.name, signed_bytes(t.slope), t.interval().map_or("(no interval: 2 iterations)".into(), |(lo, hi)| format!("[{}, {}]", signed_bytes(lo), signed_bytes(hi))), self.iterations,
                    human_bytes(series.verdict.tolerance_bytes),
                    series.values.iter().map(|v| human_bytes(*v as f64)).collect::<Vec<_>>().join(", ")
                ));
            }
        }
        if let Some(limit) = self.peak_limit.filter(|l| report.peak_rss > *l) {
            report.failures.push(format!("peak RSS {} exceeds the limit of {}", human_bytes(report.peak_rss as f64), human_bytes(limit as f64)));
        }
        if report.failures.is_empty() {
            Ok(report)
        } else {
            Err(report)
        }
    }

    /// Like [`FlatMemory::check`], but panics with the report if memory is not flat.
    ///
    /// # Panics
    /// When a series grows beyond the tolerance or RSS exceeds the peak limit.
    pub fn assert(&self, workload: impl FnMut(usize)) -> FlatReport {
        match self.check(workload) {
            Ok(report) => report,
            Err(report) => panic!("memory is not flat:\n{report}"),
        }
    }
}

/// Sites classified per iteration (all measured, no warm-up cut) with the check's own
/// tolerance, raised for sampled estimates.
fn classify_sites_per_iteration(sites: &[crate::heap::SiteInfo], rows: &[crate::heap::SiteRow], tol: Tolerance) -> Vec<SiteVerdict> {
    let site_tol = Tolerance { floor_bytes: tol.floor_bytes.max(256.0 * 1024.0), relative: tol.relative.max(0.02), ..tol };
    classify_sites_with(sites, rows, |pts| classify_measured(pts, site_tol))
}

impl fmt::Display for FlatReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.failures {
            writeln!(f, "  - {line}")?;
        }
        for s in [&self.heap, &self.rss_in_use] {
            let slope = s.verdict.trend.map_or("–".into(), |t| format!("{}/iteration", signed_bytes(t.slope)));
            writeln!(f, "  {:<15} {:<9} {slope}", s.name, s.verdict.class.as_str())?;
        }
        writeln!(f, "  peak RSS        {}", human_bytes(self.peak_rss as f64))?;
        for s in self.sites.iter().filter(|s| s.class == Class::Growing).take(3) {
            writeln!(f, "  top growing site: {} {}/iteration", s.name(), signed_bytes(s.slope_bytes_per_epoch.unwrap_or(0.0)))?;
            writeln!(f, "    stack: {}", s.stack.split(" <- ").take(8).collect::<Vec<_>>().join(" <- "))?;
        }
        Ok(())
    }
}
