//! The workload the `transport` and `bindings` benches both measure: the compiled
//! `benches/bpf/transport.bpf.c`, which sends one 64-byte event, a sequence number first,
//! for each getppid call of one thread; that thread's producing loop; and the median
//! both report.

use coolbpf::{BpfObject, ObjectBuilder};

/// The compiled `benches/bpf/transport.bpf.c`.
pub static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/transport.bpf.o"));

/// Ring buffer bytes: a whole run fits, so the kernel never refuses a reservation.
pub const RING_BYTES: u32 = 64 << 20;

/// Ring buffer bytes one event takes: the 64-byte `struct transport_event` plus the
/// kernel's 8-byte record header.
pub const RECORD_BYTES: u64 = 64 + 8;

/// The calling thread's id.
pub fn current_tid() -> u32 {
    // SAFETY: gettid has no preconditions and cannot fail.
    (unsafe { libc::gettid() }) as u32
}

/// The transport program, loaded and attached, sending an event for each getppid call
/// of the calling thread.
pub fn load() -> Result<BpfObject, String> {
    let mut object = ObjectBuilder::from_bytes(OBJECT)
        .global("target_tid", &current_tid())
        .global("target_syscall", &(libc::SYS_getppid as u32))
        .max_entries("events", RING_BYTES)
        .load()
        .map_err(|err| err.to_string())?;
    object
        .attach_auto("transport")
        .map_err(|err| err.to_string())?;
    Ok(object)
}

/// Makes exactly `n` getppid syscalls from this thread.
pub fn getppid_times(n: u64) {
    for _ in 0..n {
        // SAFETY: getppid has no preconditions and cannot fail.
        unsafe { libc::getppid() };
    }
}

/// The sequence number at the start of an event.
#[inline]
pub fn sequence(payload: &[u8]) -> Option<u64> {
    payload
        .get(..8)
        .and_then(|bytes| bytes.try_into().ok())
        .map(u64::from_ne_bytes)
}

/// [`sequence`] as a stream decoder: a short event is a decode error.
pub fn decode_seq(payload: &[u8]) -> coolbpf::Result<u64> {
    sequence(payload).ok_or_else(|| coolbpf::Error::Decode("short transport event".into()))
}

/// The median of `values` (NaN for none).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}
