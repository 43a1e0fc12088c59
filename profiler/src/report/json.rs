//! `summary.json`: the whole analysis, machine-readable. Top-level `verdict` is "flat"
//! or "growing".

use std::path::Path;

use crate::analysis::Analysis;
use crate::error::Error;

/// Write the analysis as pretty JSON.
pub fn write(a: &Analysis, path: &Path) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(a).expect("analysis serializes");
    super::write_text(path, &(text + "\n"))
}
