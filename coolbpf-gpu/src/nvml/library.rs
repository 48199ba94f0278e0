//! The process's one NVML handle: libnvidia-ml.so.1 is dlopened (by `nvml-wrapper`) and
//! initialized the first time anything asks, and the outcome, handle or reason, is kept
//! for the life of the process.
//!
//! Keeping it is what makes the registry's host check cheap (`coolbpf list` asks once per
//! probe) and lets devices and GPM samples borrow a `'static` handle instead of tying
//! their lifetimes to a probe. NVML counts initializations itself, so one shared init is
//! also what NVIDIA recommends.

use std::sync::OnceLock;

use coolbpf_core::Error;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::Nvml;

/// The library NVML is loaded from (searched like any dlopen: ld.so.cache, LD_LIBRARY_PATH).
pub const LIBRARY: &str = "libnvidia-ml.so.1";

static NVML: OnceLock<Result<Nvml, String>> = OnceLock::new();

/// The shared NVML handle, or why there is none (already worded for people).
pub(crate) fn shared() -> Result<&'static Nvml, &'static str> {
    NVML.get_or_init(|| Nvml::init().map_err(|err| unavailable_reason(&err)))
        .as_ref()
        .map_err(String::as_str)
}

/// The registry's host check for NVML probes: `Err` says why NVML cannot be used here.
pub fn host_check() -> Result<(), String> {
    shared().map(|_| ()).map_err(str::to_owned)
}

/// The error a probe or API call returns when NVML cannot be used.
pub(crate) fn unavailable() -> Error {
    Error::Unsupported {
        feature: "NVML".to_owned(),
        reason: shared().err().unwrap_or("unknown").to_owned(),
    }
}

/// Why NVML could not be initialized, in words that say what to do.
pub(crate) fn unavailable_reason(err: &NvmlError) -> String {
    match err {
        // The common case, no driver installed, needs no dlerror text to explain it.
        NvmlError::LibloadingError(detail) if detail.to_string().contains("No such file") => {
            format!("NVML not found: {LIBRARY} is not loadable (no NVIDIA driver on this host)")
        }
        NvmlError::LibloadingError(detail) => {
            format!("NVML not found: {LIBRARY} is not loadable: {detail}")
        }
        NvmlError::FailedToLoadSymbol(symbol) => {
            format!("NVML in {LIBRARY} is too old: it lacks {symbol} (update the NVIDIA driver)")
        }
        NvmlError::DriverNotLoaded => {
            format!("NVML found ({LIBRARY}) but the NVIDIA kernel driver is not loaded")
        }
        NvmlError::NoPermission => {
            format!("NVML ({LIBRARY}) refused initialization: no permission to the GPU devices")
        }
        other => format!("NVML ({LIBRARY}) failed to initialize: {other}"),
    }
}

/// A failed NVML call as a coolbpf error: `NotSupported` becomes
/// [`Error::Unsupported`], anything else an I/O error that says what was being done.
pub(crate) fn nvml_error(context: &str, err: NvmlError) -> Error {
    match err {
        NvmlError::NotSupported => Error::Unsupported {
            feature: context.to_owned(),
            reason: "the GPU or its driver does not support it (NVML NotSupported)".to_owned(),
        },
        other => Error::Io {
            context: format!("NVML: {context}"),
            source: std::io::Error::other(other.to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_name_the_library_and_the_cause() {
        let missing = unavailable_reason(&NvmlError::DriverNotLoaded);
        assert!(
            missing.contains(LIBRARY) && missing.contains("driver"),
            "{missing}"
        );
        let old = unavailable_reason(&NvmlError::FailedToLoadSymbol("nvmlInit_v2".into()));
        assert!(old.contains("nvmlInit_v2"), "{old}");
        let err = nvml_error("GPU 0 temperature", NvmlError::NotSupported);
        assert_eq!(err.kind(), coolbpf_core::ErrorKind::Unsupported);
        let err = nvml_error("GPU 0 temperature", NvmlError::GpuLost);
        assert!(err.to_string().contains("GPU 0 temperature"), "{err}");
    }
}
