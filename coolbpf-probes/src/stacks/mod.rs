//! `stacks`: how probes take user stacks. Frame pointers come from `bpf_get_stack`; for
//! code built without them, [`NativeUnwinder`] feeds the in-kernel CFI unwinder of
//! `coolbpf/unwind.bpf.h` (tables compiled by `coolbpf_symbolize::unwind`).
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

pub use layout::{MAX_MAPPINGS, PROCESSES_MAP, ROWS_MAP};
pub use native::{NativeUnwinder, Registration, UnwindStats};
