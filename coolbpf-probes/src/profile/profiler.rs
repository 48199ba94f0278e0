//! [`Profiler`]: the loaded, attached `profile` program and the profile it builds.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use coolbpf_core::stream::{KernelLosses, Losses};
use coolbpf_core::sys::perf_event::online_cpus;
use coolbpf_core::{
    AttachTarget, BpfObject, Environment, Error, Features, ObjectBuilder, PerfEventConfig,
    PerfEventKind, PerfEventScope, Result, Sampling,
};
use coolbpf_symbolize::Profile;

use super::cgroup::cgroup_id;
use super::reader::SampleReader;
use super::sample::RawSample;
use super::ProfileConfig;
use crate::stacks::UnwindMode;
use crate::stacks::{ProcessStacks, UnwindStats, Walkers};

static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/profile.bpf.o"));

const PROGRAM: &str = "on_sample";
const RING: &str = "samples";

/// Ring bytes budgeted per sample when sizing the ring: the 48-byte header plus about
/// 120 frames; most stacks are much shallower, so this leaves room.
const BYTES_PER_SAMPLE: u64 = 1024;
/// Bounds on the automatically sized ring.
const MIN_RING: u64 = 256 << 10;
const MAX_RING: u64 = 64 << 20;
/// Threads of one process given a perf event of their own, at most.
const MAX_THREADS: usize = 8192;

/// What the consumer thread and the caller share.
#[derive(Debug, Default)]
struct Shared {
    profile: Mutex<Profile>,
    samples: AtomicU64,
    last_ts_ns: AtomicU64,
}

impl Shared {
    fn add(&self, raw: RawSample) {
        self.samples.fetch_add(1, Ordering::Relaxed);
        self.last_ts_ns.fetch_max(raw.ts_ns, Ordering::Relaxed);
        self.lock().add(raw.sample);
    }

    /// A panic while holding the lock cannot leave a `Profile` half-merged (a merge is a
    /// map insert or an addition), so a poisoned lock is still usable.
    fn lock(&self) -> MutexGuard<'_, Profile> {
        self.profile.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running on-CPU profiler: perf events attached, samples aggregated in memory.
///
/// [`profile`](Self::profile) and [`take_profile`](Self::take_profile) first drain the
/// ring buffer, so they hold every sample the kernel had sent when they were called;
/// [`stop`](Self::stop) drains what is left after detaching.
pub struct Profiler {
    // Field order is drop order: the reader stops before the object unloads.
    reader: SampleReader,
    /// The stack walkers' processes (CFI tables, CPython offsets); `None` when neither
    /// walker is on.
    stacks: Option<ProcessStacks>,
    object: BpfObject,
    shared: Arc<Shared>,
    event: PerfEventKind,
    frequency: u64,
    pid: Option<u32>,
    cgroup_id: Option<u64>,
    /// Threads with a perf event of their own (pid mode).
    threads: BTreeSet<u32>,
}

impl std::fmt::Debug for Profiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profiler")
            .field("event", &self.event)
            .field("frequency", &self.frequency)
            .field("pid", &self.pid)
            .field("cgroup_id", &self.cgroup_id)
            .field("threads", &self.threads.len())
            .finish_non_exhaustive()
    }
}

impl Profiler {
    /// Loads the program and attaches it: to every online CPU, or to each thread of
    /// `config.pid`.
    pub fn start(config: &ProfileConfig) -> Result<Self> {
        config.validate()?;
        if let Some(pid) = config.pid {
            Environment::require_process(pid)?;
        }
        let cgroup_id = config.cgroup.as_deref().map(cgroup_id).transpose()?;
        let cpus = online_cpus()?.len().max(1) as u64;
        let ring = ring_bytes(config, cpus)?;
        let cfi = config.user_stacks && config.unwind == UnwindMode::Cfi;
        let python = config.python && config.user_stacks;
        let walkers = Walkers { cfi, python };
        let object = walkers
            .size_maps(ObjectBuilder::from_bytes(OBJECT))
            .global("coolbpf_filter_tgid", &config.pid.unwrap_or(0))
            .global("filter_cgroup_id", &cgroup_id.unwrap_or(0))
            .global("include_idle", &u8::from(config.include_idle))
            .global("kernel_stacks", &u8::from(config.kernel_stacks))
            .global("user_stacks", &u8::from(config.user_stacks))
            .global("unwind_cfi", &u8::from(cfi))
            .global("python_stacks", &u8::from(python))
            .global("wakeup_bytes", &u64::from(ring / 4))
            .max_entries(RING, ring)
            .load()?;
        let stacks = ProcessStacks::start(&object, walkers, config.pid)?;
        let mut notify = stacks.as_ref().map(ProcessStacks::notifier);
        let shared = Arc::new(Shared::default());
        let sink = Arc::clone(&shared);
        let reader = SampleReader::start(&object.map(RING)?, move |raw: RawSample| {
            if let Some(notify) = notify.as_mut() {
                notify.saw(raw.sample.pid);
            }
            sink.add(raw);
        })?;
        let mut profiler = Self {
            reader,
            stacks,
            object,
            shared,
            event: PerfEventKind::CpuClock,
            frequency: config.frequency,
            pid: config.pid,
            cgroup_id,
            threads: BTreeSet::new(),
        };
        profiler.attach(config)?;
        Ok(profiler)
    }

    /// Attaches with the configured event, or with the best one that opens: `cycles`
    /// where Features reports a PMU, `cpu-clock` when cycles cannot be opened after all
    /// (a PMU taken by another user, a paranoid setting for hardware events).
    fn attach(&mut self, config: &ProfileConfig) -> Result<()> {
        let candidates = match config.event {
            Some(kind) => vec![kind],
            None if Features::detect()?.require("perf_event_hardware").is_ok() => {
                vec![PerfEventKind::Cycles, PerfEventKind::CpuClock]
            }
            None => vec![PerfEventKind::CpuClock],
        };
        let mut last = None;
        for kind in candidates {
            self.event = kind;
            let attached = match self.pid {
                Some(pid) => self.follow_threads().and_then(|added| {
                    if added == 0 {
                        Err(no_process(pid))
                    } else {
                        Ok(())
                    }
                }),
                None => self
                    .object
                    .attach(PROGRAM, &self.target(PerfEventScope::AllCpus)),
            };
            match attached {
                Ok(()) => return Ok(()),
                Err(err) => {
                    self.object.detach_all();
                    self.threads.clear();
                    last = Some(err);
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::InvalidArgument("no perf event to sample on".into())))
    }

    fn target(&self, scope: PerfEventScope) -> AttachTarget {
        AttachTarget::PerfEvent(PerfEventConfig {
            kind: self.event,
            sampling: Sampling::Frequency(self.frequency),
            scope,
        })
    }

    /// In pid mode, gives every thread of the process that has none yet a perf event of
    /// its own, returning how many were added. Threads started after [`start`](Self::start)
    /// are only sampled once this has run; the plugin and `coolbpf profile` call it every
    /// interval and every second. A process that has exited adds none; outside pid mode
    /// this does nothing.
    pub fn follow_threads(&mut self) -> Result<usize> {
        let Some(pid) = self.pid else {
            return Ok(0);
        };
        let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return Ok(0);
        };
        let tids: Vec<u32> = entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        let mut added = 0;
        for tid in tids {
            if self.threads.contains(&tid) || self.threads.len() >= MAX_THREADS {
                continue;
            }
            let target = self.target(PerfEventScope::Pid(tid as i32));
            match self.object.attach(PROGRAM, &target) {
                Ok(()) => {
                    self.threads.insert(tid);
                    added += 1;
                }
                // The thread exited between the listing and the open.
                Err(err) if err.errno() == Some(libc::ESRCH) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(added)
    }

    /// In pid mode with CFI unwinding, registers the process again, so that libraries it
    /// loaded since start get their tables (the plugin and `coolbpf profile` call this
    /// every interval). Otherwise this does nothing.
    pub fn refresh_unwinding(&self) -> Result<()> {
        match (&self.stacks, self.pid) {
            (Some(stacks), Some(pid)) => stacks.refresh(pid),
            _ => Ok(()),
        }
    }

    /// What CFI unwinding has registered and compiled; `None` with `unwind=fp`.
    pub fn unwind_stats(&self) -> Option<UnwindStats> {
        self.stacks.as_ref().and_then(ProcessStacks::unwind_stats)
    }

    /// The loaded BPF object (its maps and programs, e.g. for run-time statistics).
    pub fn object(&self) -> &BpfObject {
        &self.object
    }

    /// The processes whose Python frames could not be walked, with why (an unsupported
    /// CPython, a process that exited before it was registered); empty with `python`
    /// off.
    pub fn python_failures(&self) -> Vec<(u32, String)> {
        self.stacks
            .as_ref()
            .map_or_else(Vec::new, ProcessStacks::python_failures)
    }

    /// The event sampled on.
    pub fn event(&self) -> PerfEventKind {
        self.event
    }

    /// Samples per second, per CPU or per thread.
    pub fn frequency(&self) -> u64 {
        self.frequency
    }

    /// The cgroup id samples are filtered on, when a cgroup was given.
    pub fn cgroup_id(&self) -> Option<u64> {
        self.cgroup_id
    }

    /// How many perf events are attached (one per CPU, or one per thread).
    pub fn perf_events(&self) -> usize {
        self.object.attachment_count()
    }

    /// Samples received since start, as of the last drain (every call below drains).
    pub fn sample_count(&self) -> u64 {
        self.shared.samples.load(Ordering::Relaxed)
    }

    /// Reads what the kernel has sent so far, so that [`sample_count`](Self::sample_count)
    /// and [`last_sample_ns`](Self::last_sample_ns) are current.
    pub fn drain(&self) -> Result<()> {
        self.reader.drain()
    }

    /// Kernel monotonic time (ns) of the latest sample received, 0 before the first.
    pub fn last_sample_ns(&self) -> u64 {
        self.shared.last_ts_ns.load(Ordering::Relaxed)
    }

    /// The samples taken since start (or since the last
    /// [`take_profile`](Self::take_profile)), aggregated; the profiler keeps them.
    pub fn profile(&self) -> Result<Profile> {
        self.drain()?;
        Ok(self.shared.lock().clone())
    }

    /// Like [`profile`](Self::profile), but hands the samples over: the next profile
    /// starts empty. This is how the plugin makes one profile per interval.
    pub fn take_profile(&self) -> Result<Profile> {
        self.drain()?;
        Ok(std::mem::take(&mut *self.shared.lock()))
    }

    /// Received and lost counts: ring buffer reservations that failed
    /// (`kernel.ringbuf_reserve`), stack captures that failed (`kernel.stack`: those
    /// samples are kept, with the half that failed left empty), user stacks cut at the
    /// depth limit (`kernel.stack_truncated`), frame-pointer steps of the CFI unwinder
    /// (`kernel.unwind_fallback`), faults mid-stack (`kernel.read`), and records that did
    /// not decode.
    pub fn losses(&self) -> Result<Losses> {
        let counters = self.reader.counters();
        let received = counters.received.load(Ordering::Relaxed);
        let decode_errors = counters.decode_errors.load(Ordering::Relaxed);
        Ok(Losses {
            received,
            delivered: received.saturating_sub(decode_errors),
            kernel: KernelLosses::read(&self.object)?,
            perf_lost: 0,
            channel_overflow: 0,
            decode_errors,
        })
    }

    /// Detaches every perf event, then drains the ring buffer: every sample taken is in
    /// [`profile`](Self::profile) afterwards. Idempotent.
    pub fn stop(&mut self) -> Result<()> {
        self.object.detach_all();
        self.reader.stop()
    }
}

fn no_process(pid: u32) -> Error {
    Error::NotFound {
        what: "process",
        name: pid.to_string(),
        known: Vec::new(),
    }
}

/// The ring buffer size in bytes: as configured, or room for about a second of deep
/// stacks from every CPU, a power of two within [`MIN_RING`, `MAX_RING`].
fn ring_bytes(config: &ProfileConfig, cpus: u64) -> Result<u32> {
    if let Some(kb) = config.buffer_kb {
        return kb
            .checked_mul(1024)
            .ok_or_else(|| Error::InvalidArgument(format!("option buffer_kb={kb}: too large")));
    }
    let per_second = config
        .frequency
        .saturating_mul(cpus)
        .saturating_mul(BYTES_PER_SAMPLE);
    let bytes = per_second
        .clamp(MIN_RING, MAX_RING)
        .next_power_of_two()
        .min(MAX_RING);
    Ok(u32::try_from(bytes).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_grows_with_rate_and_cpus_within_bounds() {
        let at = |frequency, buffer_kb| ProfileConfig {
            frequency,
            buffer_kb,
            ..ProfileConfig::default()
        };
        assert_eq!(ring_bytes(&at(99, None), 2).unwrap(), 256 << 10);
        assert_eq!(ring_bytes(&at(999, None), 64).unwrap(), 64 << 20);
        assert_eq!(ring_bytes(&at(99, None), 16).unwrap(), 2 << 20);
        assert_eq!(ring_bytes(&at(99_999, None), 4096).unwrap(), 64 << 20);
        assert_eq!(ring_bytes(&at(99, Some(64)), 2).unwrap(), 64 << 10);
        assert!(ring_bytes(&at(99, Some(1 << 23)), 2).is_err());
    }
}
