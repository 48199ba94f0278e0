//! The one error type of coolbpf, with stable numeric codes for the C and Python bindings.

use std::io;
use std::path::PathBuf;

/// A coolbpf result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The category of an [`Error`], with a numeric code that never changes meaning.
///
/// The C ABI returns these codes (negated) and Python maps them to exception classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[repr(i32)]
pub enum ErrorKind {
    /// The process lacks a capability or permission.
    Permission = 1,
    /// The kernel lacks a feature this needs.
    Unsupported = 2,
    /// An argument, option or name is invalid.
    InvalidArgument = 3,
    /// A process, file, program, map or probe does not exist.
    NotFound = 4,
    /// An I/O operation failed.
    Io = 5,
    /// libbpf or the kernel's BPF subsystem refused an operation.
    Bpf = 6,
    /// Data could not be decoded.
    Decode = 7,
    /// A plugin failed or panicked.
    Plugin = 8,
    /// The handle was already closed or stopped.
    Closed = 9,
}

impl ErrorKind {
    /// The stable numeric code.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// Everything that can go wrong in coolbpf, each with the context needed to act on it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A capability is missing; the message says how to get it.
    #[error("missing capability {capability}: {hint}")]
    MissingCapability {
        /// The capability, e.g. `CAP_BPF`.
        capability: &'static str,
        /// How to obtain it.
        hint: String,
    },
    /// The kernel or the host cannot do what was asked (a kernel feature, a library, a
    /// device).
    #[error("{feature} is not available here: {reason}")]
    Unsupported {
        /// The missing feature.
        feature: String,
        /// Why it is unavailable (as detected).
        reason: String,
    },
    /// A bad argument or option value.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Something named does not exist.
    #[error("{what} not found: {name}{}", known_list(.known))]
    NotFound {
        /// What kind of thing was looked up ("probe", "map", "process"...).
        what: &'static str,
        /// The name that was looked up.
        name: String,
        /// The names that do exist, when that list is short enough to help.
        known: Vec<String>,
    },
    /// An I/O error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// libbpf or the kernel refused a BPF operation.
    #[error("{context}: {source}")]
    Bpf {
        /// What was being done.
        context: String,
        /// libbpf's error, which carries the errno.
        #[source]
        source: libbpf_rs::Error,
    },
    /// A BPF object file could not be read.
    #[error("cannot open BPF object {path}: {source}")]
    ObjectFile {
        /// The object's path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An event or map value had an unexpected layout.
    #[error("decode error: {0}")]
    Decode(String),
    /// A plugin failed or panicked.
    #[error("plugin {plugin} failed: {reason}")]
    Plugin {
        /// The plugin's name.
        plugin: String,
        /// What went wrong.
        reason: String,
    },
    /// The handle was closed or the stream ended.
    #[error("{0} is closed")]
    Closed(&'static str),
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        String::new()
    } else {
        format!(" (known: {})", known.join(", "))
    }
}

impl Error {
    /// The category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::MissingCapability { .. } => ErrorKind::Permission,
            Self::Unsupported { .. } => ErrorKind::Unsupported,
            Self::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::Io { source, .. } | Self::ObjectFile { source, .. } => match source.kind() {
                io::ErrorKind::PermissionDenied => ErrorKind::Permission,
                io::ErrorKind::NotFound => ErrorKind::NotFound,
                _ => ErrorKind::Io,
            },
            Self::Bpf { source, .. } => match source.kind() {
                libbpf_rs::ErrorKind::PermissionDenied => ErrorKind::Permission,
                libbpf_rs::ErrorKind::NotFound => ErrorKind::NotFound,
                _ => ErrorKind::Bpf,
            },
            Self::Decode(_) => ErrorKind::Decode,
            Self::Plugin { .. } => ErrorKind::Plugin,
            Self::Closed(_) => ErrorKind::Closed,
        }
    }

    /// The stable numeric code of [`Self::kind`].
    pub fn code(&self) -> i32 {
        self.kind().code()
    }

    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    /// Wraps a libbpf error with what was being done.
    pub fn bpf(context: impl Into<String>, source: libbpf_rs::Error) -> Self {
        Self::Bpf {
            context: context.into(),
            source,
        }
    }

    /// The `errno` behind this error, when the kernel reported one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Io { source, .. } | Self::ObjectFile { source, .. } => source.raw_os_error(),
            Self::Bpf { source, .. } => errno_of_libbpf(source),
            _ => None,
        }
    }
}

/// libbpf-rs keeps the errno inside its error chain as an `io::Error`.
fn errno_of_libbpf(err: &libbpf_rs::Error) -> Option<i32> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = cause {
        if let Some(io) = current.downcast_ref::<io::Error>() {
            if let Some(code) = io.raw_os_error() {
                return Some(code);
            }
        }
        cause = current.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        assert_eq!(ErrorKind::Permission.code(), 1);
        assert_eq!(ErrorKind::Closed.code(), 9);
        let err = Error::NotFound {
            what: "probe",
            name: "x".into(),
            known: vec!["a".into()],
        };
        assert_eq!(err.to_string(), "probe not found: x (known: a)");
        assert_eq!(err.code(), 4);
    }

    #[test]
    fn io_permission_maps_to_permission_kind() {
        let err = Error::io("open", io::Error::from_raw_os_error(libc::EPERM));
        assert_eq!(err.kind(), ErrorKind::Permission);
        assert_eq!(err.errno(), Some(libc::EPERM));
    }
}
