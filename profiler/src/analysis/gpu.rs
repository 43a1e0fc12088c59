//! The CUDA caching allocator of a watched Python trainer (`gpu/epoch-N.json`, written
//! by `python/diagnose_gpu.py` at each epoch end): its counters classed like every other
//! series, to tell a leak (allocated grows) from caching or fragmentation (reserved or
//! inactive-split bytes grow while allocated is flat) and from a near-OOM (allocation
//! retries rise though nothing grows); and with `--gpu-sites`, the live CUDA bytes per
//! allocating line, classed like call sites, so that the ledger names the growing line.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::objects::Censuses;
use super::sites::{classify_sites_with, SiteVerdict, SITE_TOLERANCE};
use super::verdict::{classify, warmup_epochs, Class, Tolerance};
use crate::error::Error;
use crate::heap::{SiteInfo, SiteRow};

/// The caching allocator's counters are exact: growth under 1 MiB or 1 % of the level per
/// epoch is noise (a few small blocks of a new size).
pub const GPU_TOLERANCE: Tolerance = Tolerance { floor_bytes: 1024.0 * 1024.0, relative: 0.01, span_epochs: super::verdict::REFERENCE_SPAN_EPOCHS, settling: 0.0 };

/// The counters read, in `gpu/epoch-N.json` and in gpu_allocator.csv, in this order.
pub const GPU_STATS: [&str; 9] = ["allocated", "reserved", "active", "inactive_split", "segments", "alloc_retries", "ooms", "peak_allocated", "peak_reserved"];

#[derive(Deserialize)]
struct GpuFile {
    epoch: u32,
    #[serde(default)]
    stats: BTreeMap<String, u64>,
    /// With --gpu-sites: live bytes per allocating site (the largest, MAX_SITES at most).
    #[serde(default)]
    sites: Option<Vec<SiteFileRow>>,
    /// What the helper left out of `sites`, summed.
    #[serde(default)]
    other: Option<OtherRow>,
    #[serde(default)]
    sites_error: Option<String>,
    #[serde(default)]
    seconds: f64,
}

#[derive(Deserialize)]
struct SiteFileRow {
    site: String,
    #[serde(default)]
    function: String,
    #[serde(default)]
    op: String,
    bytes: u64,
}

#[derive(Deserialize, Default)]
struct OtherRow {
    #[serde(default)]
    sites: u64,
}

/// One counter across epoch ends.
#[derive(Clone, Debug, Serialize)]
pub struct GpuSeries {
    /// One of [`GPU_STATS`].
    pub name: &'static str,
    /// flat / bounded / growing / insufficient.
    pub class: Class,
    /// Per epoch after warm-up.
    pub slope_per_epoch: Option<f64>,
}

/// What the allocator's counters say.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GpuCause {
    /// Allocated bytes grow: tensors are kept across epochs.
    Leak,
    /// Reserved grows while allocated is flat: the cache keeps freed blocks.
    Caching,
    /// Inactive-split bytes climb while allocated is flat.
    Fragmentation,
    /// Allocation retries rise though nothing grows.
    NearOom,
    /// Nothing grows, no retries.
    Flat,
    /// Too few epoch ends.
    Insufficient,
}

/// The CUDA allocator of a watched trainer.
#[derive(Clone, Debug, Serialize)]
pub struct GpuAllocator {
    /// The verdict on its counters.
    pub cause: GpuCause,
    /// Each counter classed (bytes; segments, retries and OOMs as counts).
    pub series: Vec<GpuSeries>,
    /// (epoch, counters in [`GPU_STATS`] order; None where missing).
    pub by_epoch: Vec<(u32, [Option<u64>; 9])>,
    /// Allocation retries and OOMs after warm-up.
    pub retries_after_warmup: u64,
    /// OOMs raised during the run (num_ooms at the last epoch end).
    pub ooms: u64,
    /// With --gpu-sites: the allocating lines, growing first (`location` is file:line,
    /// `function` the function, `via` the C++ op or the library call).
    pub sites: Vec<SiteVerdict>,
    /// With --gpu-sites: why there are no sites (history could not start), if so.
    pub sites_error: Option<String>,
    /// Epoch ends read.
    pub count: usize,
    /// The longest reading in the trainer (counters and snapshot), seconds.
    pub max_seconds: f64,
    /// Sites the helper summed into "(other sites)" at one epoch end, at most.
    pub sites_left_out: u64,
}

impl GpuAllocator {
    /// The series of counter `name`.
    pub fn series(&self, name: &str) -> Option<&GpuSeries> {
        self.series.iter().find(|s| s.name == name)
    }

    fn grows(&self, name: &str) -> bool {
        self.series(name).is_some_and(|s| s.class == Class::Growing)
    }
}

/// Read `dir/gpu/epoch-*.json`; `None` when there are none.
pub fn read_gpu(dir: &Path) -> Result<Option<GpuAllocator>, Error> {
    let mut files: Vec<GpuFile> = super::objects::read_json_files(&dir.join(crate::watch::census::GPU_DIR), "a GPU allocator file")?;
    if files.is_empty() {
        return Ok(None);
    }
    files.sort_by_key(|f| f.epoch);
    files.dedup_by_key(|f| f.epoch);
    Ok(Some(analyze(&files)))
}

fn analyze(files: &[GpuFile]) -> GpuAllocator {
    let by_epoch: Vec<(u32, [Option<u64>; 9])> = files.iter().map(|f| (f.epoch, GPU_STATS.map(|k| f.stats.get(k).copied()))).collect();
    let points = |i: usize| -> Vec<(f64, f64)> { by_epoch.iter().filter_map(|(e, v)| Some((*e as f64, v[i]? as f64))).collect() };
    let series: Vec<GpuSeries> = GPU_STATS[..5]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            // Segments are a count: one more segment per epoch is growth.
            let tol = if *name == "segments" { Tolerance { floor_bytes: 0.5, relative: 0.0, ..GPU_TOLERANCE } } else { GPU_TOLERANCE };
            let c = classify(&points(i), tol);
            GpuSeries { name, class: c.class, slope_per_epoch: c.trend.map(|t| t.slope) }
        })
        .collect();
    let counter = |i: usize| points(i).iter().map(|p| p.1 as u64).collect::<Vec<_>>();
    let retries = counter(5);
    let warm = warmup_epochs(retries.len());
    // Retries are cumulative: those after warm-up are the steady state's.
    let retries_after_warmup = match (retries.get(warm.saturating_sub(1)), retries.last()) {
        (Some(a), Some(b)) if retries.len() > warm => b.saturating_sub(*a),
        _ => 0,
    };
    let ooms = counter(6).last().copied().unwrap_or(0);
    let mut out = GpuAllocator {
        cause: GpuCause::Flat,
        series,
        by_epoch,
        retries_after_warmup,
        ooms,
        sites: Vec::new(),
        sites_error: files.iter().rev().find_map(|f| f.sites_error.clone()),
        count: files.len(),
        max_seconds: files.iter().map(|f| f.seconds).fold(0.0, f64::max),
        sites_left_out: files.iter().filter_map(|f| f.other.as_ref().map(|o| o.sites)).max().unwrap_or(0),
    };
    out.cause = if out.series("allocated").is_none_or(|s| s.class == Class::Insufficient) {
        GpuCause::Insufficient
    } else if out.grows("allocated") {
        GpuCause::Leak
    } else if out.grows("inactive_split") {
        GpuCause::Fragmentation
    } else if out.grows("reserved") {
        GpuCause::Caching
    } else if retries_after_warmup > 0 {
        GpuCause::NearOom
    } else {
        GpuCause::Flat
    };
    out.sites = sites(files);
    out
}

/// The allocating lines across epoch ends (a line absent at an epoch end held nothing
/// there), classed like heap call sites; exact bytes, so no sampling allowance.
fn sites(files: &[GpuFile]) -> Vec<SiteVerdict> {
    let mut ids: BTreeMap<(String, String, String), u32> = BTreeMap::new();
    let mut rows = Vec::new();
    for f in files {
        for s in f.sites.iter().flatten() {
            let n = ids.len() as u32;
            let id = *ids.entry((s.site.clone(), s.function.clone(), s.op.clone())).or_insert(n);
            rows.push(SiteRow { epoch: f.epoch, site: id, bytes: s.bytes });
        }
    }
    let infos: Vec<SiteInfo> = ids
        .into_iter()
        .map(|((location, function, op), site)| SiteInfo { site, function, location, via: op, stack: String::new() })
        .collect();
    classify_sites_with(&infos, &rows, |pts| classify(pts, SITE_TOLERANCE))
}

/// "train.py:88 in validate".
pub fn site_name(s: &SiteVerdict) -> String {
    if s.function.is_empty() {
        s.location.clone()
    } else {
        format!("{} in {}", s.location, s.function)
    }
}

/// The ledger's GPU lines: the cause in words, what nvidia-smi shows, the cure; the
/// growing lines; where a census container keeping autograd graphs grows alongside,
/// that container.
pub fn explain(g: &GpuAllocator, censuses: Option<&Censuses>, lines: &mut Vec<String>) {
    use crate::format::{human_bytes, signed_bytes};
    let slope = |n: &str| signed_bytes(g.series(n).and_then(|s| s.slope_per_epoch).unwrap_or(0.0));
    let last = |i: usize| g.by_epoch.last().and_then(|e| e.1[i]).map_or("?".into(), |b| human_bytes(b as f64));
    let cure = "Cure: PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True (segments grow in place instead of new ones per size), and smaller peak temporaries (fixed or bucketed batch shapes, chunked evaluation); torch.cuda.empty_cache() returns unused segments to the driver at the price of slower allocations after it.";
    let smi = "nvidia-smi shows what the caching allocator has reserved from the driver, not what tensors hold";
    match g.cause {
        GpuCause::Leak => lines.push(format!(
            "GPU: a leak. Allocated CUDA memory grows {}/epoch ({} at the last epoch end; reserved {}/epoch): tensors on the device are kept across epochs.{}",
            slope("allocated"), last(0), slope("reserved"),
            if g.sites.is_empty() && g.sites_error.is_none() { " Rerun with --gpu-sites to name the line that allocates them." } else { "" }
        )),
        GpuCause::Caching => lines.push(format!(
            "GPU: caching, not a leak. Reserved CUDA memory grows {}/epoch ({} at the last epoch end) while allocated is flat ({}): {smi}, and it keeps freed blocks for reuse; tensors of new sizes need new segments. {cure}",
            slope("reserved"), last(1), last(0)
        )),
        GpuCause::Fragmentation => lines.push(format!(
            "GPU: fragmentation, not a leak. Inactive split bytes climb {}/epoch ({} at the last epoch end) while allocated is flat ({}): free pieces of split blocks too small for the next requests, so reserved memory (what nvidia-smi shows) keeps rising ({}/epoch). {cure}",
            slope("inactive_split"), last(3), last(0), slope("reserved")
        )),
        GpuCause::NearOom => lines.push(format!(
            "GPU: close to an out-of-memory error. cudaMalloc failed and the allocator freed its cache and retried {} time(s) after warm-up (num_alloc_retries), though nothing grows: each epoch's peak ({} allocated at its highest) nearly fills the device. Each retry synchronises and slows the step; a larger batch or input will fail. Lower the peak (smaller batches or activations, activation checkpointing) or set PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True.",
            g.retries_after_warmup, last(7)
        )),
        GpuCause::Flat => lines.push(format!(
            "GPU: allocated, reserved and inactive-split CUDA memory are flat across {} epoch ends, with no allocation retries after warm-up.",
            g.count
        )),
        GpuCause::Insufficient => lines.push(format!("GPU: {} epoch end(s) with CUDA allocator figures: too few to judge.", g.count)),
    }
    if g.ooms > 0 {
        lines.push(format!("GPU: {} out-of-memory error(s) were raised during the run (num_ooms) and caught by the program.", g.ooms));
    }
    let growing: Vec<&SiteVerdict> = g.sites.iter().filter(|s| s.class == Class::Growing).collect();
    for s in growing.iter().take(3) {
        let via = if s.via.is_empty() { String::new() } else { format!(" (via {})", s.via) };
        let at_last = s.bytes_by_epoch.last().map_or(0, |p| p.1);
        lines.push(format!(
            "GPU: {}: {}/epoch of CUDA memory kept{via}; {} live at the last epoch end (gpu_sites.csv).",
            site_name(s), signed_bytes(s.slope_bytes_per_epoch.unwrap_or(0.0)), human_bytes(at_last as f64)
        ));
    }
    if !g.sites.is_empty() && growing.is_empty() {
        lines.push("GPU: no allocating line's live CUDA memory grows (gpu_sites.csv).".into());
    }
    if let Some(e) = &g.sites_error {
        lines.push(format!("GPU: --gpu-sites recorded no call sites: {e}."));
    }
    tie_to_container(&growing, censuses, lines);
}

/// A census container that grows and keeps autograd graphs, growing about as fast as
/// the growing CUDA lines together (within a factor of 2): it is what keeps them.
fn tie_to_container(growing: &[&SiteVerdict], censuses: Option<&Censuses>, lines: &mut Vec<String>) {
    let (Some(c), false) = (censuses, growing.is_empty()) else { return };
    let gpu: f64 = growing.iter().filter_map(|s| s.slope_bytes_per_epoch).sum();
    let kept = c.objects.iter().filter(|o| o.kind != "type" && o.class == Class::Growing && o.graph_bytes_per_epoch.is_some_and(|g| g > 0.0)).find(|o| {
        let b = o.slope_bytes_per_epoch.unwrap_or(0.0);
        b > 0.0 && gpu / b > 0.5 && gpu / b < 2.0
    });
    if let Some(o) = kept {
        lines.push(format!(
            "GPU: {} keeps them: the census finds it growing {}/epoch with the autograd graphs of its tensors ({} of saved tensors/epoch), as fast as the growing CUDA lines ({}/epoch). Keep `.detach()`ed outputs, or run validation under `torch.no_grad()`.",
            o.name,
            crate::format::signed_bytes(o.slope_bytes_per_epoch.unwrap_or(0.0)),
            crate::format::signed_bytes(o.graph_bytes_per_epoch.unwrap_or(0.0)),
            crate::format::signed_bytes(gpu)
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1 << 20;

    fn file(epoch: u32, allocated: u64, reserved: u64, inactive: u64, retries: u64, sites: Vec<(&str, &str, u64)>) -> GpuFile {
        let stats = [("allocated", allocated), ("reserved", reserved), ("active", allocated), ("inactive_split", inactive), ("segments", reserved / (20 * MB)), ("alloc_retries", retries), ("ooms", 0), ("peak_allocated", allocated + 500 * MB), ("peak_reserved", reserved)];
        GpuFile {
            epoch,
            stats: stats.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            sites: Some(sites.into_iter().map(|(s, f, b)| SiteFileRow { site: s.into(), function: f.into(), op: String::new(), bytes: b }).collect()),
            other: None,
            sites_error: None,
            seconds: 0.01,
        }
    }

    #[test]
    fn each_case_gets_its_cause() {
        let leak: Vec<_> = (0..8u32).map(|x| file(x, 1000 * MB + 40 * MB * x as u64, 2000 * MB + 40 * MB * x as u64, 10 * MB, 0, vec![("train.py:88", "validate", 40 * MB * x as u64), ("train.py:40", "main", 1000 * MB)])).collect();
        let g = analyze(&leak);
        assert_eq!(g.cause, GpuCause::Leak);
        assert_eq!((g.sites[0].location.as_str(), g.sites[0].class), ("train.py:88", Class::Growing));
        assert!((g.sites[0].slope_bytes_per_epoch.unwrap() - 40.0 * MB as f64).abs() < 1.0);
        assert_ne!(g.sites[1].class, Class::Growing);
        let caching: Vec<_> = (0..8u32).map(|x| file(x, 1000 * MB, 2000 * MB + 100 * MB * x as u64, 10 * MB, 0, vec![])).collect();
        assert_eq!(analyze(&caching).cause, GpuCause::Caching);
        let frag: Vec<_> = (0..8u32).map(|x| file(x, 1000 * MB, 2000 * MB + 50 * MB * x as u64, 10 * MB + 50 * MB * x as u64, 0, vec![])).collect();
        assert_eq!(analyze(&frag).cause, GpuCause::Fragmentation);
        let near: Vec<_> = (0..8u32).map(|x| file(x, 1000 * MB, 2000 * MB, 10 * MB, 3 * x as u64, vec![])).collect();
        let g = analyze(&near);
        assert_eq!((g.cause, g.retries_after_warmup), (GpuCause::NearOom, 21), "retries after the warm-up epoch");
        let clean: Vec<_> = (0..8u32).map(|x| file(x, 1000 * MB, 2000 * MB, 10 * MB, 2, vec![("train.py:40", "main", 1000 * MB)])).collect();
        let g = analyze(&clean);
        assert_eq!(g.cause, GpuCause::Flat, "retries during warm-up only are not a near-OOM");
        assert!(g.sites.iter().all(|s| s.class != Class::Growing));
        assert_eq!(analyze(&clean[..2]).cause, GpuCause::Insufficient);
    }

    #[test]
    fn a_growing_container_keeping_graphs_is_tied_to_the_growing_lines() {
        let leak: Vec<_> = (0..8u32).map(|x| file(x, 1000 * MB + 40 * MB * x as u64, 2000 * MB + 40 * MB * x as u64, 10 * MB, 0, vec![("train.py:88", "validate", 40 * MB * x as u64)])).collect();
        let g = analyze(&leak);
        let container = |name: &str, slope: f64, graph: Option<f64>| super::super::ObjectVerdict {
            kind: "container", name: name.into(), type_name: "list".into(), class: Class::Growing, slope_bytes_per_epoch: Some(slope), slope_interval: None,
            items_per_epoch: Some(10.0), by_epoch: Vec::new(), allocated_at: None, graph_bytes_per_epoch: graph, graph_nodes_per_epoch: Some(50.0),
        };
        let mut c = Censuses::default();
        c.objects = vec![container("Trainer.small", 1e5, Some(5e4)), container("Trainer.no_graph", 40.0 * MB as f64, None), container("Trainer.val_outputs", 42.0 * MB as f64, Some(38.0 * MB as f64))];
        let mut lines = Vec::new();
        explain(&g, Some(&c), &mut lines);
        let l = lines.join("\n");
        assert!(l.contains("GPU: train.py:88 in validate: +40.0 MiB/epoch of CUDA memory kept"), "{l}");
        assert!(l.contains("GPU: Trainer.val_outputs keeps them"), "{l}");
        // No container growing about as fast: nothing is tied.
        c.objects.pop();
        let mut lines = Vec::new();
        explain(&g, Some(&c), &mut lines);
        assert!(!lines.join("\n").contains("keeps them"), "{lines:?}");
    }
}
