//! [`CallRecord`]: one call as `calls.bpf.c` sends it (or keeps it in flight), decoded.

use coolbpf_core::decode::Reader;
use coolbpf_core::{Event, FieldValue, Result};

/// Argument words captured: six registers, then five words above the return address.
pub const MAX_ARGS: usize = 11;
/// User stack depth captured.
pub const MAX_STACK: usize = 127;
/// Longest string argument kept (bytes, with the NUL).
pub const NAME_LEN: usize = 256;

// Offsets in `struct call_record` (calls.bpf.c).
const ENTRY_NS: usize = 0;
const RETURN_NS: usize = 8;
const COOKIE: usize = 16;
const ARGS: usize = 24;
const RET: usize = ARGS + MAX_ARGS * 8;
const DEREF: usize = RET + 8;
const BLOB: usize = DEREF + 8;
const BLOB_WORDS: usize = 6;
const CALLER: usize = BLOB + BLOB_WORDS * 8;
const PID: usize = CALLER + 8;
const TID: usize = PID + 4;
const STACK_LEN: usize = TID + 4;
const FLAGS: usize = STACK_LEN + 4;
const COMM: usize = FLAGS + 4;
const COMM_LEN: usize = 16;
const STACK: usize = COMM + COMM_LEN;
/// Size of a record sent without its name.
pub const SIZE_WITHOUT_NAME: usize = STACK + MAX_STACK * 8;
/// Size of a whole record (and of an in-flight map value).
pub const SIZE: usize = SIZE_WITHOUT_NAME + NAME_LEN;

const DEREF_FAILED: u32 = 1;
const BLOB_FAILED: u32 = 4;

/// One traced call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallRecord {
    /// Kernel monotonic time of the entry, ns.
    pub entry_ns: u64,
    /// Kernel monotonic time of the return, ns; `None` for entry-only functions and for
    /// calls still in flight.
    pub return_ns: Option<u64>,
    /// The function's id (the low 16 bits of the attach cookie).
    pub function: u16,
    /// Raw argument words: rdi, rsi, rdx, rcx, r8, r9, then `[sp+8]`..`[sp+40]`.
    pub args: [u64; MAX_ARGS],
    /// The return value (rax), when returned.
    pub ret: i64,
    /// The word the first argument pointed to at return, when asked for and readable.
    pub deref: Option<u64>,
    /// The struct the first argument pointed to at entry, or the one passed by value on
    /// the stack, when asked for and readable.
    pub blob: Option<[u64; BLOB_WORDS]>,
    /// Process id (tgid).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Task name.
    pub comm: String,
    /// The caller's user stack, innermost first: the probed function, its return
    /// address (the immediate caller), then the callers' frames; empty when not captured.
    pub stack: Vec<u64>,
    /// The string argument asked for, when one was.
    pub name: Option<String>,
}

impl CallRecord {
    /// Decodes a record of either size.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let r = Reader::new(bytes, SIZE_WITHOUT_NAME, "call record")?;
        let cookie = r.u64(COOKIE)?;
        let flags = r.u32(FLAGS)?;
        let mut args = [0u64; MAX_ARGS];
        for (i, arg) in args.iter_mut().enumerate() {
            *arg = r.u64(ARGS + i * 8)?;
        }
        let stack_len = (r.u32(STACK_LEN)? as usize).min(MAX_STACK);
        let stack = (0..stack_len)
            .map(|i| r.u64(STACK + i * 8))
            .collect::<Result<Vec<_>>>()?;
        let stack = super::with_caller(stack, r.u64(CALLER)?);
        let mut blob = [0u64; BLOB_WORDS];
        for (i, word) in blob.iter_mut().enumerate() {
            *word = r.u64(BLOB + i * 8)?;
        }
        let named = super::CallFlags(cookie).name_arg().is_some();
        let name = if named && bytes.len() >= SIZE {
            Some(r.c_str(SIZE_WITHOUT_NAME, NAME_LEN)?)
        } else {
            None
        };
        let return_ns = r.u64(RETURN_NS)?;
        let wants = super::CallFlags(cookie);
        Ok(Self {
            entry_ns: r.u64(ENTRY_NS)?,
            return_ns: (return_ns != 0).then_some(return_ns),
            function: (cookie & 0xffff) as u16,
            args,
            ret: r.u64(RET)? as i64,
            deref: (wants.has(super::CallFlags::DEREF_ARG0)
                && return_ns != 0
                && flags & DEREF_FAILED == 0)
                .then_some(r.u64(DEREF)?),
            blob: ((wants.has(super::CallFlags::BLOB_ARG0)
                || wants.has(super::CallFlags::BLOB_STACK))
                && flags & BLOB_FAILED == 0)
                .then_some(blob),
            pid: r.u32(PID)?,
            tid: r.u32(TID)?,
            comm: r.c_str(COMM, COMM_LEN)?,
            stack,
            name,
        })
    }

    /// The call as an event of `probe`, before the probe adds its decoded arguments:
    /// the function's `name`, who called it, and once returned how long it took and
    /// what it returned.
    pub fn event(&self, probe: &str, name: &str) -> Event {
        let mut event = Event::new(probe, self.entry_ns)
            .with("function", FieldValue::Str(name.to_owned()))
            .with("pid", FieldValue::UInt(self.pid.into()))
            .with("tid", FieldValue::UInt(self.tid.into()))
            .with("comm", FieldValue::Str(self.comm.clone()));
        if let Some(ns) = self.duration_ns() {
            event = event
                .with("duration_ns", FieldValue::UInt(ns))
                .with("ret", FieldValue::Int(self.ret));
        }
        event
    }

    /// Time spent in the call, ns, once returned.
    pub fn duration_ns(&self) -> Option<u64> {
        self.return_ns.map(|end| end.saturating_sub(self.entry_ns))
    }

    /// The `index`th 32-bit half-word of argument `arg` (dim3 passed in registers packs
    /// x and y into one register, z into the next).
    pub fn arg_u32(&self, arg: usize, high: bool) -> u32 {
        let word = self.args.get(arg).copied().unwrap_or(0);
        if high {
            (word >> 32) as u32
        } else {
            word as u32
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_records_are_errors_not_panics() {
        assert!(CallRecord::decode(&[0u8; 10]).is_err());
        assert!(CallRecord::decode(&[]).is_err());
    }

    #[test]
    fn a_record_round_trips_its_fields() {
        let mut bytes = vec![0u8; SIZE];
        bytes[ENTRY_NS..ENTRY_NS + 8].copy_from_slice(&100u64.to_ne_bytes());
        bytes[RETURN_NS..RETURN_NS + 8].copy_from_slice(&350u64.to_ne_bytes());
        let cookie = 7 | super::super::CallFlags::name_at(3).0;
        bytes[COOKIE..COOKIE + 8].copy_from_slice(&cookie.to_ne_bytes());
        bytes[ARGS + 8..ARGS + 16].copy_from_slice(&((2u64 << 32) | 3).to_ne_bytes());
        bytes[RET..RET + 8].copy_from_slice(&35i64.to_ne_bytes());
        bytes[PID..PID + 4].copy_from_slice(&42u32.to_ne_bytes());
        bytes[STACK_LEN..STACK_LEN + 4].copy_from_slice(&1000u32.to_ne_bytes());
        bytes[COMM..COMM + 4].copy_from_slice(b"prog");
        bytes[SIZE_WITHOUT_NAME..SIZE_WITHOUT_NAME + 5].copy_from_slice(b"_Z1k\0");
        let record = CallRecord::decode(&bytes).unwrap();
        assert_eq!(record.function, 7);
        assert_eq!(record.duration_ns(), Some(250));
        assert_eq!((record.arg_u32(1, false), record.arg_u32(1, true)), (3, 2));
        assert_eq!(record.ret, 35);
        assert_eq!(record.pid, 42);
        assert_eq!(record.comm, "prog");
        assert_eq!(record.stack.len(), MAX_STACK, "a bad length is clamped");
        assert_eq!(record.name.as_deref(), Some("_Z1k"));
        assert_eq!(record.deref, None);
    }
}
