//! Profiling, on-CPU or off-CPU (one [`ProfileSession`] either way), exported as folded
//! stacks, pprof or a flame graph SVG.

#![allow(non_camel_case_types)]

use std::ffi::c_char;
use std::time::{Duration, Instant, SystemTime};

use coolbpf_core::Environment;
use coolbpf_probes::offcpu::OffCpuConfig;
use coolbpf_probes::profile::{
    ProfileConfig, ProfileFormat, ProfileKind, ProfileSession, SessionResult,
};
use coolbpf_symbolize::profile::{FlameGraphOptions, PprofOptions};

use crate::error::{guard, status, CError, CResult};
use crate::handle::{self, check_out, handle, str_arg, write_out};

/// `coolbpf_profile_export()` format: folded stacks, one `comm;root;...;leaf count`
/// line per stack (text).
pub const COOLBPF_FORMAT_FOLDED: i32 = 1;
/// pprof: gzipped profile.proto, as `go tool pprof` reads it (binary).
pub const COOLBPF_FORMAT_PPROF: i32 = 2;
/// A flame graph SVG (text).
pub const COOLBPF_FORMAT_SVG: i32 = 3;

/// A running profiler: samples stacks on every CPU (or every thread of one process), or
/// measures off-CPU time by stack.
pub struct coolbpf_profiler {
    magic: u64,
    session: ProfileSession,
    pid: Option<u32>,
    started: Instant,
    wall: SystemTime,
}
handle!(coolbpf_profiler, "profiler", 0x636f_6f6c_7072_6f66);

/// A finished, symbolized profile.
pub struct coolbpf_profile {
    magic: u64,
    result: SessionResult,
    pprof: PprofOptions,
    flamegraph: FlameGraphOptions,
}
handle!(coolbpf_profile, "profile", 0x636f_6f6c_7072_6f70);

/// Bytes allocated by coolbpf: `data[len]` is a NUL byte not counted in `len`, so text
/// formats can be used as C strings. Free with `coolbpf_bytes_free()`.
#[repr(C)]
pub struct coolbpf_bytes {
    /// The bytes (NULL when empty and freed).
    pub data: *mut u8,
    /// How many.
    pub len: usize,
}

impl coolbpf_bytes {
    fn from_vec(mut bytes: Vec<u8>) -> Self {
        let len = bytes.len();
        bytes.push(0);
        let data = Box::into_raw(bytes.into_boxed_slice()).cast::<u8>();
        Self { data, len }
    }
}

/// Starts sampling at `frequency_hz` (per CPU, or per thread when `pid` is not 0; 0 Hz
/// means 99) with kernel and user stacks. Call `coolbpf_profiler_tick()` about every
/// second (it symbolizes user addresses while their processes still run), then
/// `coolbpf_profiler_finish()`.
///
/// Errors: `-COOLBPF_ERR_INVALID_ARGUMENT` for a frequency above the kernel's limit,
/// `-COOLBPF_ERR_NOT_FOUND` for a `pid` that does not exist, `-COOLBPF_ERR_PERMISSION`.
///
/// Thread-safety: safe from any thread; the handle is used by one thread at a time.
///
/// # Safety
///
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_profiler_start(
    frequency_hz: u64,
    pid: u32,
    out: *mut *mut coolbpf_profiler,
) -> i32 {
    status(|| {
        let pid = checked_pid(pid, out)?;
        let frequency = if frequency_hz == 0 { 99 } else { frequency_hz };
        let config = ProfileConfig {
            frequency,
            pid,
            interval: None,
            ..ProfileConfig::default()
        };
        config.validate()?;
        // SAFETY: forwarded to the caller.
        unsafe { start(ProfileKind::OnCpu(config), pid, out) }
    })
}

/// Starts measuring off-CPU time (blocked, sleeping, waiting to run) by kernel and user
/// stack, of every task or of process `pid` when not 0; weights are microseconds. Then
/// as `coolbpf_profiler_start()`: tick, finish.
///
/// Errors: `-COOLBPF_ERR_NOT_FOUND` for a `pid` that does not exist,
/// `-COOLBPF_ERR_PERMISSION`, `-COOLBPF_ERR_UNSUPPORTED` on a kernel without what it needs.
///
/// Thread-safety: safe from any thread; the handle is used by one thread at a time.
///
/// # Safety
///
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_profiler_start_off_cpu(
    pid: u32,
    out: *mut *mut coolbpf_profiler,
) -> i32 {
    status(|| {
        let pid = checked_pid(pid, out)?;
        let config = OffCpuConfig {
            pid,
            ..OffCpuConfig::default()
        };
        // SAFETY: forwarded to the caller.
        unsafe { start(ProfileKind::OffCpu(config), pid, out) }
    })
}

/// The profiled pid (`None` for 0), checked to exist, once `out` is checked.
fn checked_pid(pid: u32, out: *mut *mut coolbpf_profiler) -> CResult<Option<u32>> {
    check_out(out, "out")?;
    let pid = (pid != 0).then_some(pid);
    if let Some(pid) = pid {
        Environment::require_process(pid)?;
    }
    Ok(pid)
}

/// Starts a session and hands out its profiler.
///
/// # Safety
///
/// `out` is writable.
unsafe fn start(
    kind: ProfileKind,
    pid: Option<u32>,
    out: *mut *mut coolbpf_profiler,
) -> CResult<()> {
    Environment::prepare()?;
    let session = ProfileSession::start(kind)?;
    // SAFETY: `out` is writable by the caller's promise.
    unsafe {
        handle::hand_out(
            out,
            coolbpf_profiler {
                magic: <coolbpf_profiler as handle::Handle>::MAGIC,
                session,
                pid,
                started: Instant::now(),
                wall: SystemTime::now(),
            },
        )
    }
}

/// Follows new threads (pid mode) and symbolizes the user addresses sampled since the
/// last tick. Call it about every second.
///
/// Thread-safety: one thread at a time per profiler.
///
/// # Safety
///
/// `profiler` is NULL or a live profiler.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_profiler_tick(profiler: *mut coolbpf_profiler) -> i32 {
    status(|| {
        // SAFETY: forwarded to the caller.
        unsafe { handle::borrow_mut(profiler) }?.session.tick()?;
        Ok(())
    })
}

/// Samples received so far (off-CPU: spans measured), into `*out`.
///
/// Thread-safety: one thread at a time per profiler.
///
/// # Safety
///
/// `profiler` is NULL or a live profiler; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_profiler_samples(
    profiler: *const coolbpf_profiler,
    out: *mut u64,
) -> i32 {
    status(|| {
        // SAFETY: forwarded to the caller.
        let count = unsafe { handle::borrow(profiler) }?
            .session
            .sample_count()?;
        // SAFETY: forwarded to the caller.
        unsafe { write_out(out, "out", count) }
    })
}

fn finish(profiler: coolbpf_profiler) -> CResult<coolbpf_profile> {
    let elapsed = profiler.started.elapsed();
    let result = profiler.session.finish()?;
    let pprof = result.pprof(profiler.wall, elapsed);
    let scope = profiler
        .pid
        .map_or_else(|| "all CPUs".to_owned(), |pid| format!("pid {pid}"));
    let flamegraph = result.flame_graph(&scope, elapsed);
    Ok(coolbpf_profile {
        magic: <coolbpf_profile as handle::Handle>::MAGIC,
        result,
        pprof,
        flamegraph,
    })
}

/// Stops the profiler, symbolizes what is left and writes the whole profile to `*out`
/// (free it with `coolbpf_profile_free()`). Frees the profiler whatever the outcome.
///
/// Thread-safety: once per profiler, when no other thread uses it.
///
/// # Safety
///
/// `profiler` is NULL or a live profiler not used afterwards; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_profiler_finish(
    profiler: *mut coolbpf_profiler,
    out: *mut *mut coolbpf_profile,
) -> i32 {
    status(|| {
        // SAFETY: forwarded to the caller (consumed whatever happens).
        let profiler = unsafe { handle::free(profiler) }?
            .ok_or_else(|| CError::invalid("the profiler handle is NULL"))?;
        check_out(out, "out")?;
        // SAFETY: `out` is writable by the caller's promise.
        unsafe { handle::hand_out(out, finish(profiler)?) }
    })
}

/// Profiles for `duration_ms` (ticking every second), then finishes: the blocking
/// shorthand for start, tick, finish. Arguments as `coolbpf_profiler_start()`.
///
/// Thread-safety: safe from any thread.
///
/// # Safety
///
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_profile_collect(
    frequency_hz: u64,
    pid: u32,
    duration_ms: u64,
    out: *mut *mut coolbpf_profile,
) -> i32 {
    status(|| {
        check_out(out, "out")?;
        let mut profiler = std::ptr::null_mut();
        // SAFETY: `profiler` is a local, writable.
        let code = unsafe { coolbpf_profiler_start(frequency_hz, pid, &raw mut profiler) };
        if code != 0 {
            return Err(last_error(code));
        }
        let deadline = Instant::now() + Duration::from_millis(duration_ms);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_secs(1)));
            // SAFETY: a live profiler made above.
            let code = unsafe { coolbpf_profiler_tick(profiler) };
            if code != 0 {
                // SAFETY: a live profiler made above, freed once.
                unsafe { coolbpf_profiler_free(profiler) };
                return Err(last_error(code));
            }
        }
        // SAFETY: a live profiler made above (consumed); `out` checked above.
        let code = unsafe { coolbpf_profiler_finish(profiler, out) };
        if code != 0 {
            return Err(last_error(code));
        }
        Ok(())
    })
}

/// This thread's last error again, after a nested call failed with `code`.
fn last_error(code: i32) -> CError {
    let message = crate::error::coolbpf_last_error_message();
    // SAFETY: the last error message is a live NUL-terminated string of this thread.
    let message = unsafe { std::ffi::CStr::from_ptr(message) }
        .to_string_lossy()
        .into_owned();
    CError {
        code: -code,
        message,
    }
}

/// Stops and frees a profiler without producing a profile. NULL is ignored.
///
/// Thread-safety: once per profiler, when no other thread uses it.
///
/// # Safety
///
/// `profiler` is NULL or a live profiler not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_profiler_free(profiler: *mut coolbpf_profiler) {
    // SAFETY: forwarded to the caller.
    let _ = guard(|| unsafe { handle::free(profiler) }.map(drop));
}

/// Samples in the profile (`*samples`; off-CPU: spans measured), and how many were lost
/// (`*lost`: full ring buffer, failed stack walks, undecodable samples). Either pointer
/// may be NULL.
///
/// Thread-safety: a profile may be read from several threads at once.
///
/// # Safety
///
/// `profile` is NULL or a live profile; `samples` and `lost` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_profile_samples(
    profile: *const coolbpf_profile,
    samples: *mut u64,
    lost: *mut u64,
) -> i32 {
    status(|| {
        // SAFETY: forwarded to the caller.
        let profile = unsafe { handle::borrow(profile) }?;
        if !samples.is_null() {
            // SAFETY: forwarded to the caller.
            unsafe { write_out(samples, "samples", profile.result.samples) }?;
        }
        if !lost.is_null() {
            // SAFETY: forwarded to the caller.
            unsafe { write_out(lost, "lost", profile.result.losses.total()) }?;
        }
        Ok(())
    })
}

fn format_of(format: i32) -> CResult<ProfileFormat> {
    match format {
        COOLBPF_FORMAT_FOLDED => Ok(ProfileFormat::Folded),
        COOLBPF_FORMAT_PPROF => Ok(ProfileFormat::Pprof),
        COOLBPF_FORMAT_SVG => Ok(ProfileFormat::Svg),
        other => Err(CError::invalid(format!(
            "profile format {other}: expected COOLBPF_FORMAT_FOLDED (1), _PPROF (2) or _SVG (3)"
        ))),
    }
}

fn render(profile: &coolbpf_profile, format: i32) -> CResult<Vec<u8>> {
    let format = format_of(format)?;
    let mut bytes = Vec::new();
    format
        .write(
            &profile.result.profile,
            &profile.pprof,
            &profile.flamegraph,
            &mut bytes,
        )
        .map_err(|e| coolbpf_core::Error::io(format!("render the profile as {format}"), e))?;
    Ok(bytes)
}

/// Renders the profile as `format` (`COOLBPF_FORMAT_FOLDED`, `_PPROF`, `_SVG`) into
/// `*out`; free it with `coolbpf_bytes_free()`.
///
/// Thread-safety: a profile may be read from several threads at once.
///
/// # Safety
///
/// `profile` is NULL or a live profile; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_profile_export(
    profile: *const coolbpf_profile,
    format: i32,
    out: *mut coolbpf_bytes,
) -> i32 {
    status(|| {
        check_out(out, "out")?;
        // SAFETY: forwarded to the caller.
        let profile = unsafe { handle::borrow(profile) }?;
        let bytes = coolbpf_bytes::from_vec(render(profile, format)?);
        // SAFETY: checked above; writable by the caller's promise.
        unsafe { out.write(bytes) };
        Ok(())
    })
}

/// Writes the profile as `format` to the file at `path` (created or truncated).
///
/// Thread-safety: a profile may be read from several threads at once.
///
/// # Safety
///
/// `profile` is NULL or a live profile; `path` is NULL or a C string.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_profile_write(
    profile: *const coolbpf_profile,
    format: i32,
    path: *const c_char,
) -> i32 {
    status(|| {
        // SAFETY: forwarded to the caller.
        let profile = unsafe { handle::borrow(profile) }?;
        // SAFETY: forwarded to the caller.
        let path = unsafe { str_arg(path, "path") }?;
        let bytes = render(profile, format)?;
        std::fs::write(path, bytes)
            .map_err(|e| coolbpf_core::Error::io(format!("write the profile to {path}"), e))?;
        Ok(())
    })
}

/// Frees a profile. NULL is ignored.
///
/// Thread-safety: once per profile, when no other thread uses it.
///
/// # Safety
///
/// `profile` is NULL or a live profile not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_profile_free(profile: *mut coolbpf_profile) {
    // SAFETY: forwarded to the caller.
    let _ = guard(|| unsafe { handle::free(profile) }.map(drop));
}

/// Frees bytes from `coolbpf_profile_export()` and sets `bytes->data` to NULL (freeing
/// twice is then harmless). NULL is ignored.
///
/// Thread-safety: once per buffer.
///
/// # Safety
///
/// `bytes` is NULL, or points to a `coolbpf_bytes` filled by coolbpf (or with NULL data).
#[no_mangle]
pub unsafe extern "C" fn coolbpf_bytes_free(bytes: *mut coolbpf_bytes) {
    let _ = guard(|| {
        if bytes.is_null() || !bytes.is_aligned() {
            return Ok(());
        }
        // SAFETY: non-null and aligned; the caller promises it is a coolbpf_bytes.
        let bytes = unsafe { &mut *bytes };
        if !bytes.data.is_null() {
            let slice = std::ptr::slice_from_raw_parts_mut(bytes.data, bytes.len + 1);
            // SAFETY: made by `from_vec` as a boxed slice of `len + 1` bytes, freed once
            // (data is cleared right after).
            drop(unsafe { Box::from_raw(slice) });
        }
        bytes.data = std::ptr::null_mut();
        bytes.len = 0;
        Ok(())
    });
}
