//! `offcpu`: where tasks wait off the CPU, as time by kernel and user stack.
//!
//! Hook: `sched:sched_switch` (tp_btf, else raw_tp, else the classic tracepoint). When a
//! task is switched out it is still the current task, so its kernel and user stacks (up
//! to 127 frames each) are captured then, with a timestamp; when it is switched in again
//! the time it was away is added to its (process, thread, stacks) entry, if it lies
//! within `[min_us, max_us]`. Blocked and preempted tasks both count, so off-CPU time
//! includes the run-queue wait after a wakeup.
//!
//! [`OffCpu::take`] gives the raw stacks as a [`Profile`] weighted in microseconds, what
//! grew since the last call: the profile session (`coolbpf profile --off-cpu`,
//! `coolbpf.Profiler(off_cpu=True)`, `coolbpf_profile_start` with `off_cpu`) adds them up,
//! the plugin emits each interval's as symbolized
//! [`StackSample`](coolbpf_core::StackSample)s.

mod stacks;

use std::collections::HashMap;

use coolbpf_core::stream::KernelLosses;
use coolbpf_core::{
    labels, BpfObject, Error, MapView, Metric, ObjectBuilder, Plugin, PluginContext, Record, Result,
};
use coolbpf_symbolize::profile::{Profile, StackResolver};
use coolbpf_symbolize::PythonFrame;

pub use stacks::OffCpuStack;

use crate::options::{OptionSpec, ProbeOptions};
use crate::sched::{monotonic_ns, HookKind, Roles, SchedCounters, HOOK};
use crate::stacks::python::PYTHON;
use crate::stacks::{
    emit_interval, symbolizer, Notifier, ProcessStacks, StackStore, UnwindMode, Walkers,
    DEBUG_INFO, PYTHON_STACKS, UNWIND, USER_STACKS,
};

static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/offcpu.bpf.o"));

/// The probe's name in the registry and in its records.
pub const NAME: &str = "offcpu";

const ROLES: [&str; 1] = ["switch"];

const MIN_US: OptionSpec = OptionSpec {
    name: "min_us",
    help: "count off-CPU spans of at least this many microseconds (a number)",
    default: "1",
};

const MAX_US: OptionSpec = OptionSpec {
    name: "max_us",
    help:
        "count off-CPU spans of at most this many microseconds (a number, >= min_us; 0: no limit)",
    default: "0",
};

const STACKS: OptionSpec = OptionSpec {
    name: "stack_entries",
    help: "capacity of the stack table; stacks beyond it are counted as lost (a number)",
    default: "16384",
};

/// Options `offcpu` accepts besides `--pid`.
pub const OPTIONS: &[OptionSpec] = &[MIN_US, MAX_US, STACKS, UNWIND, PYTHON, DEBUG_INFO, HOOK];

/// How to run `offcpu`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffCpuConfig {
    /// Watch only this process (tgid); `None` watches every task but the idle ones.
    pub pid: Option<u32>,
    /// Shortest off-CPU span counted, µs.
    pub min_us: u64,
    /// Longest off-CPU span counted, µs (`None`: no limit).
    pub max_us: Option<u64>,
    /// Capacity of the stack tables (distinct kernel, user and Python stacks).
    pub stack_entries: u32,
    /// How user stacks are walked.
    pub unwind: UnwindMode,
    /// Whether CPython frames are walked too.
    pub python: bool,
    /// The plugin symbolizes with DWARF (inlined frames, source lines); off, from symbol
    /// tables only (see [`ProfileConfig::debug_info`](crate::profile::ProfileConfig)).
    pub debug_info: bool,
    /// Which kind of hook to attach with.
    pub hook: HookKind,
}

impl Default for OffCpuConfig {
    fn default() -> Self {
        Self {
            pid: None,
            min_us: 1,
            max_us: None,
            stack_entries: 16384,
            unwind: UnwindMode::Cfi,
            python: true,
            debug_info: true,
            hook: HookKind::Auto,
        }
    }
}

impl OffCpuConfig {
    /// The config described by registry options.
    pub fn from_options(options: &ProbeOptions) -> Result<Self> {
        options.check(NAME, OPTIONS)?;
        let max_us: u64 = options.get(&MAX_US)?;
        let config = Self {
            pid: options.pid,
            min_us: options.get(&MIN_US)?,
            max_us: (max_us != 0).then_some(max_us),
            stack_entries: options.get(&STACKS)?,
            unwind: options.get(&UNWIND)?,
            python: options.get(&PYTHON)?,
            debug_info: options.get(&DEBUG_INFO)?,
            hook: options.get(&HOOK)?,
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        if self.max_us.is_some_and(|max| max < self.min_us) {
            return Err(Error::InvalidArgument(format!(
                "option max_us={}: {} (min_us is {})",
                self.max_us.unwrap_or_default(),
                MAX_US.help,
                self.min_us
            )));
        }
        if self.stack_entries == 0 {
            return Err(Error::InvalidArgument(format!(
                "option stack_entries=0: {}",
                STACKS.help
            )));
        }
        Ok(())
    }
}

/// A running `offcpu`.
#[derive(Debug)]
pub struct OffCpu {
    object: BpfObject,
    counts: MapView,
    stacks: MapView,
    counters: MapView,
    store: StackStore,
    /// The stack walkers' processes; `None` when neither walker is on.
    walkers: Option<ProcessStacks>,
    /// Hands each pid seen to `walkers` (all tasks: each new one is registered).
    notify: Option<Notifier>,
    pid: Option<u32>,
    programs: Vec<String>,
    /// Off-CPU time of each entry already handed out by [`take`](Self::take).
    taken_ns: HashMap<EntryKey, u64>,
    /// Entries of the last read whose user or Python stack had been evicted.
    evicted: u64,
}

/// Identifies one stack entry across reads.
type EntryKey = (u32, u32, Vec<u64>, Vec<u64>, Vec<PythonFrame>);

impl OffCpu {
    /// Loads and attaches the probe.
    pub fn start(config: &OffCpuConfig) -> Result<Self> {
        config.validate()?;
        let roles = Roles::new(&ROLES, config.hook);
        let walkers = Walkers {
            cfi: config.unwind == UnwindMode::Cfi,
            python: config.python,
        };
        let builder = walkers
            .size_maps(ObjectBuilder::from_bytes(OBJECT))
            .global("coolbpf_filter_tgid", &config.pid.unwrap_or(0))
            .global("min_block_ns", &config.min_us.saturating_mul(1000))
            .global(
                "max_block_ns",
                &config
                    .max_us
                    .map_or(u64::MAX, |max| max.saturating_mul(1000)),
            )
            .global("unwind_cfi", &u8::from(walkers.cfi))
            .global("python_frames", &u8::from(walkers.python))
            .max_entries("stacks", config.stack_entries)
            .max_entries(USER_STACKS, config.stack_entries)
            .max_entries(PYTHON_STACKS, (config.stack_entries / 4).max(1));
        let mut object = roles.configure(builder).load()?;
        // Registered before the program runs, so the first stacks are walked right.
        let walkers = ProcessStacks::start(&object, walkers, config.pid)?;
        let notify = walkers.as_ref().map(ProcessStacks::notifier);
        let programs = roles.attach(&mut object)?;
        Ok(Self {
            counts: object.map("offcpu")?,
            stacks: object.map("stacks")?,
            counters: object.map("sched_counters")?,
            store: StackStore::of(&object)?,
            walkers,
            notify,
            pid: config.pid,
            object,
            programs,
            taken_ns: HashMap::new(),
            evicted: 0,
        })
    }

    /// The program attached (`switch_btf`, `switch_raw` or `switch_tp`).
    pub fn programs(&self) -> &[String] {
        &self.programs
    }

    /// Off-CPU time so far by (process, thread, stacks), longest first; cumulative.
    pub fn stacks(&mut self) -> Result<Vec<OffCpuStack>> {
        let read = stacks::read(&self.counts, &self.stacks, &self.store)?;
        self.evicted = read.evicted;
        Ok(read.stacks)
    }

    /// Entries of the last read whose user or Python stack the stack store had evicted
    /// (it keeps the most recently used ones): their time is shown without that stack.
    pub fn stacks_evicted(&self) -> u64 {
        self.evicted
    }

    /// The off-CPU time that grew since the last call (since start, the first time) as
    /// a profile of raw stacks, weights in microseconds. Growth under a microsecond waits
    /// until it adds up to one, so nothing is lost to rounding.
    pub fn take(&mut self) -> Result<Profile> {
        if let (Some(walkers), Some(pid)) = (&self.walkers, self.pid) {
            // Libraries the process loaded since get their tables.
            walkers.refresh(pid)?;
        }
        let mut profile = Profile::new();
        for stack in self.stacks()? {
            if let Some(notify) = &mut self.notify {
                notify.saw(stack.pid);
            }
            let key = (
                stack.pid,
                stack.tid,
                stack.kernel_ips.clone(),
                stack.user_ips.clone(),
                stack.python.clone(),
            );
            let taken = self.taken_ns.entry(key).or_insert(0);
            let grown_us = stack.total_ns.saturating_sub(*taken) / 1000;
            if grown_us > 0 {
                *taken = taken.saturating_add(grown_us * 1000);
                profile.add(stack.sample(grown_us));
            }
        }
        Ok(profile)
    }

    /// Switches seen and off-CPU spans counted.
    pub fn counters(&self) -> Result<SchedCounters> {
        SchedCounters::read(&self.counters)
    }

    /// Kernel-side losses (stacks not captured, full tables).
    pub fn losses(&self) -> Result<KernelLosses> {
        KernelLosses::read(&self.object)
    }

    /// Detaches the program; what was measured stays readable.
    pub fn stop(&mut self) {
        self.object.detach_all();
    }
}

/// `offcpu` as a runtime plugin: every interval, one symbolized stack sample per stack
/// whose off-CPU time grew, weighing the microseconds it grew by; plus
/// `sched_switch_total` and the loss counters.
#[derive(Debug)]
pub struct OffCpuPlugin {
    config: OffCpuConfig,
    running: Option<(OffCpu, StackResolver)>,
}

impl OffCpuPlugin {
    /// A plugin that will run with `config`.
    pub fn new(config: OffCpuConfig) -> Self {
        Self {
            config,
            running: None,
        }
    }
}

impl Plugin for OffCpuPlugin {
    fn name(&self) -> &str {
        NAME
    }

    fn start(&mut self, _ctx: &PluginContext) -> Result<()> {
        let resolver = StackResolver::new(symbolizer(self.config.debug_info));
        self.running = Some((OffCpu::start(&self.config)?, resolver));
        Ok(())
    }

    fn collect(&mut self, out: &mut Vec<Record>) -> Result<()> {
        let Some((offcpu, resolver)) = &mut self.running else {
            return Ok(());
        };
        let grown = offcpu.take()?;
        emit_interval(resolver, NAME, &grown, monotonic_ns(), out);
        let counters = offcpu.counters()?;
        out.push(counters.to_metric(NAME).into());
        out.push(
            Metric::counter(NAME, "off_cpu_spans_total", labels! {}, counters.measured).into(),
        );
        let evicted = offcpu.stacks_evicted();
        out.push(Metric::gauge(NAME, "stacks_evicted", labels! {}, evicted as f64).into());
        out.extend(offcpu.losses()?.to_records(NAME));
        Ok(())
    }

    fn stop(&mut self) -> Result<()> {
        self.running = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        let config = OffCpuConfig::from_options(
            &ProbeOptions::new()
                .with("min_us", "10")
                .with("max_us", "20"),
        )
        .unwrap();
        assert_eq!((config.min_us, config.max_us), (10, Some(20)));
        assert_eq!(
            OffCpuConfig::from_options(&ProbeOptions::new())
                .unwrap()
                .max_us,
            None
        );
        let err = OffCpuConfig::from_options(
            &ProbeOptions::new()
                .with("min_us", "30")
                .with("max_us", "20"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("min_us is 30"), "{err}");
        assert!(OffCpuConfig::from_options(&ProbeOptions::new().with("stacks", "1")).is_err());
        assert!(
            OffCpuConfig::from_options(&ProbeOptions::new().with("stack_entries", "0")).is_err()
        );
    }
}
