//! coolbpf-probes: the probe catalogue.
//!
//! Each probe is one module: its BPF C under `bpf/`, a `Config`, typed events or counts,
//! and a [`Plugin`](coolbpf_core::Plugin) for the runtime, registered in [`registry`] with
//! the hooks it uses and the kernel features it needs. Every probe works on kernels without
//! kprobes or fentry: tracepoints come first.
//!
//! | probe | what it shows | hook |
//! |---|---|---|
//! | [`syscount`] | system calls per process and syscall | `raw_syscalls:sys_enter` |
//! | [`execsnoop`] | every successful exec, with its args | `sched:sched_process_exec` |
//! | [`runqlat`] | run-queue latency histograms (total, per CPU, per process) | `sched:sched_wakeup`, `sched:sched_wakeup_new`, `sched:sched_switch` |
//! | [`cpudist`] | on-CPU time histograms (total, per process) | `sched:sched_switch` |
//! | [`runqslower`] | each run-queue wait above a threshold, with the task it waited behind | `sched:sched_wakeup`, `sched:sched_wakeup_new`, `sched:sched_switch` |
//! | [`offcpu`] | off-CPU time by kernel and user stack | `sched:sched_switch` |
//! | [`hardirqs`] | time in hard interrupt handlers, per IRQ | `irq:irq_handler_entry`, `irq:irq_handler_exit` |
//! | [`softirqs`] | time in soft interrupt handlers, per vector | `irq:softirq_entry`, `irq:softirq_exit` |
//! | [`nosched`] | tasks in kernel mode without rescheduling beyond a threshold, with their stack | `perf_event` (`cpu-clock`), `sched:sched_switch`, `raw_syscalls:sys_exit` |
//! | [`profile`] | on-CPU stacks (kernel and user) sampled at a fixed rate, symbolized | `perf_event` (`cpu-clock` or `cycles`) |
//!
//! The IO, memory and network probes live in their areas: [`io`], [`mem`] and [`net`],
//! each with its table.
//!
//! Every probe that takes user stacks takes them through one layer, [`stacks`]: CFI
//! unwinding in the kernel for code without frame pointers, CPython 3.10-3.13 frames read
//! from the running interpreter, a stack store for probes that aggregate by stack in the
//! kernel, and the one symbolizing path. [`profile::ProfileSession`] runs `profile` or
//! `offcpu` over a whole run, for every face (CLI, Python, C).
//!
//! # Example: count one process's system calls
//!
//! ```no_run
//! use coolbpf_probes::syscount::{Syscount, SyscountConfig};
//!
//! # fn main() -> coolbpf_core::Result<()> {
//! let syscount = Syscount::start(&SyscountConfig { pid: Some(4242), ..Default::default() })?;
//! std::thread::sleep(std::time::Duration::from_secs(1));
//! for count in syscount.counts()?.iter().take(5) {
//!     println!("{:>8} {:<16} {}", count.count, count.name, count.comm);
//! }
//! # Ok(()) }
//! ```

pub mod cpudist;
pub mod event_probe;
pub mod execsnoop;
pub mod hardirqs;
pub mod io;
pub mod mem;
pub mod net;
pub mod nosched;
pub mod offcpu;
pub mod options;
pub mod probe_plugin;
pub mod profile;
pub mod registry;
pub mod runqlat;
pub mod runqslower;
pub mod sched;
pub mod session;
pub mod softirqs;
pub mod stacks;
pub mod syscount;

pub use options::{OptionSpec, ProbeOptions};
pub use registry::{Availability, Catalogue, Category, ProbeInfo, AREAS, CATALOGUE};
pub use session::ProbeSession;
