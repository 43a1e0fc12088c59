//! Writes `run.json` and appends rows to `timeline.csv`, flushed at every boundary so that a run killed with
//! SIGKILL leaves every completed row on disk. Holds nothing but one CSV buffer.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Row, RunFacts, TimelineMeta, COLUMNS, FORMAT_VERSION, RUN_FILE};
use crate::error::Error;

/// A streaming writer for one timeline file.
pub struct TimelineWriter {
    path: PathBuf,
    csv: csv::Writer<File>,
}

impl TimelineWriter {
    /// Create (truncate) `path`, write its header, and write the run's facts to
    /// `run.json` beside it. Fails with the path named if either cannot be written.
    pub fn create(path: &Path, meta: &TimelineMeta) -> Result<Self, Error> {
        write_facts(path, meta)?;
        let io_err = |source| Error::Output { path: path.to_path_buf(), source };
        let mut file = File::create(path).map_err(io_err)?;
        // The header now, not with the first row: a run killed before its first boundary
        // still leaves a file that says what it is.
        let header: Vec<&str> = COLUMNS.iter().map(|(name, _)| *name).collect();
        writeln!(file, "{}", header.join(",")).map_err(io_err)?;
        let csv = csv::WriterBuilder::new().has_headers(false).from_writer(file);
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

    /// Rewrite `run.json` with facts learnt during the run (e.g. a fall-back to windows),
    /// atomically: a reader sees the old facts or the new ones.
    pub fn update_meta(&self, meta: &TimelineMeta) -> Result<(), Error> {
        write_facts(&self.path, meta)
    }

    /// Where the rows go.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `run.json` beside the timeline at `path`, written whole then renamed into place.
fn write_facts(path: &Path, meta: &TimelineMeta) -> Result<(), Error> {
    let json = serde_json::to_string_pretty(&RunFacts { format: FORMAT_VERSION, meta: meta.clone() }).expect("plain data serializes");
    crate::report::replace_text(&path.with_file_name(RUN_FILE), &json)
}
