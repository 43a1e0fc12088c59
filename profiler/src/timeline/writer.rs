//! Appends rows to `timeline.csv`, flushed at every boundary so that a run killed with
//! SIGKILL leaves every completed row on disk. Holds nothing but one CSV buffer.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Row, TimelineMeta};
use crate::error::Error;

/// A streaming writer for one timeline file.
pub struct TimelineWriter {
    path: PathBuf,
    csv: csv::Writer<File>,
}

impl TimelineWriter {
    /// Create (truncate) `path` and write the format line. Fails with the path named if
    /// it cannot be created.
    pub fn create(path: &Path, meta: &TimelineMeta) -> Result<Self, Error> {
        let io_err = |source| Error::Output { path: path.to_path_buf(), source };
        let mut file = File::create(path).map_err(io_err)?;
        writeln!(file, "{}", meta.to_line()).map_err(io_err)?;
        let csv = csv::WriterBuilder::new().has_headers(true).from_writer(file);
        Ok(TimelineWriter { path: path.to_path_buf(), csv })
    }

    /// Append one row and flush it to the OS.
    pub fn append(&mut self, row: &Row) -> Result<(), Error> {
        let to_err = |e: csv::Error| Error::Output {
            path: self.path.clone(),
            source: std::io::Error::other(e.to_string()),
        };
        self.csv.serialize(row).map_err(to_err)?;
        self.csv.flush().map_err(|source| Error::Output { path: self.path.clone(), source })
    }

    /// Where the rows go.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
