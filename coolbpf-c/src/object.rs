//! User BPF objects (`.bpf.o`): load with globals set, attach by target text, read maps
//! and globals, and consume ring buffers with a callback.

#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_int, c_void};

use coolbpf_core::stream::{Delivery, EventStream};
use coolbpf_core::{AttachTarget, BpfObject, Environment, Error, ObjectBuilder};

use crate::error::{guard, status, CError, CResult};
use crate::handle::{self, bytes_arg, check_out, handle, str_arg, write_out};

/// An object being configured before load: set globals and map sizes, then load it.
pub struct coolbpf_object_builder {
    magic: u64,
    builder: Option<ObjectBuilder>,
}
handle!(
    coolbpf_object_builder,
    "object builder",
    0x636f_6f6c_6f62_6a62
);

/// A BPF object loaded into the kernel, owning what it attached: closing it detaches
/// everything.
pub struct coolbpf_object {
    magic: u64,
    object: BpfObject,
}
handle!(coolbpf_object, "object", 0x636f_6f6c_6f62_6a6f);

/// A ring buffer of an object, consumed on a thread of its own.
pub struct coolbpf_ringbuf {
    magic: u64,
    stream: EventStream<()>,
}
handle!(coolbpf_ringbuf, "ring buffer", 0x636f_6f6c_7269_6e67);

/// What a ring buffer delivered and lost.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct coolbpf_losses {
    /// Events read out of the kernel buffer.
    pub received: u64,
    /// Events the callback accepted (returned 0 for).
    pub delivered: u64,
    /// Losses the object's BPF side counted (full ring buffer, full map, failed reads),
    /// read from its `coolbpf_losses` map when it has one.
    pub kernel: u64,
    /// Events the callback rejected (returned non-zero for).
    pub rejected: u64,
    /// Every loss: `kernel + rejected` (+ overflow, which callback delivery never has).
    pub total: u64,
}

/// Called for every event of a ring buffer, on the ring buffer's own thread (never
/// concurrently with itself): `data` holds `size` bytes, valid until it returns. Return
/// 0 when the event was consumed; non-zero counts it as rejected in `coolbpf_losses`.
pub type coolbpf_event_cb =
    Option<unsafe extern "C" fn(data: *const u8, size: usize, ctx: *mut c_void) -> c_int>;

/// Starts configuring the BPF object file at `path` (nothing is read yet). Free the
/// builder with `coolbpf_object_builder_load()` (which consumes it) or
/// `coolbpf_object_builder_free()`.
///
/// Thread-safety: safe from any thread; one thread at a time per builder.
///
/// # Safety
///
/// `path` is NULL or a C string; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_object_builder_new(
    path: *const c_char,
    out: *mut *mut coolbpf_object_builder,
) -> i32 {
    status(|| {
        check_out(out, "out")?;
        // SAFETY: forwarded to the caller.
        let path = unsafe { str_arg(path, "path") }?;
        // SAFETY: `out` is writable by the caller's promise.
        unsafe {
            handle::hand_out(
                out,
                coolbpf_object_builder {
                    magic: <coolbpf_object_builder as handle::Handle>::MAGIC,
                    builder: Some(ObjectBuilder::from_path(path)),
                },
            )
        }
    })
}

fn take_builder(builder: &mut coolbpf_object_builder) -> CResult<ObjectBuilder> {
    builder
        .builder
        .take()
        .ok_or_else(|| Error::Closed("object builder").into())
}

/// Sets global variable `name` (in `.rodata`, `.data` or `.bss`; `const volatile`
/// globals become constants the verifier prunes on) to the `size` bytes at `value`,
/// before load. A wrong name or size is reported by `coolbpf_object_builder_load()`.
///
/// Thread-safety: one thread at a time per builder.
///
/// # Safety
///
/// `builder` is NULL or a live builder; `name` is NULL or a C string; `value` is NULL
/// or readable for `size` bytes.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_object_builder_set_global(
    builder: *mut coolbpf_object_builder,
    name: *const c_char,
    value: *const c_void,
    size: usize,
) -> i32 {
    status(|| {
        // SAFETY: forwarded to the caller.
        let builder = unsafe { handle::borrow_mut(builder) }?;
        // SAFETY: forwarded to the caller.
        let name = unsafe { str_arg(name, "name") }?;
        // SAFETY: forwarded to the caller.
        let value = unsafe { bytes_arg(value.cast(), size, "value") }?;
        if value.is_empty() {
            return Err(CError::invalid(format!(
                "global {name}: the value is empty"
            )));
        }
        let next = take_builder(builder)?.global(name, value);
        builder.builder = Some(next);
        Ok(())
    })
}

/// Resizes map `map` before load (a ring buffer's size in bytes, a hash map's entries).
///
/// Thread-safety: one thread at a time per builder.
///
/// # Safety
///
/// `builder` is NULL or a live builder; `map` is NULL or a C string.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_object_builder_set_max_entries(
    builder: *mut coolbpf_object_builder,
    map: *const c_char,
    max_entries: u32,
) -> i32 {
    status(|| {
        // SAFETY: forwarded to the caller.
        let builder = unsafe { handle::borrow_mut(builder) }?;
        // SAFETY: forwarded to the caller.
        let map = unsafe { str_arg(map, "map") }?;
        if max_entries == 0 {
            return Err(CError::invalid(format!("map {map}: max_entries is 0")));
        }
        let next = take_builder(builder)?.max_entries(map, max_entries);
        builder.builder = Some(next);
        Ok(())
    })
}

/// Prepares the host, then opens, configures and loads the object; frees the builder
/// whatever the outcome. On success `*out` is the loaded object (close it with
/// `coolbpf_object_close()`).
///
/// Thread-safety: one thread at a time per builder; the object may then be used from
/// any thread, one at a time.
///
/// # Safety
///
/// `builder` is NULL or a live builder, not used afterwards; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_object_builder_load(
    builder: *mut coolbpf_object_builder,
    out: *mut *mut coolbpf_object,
) -> i32 {
    status(|| {
        // SAFETY: forwarded to the caller (the builder is consumed whatever happens).
        let builder = unsafe { handle::free(builder) }?
            .ok_or_else(|| CError::invalid("the object builder handle is NULL"))?;
        check_out(out, "out")?;
        let mut builder = builder;
        let builder = take_builder(&mut builder)?;
        // SAFETY: forwarded to the caller.
        unsafe { load_into(builder, out) }
    })
}

/// Loads `builder`'s object and hands it out through `out`.
///
/// # Safety
///
/// `out` is NULL or writable.
unsafe fn load_into(builder: ObjectBuilder, out: *mut *mut coolbpf_object) -> CResult<()> {
    Environment::prepare()?;
    let object = builder.load()?;
    // SAFETY: forwarded to the caller.
    unsafe {
        handle::hand_out(
            out,
            coolbpf_object {
                magic: <coolbpf_object as handle::Handle>::MAGIC,
                object,
            },
        )
    }
}

/// Frees a builder that will not be loaded. NULL is ignored.
///
/// Thread-safety: once per builder, when no other thread uses it.
///
/// # Safety
///
/// `builder` is NULL or a live builder not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_object_builder_free(builder: *mut coolbpf_object_builder) {
    // SAFETY: forwarded to the caller.
    let _ = guard(|| unsafe { handle::free(builder) }.map(drop));
}

/// Loads the BPF object file at `path` as it is (shorthand for a builder with nothing
/// set). On success `*out` is the loaded object.
///
/// Thread-safety: safe from any thread.
///
/// # Safety
///
/// `path` is NULL or a C string; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_object_open(
    path: *const c_char,
    out: *mut *mut coolbpf_object,
) -> i32 {
    status(|| {
        check_out(out, "out")?;
        // SAFETY: forwarded to the caller.
        let path = unsafe { str_arg(path, "path") }?;
        // SAFETY: forwarded to the caller.
        unsafe { load_into(ObjectBuilder::from_path(path), out) }
    })
}

/// Attaches program `program` to `target`, given as text: `tracepoint:CATEGORY:NAME`,
/// `raw_tp:NAME`, `perf_event:EVENT:RATE` (e.g. `perf_event:cpu-clock:99hz`),
/// `uprobe:BINARY:SYMBOL`, `uprobe:SYMBOL@LIBRARY`, `uretprobe:...`,
/// `usdt:BINARY:PROVIDER:NAME`, `kprobe:FUNCTION`, or `section` (or NULL) for where the
/// program's `SEC()` says. The object owns the attachment.
///
/// Errors: `-COOLBPF_ERR_INVALID_ARGUMENT` for target text it cannot parse,
/// `-COOLBPF_ERR_NOT_FOUND` for an unknown program (the message lists the loaded ones).
///
/// Thread-safety: one thread at a time per object.
///
/// # Safety
///
/// `object` is NULL or a live object; `program` is NULL or a C string; `target` is NULL
/// or a C string.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_object_attach(
    object: *mut coolbpf_object,
    program: *const c_char,
    target: *const c_char,
) -> i32 {
    status(|| {
        // SAFETY: forwarded to the caller.
        let object = unsafe { handle::borrow_mut(object) }?;
        // SAFETY: forwarded to the caller.
        let program = unsafe { str_arg(program, "program") }?;
        let target: AttachTarget = if target.is_null() {
            AttachTarget::FromSection
        } else {
            // SAFETY: forwarded to the caller.
            unsafe { str_arg(target, "target") }?.parse()?
        };
        object.object.attach(program, &target)?;
        Ok(())
    })
}

/// Detaches everything the object attached (it stays loaded, its maps readable).
///
/// Thread-safety: one thread at a time per object.
///
/// # Safety
///
/// `object` is NULL or a live object.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_object_detach_all(object: *mut coolbpf_object) -> i32 {
    status(|| {
        // SAFETY: forwarded to the caller.
        unsafe { handle::borrow_mut(object) }?.object.detach_all();
        Ok(())
    })
}

/// Copies `bytes` to the caller's buffer, or says how large it must be.
///
/// # Safety
///
/// `buffer` is NULL or writable for `capacity` bytes; `size_out` is NULL or writable.
unsafe fn copy_out(
    bytes: &[u8],
    buffer: *mut c_void,
    capacity: usize,
    size_out: *mut usize,
    what: &str,
) -> CResult<()> {
    if !size_out.is_null() {
        // SAFETY: non-null; writable by the caller's promise.
        unsafe { write_out(size_out, "size_out", bytes.len()) }?;
    }
    if capacity < bytes.len() {
        return Err(CError::invalid(format!(
            "{what} has {} bytes; the buffer holds {capacity}",
            bytes.len()
        )));
    }
    if buffer.is_null() {
        return Err(CError::invalid("buffer is NULL"));
    }
    // SAFETY: `buffer` is non-null and writable for `capacity >= bytes.len()` bytes;
    // it cannot overlap `bytes`, which Rust owns.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), buffer.cast::<u8>(), bytes.len()) };
    Ok(())
}

/// Reads the value at `key` (`key_size` bytes, the map's key size) of map `map` into
/// `value` (`value_size` bytes at least the map's value size; per-CPU values are summed
/// as u64 words). `*value_size_out`, when not NULL, receives the value's size, also when
/// the buffer was too small.
///
/// Errors: `-COOLBPF_ERR_NOT_FOUND` for an unknown map or a key that is not in the map;
/// `-COOLBPF_ERR_INVALID_ARGUMENT` for a wrong key size or a buffer too small.
///
/// Thread-safety: safe from several threads at once on one object (reads only) as long
/// as no thread attaches, detaches or closes it meanwhile.
///
/// # Safety
///
/// `object` is NULL or a live object; `map` is NULL or a C string; `key` is readable for
/// `key_size` bytes; `value` is NULL or writable for `value_size` bytes;
/// `value_size_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_object_map_lookup(
    object: *const coolbpf_object,
    map: *const c_char,
    key: *const c_void,
    key_size: usize,
    value: *mut c_void,
    value_size: usize,
    value_size_out: *mut usize,
) -> i32 {
    status(|| {
        // SAFETY: forwarded to the caller.
        let object = unsafe { handle::borrow(object) }?;
        // SAFETY: forwarded to the caller.
        let map = unsafe { str_arg(map, "map") }?;
        // SAFETY: forwarded to the caller.
        let key = unsafe { bytes_arg(key.cast(), key_size, "key") }?;
        let view = object.object.map(map)?;
        let found = view
            .lookup(key)?
            .ok_or_else(|| CError::not_found(format!("the key is not in map {map}")))?;
        // SAFETY: forwarded to the caller.
        unsafe { copy_out(&found, value, value_size, value_size_out, "the value") }
    })
}

/// Writes `value` at `key` in map `map` (sizes must be the map's).
///
/// Thread-safety: as `coolbpf_object_map_lookup()`.
///
/// # Safety
///
/// `object` is NULL or a live object; `map` is NULL or a C string; `key` and `value` are
/// readable for their sizes.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_object_map_update(
    object: *const coolbpf_object,
    map: *const c_char,
    key: *const c_void,
    key_size: usize,
    value: *const c_void,
    value_size: usize,
) -> i32 {
    status(|| {
        // SAFETY: forwarded to the caller.
        let object = unsafe { handle::borrow(object) }?;
        // SAFETY: forwarded to the caller.
        let map = unsafe { str_arg(map, "map") }?;
        // SAFETY: forwarded to the caller.
        let key = unsafe { bytes_arg(key.cast(), key_size, "key") }?;
        // SAFETY: forwarded to the caller.
        let value = unsafe { bytes_arg(value.cast(), value_size, "value") }?;
        object.object.map(map)?.update(key, value)?;
        Ok(())
    })
}

/// Reads global variable `name` (`.bss`, `.data`, `.rodata`) as the kernel holds it now
/// into `buffer`; `*size_out`, when not NULL, receives its size.
///
/// Thread-safety: as `coolbpf_object_map_lookup()`.
///
/// # Safety
///
/// `object` is NULL or a live object; `name` is NULL or a C string; `buffer` is NULL or
/// writable for `size` bytes; `size_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_object_global(
    object: *const coolbpf_object,
    name: *const c_char,
    buffer: *mut c_void,
    size: usize,
    size_out: *mut usize,
) -> i32 {
    status(|| {
        // SAFETY: forwarded to the caller.
        let object = unsafe { handle::borrow(object) }?;
        // SAFETY: forwarded to the caller.
        let name = unsafe { str_arg(name, "name") }?;
        let bytes = object.object.global_bytes(name)?;
        // SAFETY: forwarded to the caller.
        unsafe { copy_out(&bytes, buffer, size, size_out, &format!("global {name}")) }
    })
}

/// Pointer-sized wrapper that lets the C context travel to the consumer thread.
struct SendCtx(*mut c_void);
// SAFETY: the pointer is only handed back to the caller's callback; the caller promises
// (coolbpf_ringbuf_open's contract) that it may be used from the ring buffer's thread.
unsafe impl Send for SendCtx {}

/// Starts consuming ring buffer map `map` of `object` on a thread of its own: `callback`
/// gets every event with `ctx`. The ring buffer does not borrow the object (it holds its
/// own reference to the map), but events stop coming once the object is closed.
/// Stop it with `coolbpf_ringbuf_stop()`, free it with `coolbpf_ringbuf_free()`.
///
/// Errors: `-COOLBPF_ERR_NOT_FOUND` for an unknown map, `-COOLBPF_ERR_INVALID_ARGUMENT`
/// for a map that is not a ring buffer or a NULL callback.
///
/// Thread-safety: one thread at a time per object. The callback runs on the ring
/// buffer's thread, so `ctx` must be usable there; the ring buffer handle may be used
/// from any thread, one at a time.
///
/// # Safety
///
/// `object` is NULL or a live object; `map` is NULL or a C string; `callback` is NULL or
/// a function that may be called with `ctx` from another thread until the ring buffer
/// is stopped; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_ringbuf_open(
    object: *const coolbpf_object,
    map: *const c_char,
    callback: coolbpf_event_cb,
    ctx: *mut c_void,
    out: *mut *mut coolbpf_ringbuf,
) -> i32 {
    status(|| {
        check_out(out, "out")?;
        // SAFETY: forwarded to the caller.
        let object = unsafe { handle::borrow(object) }?;
        // SAFETY: forwarded to the caller.
        let map = unsafe { str_arg(map, "map") }?;
        let callback = callback.ok_or_else(|| CError::invalid("callback is NULL"))?;
        let ctx = SendCtx(ctx);
        let decode = move |payload: &[u8]| {
            let ctx = &ctx;
            // SAFETY: the caller promises the callback takes these arguments from this
            // thread; `payload` is valid for the call.
            let verdict = unsafe { callback(payload.as_ptr(), payload.len(), ctx.0) };
            if verdict == 0 {
                Ok(())
            } else {
                Err(Error::Decode(format!("the callback returned {verdict}")))
            }
        };
        let stream =
            EventStream::ring_buffer(&object.object, map, decode, Delivery::callback(|()| {}))?;
        // SAFETY: `out` is writable by the caller's promise.
        unsafe {
            handle::hand_out(
                out,
                coolbpf_ringbuf {
                    magic: <coolbpf_ringbuf as handle::Handle>::MAGIC,
                    stream,
                },
            )
        }
    })
}

/// Hands every event the kernel already holds to the callback, then stops the thread:
/// once it returns, the callback is never called again. Stopping twice does nothing.
///
/// Thread-safety: one thread at a time per ring buffer; never from inside its callback.
///
/// # Safety
///
/// `ringbuf` is NULL or a live ring buffer.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_ringbuf_stop(ringbuf: *mut coolbpf_ringbuf) -> i32 {
    status(|| {
        // SAFETY: forwarded to the caller.
        unsafe { handle::borrow_mut(ringbuf) }?.stream.stop()?;
        Ok(())
    })
}

/// Delivered and lost counts so far, into `*out`.
///
/// Thread-safety: one thread at a time per ring buffer (the callback may run meanwhile).
///
/// # Safety
///
/// `ringbuf` is NULL or a live ring buffer; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_ringbuf_losses(
    ringbuf: *const coolbpf_ringbuf,
    out: *mut coolbpf_losses,
) -> i32 {
    status(|| {
        // SAFETY: forwarded to the caller.
        let losses = unsafe { handle::borrow(ringbuf) }?.stream.losses()?;
        let value = coolbpf_losses {
            received: losses.received,
            delivered: losses.delivered,
            kernel: losses.kernel.total(),
            rejected: losses.decode_errors,
            total: losses.total(),
        };
        // SAFETY: forwarded to the caller.
        unsafe { write_out(out, "out", value) }
    })
}

/// Stops the ring buffer (as `coolbpf_ringbuf_stop()`, errors ignored) and frees it.
/// NULL is ignored.
///
/// Thread-safety: once per ring buffer, when no other thread uses it; never from inside
/// its callback.
///
/// # Safety
///
/// `ringbuf` is NULL or a live ring buffer not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_ringbuf_free(ringbuf: *mut coolbpf_ringbuf) {
    // SAFETY: forwarded to the caller.
    let _ = guard(|| unsafe { handle::free(ringbuf) }.map(drop));
}

/// Closes the object: detaches everything it attached, unloads its programs and maps.
/// NULL is ignored.
///
/// Thread-safety: once per object, when no other thread uses it.
///
/// # Safety
///
/// `object` is NULL or a live object not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_object_close(object: *mut coolbpf_object) {
    // SAFETY: forwarded to the caller.
    let _ = guard(|| unsafe { handle::free(object) }.map(drop));
}
