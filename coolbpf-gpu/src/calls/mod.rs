//! Tracing calls of user-space functions by uprobes: the layer under the `cuda`, `nccl`
//! and `gpuhang` probes.
//!
//! One BPF object (`calls.bpf.c`) with two programs serves every function: `call_entry`
//! and `call_return` are attached to each function with an attach cookie that holds the
//! function's id and what to capture ([`CallFlags`]). The programs capture raw argument
//! words and, when asked, the caller's user stack; the probes above decode them per
//! function. A function that returns is sent once, at return, with its return value and
//! the time it took; until then it waits in the `inflight` map, where
//! [`CallTracer::in_flight`] finds calls that have not returned (the hang watchdog's
//! evidence). Entry-only functions (kernel launches, which return at once and are the
//! hottest) are sent at entry and cost one uprobe, not two.

mod record;
mod tracer;

pub use record::{CallRecord, MAX_ARGS, MAX_STACK, NAME_LEN};
pub use tracer::{CallTracer, LaunchCount, MissingFunction, RecentLaunch, TracedFunction};

/// The stack the kernel walked, with the immediate caller put in when the walk lacks it:
/// at a function's first instruction the return address is still at the stack pointer
/// and the frame pointer is the caller's, so a frame-pointer walk skips the caller;
/// kernels since 6.11 add it themselves at entry uprobes, older ones do not.
pub fn with_caller(mut stack: Vec<u64>, caller: u64) -> Vec<u64> {
    if !stack.is_empty() && caller != 0 && stack.get(1) != Some(&caller) {
        stack.insert(1, caller);
        stack.truncate(MAX_STACK);
    }
    stack
}

use coolbpf_core::{Error, Result};
use coolbpf_probes::options::{OptionSpec, ProbeOptions};

/// `--opt buffer_kb=`: the ring buffer of every probe built on the call tracer.
pub const BUFFER_KB: OptionSpec = OptionSpec {
    name: "buffer_kb",
    help: "ring buffer size in KiB, a power of two >= 4; calls that do not fit are counted lost",
    default: "8192",
};

/// The `buffer_kb=` of `options`, checked.
pub fn buffer_kb(options: &ProbeOptions) -> Result<u32> {
    let buffer_kb: u32 = options.get(&BUFFER_KB)?;
    if buffer_kb < 4 || !buffer_kb.is_power_of_two() {
        return Err(Error::InvalidArgument(format!(
            "option buffer_kb={buffer_kb}: {}",
            BUFFER_KB.help
        )));
    }
    Ok(buffer_kb)
}

/// What `calls.bpf.c` captures for a function: the flag bits of its attach cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallFlags(pub u64);

impl CallFlags {
    /// Capture the caller's user stack.
    pub const STACK: Self = Self(1 << 16);
    /// Send at entry; attach no return probe.
    pub const ENTRY_ONLY: Self = Self(1 << 17);
    /// At return, read the word the first argument points to (an out-parameter).
    pub const DEREF_ARG0: Self = Self(1 << 18);
    /// At entry, read the 48 bytes the first argument points to (a config struct).
    pub const BLOB_ARG0: Self = Self(1 << 19);
    /// At entry, read the 48 bytes above the return address: the start of a struct of
    /// more than 16 bytes passed by value (`ncclUniqueId`), which the calling convention
    /// puts on the stack.
    pub const BLOB_STACK: Self = Self(1 << 24);
    /// A launch: counted in the kernel by (pid, function, what is launched, caller, user
    /// stack), and kept among the process's recent launches; not sent unless
    /// [`SEND`](Self::SEND) is set too. Needs [`key_at`](Self::key_at) and
    /// [`stream_at`](Self::stream_at).
    pub const AGGREGATE: Self = Self(1 << 25);
    /// With [`AGGREGATE`](Self::AGGREGATE): send each call as well.
    pub const SEND: Self = Self(1 << 26);
    /// With [`AGGREGATE`](Self::AGGREGATE): the stream is in the config struct the first
    /// argument points to, at offset 32 (`cudaLaunchConfig_t`, `CUlaunchConfig`).
    pub const STREAM_IN_CONFIG: Self = Self(15 << 31);
    const NAME_SHIFT: u32 = 20;
    const KEY_SHIFT: u32 = 27;
    const STREAM_SHIFT: u32 = 31;

    /// Argument `index` (0..11) names what a launch launches.
    pub const fn key_at(index: u64) -> Self {
        Self(index << Self::KEY_SHIFT)
    }

    /// Argument `index` (0..11) is a launch's stream.
    pub const fn stream_at(index: u64) -> Self {
        Self((index + 1) << Self::STREAM_SHIFT)
    }

    /// Nothing but arguments and the return value.
    pub const NONE: Self = Self(0);

    /// Read argument `index` (0..6) as a NUL-terminated string.
    pub const fn name_at(index: u64) -> Self {
        Self((index + 1) << Self::NAME_SHIFT)
    }

    /// Both sets of flags.
    #[must_use]
    pub const fn with(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Whether every flag of `other` is set.
    pub const fn has(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The string argument asked for.
    pub fn name_arg(self) -> Option<usize> {
        let which = (self.0 >> Self::NAME_SHIFT) & 0xf;
        (which != 0).then(|| which as usize - 1)
    }

    /// The attach cookie for function `id` with these flags.
    pub const fn cookie(self, id: u16) -> u64 {
        (self.0 & !0xffff) | id as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_carry_the_id_and_flags() {
        let flags = CallFlags::STACK.with(CallFlags::name_at(3));
        let cookie = flags.cookie(12);
        assert_eq!(cookie & 0xffff, 12);
        assert!(CallFlags(cookie).has(CallFlags::STACK));
        assert!(!CallFlags(cookie).has(CallFlags::ENTRY_ONLY));
        assert_eq!(CallFlags(cookie).name_arg(), Some(3));
        assert_eq!(CallFlags::NONE.name_arg(), None);
    }
}
