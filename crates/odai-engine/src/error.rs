//! The engine's errors: each names the file or option at fault and what to do next. odai turns
//! them into its own (`odai::error::Error`) with the same text.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A model file that cannot be read or run.
    #[error("{}: {problem}", file.display())]
    Model { file: PathBuf, problem: String },

    /// A value that cannot be used (a synthetic model's preset or quantization).
    #[error("{flag}: {problem}")]
    Invalid { flag: String, problem: String },
}
