//! The stacks layer: what every probe that takes stacks shares, so that none of them
//! takes, names or reports stacks its own way.
//!
//! - [`symbolizer`]: the symbolizer stacks are named with (a bounded cache, DWARF when
//!   the probe's `debug_info` option says so), behind the one resolver,
//!   [`coolbpf_symbolize::profile::StackResolver`].
//! - [`stack_record`] and [`profile_from_records`]: between symbolized stacks and the data
//!   model's [`StackSample`](coolbpf_core::StackSample) records, both ways;
//!   [`emit_interval`], what a plugin emits for the stacks of one interval.
//! - [`StackStore`]: the stacks a BPF program keeps by content
//!   (`coolbpf/stackstore.bpf.h`), for probes that aggregate by stack in the kernel.
//! - [`NativeUnwinder`]: user stacks of code without frame pointers, through the
//!   in-kernel CFI unwinder of `coolbpf/unwind.bpf.h` (tables compiled by
//!   `coolbpf_symbolize::unwind`); frame pointers where a file has no tables.
//!
//! - [`python`]: CPython frames, registered per process with any BPF object that
//!   includes `coolbpf/python.bpf.h`.
//! - [`ProcessStacks`]: both walkers' processes for one object, registered before their
//!   samples (one process at start, or every new pid a probe sees).
//!
//! # Wiring a probe to it
//!
//! 1. In the BPF C: `#include "coolbpf/unwind.bpf.h"`, then
//!    `n = coolbpf_unwind_user(coolbpf_user_regs(), buf, max)` (`buf`: room for `max`
//!    u64s, `max <= COOLBPF_UNWIND_MAX_FRAMES` (127); returns the frame count, 0 for a
//!    kernel thread). `coolbpf_user_regs()` is the task's saved user registers, right in
//!    any hook (a perf sample in kernel mode, sched_switch, a syscall tracepoint); a
//!    uprobe can pass its own `ctx`.
//! 2. Before load, size the rows map: `ObjectBuilder::max_entries(ROWS_MAP, rows)` (and
//!    [`PROCESSES_MAP`] for more than 1024 processes).
//! 3. After load: `NativeUnwinder::new(&object)`, then [`NativeUnwinder::register`] each
//!    process whose stacks are wanted (before its samples: an unregistered process
//!    unwinds by frame pointers, and every such step is counted), and
//!    [`NativeUnwinder::forget_exited`] now and then.
//! 4. The counts land in the object's loss map: `KernelLosses::stack_truncated`,
//!    `unwind_fallback` (frame-pointer steps), `read` (a fault mid-stack ended a walk).

mod files;
mod layout;
mod native;
mod options;
mod processes;
pub mod python;
mod records;
mod store;

pub use layout::{MAX_MAPPINGS, PROCESSES_MAP, ROWS_MAP, WANTED_MAP};
pub use native::{NativeUnwinder, Registration, UnwindStats};
pub use options::UnwindMode;
pub(crate) use options::{DEBUG_INFO, UNWIND};
pub use processes::{Notifier, ProcessStacks, Walkers};
pub use records::{profile_from_records, stack_from_record, stack_record};
pub use store::{StackStore, PYTHON_STACKS, USER_STACKS};

use coolbpf_core::Record;
use coolbpf_symbolize::profile::{Profile, StackResolver};
use coolbpf_symbolize::Symbolizer;

/// Heap bytes a probe's symbolizer may keep in parsed files and DWARF units: enough for
/// the hot binaries of a machine, small next to what it profiles.
pub const SYMBOLIZER_CACHE_BYTES: usize = 32 << 20;

/// The symbolizer of the probes that take stacks: a bounded cache, and DWARF only when
/// `debug_info` is asked for.
pub fn symbolizer(debug_info: bool) -> Symbolizer {
    Symbolizer::builder()
        .cache_bytes(SYMBOLIZER_CACHE_BYTES)
        .dwarf(debug_info)
        .build()
}

/// Names the stacks of one interval's `profile` (user addresses now, while the processes
/// run; kernel addresses from what the resolver keeps) and appends them to `out` as stack
/// records of `probe`, stamped `ts_ns`. User locations are then forgotten: memory stays
/// bounded, and a reused pid is never named after the process that had it before.
pub fn emit_interval(
    resolver: &mut StackResolver,
    probe: &str,
    profile: &Profile,
    ts_ns: u64,
    out: &mut Vec<Record>,
) {
    if profile.is_empty() {
        return;
    }
    resolver.resolve_user(profile);
    resolver.resolve_kernel(profile);
    let stacks = resolver.stacks(profile);
    out.extend(
        stacks
            .iter()
            .map(|stack| Record::Stack(stack_record(probe, stack, ts_ns))),
    );
    resolver.forget_processes();
}
