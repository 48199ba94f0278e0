//! Status codes, the per-thread last error, and the guard every exported function runs
//! its body in (so that no panic crosses into C).

use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use coolbpf_core::ErrorKind;

/// Success.
pub const COOLBPF_OK: i32 = 0;
/// The process lacks a capability or permission (`ErrorKind::Permission`).
pub const COOLBPF_ERR_PERMISSION: i32 = 1;
/// The kernel lacks a feature this needs (`ErrorKind::Unsupported`).
pub const COOLBPF_ERR_UNSUPPORTED: i32 = 2;
/// An argument, option or name is invalid, or a pointer is NULL (`ErrorKind::InvalidArgument`).
pub const COOLBPF_ERR_INVALID_ARGUMENT: i32 = 3;
/// A process, file, program, map, key or probe does not exist (`ErrorKind::NotFound`).
pub const COOLBPF_ERR_NOT_FOUND: i32 = 4;
/// An I/O operation failed (`ErrorKind::Io`).
pub const COOLBPF_ERR_IO: i32 = 5;
/// libbpf or the kernel's BPF subsystem refused an operation (`ErrorKind::Bpf`).
pub const COOLBPF_ERR_BPF: i32 = 6;
/// Data could not be decoded (`ErrorKind::Decode`).
pub const COOLBPF_ERR_DECODE: i32 = 7;
/// A probe failed while running (`ErrorKind::Plugin`).
pub const COOLBPF_ERR_PLUGIN: i32 = 8;
/// The handle was already closed or stopped (`ErrorKind::Closed`).
pub const COOLBPF_ERR_CLOSED: i32 = 9;
/// A bug inside coolbpf (a Rust panic, caught at the boundary). Not an `ErrorKind`:
/// please report it with the message from `coolbpf_last_error_message()`.
pub const COOLBPF_ERR_INTERNAL: i32 = 100;

// The C codes are the core's stable codes; this fails to compile if either side moves.
const _: () = {
    assert!(COOLBPF_ERR_PERMISSION == ErrorKind::Permission as i32);
    assert!(COOLBPF_ERR_UNSUPPORTED == ErrorKind::Unsupported as i32);
    assert!(COOLBPF_ERR_INVALID_ARGUMENT == ErrorKind::InvalidArgument as i32);
    assert!(COOLBPF_ERR_NOT_FOUND == ErrorKind::NotFound as i32);
    assert!(COOLBPF_ERR_IO == ErrorKind::Io as i32);
    assert!(COOLBPF_ERR_BPF == ErrorKind::Bpf as i32);
    assert!(COOLBPF_ERR_DECODE == ErrorKind::Decode as i32);
    assert!(COOLBPF_ERR_PLUGIN == ErrorKind::Plugin as i32);
    assert!(COOLBPF_ERR_CLOSED == ErrorKind::Closed as i32);
};

/// An error on its way to C: a positive code and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CError {
    pub(crate) code: i32,
    pub(crate) message: String,
}

impl CError {
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self {
            code: COOLBPF_ERR_INVALID_ARGUMENT,
            message: format!("invalid argument: {}", message.into()),
        }
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self {
            code: COOLBPF_ERR_NOT_FOUND,
            message: message.into(),
        }
    }
}

impl From<coolbpf_core::Error> for CError {
    fn from(err: coolbpf_core::Error) -> Self {
        Self {
            code: err.code(),
            message: err.to_string(),
        }
    }
}

impl From<coolbpf_symbolize::Error> for CError {
    fn from(err: coolbpf_symbolize::Error) -> Self {
        use coolbpf_symbolize::Error as S;
        let code = match &err {
            S::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => COOLBPF_ERR_NOT_FOUND,
                std::io::ErrorKind::PermissionDenied => COOLBPF_ERR_PERMISSION,
                _ => COOLBPF_ERR_IO,
            },
            S::NoSuchProcess { .. } => COOLBPF_ERR_NOT_FOUND,
            S::InvalidArgument(_) => COOLBPF_ERR_INVALID_ARGUMENT,
            _ => COOLBPF_ERR_DECODE,
        };
        Self {
            code,
            message: err.to_string(),
        }
    }
}

/// A result of the C layer.
pub(crate) type CResult<T> = Result<T, CError>;

thread_local! {
    static LAST_ERROR: RefCell<(i32, CString)> = RefCell::new((COOLBPF_OK, CString::default()));
}

/// Records `err` as this thread's last error.
pub(crate) fn set_last_error(err: &CError) {
    let message = CString::new(err.message.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|last| *last.borrow_mut() = (err.code, message));
}

/// Runs `body`, catching panics; an error or a panic becomes this thread's last error.
/// Returns `Err(code)` with the positive code so callers can return `-code`.
pub(crate) fn guard<T>(body: impl FnOnce() -> CResult<T>) -> Result<T, i32> {
    let outcome = catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|panic| {
        let text = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic with a non-text payload".to_owned());
        Err(CError {
            code: COOLBPF_ERR_INTERNAL,
            message: format!("internal error (a bug in coolbpf): {text}"),
        })
    });
    outcome.map_err(|err| {
        set_last_error(&err);
        err.code
    })
}

/// [`guard`] for functions that return a status: 0, or the negated code.
pub(crate) fn status(body: impl FnOnce() -> CResult<()>) -> i32 {
    match guard(body) {
        Ok(()) => COOLBPF_OK,
        Err(code) => -code,
    }
}

/// The message of the last error on the calling thread: valid until the next failing
/// call on this thread; an empty string when no call on this thread has failed yet.
///
/// Thread-safety: safe from any thread; each thread has its own last error.
#[no_mangle]
pub extern "C" fn coolbpf_last_error_message() -> *const c_char {
    catch_unwind(|| LAST_ERROR.with(|last| last.borrow().1.as_ptr()))
        .unwrap_or(c"internal error".as_ptr())
}

/// The (positive) code of the last error on the calling thread, `COOLBPF_OK` when no
/// call on this thread has failed yet. Successful calls do not reset it (like `errno`).
///
/// Thread-safety: safe from any thread; each thread has its own last error.
#[no_mangle]
pub extern "C" fn coolbpf_last_error_code() -> i32 {
    catch_unwind(|| LAST_ERROR.with(|last| last.borrow().0)).unwrap_or(COOLBPF_ERR_INTERNAL)
}

/// A static name for a status code, positive or negated (`"not_found"` for 4 or -4,
/// `"ok"` for 0, `"unknown"` for anything else). Never NULL; never free it.
///
/// Thread-safety: safe from any thread.
#[no_mangle]
pub extern "C" fn coolbpf_error_name(code: i32) -> *const c_char {
    let name = match code.checked_abs().unwrap_or(-1) {
        COOLBPF_OK => c"ok",
        COOLBPF_ERR_PERMISSION => c"permission",
        COOLBPF_ERR_UNSUPPORTED => c"unsupported",
        COOLBPF_ERR_INVALID_ARGUMENT => c"invalid_argument",
        COOLBPF_ERR_NOT_FOUND => c"not_found",
        COOLBPF_ERR_IO => c"io",
        COOLBPF_ERR_BPF => c"bpf",
        COOLBPF_ERR_DECODE => c"decode",
        COOLBPF_ERR_PLUGIN => c"plugin",
        COOLBPF_ERR_CLOSED => c"closed",
        COOLBPF_ERR_INTERNAL => c"internal",
        _ => c"unknown",
    };
    name.as_ptr()
}
