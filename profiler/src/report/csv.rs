//! `phases.csv`: one row per phase, peak and mean of each series in bytes.

use std::path::Path;

use crate::analysis::{Analysis, PHASE_SERIES};
use crate::error::Error;

/// Write the per-phase table. Columns: phase, boundaries, then `<series>_peak` and
/// `<series>_mean` for each series in [`PHASE_SERIES`] (empty where not recorded).
pub fn write_phases(a: &Analysis, path: &Path) -> Result<(), Error> {
    let err = |e: ::csv::Error| Error::Output { path: path.to_path_buf(), source: std::io::Error::other(e.to_string()) };
    let mut w = ::csv::Writer::from_path(path).map_err(err)?;
    let mut header = vec!["phase".to_string(), "boundaries".to_string()];
    for (column, _) in PHASE_SERIES {
        let stem = column.trim_end_matches("_bytes");
        header.push(format!("{stem}_peak_bytes"));
        header.push(format!("{stem}_mean_bytes"));
    }
    w.write_record(&header).map_err(err)?;
    for p in &a.phases {
        let mut record = vec![p.phase.clone(), p.count.to_string()];
        for (column, _) in PHASE_SERIES {
            match p.stats.iter().find(|s| s.column == *column) {
                Some(s) => {
                    record.push(s.peak.to_string());
                    record.push(format!("{:.0}", s.mean));
                }
                None => record.extend([String::new(), String::new()]),
            }
        }
        w.write_record(&record).map_err(err)?;
    }
    w.flush().map_err(|source| Error::Output { path: path.to_path_buf(), source })
}

/// Write `callsites.csv`: one row per site, growing first. Columns: site, function,
/// location, via, class, slope_bytes_per_epoch, slope_low, slope_high, one `bytes_epoch_<e>`
/// per snapshot, stack.
pub fn write_sites(a: &Analysis, path: &Path) -> Result<(), Error> {
    write_site_verdicts(&a.sites, path)
}

/// Write site verdicts in `callsites.csv`'s columns (also `native_sites.csv`).
pub fn write_site_verdicts(sites: &[crate::analysis::SiteVerdict], path: &Path) -> Result<(), Error> {
    let err = |e: ::csv::Error| Error::Output { path: path.to_path_buf(), source: std::io::Error::other(e.to_string()) };
    let mut w = ::csv::Writer::from_path(path).map_err(err)?;
    let epochs: Vec<u32> = sites.first().map(|s| s.bytes_by_epoch.iter().map(|b| b.0).collect()).unwrap_or_default();
    let mut header: Vec<String> = ["site", "function", "location", "via", "class", "slope_bytes_per_epoch", "slope_low", "slope_high"].map(String::from).to_vec();
    header.extend(epochs.iter().map(|e| format!("bytes_epoch_{e}")));
    header.push("stack".into());
    w.write_record(&header).map_err(err)?;
    let num = |v: Option<f64>| v.map(|v| format!("{v:.0}")).unwrap_or_default();
    for s in sites {
        let mut r = vec![s.site.to_string(), s.function.clone(), s.location.clone(), s.via.clone(), s.class.as_str().to_string(),
            num(s.slope_bytes_per_epoch), num(s.slope_interval.map(|i| i.0)), num(s.slope_interval.map(|i| i.1))];
        r.extend(s.bytes_by_epoch.iter().map(|b| b.1.to_string()));
        r.push(s.stack.clone());
        w.write_record(&r).map_err(err)?;
    }
    w.flush().map_err(|source| Error::Output { path: path.to_path_buf(), source })
}

/// `objects.csv`: one row per Python container and type from the censuses, growing first,
/// in the same class and slope columns as callsites.csv.
pub fn write_objects(a: &Analysis, path: &Path) -> Result<(), Error> {
    let err = |e: ::csv::Error| Error::Output { path: path.to_path_buf(), source: std::io::Error::other(e.to_string()) };
    let Some(c) = &a.censuses else { return Ok(()) };
    let mut epochs: Vec<u32> = c.objects.iter().flat_map(|o| o.by_epoch.iter().map(|p| p.0)).collect();
    epochs.sort_unstable();
    epochs.dedup();
    let mut w = ::csv::Writer::from_path(path).map_err(err)?;
    let mut header: Vec<String> = ["kind", "name", "type", "class", "slope_bytes_per_epoch", "slope_low", "slope_high", "items_per_epoch"].map(String::from).to_vec();
    header.extend(epochs.iter().map(|e| format!("bytes_epoch_{e}")));
    header.extend(epochs.iter().map(|e| format!("items_epoch_{e}")));
    header.push("allocated_at".into());
    w.write_record(&header).map_err(err)?;
    let num = |v: Option<f64>| v.map(|v| format!("{v:.0}")).unwrap_or_default();
    for o in &c.objects {
        let mut r = vec![o.kind.to_string(), o.name.clone(), o.type_name.clone(), o.class.as_str().to_string(),
            num(o.slope_bytes_per_epoch), num(o.slope_interval.map(|i| i.0)), num(o.slope_interval.map(|i| i.1)), o.items_per_epoch.map(|v| format!("{v:.1}")).unwrap_or_default()];
        let at = |e: u32| o.by_epoch.iter().find(|p| p.0 == e);
        r.extend(epochs.iter().map(|e| at(*e).map(|p| p.1.to_string()).unwrap_or_default()));
        r.extend(epochs.iter().map(|e| at(*e).map(|p| p.2.to_string()).unwrap_or_default()));
        r.push(o.allocated_at.clone().unwrap_or_default());
        w.write_record(&r).map_err(err)?;
    }
    w.flush().map_err(|source| Error::Output { path: path.to_path_buf(), source })
}

/// `gpu_allocator.csv`: the CUDA caching allocator's counters at each epoch end.
pub fn write_gpu_allocator(g: &crate::analysis::GpuAllocator, path: &Path) -> Result<(), Error> {
    let err = |e: ::csv::Error| Error::Output { path: path.to_path_buf(), source: std::io::Error::other(e.to_string()) };
    let mut w = ::csv::Writer::from_path(path).map_err(err)?;
    let mut header = vec!["epoch".to_string()];
    header.extend(crate::analysis::GPU_STATS.iter().map(|k| k.to_string()));
    w.write_record(&header).map_err(err)?;
    for (epoch, v) in &g.by_epoch {
        let mut r = vec![epoch.to_string()];
        r.extend(v.iter().map(|x| x.map(|x| x.to_string()).unwrap_or_default()));
        w.write_record(&r).map_err(err)?;
    }
    w.flush().map_err(|source| Error::Output { path: path.to_path_buf(), source })
}

/// `gpu_sites.csv`: live CUDA bytes per allocating line at each epoch end, growing first.
pub fn write_gpu_sites(g: &crate::analysis::GpuAllocator, path: &Path) -> Result<(), Error> {
    let err = |e: ::csv::Error| Error::Output { path: path.to_path_buf(), source: std::io::Error::other(e.to_string()) };
    let epochs: Vec<u32> = g.sites.first().map_or(Vec::new(), |s| s.bytes_by_epoch.iter().map(|p| p.0).collect());
    let mut w = ::csv::Writer::from_path(path).map_err(err)?;
    let mut header: Vec<String> = ["site", "function", "op", "class", "slope_bytes_per_epoch", "slope_low", "slope_high"].map(String::from).to_vec();
    header.extend(epochs.iter().map(|e| format!("bytes_epoch_{e}")));
    w.write_record(&header).map_err(err)?;
    let num = |v: Option<f64>| v.map(|v| format!("{v:.0}")).unwrap_or_default();
    for s in &g.sites {
        let mut r = vec![s.location.clone(), s.function.clone(), s.via.clone(), s.class.as_str().to_string(),
            num(s.slope_bytes_per_epoch), num(s.slope_interval.map(|i| i.0)), num(s.slope_interval.map(|i| i.1))];
        r.extend(s.bytes_by_epoch.iter().map(|b| b.1.to_string()));
        w.write_record(&r).map_err(err)?;
    }
    w.flush().map_err(|source| Error::Output { path: path.to_path_buf(), source })
}
