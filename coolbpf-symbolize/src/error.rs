//! Errors of the symbolizer: what could not be opened or parsed, with the path.

use std::io;
use std::path::PathBuf;

/// A symbolizer result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a source could not be symbolized at all. (An address that cannot be resolved is
/// not an error: it comes back as [`Symbolized::Unknown`](crate::Symbolized) with a reason.)
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A file is not a usable ELF object, or its DWARF is malformed.
    #[error("{path}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A process does not exist (or is not visible).
    #[error("process {pid} not found")]
    NoSuchProcess {
        /// The pid asked for.
        pid: u32,
    },
    /// An argument is invalid.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// A malformed file. Takes the reason by value because callers hand over the parse
    /// error they just got; only its text is kept.
    #[allow(clippy::needless_pass_by_value)]
    pub fn malformed(path: impl Into<PathBuf>, reason: impl ToString) -> Self {
        Self::Malformed {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}
