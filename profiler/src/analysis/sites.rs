//! Call-site verdicts: each site's live bytes at epoch ends, classified like a memory
//! series (flat / bounded / growing), sorted by growth.

use std::collections::BTreeSet;

use serde::Serialize;

use super::verdict::{classify, Class, Classified, Tolerance};
use crate::heap::{SiteInfo, SiteRow, StackSource};

/// Epoch ends after warm-up needed before a site may be called growing.
pub const MIN_SITE_POINTS: usize = 3;

/// Sites hold sampled estimates: tolerate more noise than whole-process series.
pub const SITE_TOLERANCE: Tolerance = Tolerance { floor_bytes: 1024.0 * 1024.0, relative: 0.02, span_epochs: super::verdict::REFERENCE_SPAN_EPOCHS, settling: 0.0 };

/// The verdict on one call site.
#[derive(Clone, Debug, Serialize)]
pub struct SiteVerdict {
    /// Site id (as in sites.csv).
    pub site: u32,
    /// The first frame in the program's own source.
    pub function: String,
    /// Its file:line.
    pub location: String,
    /// The program's own callers, nearest first.
    pub via: String,
    /// Frames from the allocation outwards.
    pub stack: String,
    /// Live bytes at each epoch end (0 where the site had none).
    pub bytes_by_epoch: Vec<(u32, u64)>,
    /// flat / bounded / growing / insufficient.
    pub class: Class,
    /// Bytes per epoch after warm-up.
    pub slope_bytes_per_epoch: Option<f64>,
    /// 90 % interval of the slope.
    pub slope_interval: Option<(f64, f64)>,
}

impl SiteVerdict {
    /// "function (file:line) via caller <- caller".
    pub fn name(&self) -> String {
        let mut name = if self.location.is_empty() { self.function.clone() } else { format!("{} ({})", self.function, self.location) };
        if !self.via.is_empty() {
            name.push_str(" via ");
            name.push_str(&self.via);
        }
        name
    }
}

impl SiteVerdict {
    /// [`Self::name`] with C++ names shortened (no parameter lists or template
    /// arguments) and only the nearest caller: native sites' names run to hundreds of
    /// characters.
    pub fn short_name(&self) -> String {
        let short = crate::frames::short_cpp_name;
        let mut name = if self.location.is_empty() { short(&self.function) } else { format!("{} ({})", short(&self.function), self.location) };
        if let Some(caller) = self.via.split(" <- ").next().filter(|c| !c.is_empty()) {
            name = format!("{name} via {}", short(caller));
        }
        name
    }
}

/// jemalloc samples one allocation per this many bytes on average (`lg_prof_sample` 19).
pub const SAMPLE_PERIOD_BYTES: f64 = 524_288.0;

/// A site's tolerance: [`SITE_TOLERANCE`], raised to twice the slope's standard deviation
/// that sampling alone causes. A site of B live bytes holds about B / 512 KiB samples, so
/// its estimate varies by about sqrt(B × 512 KiB) between snapshots when its objects are
/// replaced (a full LRU cache), and a least-squares slope over n epochs by that times
/// sqrt(12 / (n³ − n)).
pub fn site_tolerance(points: &[(f64, f64)]) -> Tolerance {
    let kept = &points[super::verdict::warmup_epochs(points.len())..];
    let n = kept.len() as f64;
    let level = super::verdict::median_level(kept);
    let sampling_sd = (level * SAMPLE_PERIOD_BYTES).sqrt();
    let slope_sd = if n >= 2.0 { sampling_sd * (12.0 / (n * n * n - n)).sqrt() } else { f64::INFINITY };
    Tolerance { floor_bytes: SITE_TOLERANCE.floor_bytes.max(2.0 * slope_sd), ..SITE_TOLERANCE }
}

/// Classify every site at epoch ends; growing first, then by slope. Sampled bytes get
/// [`site_tolerance`]; dhat's exact bytes have no sampling noise, only [`SITE_TOLERANCE`].
pub fn classify_sites(sites: &[SiteInfo], rows: &[SiteRow], source: StackSource) -> Vec<SiteVerdict> {
    classify_sites_with(sites, rows, |pts| {
        let tolerance = match source {
            StackSource::JemallocSampled => site_tolerance(pts),
            StackSource::DhatExact => SITE_TOLERANCE,
        };
        let mut c = classify(pts, tolerance);
        // Sampled bytes of a churning site (a full LRU cache) jump by tens of % between
        // snapshots: two points after warm-up cannot tell growth from that.
        if pts.len() - c.warmup < MIN_SITE_POINTS && c.class == Class::Growing {
            c.class = Class::Insufficient;
        }
        c
    })
}

/// Classify every site with `rule` over its (snapshot, bytes) points; growing first,
/// then by slope, then by live bytes at the last snapshot.
pub fn classify_sites_with(sites: &[SiteInfo], rows: &[SiteRow], rule: impl Fn(&[(f64, f64)]) -> Classified) -> Vec<SiteVerdict> {
    let epochs: Vec<u32> = rows.iter().map(|r| r.epoch).collect::<BTreeSet<_>>().into_iter().collect();
    let mut out: Vec<SiteVerdict> = sites
        .iter()
        .map(|info| {
            let bytes_by_epoch: Vec<(u32, u64)> = epochs
                .iter()
                .map(|&e| (e, rows.iter().filter(|r| r.epoch == e && r.site == info.site).map(|r| r.bytes).sum()))
                .collect();
            let pts: Vec<(f64, f64)> = bytes_by_epoch.iter().map(|&(e, b)| (e as f64, b as f64)).collect();
            let c = rule(&pts);
            SiteVerdict {
                site: info.site,
                function: info.function.clone(),
                location: info.location.clone(),
                via: info.via.clone(),
                stack: info.stack.clone(),
                bytes_by_epoch,
                class: c.class,
                slope_bytes_per_epoch: c.trend.map(|t| t.slope),
                slope_interval: c.trend.and_then(|t| t.interval()),
            }
        })
        .collect();
    // Among sites alike in class and slope (the many flat ones), the largest first.
    let last = |s: &SiteVerdict| s.bytes_by_epoch.last().map_or(0.0, |p| p.1 as f64);
    let rank = |s: &SiteVerdict| (s.class != Class::Growing, -s.slope_bytes_per_epoch.unwrap_or(0.0), -last(s));
    out.sort_by(|a, b| rank(a).partial_cmp(&rank(b)).unwrap_or(std::cmp::Ordering::Equal));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1 << 20;

    fn info(site: u32, f: &str) -> SiteInfo {
        SiteInfo { site, function: f.into(), location: format!("src/{f}.rs:1"), via: String::new(), stack: f.into() }
    }

    #[test]
    fn growing_site_ranks_first_and_churn_is_not_blamed() {
        let sites = [info(0, "weights"), info(1, "leaky"), info(2, "cache"), info(3, "embeddings")];
        let mut rows = Vec::new();
        for e in 0..6u32 {
            rows.push(SiteRow { epoch: e, site: 0, bytes: 50 * MB });
            rows.push(SiteRow { epoch: e, site: 3, bytes: 80 * MB });
            rows.push(SiteRow { epoch: e, site: 1, bytes: 10 * MB * (e as u64 + 1) });
            rows.push(SiteRow { epoch: e, site: 2, bytes: 6 * MB.min(MB * 3 * (e as u64 + 1)) });
        }
        let v = classify_sites(&sites, &rows, StackSource::JemallocSampled);
        assert_eq!(v[0].function, "leaky");
        assert_eq!(v[0].class, Class::Growing);
        assert!((v[0].slope_bytes_per_epoch.unwrap() - 10.0 * MB as f64).abs() < 1.0);
        assert!(v[1..].iter().all(|s| s.class != Class::Growing), "{v:?}");
        assert_eq!(v[0].name(), "leaky (src/leaky.rs:1)");
        // Flat sites, the larger first (not in the order they were first seen).
        let rest: Vec<&str> = v[1..].iter().map(|s| s.function.as_str()).collect();
        assert_eq!(rest, ["embeddings", "weights", "cache"], "{v:?}");
    }

    #[test]
    fn sampling_noise_raises_the_tolerance_of_big_sites() {
        let small: Vec<(f64, f64)> = (0..6).map(|e| (e as f64, MB as f64)).collect();
        assert_eq!(site_tolerance(&small).floor_bytes, SITE_TOLERANCE.floor_bytes);
        let big: Vec<(f64, f64)> = (0..4).map(|e| (e as f64, 100.0 * MB as f64)).collect();
        // sqrt(100 MiB × 512 KiB) ≈ 7.2 MiB; over 3 epochs × 0.71, doubled ≈ 10 MiB.
        let t = site_tolerance(&big).floor_bytes / MB as f64;
        assert!((9.0..11.0).contains(&t), "{t}");
    }

    #[test]
    fn exact_bytes_need_no_sampling_allowance() {
        // 100 MiB steady plus 3 MiB/epoch: inside sampling noise, but exact bytes do not
        // jump, so dhat's data calls it growing.
        let sites = [info(0, "big")];
        let rows: Vec<_> = (0..5u32).map(|e| SiteRow { epoch: e, site: 0, bytes: 100 * MB + 3 * MB * e as u64 }).collect();
        assert_eq!(classify_sites(&sites, &rows, StackSource::DhatExact)[0].class, Class::Growing);
        assert_ne!(classify_sites(&sites, &rows, StackSource::JemallocSampled)[0].class, Class::Growing);
    }

    #[test]
    fn a_site_that_starts_growing_late_is_blamed_with_its_late_slope() {
        // 14 epochs: "late" holds 2 MiB until epoch 8, then 6 MiB more per epoch; a full
        // cache's sampled bytes jump between 4 and 6 MiB.
        let sites = [info(0, "late"), info(1, "cache")];
        let mut rows = Vec::new();
        for e in 0..14u32 {
            rows.push(SiteRow { epoch: e, site: 0, bytes: 2 * MB + 6 * MB * e.saturating_sub(8) as u64 });
            rows.push(SiteRow { epoch: e, site: 1, bytes: [4, 6, 5, 4, 6][e as usize % 5] * MB });
        }
        let v = classify_sites(&sites, &rows, StackSource::JemallocSampled);
        assert_eq!((v[0].function.as_str(), v[0].class), ("late", Class::Growing), "{v:?}");
        assert!((v[0].slope_bytes_per_epoch.unwrap() / (6 * MB) as f64 - 1.0).abs() < 0.05, "{:?}", v[0].slope_bytes_per_epoch);
        assert_ne!(v[1].class, Class::Growing);
    }

    #[test]
    fn two_points_after_warmup_never_blame_a_site() {
        let sites = [info(0, "lru")];
        let rows: Vec<_> = [4.8, 2.7, 5.3].iter().enumerate().map(|(e, mb)| SiteRow { epoch: e as u32, site: 0, bytes: (mb * MB as f64) as u64 }).collect();
        assert_ne!(classify_sites(&sites, &rows, StackSource::JemallocSampled)[0].class, Class::Growing);
    }
}
