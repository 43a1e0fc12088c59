//! `summary.json`: the whole analysis, machine-readable. Top-level `verdict` is "flat"
//! or "growing".

use std::path::Path;

use crate::analysis::Analysis;
use crate::error::Error;

/// The analysis as pretty JSON, ending in a newline.
pub fn text(a: &Analysis) -> String {
    serde_json::to_string_pretty(a).expect("analysis serializes") + "\n"
}

/// Write the analysis as pretty JSON.
pub fn write(a: &Analysis, path: &Path) -> Result<(), Error> {
    super::write_text(path, &text(a))
}
