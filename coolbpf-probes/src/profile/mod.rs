//! `profile`: on-CPU stack sampling, kernel and user, on every CPU, one process or one
//! cgroup.
//!
//! Hook: a sampling perf event (`cpu-clock`, or `cycles` where the kernel has a hardware
//! PMU) at a fixed frequency (99 Hz by default), on every online CPU or on each thread of
//! one process. The BPF program (`bpf/profile.bpf.c`) filters first (idle task, pid,
//! cgroup id), so a sample it does not want costs a few loads and no stack walk; then it
//! takes the kernel and user stacks with `bpf_get_stack` (up to 127 frames each, the
//! kernel's `perf_event_max_stack` default) and sends one record per sample through a ring
//! buffer. Userspace aggregates the samples into a [`Profile`] and symbolizes each
//! distinct address once.
//!
//! # Why one record per sample, not aggregation in the kernel
//!
//! bcc's `profile` aggregates in the kernel: stack ids from a `BPF_MAP_TYPE_STACK_TRACE`
//! map, counted in a hash keyed by (pid, kernel stack id, user stack id). Stack-id maps
//! are hash tables of stacks without collision handling: two stacks with the same hash
//! bucket replace each other or fail with `-EEXIST`, silently corrupting or dropping
//! samples, and the map has to be sized for the number of distinct stacks up front. Keying
//! a hash map by the stacks themselves avoids collisions but makes 2 KiB keys that are
//! hashed and compared on every sample. Sending each sample is simpler and exact:
//!
//! - Cost per sample in the kernel: two `bpf_get_stack` walks (what any stack profiler,
//!   perf included, pays) plus a copy of the frames actually captured (a few hundred
//!   bytes) into the ring buffer. perf itself writes every sample, with its callchain, to a
//!   ring buffer that `perf record` copies to a file, so this is no more kernel work than
//!   perf's, and less user work (nothing is written to disk).
//! - Volume: at 99 Hz a CPU produces 99 records a second, about 30 KB/s with typical stack
//!   depths; a 64-CPU machine fully busy, 2 MB/s. The ring is sized for about a second of
//!   deep stacks from every CPU (256 KiB to 64 MiB).
//! - Wake-ups: none per sample. The BPF side wakes the reader only when a quarter of the
//!   ring is in use; otherwise the ring is drained when a profile is asked for (every
//!   second by `coolbpf profile`, every interval by the plugin). So the profiler costs a
//!   few context switches a second, not one per sample.
//! - Nothing is lost silently: a full ring counts `ringbuf_reserve` losses, a failed stack
//!   walk counts `stack` (the sample is still counted, with that half empty), a record
//!   that does not decode counts a decode error; all in [`Profiler::losses`].
//! - Memory in userspace grows with distinct stacks, not samples.
//!
//! # Counts
//!
//! With `cpu-clock` the kernel maps the frequency to a fixed period (1/99 s), and a
//! CPU's timer only runs while that CPU is busy (an idle CPU is not ticked), so a thread
//! that runs for T seconds gets about `frequency × T` samples, whether the events are per
//! CPU or per thread. With `cycles` the kernel adjusts the period to approach the
//! frequency, so counts follow it more loosely.
//!
//! # User stacks
//!
//! User stacks are walked by CFI by default ([`UnwindMode::Cfi`](crate::stacks::UnwindMode::Cfi), option `unwind=cfi`):
//! each process's executable files get unwind tables compiled from their `.eh_frame`
//! ([`crate::stacks::NativeUnwinder`]), and the BPF program walks them frame by frame,
//! taking frame-pointer steps where no table covers the pc (each one counted as
//! `unwind_fallback`). With `--pid` the process is registered before sampling starts;
//! on every CPU, each new pid seen in a sample is registered by a background thread,
//! and its first samples are frame-pointer walks. `unwind=fp` walks by frame pointers
//! only, as perf's default `--call-graph fp`: code compiled without them (Debian's libc,
//! Rust release builds by default) shows its innermost frame and then stops or goes
//! astray. Addresses of a process are symbolized
//! while it runs ([`ProfileSession::tick`]); one that exits before that shows
//! `[unknown]`.
//!
//! [`ProfileSession`] runs this probe or `offcpu` over a whole run, the same way for
//! both.
//!
//! # Example
//!
//! ```no_run
//! use coolbpf_probes::profile::{ProfileConfig, ProfileSession};
//!
//! # fn main() -> coolbpf_core::Result<()> {
//! let mut session = ProfileSession::start(&ProfileConfig::default())?;
//! for _ in 0..10 {
//!     std::thread::sleep(std::time::Duration::from_secs(1));
//!     session.tick()?;
//! }
//! let result = session.finish()?;
//! print!("{}", result.profile.top(10));
//! std::fs::write("flame.svg", result.profile.flamegraph(&Default::default()).unwrap()).unwrap();
//! # Ok(()) }
//! ```

mod cgroup;
mod config;
mod plugin;
mod profiler;
mod reader;
mod sample;
mod session;
mod sink;

pub use cgroup::cgroup_id;
pub use config::{ProfileConfig, DEFAULT_INTERVAL, OPTIONS};
pub use plugin::ProfilePlugin;
pub use profiler::Profiler;
pub use sample::MAX_DEPTH;
pub use session::{Measured, ProfileKind, ProfileSession, SessionResult};
pub use sink::{ProfileFileSink, ProfileFormat};

/// The profile types this module hands out and takes, from coolbpf-symbolize (so that
/// users of the facade crate need no second dependency to name them).
pub use coolbpf_symbolize::profile::{
    FlameGraphOptions, PprofOptions, Profile, Sample, StackResolver, SymbolizedProfile,
    SymbolizedStack,
};

/// The probe's name in the registry and in its records.
pub const NAME: &str = "profile";
