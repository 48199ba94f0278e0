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

pub mod execsnoop;
pub mod options;
pub mod registry;
pub mod syscount;

pub use options::{OptionSpec, ProbeOptions};
pub use registry::{find, probes, Availability, Category, ProbeInfo};
