//! The profiler's errors. Each names the file or value at fault.

use std::path::PathBuf;

/// Everything that can go wrong in recording, analysis and reporting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An output file or folder could not be created or written.
    #[error("cannot write {}: {source}", path.display())]
    Output {
        /// The path at fault.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The output folder exists and holds files, and overwriting was not allowed.
    #[error("output folder {} exists and is not empty (use --force to overwrite)", .0.display())]
    OutputNotEmpty(PathBuf),
    /// A timeline could not be read.
    #[error(transparent)]
    Timeline(#[from] crate::timeline::TimelineError),
    /// A heap profile could not be taken or parsed.
    #[error("heap profile: {0}")]
    HeapProfile(String),
    /// Plotting failed.
    #[error("cannot draw {}: {message}", path.display())]
    Plot {
        /// The image being drawn.
        path: PathBuf,
        /// What the plotting library said.
        message: String,
    },
    /// A setting is invalid.
    #[error("{0}")]
    Config(String),
}
