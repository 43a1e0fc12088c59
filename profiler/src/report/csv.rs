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
