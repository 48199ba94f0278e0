//! `gpudriver`: hangs of the GPU driver, seen from outside the process. No library and
//! no GPU needed to run it: it watches the device files.
//!
//! Three detectors, each reported once per hang, with the thread's kernel stack where it
//! is blocked (read from `/proc/PID/task/TID/stack`, which needs root; a report says why
//! when it could not be read) and the Xid join below:
//!
//! - **An ioctl on a device file in flight longer than T** (`threshold_ms`, default 5000):
//!   hooks `raw_syscalls:sys_enter` and `sys_exit` (tp_btf, else raw_tp, else the classic
//!   tracepoint). The BPF side looks only at ioctls on the (process, fd) pairs userspace
//!   lists in its `watched_fds` table, counts them per device and keeps each one in
//!   flight in a table keyed by thread until it returns. Each interval that table is
//!   read; a call older than T is reported (`hang: ioctl`) with pid, tid, comm, fd, the
//!   device path, the ioctl request (`cmd`, hex), `blocked_ms` and the thread's `state`.
//!   The stack is taken at report time, where the thread is stuck, not at entry. When
//!   it returns at last, `hang: ioctl_returned` gives the whole time (and `ret`); a call
//!   slower than T that returns before any check saw it gets only that report, with
//!   `seen_blocked: 0`.
//! - **A thread of a watched process in D state longer than T**: each interval the
//!   threads of every process with a device open are read from `/proc/PID/task/*/stat`
//!   (see [`dstate`]); `hang: d_state` with `d_state_ms`. A thread inside a watched ioctl
//!   is left to the ioctl detector (its report has `state: D`).
//! - **The kernel's hung-task detector**: `sched:sched_process_hang` fires for a task in D
//!   state past `kernel.hung_task_timeout_secs` (120 s by default); each one is reported
//!   at once (`hang: hung_task`, with `watched`: whether its process has a device open).
//!
//! **The fd watch** ([`fds`]): the device files are those whose path starts with one of
//! the `devices` prefixes (default `/dev/nvidia`, comma-separated). `/proc/*/fd` (or
//! only `--pid`'s) is scanned at start and every interval: new fds are added to the
//! kernel's table, closed ones dropped. A process that opens a device after the probe
//! started is watched from the next interval on; its ioctls before that are not seen.
//!
//! **The Xid join** ([`xid_join`]): every report carries `xid`, the Xid 79 (fallen off
//! the bus) and 119/120 (GSP timeout, GSP error) lines of the kernel log from the last
//! `xid_minutes` (default 10), read with the `xid` probe's `/dev/kmsg` reader and parser,
//! and its `summary` ends with what they mean ("...; and the GPU fell off the bus (Xid
//! 79 at 0000:3b:00)").
//!
//! **Latency**: a hang is reported between T and T plus one interval after it began (D
//! state: plus two, as it is sampled); hung tasks when the kernel says so.
//!
//! Every interval: `gpu_driver_hangs_total{hang=ioctl|d_state|hung_task}`,
//! `gpu_driver_ioctls_total{device}` (every watched ioctl, quick ones too),
//! `gpu_driver_ioctls_in_flight`, `gpu_driver_watched_fds`, `gpu_driver_fds_not_watched`
//! (fds beyond `max_fds`), `gpu_driver_threads_in_d_state`, and the loss counters.

mod check;
mod config;
pub mod dstate;
pub mod event;
pub mod fds;
mod probe;
pub mod proc;
pub mod report;
pub mod xid_join;

pub use config::{DriverConfig, OPTIONS};
pub use probe::{GpuDriver, GpuDriverPlugin};

/// The probe's name in the registry and in its records.
pub const NAME: &str = "gpudriver";
