//! Probes of the registry, by name: open with options, start, poll records, stop, close.

#![allow(non_camel_case_types)]

use std::collections::VecDeque;
use std::ffi::{c_char, c_int, c_void, CString};
use std::ptr;
use std::sync::OnceLock;
use std::time::Duration;

use coolbpf_probes::{ProbeOptions, ProbeSession};

use crate::error::{guard, status, CError, CResult};
use crate::handle::{self, c_string, check_out, handle, slice_arg, str_arg, write_out};
use crate::record::coolbpf_record;

/// One `key = value` option of a probe (`coolbpf list` shows each probe's options). The
/// key `"pid"` restricts the probe to one process.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct coolbpf_option {
    /// The option's name.
    pub key: *const c_char,
    /// Its value, as text (`"1000"`, `"cpu"`, `"true"`).
    pub value: *const c_char,
}

/// Called once per record by `coolbpf_probe_poll()`, on the polling thread. `record` is
/// lent: valid until the callback returns (copy it with `coolbpf_record_clone()`).
/// Return 0 to go on, anything else to stop: the records not yet handed over stay
/// queued for the next poll.
pub type coolbpf_record_cb =
    Option<unsafe extern "C" fn(record: *const coolbpf_record, ctx: *mut c_void) -> c_int>;

/// A registry probe on a runtime of its own (a `ProbeSession`).
pub struct coolbpf_probe {
    magic: u64,
    session: ProbeSession,
    /// Records taken from the session and not yet handed to C.
    pending: VecDeque<coolbpf_core::Record>,
}
handle!(coolbpf_probe, "probe", 0x636f_6f6c_7072_6f62);

/// Record interval used when `interval_ms` is 0.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// Parses the C options into `ProbeOptions`.
///
/// # Safety
///
/// `options` is NULL or points to `count` options whose strings are valid C strings.
pub(crate) unsafe fn probe_options(
    options: *const coolbpf_option,
    count: usize,
) -> CResult<ProbeOptions> {
    // SAFETY: forwarded to the caller.
    let options = unsafe { slice_arg(options, count, "options") }?;
    let mut parsed = ProbeOptions::new();
    for (index, option) in options.iter().enumerate() {
        // SAFETY: forwarded to the caller.
        let key = unsafe { str_arg(option.key, &format!("options[{index}].key")) }?;
        // SAFETY: forwarded to the caller.
        let value = unsafe { str_arg(option.value, &format!("options[{index}].value")) }?;
        if key == "pid" {
            let pid = value
                .parse::<u32>()
                .ok()
                .filter(|&pid| pid > 0)
                .ok_or_else(|| {
                    CError::invalid(format!("option pid={value:?}: expected a process id"))
                })?;
            parsed.pid = Some(pid);
        } else if key.is_empty() {
            return Err(CError::invalid(format!(
                "options[{index}] has an empty key"
            )));
        } else {
            parsed = parsed.with(key, value);
        }
    }
    Ok(parsed)
}

/// Creates probe `name` (see `coolbpf_probe_count()` / `coolbpf_probe_name()`) with
/// `n_options` options, emitting records every `interval_ms` milliseconds once started
/// (0 means 1000). Nothing touches the kernel yet: an unknown probe fails here with
/// `-COOLBPF_ERR_NOT_FOUND`, an unknown option or a bad value with
/// `-COOLBPF_ERR_INVALID_ARGUMENT`, a `pid` that does not exist with
/// `-COOLBPF_ERR_NOT_FOUND`. On success `*out` is the new handle: close it with
/// `coolbpf_probe_close()`.
///
/// Thread-safety: safe from any thread. The handle may be used from any thread, but by
/// one thread at a time (serialize calls on one handle yourself); distinct handles are
/// independent.
///
/// # Safety
///
/// `name` is NULL or a C string; `options` is NULL or an array of `n_options` options;
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_probe_open(
    name: *const c_char,
    options: *const coolbpf_option,
    n_options: usize,
    interval_ms: u64,
    out: *mut *mut coolbpf_probe,
) -> i32 {
    status(|| {
        check_out(out, "out")?;
        // SAFETY: forwarded to the caller.
        let name = unsafe { str_arg(name, "name") }?;
        // SAFETY: forwarded to the caller.
        let options = unsafe { probe_options(options, n_options) }?;
        let interval = if interval_ms == 0 {
            DEFAULT_INTERVAL
        } else {
            Duration::from_millis(interval_ms)
        };
        let session = ProbeSession::open(coolbpf_gpu::CATALOGUE.find(name)?, &options, interval)?;
        // SAFETY: `out` is writable by the caller's promise.
        unsafe {
            handle::hand_out(
                out,
                coolbpf_probe {
                    magic: <coolbpf_probe as handle::Handle>::MAGIC,
                    session,
                    pending: VecDeque::new(),
                },
            )
        }
    })
}

/// Prepares the host (tracefs, memlock), then loads and attaches the probe. Starting a
/// running probe does nothing; a stopped one starts again. Errors: `-COOLBPF_ERR_PERMISSION`
/// (the message names the missing capability), `-COOLBPF_ERR_UNSUPPORTED`, `-COOLBPF_ERR_BPF`.
///
/// Thread-safety: one thread at a time per handle.
///
/// # Safety
///
/// `probe` is NULL or a live probe handle.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_probe_start(probe: *mut coolbpf_probe) -> i32 {
    status(|| {
        // SAFETY: forwarded to the caller.
        let probe = unsafe { handle::borrow_mut(probe) }?;
        probe.session.start()?;
        Ok(())
    })
}

/// Stops the probe: one last collection, whose records are queued, then everything is
/// detached. Queued records stay readable with `coolbpf_probe_poll()` until the probe is
/// closed. Stopping a stopped probe does nothing.
///
/// Thread-safety: one thread at a time per handle.
///
/// # Safety
///
/// `probe` is NULL or a live probe handle.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_probe_stop(probe: *mut coolbpf_probe) -> i32 {
    status(|| {
        // SAFETY: forwarded to the caller.
        let probe = unsafe { handle::borrow_mut(probe) }?;
        probe.session.stop()?;
        Ok(())
    })
}

/// Whether the probe runs: 1 yes, 0 no, a negative code for an invalid handle.
///
/// Thread-safety: one thread at a time per handle.
///
/// # Safety
///
/// `probe` is NULL or a live probe handle.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_probe_is_running(probe: *const coolbpf_probe) -> i32 {
    // SAFETY: forwarded to the caller.
    match guard(|| unsafe { handle::borrow(probe) }.map(|p| p.session.is_running())) {
        Ok(running) => i32::from(running),
        Err(code) => -code,
    }
}

/// Records lost on their way to the caller (the queue was full because nobody polled),
/// written to `*out`. Kernel-side losses arrive as `events_lost_total` records instead.
///
/// Thread-safety: one thread at a time per handle.
///
/// # Safety
///
/// `probe` is NULL or a live probe handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_probe_records_dropped(
    probe: *const coolbpf_probe,
    out: *mut u64,
) -> i32 {
    status(|| {
        // SAFETY: forwarded to the caller.
        let probe = unsafe { handle::borrow(probe) }?;
        // SAFETY: forwarded to the caller.
        unsafe { write_out(out, "out", probe.session.records_dropped()) }
    })
}

/// Moves what the session has queued into `pending`, waiting up to `timeout` when there
/// is nothing at all.
fn refill(probe: &mut coolbpf_probe, timeout: Duration) -> CResult<()> {
    if probe.pending.is_empty() {
        let mut fresh = Vec::new();
        probe.session.poll_into(timeout, usize::MAX, &mut fresh)?;
        probe.pending.extend(fresh);
    }
    Ok(())
}

/// Waits up to `timeout_ms` for records (0: do not wait), then calls `callback` with
/// each record queued, on this thread, passing `ctx` along untouched.
///
/// Returns the number of records handed to the callback (0 when none arrived in time),
/// or a negated error code: `-COOLBPF_ERR_PLUGIN` when the probe failed while running
/// (after its queued records were handed over). The callback may call other functions
/// on this probe except `coolbpf_probe_close()`.
///
/// Thread-safety: one thread at a time per handle; the callback runs on the calling
/// thread.
///
/// # Safety
///
/// `probe` is NULL or a live probe handle; `callback` is NULL or a function that may be
/// called with `ctx`.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_probe_poll(
    probe: *mut coolbpf_probe,
    timeout_ms: u64,
    callback: coolbpf_record_cb,
    ctx: *mut c_void,
) -> i32 {
    let result = guard(|| {
        let callback = callback.ok_or_else(|| CError::invalid("callback is NULL".to_owned()))?;
        {
            // SAFETY: forwarded to the caller; the borrow ends before the callbacks.
            let handle = unsafe { handle::borrow_mut(probe) }?;
            refill(handle, Duration::from_millis(timeout_ms))?;
        }
        let mut delivered: i32 = 0;
        loop {
            // A fresh, short borrow per record: the callback may use the handle itself.
            // SAFETY: forwarded to the caller (the callback does not close it).
            let next = unsafe { handle::borrow_mut(probe) }?.pending.pop_front();
            let Some(record) = next else { break };
            let lent = coolbpf_record::lent(record);
            // SAFETY: the caller promises the callback accepts a record and `ctx`; the
            // record outlives the call.
            let verdict = unsafe { callback(&raw const lent, ctx) };
            delivered = delivered.saturating_add(1);
            if verdict != 0 {
                break;
            }
        }
        Ok(delivered)
    });
    result.unwrap_or_else(|code| -code)
}

/// The polling model without a callback: waits up to `timeout_ms` for a record and
/// writes it to `*out` (free it with `coolbpf_record_free()`), or writes NULL when none
/// arrived in time. Returns 0 or a negated error code.
///
/// Thread-safety: one thread at a time per handle; the record is independent of it.
///
/// # Safety
///
/// `probe` is NULL or a live probe handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_probe_next(
    probe: *mut coolbpf_probe,
    timeout_ms: u64,
    out: *mut *mut coolbpf_record,
) -> i32 {
    status(|| {
        check_out(out, "out")?;
        // SAFETY: forwarded to the caller.
        let probe = unsafe { handle::borrow_mut(probe) }?;
        refill(probe, Duration::from_millis(timeout_ms))?;
        let record = probe.pending.pop_front().map_or(ptr::null_mut(), |r| {
            handle::into_raw(coolbpf_record::new(r))
        });
        // SAFETY: checked above; writable by the caller's promise.
        unsafe { out.write(record) };
        Ok(())
    })
}

/// Stops the probe if it runs and frees it, with any records still queued. NULL is
/// ignored. Call `coolbpf_probe_stop()` first to see errors of the final stop.
///
/// Thread-safety: once per handle, when no other thread uses it; not from inside its own
/// poll callback.
///
/// # Safety
///
/// `probe` is NULL or a live probe handle not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_probe_close(probe: *mut coolbpf_probe) {
    // SAFETY: forwarded to the caller.
    let _ = guard(|| unsafe { handle::free(probe) }.map(drop));
}

struct Catalogue {
    names: Vec<CString>,
    descriptions: Vec<CString>,
}

fn catalogue() -> &'static Catalogue {
    static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
    CATALOGUE.get_or_init(|| {
        let probes: Vec<_> = coolbpf_gpu::CATALOGUE.probes().collect();
        Catalogue {
            names: probes.iter().map(|p| c_string(p.name)).collect(),
            descriptions: probes.iter().map(|p| c_string(p.description)).collect(),
        }
    })
}

/// Number of probes in the registry.
///
/// Thread-safety: safe from any thread.
#[no_mangle]
pub extern "C" fn coolbpf_probe_count() -> usize {
    guard(|| Ok(catalogue().names.len())).unwrap_or(0)
}

/// The name of registry probe `index` (static: never free it), or NULL when `index` is
/// out of range.
///
/// Thread-safety: safe from any thread.
#[no_mangle]
pub extern "C" fn coolbpf_probe_name(index: usize) -> *const c_char {
    guard(|| {
        catalogue()
            .names
            .get(index)
            .map(|n| n.as_ptr())
            .ok_or_else(|| CError::invalid(format!("probe index {index} is out of range")))
    })
    .unwrap_or(ptr::null())
}

/// The one-line description of registry probe `index` (static), or NULL when out of
/// range.
///
/// Thread-safety: safe from any thread.
#[no_mangle]
pub extern "C" fn coolbpf_probe_description(index: usize) -> *const c_char {
    guard(|| {
        catalogue()
            .descriptions
            .get(index)
            .map(|n| n.as_ptr())
            .ok_or_else(|| CError::invalid(format!("probe index {index} is out of range")))
    })
    .unwrap_or(ptr::null())
}
