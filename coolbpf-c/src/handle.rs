//! Opaque handles: boxed Rust values behind C pointers, each tagged with a magic number
//! so that a NULL pointer, or a handle of another type, is an error instead of a crash.

use std::ffi::{c_char, CStr};

use crate::error::{CError, CResult};

/// A type handed to C as an opaque pointer.
pub(crate) trait Handle: Sized {
    /// What the handle is called in error messages.
    const WHAT: &'static str;
    /// A per-type tag stored first in the value.
    const MAGIC: u64;
    /// The tag as stored (zeroed when the handle is freed).
    fn magic(&self) -> u64;
    /// Clears the tag before the value is freed.
    fn clear_magic(&mut self);
}

/// Declares a handle type: `magic` must be the first field.
macro_rules! handle {
    ($ty:ty, $what:literal, $magic:literal) => {
        impl $crate::handle::Handle for $ty {
            const WHAT: &'static str = $what;
            const MAGIC: u64 = $magic;
            fn magic(&self) -> u64 {
                self.magic
            }
            fn clear_magic(&mut self) {
                self.magic = 0;
            }
        }
    };
}
pub(crate) use handle;

/// Boxes `value` into a pointer for C.
pub(crate) fn into_raw<T: Handle>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

fn check<T: Handle>(ptr: *const T) -> CResult<()> {
    if ptr.is_null() {
        return Err(CError::invalid(format!("the {} handle is NULL", T::WHAT)));
    }
    if !ptr.is_aligned() {
        return Err(CError::invalid(format!(
            "{ptr:p} is not a {} handle (misaligned)",
            T::WHAT
        )));
    }
    Ok(())
}

/// Borrows the handle behind `ptr`.
///
/// # Safety
///
/// `ptr` is NULL or points to readable memory at least as large as `T` (ideally a live
/// handle made by [`into_raw`]); no `&mut` to it is live for `'a`.
pub(crate) unsafe fn borrow<'a, T: Handle>(ptr: *const T) -> CResult<&'a T> {
    check(ptr)?;
    // SAFETY: non-null and aligned (checked); the caller promises it points to a value
    // of this type, which the magic number then double-checks.
    let value = unsafe { &*ptr };
    if value.magic() == T::MAGIC {
        Ok(value)
    } else {
        Err(CError::invalid(format!(
            "{ptr:p} is not a live {} handle (closed already, or another type)",
            T::WHAT
        )))
    }
}

/// Borrows the handle behind `ptr` mutably.
///
/// # Safety
///
/// As [`borrow`], and no other reference to it is live for `'a`.
pub(crate) unsafe fn borrow_mut<'a, T: Handle>(ptr: *mut T) -> CResult<&'a mut T> {
    // SAFETY: forwarded to the caller.
    unsafe { borrow::<T>(ptr) }?;
    // SAFETY: checked just above; exclusivity is the caller's promise.
    Ok(unsafe { &mut *ptr })
}

/// Takes the handle back from C and frees it; NULL is ignored.
///
/// # Safety
///
/// `ptr` is NULL or a live handle from [`into_raw`] that no one uses afterwards.
pub(crate) unsafe fn free<T: Handle>(ptr: *mut T) -> CResult<Option<T>> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: forwarded to the caller.
    unsafe { borrow::<T>(ptr) }?;
    // SAFETY: a live handle made by `into_raw`, i.e. by `Box::into_raw`, given back once.
    let mut boxed = unsafe { Box::from_raw(ptr) };
    boxed.clear_magic();
    Ok(Some(*boxed))
}

/// Writes `value` through an out-pointer.
///
/// # Safety
///
/// `out` is NULL or valid for a write of `T`.
pub(crate) unsafe fn write_out<T>(out: *mut T, what: &str, value: T) -> CResult<()> {
    check_out(out, what)?;
    // SAFETY: non-null and aligned (checked), writable by the caller's promise.
    unsafe { out.write(value) };
    Ok(())
}

/// Boxes `value` into a handle and writes it through `out`. `out` is checked before the
/// value is boxed, so a bad one leaks nothing (callers also check it before any work).
///
/// # Safety
///
/// `out` is NULL or valid for a write of a pointer.
pub(crate) unsafe fn hand_out<T: Handle>(out: *mut *mut T, value: T) -> CResult<()> {
    check_out(out, "out")?;
    // SAFETY: non-null and aligned (checked), writable by the caller's promise.
    unsafe { out.write(into_raw(value)) };
    Ok(())
}

/// Checks an out-pointer before any work is done (so nothing is leaked when it is bad).
pub(crate) fn check_out<T>(out: *mut T, what: &str) -> CResult<()> {
    if out.is_null() {
        Err(CError::invalid(format!("{what} is NULL")))
    } else if !out.is_aligned() {
        Err(CError::invalid(format!("{what} is misaligned")))
    } else {
        Ok(())
    }
}

/// A C string argument as UTF-8.
///
/// # Safety
///
/// `ptr` is NULL or a NUL-terminated string that lives for `'a`.
pub(crate) unsafe fn str_arg<'a>(ptr: *const c_char, what: &str) -> CResult<&'a str> {
    if ptr.is_null() {
        return Err(CError::invalid(format!("{what} is NULL")));
    }
    // SAFETY: non-null, NUL-terminated by the caller's promise.
    let text = unsafe { CStr::from_ptr(ptr) };
    text.to_str()
        .map_err(|_| CError::invalid(format!("{what} is not valid UTF-8: {text:?}")))
}

/// A byte buffer argument; NULL is allowed only when `len` is 0.
///
/// # Safety
///
/// `ptr` is NULL or valid for reads of `len` bytes for `'a`.
pub(crate) unsafe fn bytes_arg<'a>(ptr: *const u8, len: usize, what: &str) -> CResult<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(CError::invalid(format!(
            "{what} is NULL but its size is {len}"
        )));
    }
    // SAFETY: non-null, and readable for `len` bytes by the caller's promise.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// An array argument; NULL is allowed only when `len` is 0.
///
/// # Safety
///
/// `ptr` is NULL or valid for reads of `len` values of `T` for `'a`.
pub(crate) unsafe fn slice_arg<'a, T>(ptr: *const T, len: usize, what: &str) -> CResult<&'a [T]> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(CError::invalid(format!(
            "{what} is NULL but its length is {len}"
        )));
    }
    if !ptr.is_aligned() {
        return Err(CError::invalid(format!("{what} is misaligned")));
    }
    // SAFETY: non-null and aligned (checked), readable for `len` values by the caller's
    // promise.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Text for C: NUL bytes inside become `\0` so nothing is cut short.
pub(crate) fn c_string(text: &str) -> std::ffi::CString {
    std::ffi::CString::new(text.replace('\0', "\\0")).unwrap_or_default()
}
