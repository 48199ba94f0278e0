//! Addresses to functions, files and lines: of a process, an ELF file or the kernel.

#![allow(non_camel_case_types)]

use std::ffi::{c_char, CString};
use std::ptr;

use coolbpf_symbolize::{Source, Symbolized, Symbolizer};

use crate::error::{guard, status, CError, CResult};
use crate::handle::{self, c_string, check_out, handle, slice_arg, str_arg, write_out};

/// A symbolizer with its caches (parsed files, DWARF units); reuse it across calls.
pub struct coolbpf_symbolizer {
    magic: u64,
    symbolizer: Symbolizer,
}
handle!(coolbpf_symbolizer, "symbolizer", 0x636f_6f6c_7379_6d7a);

// The symbolizer's caches are behind a lock: one handle may serve several threads.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<Symbolizer>();
};

struct OwnedFrame {
    function: CString,
    file: Option<CString>,
    line: u32,
    column: u32,
    offset: u64,
    inlined: bool,
}

enum Resolved {
    Frames(Vec<OwnedFrame>),
    Unknown(CString),
}

/// What one symbolization call found, per address.
pub struct coolbpf_symbols {
    magic: u64,
    addresses: Vec<Resolved>,
}
handle!(coolbpf_symbols, "symbols", 0x636f_6f6c_7379_6d73);

/// One source-level frame. Strings belong to the `coolbpf_symbols` it came from.
#[repr(C)]
pub struct coolbpf_frame {
    /// The function, demangled.
    pub function: *const c_char,
    /// The source file, or NULL when unknown.
    pub file: *const c_char,
    /// The source line (1-based), 0 when unknown.
    pub line: u32,
    /// The source column (1-based), 0 when unknown.
    pub column: u32,
    /// Bytes from the function's start.
    pub offset: u64,
    /// Whether this frame is an inlined call (inlined frames come first, innermost first).
    pub inlined: bool,
}

/// Makes a symbolizer into `*out`; free it with `coolbpf_symbolizer_free()`.
///
/// Thread-safety: safe from any thread; one symbolizer may be used by several threads
/// at once (its caches are locked).
///
/// # Safety
///
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_symbolizer_new(out: *mut *mut coolbpf_symbolizer) -> i32 {
    status(|| {
        check_out(out, "out")?;
        // SAFETY: `out` is writable by the caller's promise.
        unsafe {
            handle::hand_out(
                out,
                coolbpf_symbolizer {
                    magic: <coolbpf_symbolizer as handle::Handle>::MAGIC,
                    symbolizer: Symbolizer::new(),
                },
            )
        }
    })
}

/// Frees a symbolizer. NULL is ignored.
///
/// Thread-safety: once, when no other thread uses it.
///
/// # Safety
///
/// `symbolizer` is NULL or a live symbolizer not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_symbolizer_free(symbolizer: *mut coolbpf_symbolizer) {
    // SAFETY: forwarded to the caller.
    let _ = guard(|| unsafe { handle::free(symbolizer) }.map(drop));
}

fn owned(symbolized: Vec<Symbolized>) -> Vec<Resolved> {
    symbolized
        .into_iter()
        .map(|s| match s {
            Symbolized::Frames(frames) => Resolved::Frames(
                frames
                    .into_iter()
                    .map(|f| OwnedFrame {
                        function: c_string(&f.function),
                        file: f.file.as_deref().map(c_string),
                        line: f.line.unwrap_or(0),
                        column: f.column.unwrap_or(0),
                        offset: f.offset,
                        inlined: f.inlined,
                    })
                    .collect(),
            ),
            Symbolized::Unknown(why) => Resolved::Unknown(c_string(&why.to_string())),
        })
        .collect()
}

/// Runs one symbolization and hands the result to C.
///
/// # Safety
///
/// `symbolizer` is NULL or live; `addrs` is NULL or readable for `count` addresses;
/// `out` is NULL or writable.
unsafe fn symbolize(
    symbolizer: *const coolbpf_symbolizer,
    source: impl FnOnce() -> CResult<Source>,
    addrs: *const u64,
    count: usize,
    out: *mut *mut coolbpf_symbols,
) -> i32 {
    status(|| {
        check_out(out, "out")?;
        // SAFETY: forwarded to the caller.
        let symbolizer = unsafe { handle::borrow(symbolizer) }?;
        // SAFETY: forwarded to the caller.
        let addrs = unsafe { slice_arg(addrs, count, "addrs") }?;
        let source = source()?;
        let found = symbolizer.symbolizer.symbolize(&source, addrs)?;
        // SAFETY: `out` is writable by the caller's promise.
        unsafe {
            handle::hand_out(
                out,
                coolbpf_symbols {
                    magic: <coolbpf_symbols as handle::Handle>::MAGIC,
                    addresses: owned(found),
                },
            )
        }
    })
}

/// Symbolizes `count` virtual addresses of running process `pid` into `*out` (free it
/// with `coolbpf_symbols_free()`). An address that cannot be resolved is not an error:
/// `coolbpf_symbols_unknown()` says why. Errors: `-COOLBPF_ERR_NOT_FOUND` when the
/// process does not exist.
///
/// Thread-safety: safe from several threads at once on one symbolizer.
///
/// # Safety
///
/// `symbolizer` is NULL or live; `addrs` is NULL or readable for `count` addresses;
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_symbolize_process(
    symbolizer: *const coolbpf_symbolizer,
    pid: u32,
    addrs: *const u64,
    count: usize,
    out: *mut *mut coolbpf_symbols,
) -> i32 {
    // SAFETY: forwarded to the caller.
    unsafe { symbolize(symbolizer, || Ok(Source::process(pid)), addrs, count, out) }
}

/// Symbolizes `count` addresses of the ELF file at `path`, as linked (what
/// `llvm-symbolizer --obj` takes). Otherwise as `coolbpf_symbolize_process()`.
///
/// Thread-safety: safe from several threads at once on one symbolizer.
///
/// # Safety
///
/// As `coolbpf_symbolize_process()`; `path` is NULL or a C string.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_symbolize_elf(
    symbolizer: *const coolbpf_symbolizer,
    path: *const c_char,
    addrs: *const u64,
    count: usize,
    out: *mut *mut coolbpf_symbols,
) -> i32 {
    let source = || {
        // SAFETY: forwarded to the caller.
        let path = unsafe { str_arg(path, "path") }?;
        Ok(Source::elf(path))
    };
    // SAFETY: forwarded to the caller.
    unsafe { symbolize(symbolizer, source, addrs, count, out) }
}

/// Symbolizes `count` kernel addresses (from `/proc/kallsyms`). Otherwise as
/// `coolbpf_symbolize_process()`.
///
/// Thread-safety: safe from several threads at once on one symbolizer.
///
/// # Safety
///
/// As `coolbpf_symbolize_process()`.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_symbolize_kernel(
    symbolizer: *const coolbpf_symbolizer,
    addrs: *const u64,
    count: usize,
    out: *mut *mut coolbpf_symbols,
) -> i32 {
    // SAFETY: forwarded to the caller.
    unsafe { symbolize(symbolizer, || Ok(Source::kernel()), addrs, count, out) }
}

fn address(symbols: &coolbpf_symbols, index: usize) -> CResult<&Resolved> {
    symbols.addresses.get(index).ok_or_else(|| {
        CError::invalid(format!(
            "address index {index} is out of range ({} addresses)",
            symbols.addresses.len()
        ))
    })
}

/// Number of addresses (as many as were given), 0 for an invalid handle.
///
/// Thread-safety: may be read from several threads at once.
///
/// # Safety
///
/// `symbols` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_symbols_count(symbols: *const coolbpf_symbols) -> usize {
    // SAFETY: forwarded to the caller.
    guard(|| unsafe { handle::borrow(symbols) }.map(|s| s.addresses.len())).unwrap_or(0)
}

/// Number of frames of address `index`: inlined frames first, the enclosing function
/// last; 0 when it could not be resolved (or on invalid arguments).
///
/// Thread-safety: may be read from several threads at once.
///
/// # Safety
///
/// `symbols` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_symbols_frame_count(
    symbols: *const coolbpf_symbols,
    index: usize,
) -> usize {
    guard(|| {
        // SAFETY: forwarded to the caller.
        let symbols = unsafe { handle::borrow(symbols) }?;
        Ok(match address(symbols, index)? {
            Resolved::Frames(frames) => frames.len(),
            Resolved::Unknown(_) => 0,
        })
    })
    .unwrap_or(0)
}

/// Frame `frame` of address `index`, into `*out`. Returns 0 or
/// `-COOLBPF_ERR_INVALID_ARGUMENT` (indices out of range, NULL pointers).
///
/// Thread-safety: may be read from several threads at once.
///
/// # Safety
///
/// `symbols` is NULL or live; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_symbols_frame(
    symbols: *const coolbpf_symbols,
    index: usize,
    frame: usize,
    out: *mut coolbpf_frame,
) -> i32 {
    status(|| {
        // SAFETY: forwarded to the caller.
        let symbols = unsafe { handle::borrow(symbols) }?;
        let frames = match address(symbols, index)? {
            Resolved::Frames(frames) => frames.as_slice(),
            Resolved::Unknown(_) => &[],
        };
        let f = frames.get(frame).ok_or_else(|| {
            CError::invalid(format!(
                "frame index {frame} is out of range (address {index} has {} frames)",
                frames.len()
            ))
        })?;
        let value = coolbpf_frame {
            function: f.function.as_ptr(),
            file: f.file.as_ref().map_or(ptr::null(), |s| s.as_ptr()),
            line: f.line,
            column: f.column,
            offset: f.offset,
            inlined: f.inlined,
        };
        // SAFETY: forwarded to the caller.
        unsafe { write_out(out, "out", value) }
    })
}

/// Why address `index` could not be resolved ("address is not mapped", ...), or NULL
/// when it was (or on invalid arguments).
///
/// Thread-safety: may be read from several threads at once.
///
/// # Safety
///
/// `symbols` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_symbols_unknown(
    symbols: *const coolbpf_symbols,
    index: usize,
) -> *const c_char {
    guard(|| {
        // SAFETY: forwarded to the caller.
        let symbols = unsafe { handle::borrow(symbols) }?;
        Ok(match address(symbols, index)? {
            Resolved::Frames(_) => ptr::null(),
            Resolved::Unknown(why) => why.as_ptr(),
        })
    })
    .unwrap_or(ptr::null())
}

/// Frees symbols. NULL is ignored.
///
/// Thread-safety: once, when no other thread reads them.
///
/// # Safety
///
/// `symbols` is NULL or live, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_symbols_free(symbols: *mut coolbpf_symbols) {
    // SAFETY: forwarded to the caller.
    let _ = guard(|| unsafe { handle::free(symbols) }.map(drop));
}
