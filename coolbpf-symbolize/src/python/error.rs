//! Errors of reading a CPython process: what could not be found, read or understood.

use std::io;

/// Why a process's interpreter state could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PythonError {
    /// The process (its maps or files) could not be read.
    #[error(transparent)]
    Process(#[from] crate::Error),
    /// The interpreter is a CPython version (or build) whose layout is not known.
    #[error("{path}: unsupported CPython version {version} (supported: 3.10 to 3.13)")]
    Unsupported {
        /// The interpreter's file.
        path: String,
        /// The version found, as text.
        version: String,
    },
    /// The interpreter file has no `_PyRuntime` symbol, or its version cannot be told.
    #[error("{path}: {reason}")]
    NotAnInterpreter {
        /// The file.
        path: String,
        /// What is missing.
        reason: String,
    },
    /// Process memory could not be read at an address.
    #[error("process {pid}: reading {len} bytes at {addr:#x}: {source}")]
    Read {
        /// The process.
        pid: u32,
        /// The address.
        addr: u64,
        /// How many bytes.
        len: usize,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// What was read does not make sense as the structure it should be.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// The structure.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl PythonError {
    /// A malformed `what`.
    pub(crate) fn malformed(what: &'static str, reason: impl Into<String>) -> Self {
        Self::Malformed {
            what,
            reason: reason.into(),
        }
    }
}
