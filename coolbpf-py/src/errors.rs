//! Rust errors as Python exceptions.
//!
//! The exception classes live in the pure-Python module `coolbpf.errors`, where each one
//! can derive from both `coolbpf.Error` and the builtin exception users already catch
//! (`PermissionError`, `ValueError`, `LookupError`, `OSError`...). This module picks the
//! class from the error's [`ErrorKind`] and fills in `code`, `kind` and `errno`.

use coolbpf_build::BuildError;
use coolbpf_core::{Error, ErrorKind};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

/// The Python class name for an error kind.
fn class_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Permission => "PermissionDeniedError",
        ErrorKind::Unsupported => "UnsupportedError",
        ErrorKind::InvalidArgument => "InvalidArgumentError",
        ErrorKind::NotFound => "NotFoundError",
        ErrorKind::Io => "IoError",
        ErrorKind::Bpf => "BpfError",
        ErrorKind::Decode => "DecodeError",
        ErrorKind::Plugin => "PluginError",
        ErrorKind::Closed => "ClosedError",
    }
}

fn kind_name(kind: ErrorKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Builds an instance of `coolbpf.errors.<class>` with `message`, `code`, `kind`, `errno`.
fn make(class: &str, message: String, kind: Option<ErrorKind>, errno: Option<i32>) -> PyErr {
    Python::attach(|py| {
        let built = (|| -> PyResult<PyErr> {
            let module = py.import("coolbpf.errors")?;
            let exc = module.getattr(class)?.call1((message.clone(),))?;
            if let Some(kind) = kind {
                exc.setattr("code", kind.code())?;
                exc.setattr("kind", kind_name(kind))?;
            }
            if let Some(errno) = errno {
                exc.setattr("errno", errno)?;
            }
            Ok(PyErr::from_value(exc))
        })();
        // Without the Python half of the package the error is still reported, plainly.
        built.unwrap_or_else(|_| PyRuntimeError::new_err(message))
    })
}

/// A coolbpf-core error as the matching `coolbpf` exception.
pub(crate) fn core(err: &Error) -> PyErr {
    let kind = err.kind();
    make(class_name(kind), err.to_string(), Some(kind), err.errno())
}

/// An invalid argument (`coolbpf.InvalidArgumentError`, a `ValueError`).
pub(crate) fn invalid(message: impl Into<String>) -> PyErr {
    core(&Error::InvalidArgument(message.into()))
}

/// A symbolizer error as the matching `coolbpf` exception.
pub(crate) fn symbolize(err: &coolbpf_symbolize::Error) -> PyErr {
    use coolbpf_symbolize::Error as S;
    let (kind, errno) = match err {
        S::Io { source, .. } => (
            match source.kind() {
                std::io::ErrorKind::NotFound => ErrorKind::NotFound,
                std::io::ErrorKind::PermissionDenied => ErrorKind::Permission,
                _ => ErrorKind::Io,
            },
            source.raw_os_error(),
        ),
        S::Malformed { .. } => (ErrorKind::Decode, None),
        S::NoSuchProcess { .. } => (ErrorKind::NotFound, None),
        _ => (ErrorKind::InvalidArgument, None),
    };
    make(class_name(kind), err.to_string(), Some(kind), errno)
}

/// A BPF C compilation error: a missing tool is `UnsupportedError`, a rejected source
/// `CompileError`.
pub(crate) fn build(err: &BuildError) -> PyErr {
    match err {
        BuildError::Compile { .. } => make("CompileError", err.to_string(), None, None),
        BuildError::ClangMissing { .. } | BuildError::LibbpfHeadersMissing { .. } => make(
            "UnsupportedError",
            err.to_string(),
            Some(ErrorKind::Unsupported),
            None,
        ),
        _ => make("IoError", err.to_string(), Some(ErrorKind::Io), None),
    }
}

/// Extension for `Result<T, coolbpf_core::Error>`.
pub(crate) trait IntoPy<T> {
    /// Converts the error into a Python exception.
    fn py_err(self) -> PyResult<T>;
}

impl<T> IntoPy<T> for Result<T, Error> {
    fn py_err(self) -> PyResult<T> {
        self.map_err(|e| core(&e))
    }
}
