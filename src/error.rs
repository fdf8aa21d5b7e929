//! Domain errors of the odai library: each names the file or flag at fault and what to do next.
//! The binary prints them as `odai: error: …` and maps them to exit codes in [`crate::exit`].

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "--root {}: {problem} (point --root or ODAI_ROOT at a captured device tree, or omit it to probe this device)",
        path.display()
    )]
    Root { path: PathBuf, problem: String },

    #[error("{}:{line}:{column}: {message}", file.display())]
    Config {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },

    #[error("{}: {problem}", file.display())]
    ConfigFile { file: PathBuf, problem: String },

    #[error("{}: {problem}", file.display())]
    Model { file: PathBuf, problem: String },

    /// The model needs more memory than the device can give it.
    #[error("{}: does not fit: needs {needs}, headroom {headroom} (use --force to run anyway)", file.display())]
    DoesNotFit {
        file: PathBuf,
        needs: String,
        headroom: String,
    },

    /// A runtime's library is missing or refused what was asked (ONNX Runtime, TF Lite).
    #[error("{runtime}: {problem}")]
    Runtime { runtime: String, problem: String },

    /// A command-line value that parses but cannot be used (clap checks the syntax).
    #[error("{flag}: {problem}")]
    Invalid { flag: String, problem: String },
}

/// The engine's errors become odai's with the same text.
impl From<odai_engine::Error> for Error {
    fn from(e: odai_engine::Error) -> Self {
        match e {
            odai_engine::Error::Model { file, problem } => Error::Model { file, problem },
            odai_engine::Error::Invalid { flag, problem } => Error::Invalid { flag, problem },
        }
    }
}

impl Error {
    /// An error in a TOML configuration file at byte `offset` of `text`.
    pub fn config_at(file: impl Into<PathBuf>, text: &str, offset: usize, message: String) -> Self {
        let (line, column) = line_col(text, offset);
        Error::Config {
            file: file.into(),
            line,
            column,
            message,
        }
    }
}

/// 1-based line and column of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }
}
