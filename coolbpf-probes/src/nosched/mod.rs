//! `nosched`: tasks that stay in kernel mode without rescheduling for longer than a
//! threshold (default 10 ms), as SysAK's nosched finds them, but without kprobes.
//!
//! Hooks: a `perf_event` cpu-clock sample on every CPU (default 1000 Hz), plus
//! `sched:sched_switch` and `raw_syscalls:sys_exit` (tp_btf, else raw_tp, else classic
//! tracepoints), which mark where a task's kernel stint begins (it is switched in) and
//! ends (it returns to user mode). A sample that finds the current task in kernel mode
//! for at least the threshold reports it once per stint, with the sampled kernel stack.
//! Durations are lower bounds, exact to the sampling period.

mod event;

use coolbpf_core::stream::Delivery;
use coolbpf_core::{
    AttachTarget, Error, MapView, ObjectBuilder, PerfEventConfig, PerfEventKind, PerfEventScope,
    PluginContext, Record, Result, Sampling,
};
use coolbpf_symbolize::Symbolizer;

pub use event::NoschedEvent;

use crate::event_probe::{emitting, EventProbe};
use crate::options::{OptionSpec, ProbeOptions};
use crate::probe_plugin::{ProbePlugin, ProbeSource};
use crate::sched::{HookKind, Roles, SchedCounters, HOOK};

static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/nosched.bpf.o"));

/// The probe's name in the registry and in its records.
pub const NAME: &str = "nosched";

const ROLES: [&str; 2] = ["switch", "sys_exit"];

const THRESHOLD_US: OptionSpec = OptionSpec {
    name: "threshold_us",
    help: "report kernel stints without rescheduling of at least this many microseconds (a number >= 1)",
    default: "10000",
};

const FREQ: OptionSpec = OptionSpec {
    name: "freq",
    help: "samples per second on each CPU, 1 to 10000: the resolution of the durations",
    default: "1000",
};

/// Options `nosched` accepts besides `--pid`.
pub const OPTIONS: &[OptionSpec] = &[THRESHOLD_US, FREQ, HOOK];

/// How to run `nosched`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoschedConfig {
    /// Report only this process's tasks (tgid); `None` reports every task.
    pub pid: Option<u32>,
    /// The threshold, µs.
    pub threshold_us: u64,
    /// Samples per second on each CPU.
    pub freq: u64,
    /// Which kind of hook the tracepoints attach with.
    pub hook: HookKind,
}

impl Default for NoschedConfig {
    fn default() -> Self {
        Self {
            pid: None,
            threshold_us: 10_000,
            freq: 1000,
            hook: HookKind::Auto,
        }
    }
}

impl NoschedConfig {
    /// The config described by registry options.
    pub fn from_options(options: &ProbeOptions) -> Result<Self> {
        options.check(NAME, OPTIONS)?;
        let config = Self {
            pid: options.pid,
            threshold_us: options.get(&THRESHOLD_US)?,
            freq: options.get(&FREQ)?,
            hook: options.get(&HOOK)?,
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        if !(1..=10_000).contains(&self.freq) {
            return Err(Error::InvalidArgument(format!(
                "option freq={}: {}",
                self.freq, FREQ.help
            )));
        }
        if self.threshold_us == 0 {
            return Err(Error::InvalidArgument(format!(
                "option threshold_us=0: {}",
                THRESHOLD_US.help
            )));
        }
        Ok(())
    }
}

/// A running `nosched`: an [`EventProbe`] (its readers are reached through `Deref`) and
/// the probe's counters.
pub struct Nosched {
    probe: EventProbe<NoschedEvent>,
    counters: MapView,
}

impl Nosched {
    /// Loads and attaches the probe; findings arrive by `delivery`.
    pub fn start(config: &NoschedConfig, delivery: Delivery<NoschedEvent>) -> Result<Self> {
        config.validate()?;
        let roles = Roles::new(&ROLES, config.hook);
        let builder = ObjectBuilder::from_bytes(OBJECT)
            .global("coolbpf_filter_tgid", &config.pid.unwrap_or(0))
            .global("threshold_ns", &config.threshold_us.saturating_mul(1000));
        let object = roles.configure(builder).load()?;
        let sampling = AttachTarget::PerfEvent(PerfEventConfig {
            kind: PerfEventKind::CpuClock,
            sampling: Sampling::Period(1_000_000_000 / config.freq),
            scope: PerfEventScope::AllCpus,
        });
        let probe = EventProbe::start(object, NoschedEvent::decode, delivery, |object| {
            // Stint boundaries first, so that the first samples already have them.
            let mut programs = roles.attach(object)?;
            object.attach("sample", &sampling)?;
            programs.push("sample".to_owned());
            Ok(programs)
        })?;
        Ok(Self {
            counters: probe.map("sched_counters")?,
            probe,
        })
    }

    /// Switches seen.
    pub fn counters(&self) -> Result<SchedCounters> {
        SchedCounters::read(&self.counters)
    }
}

impl std::ops::Deref for Nosched {
    type Target = EventProbe<NoschedEvent>;

    fn deref(&self) -> &Self::Target {
        &self.probe
    }
}

impl std::ops::DerefMut for Nosched {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.probe
    }
}

impl ProbeSource for Nosched {
    const NAME: &'static str = NAME;
    type Config = NoschedConfig;

    fn start(config: &NoschedConfig, ctx: &PluginContext) -> Result<Self> {
        // Each finding with its kernel stack symbolized (`stack`, root first).
        let symbolizer = Symbolizer::new();
        let delivery = emitting(ctx, move |event: NoschedEvent| {
            let stack = event.stack_names(&symbolizer);
            Record::Event(event.to_event(stack))
        });
        Self::start(config, delivery)
    }

    fn collect(&self, out: &mut Vec<Record>) -> Result<()> {
        out.extend(self.losses()?.to_records(NAME));
        Ok(())
    }

    fn stop(&mut self) -> Result<()> {
        self.probe.stop()
    }
}

/// `nosched` as a runtime plugin: each finding is emitted as it arrives, as an event with
/// the kernel stack symbolized (`stack`, root first); every interval adds the loss
/// counters.
pub type NoschedPlugin = ProbePlugin<Nosched>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        let config =
            NoschedConfig::from_options(&ProbeOptions::new().with("threshold_us", "2000")).unwrap();
        assert_eq!((config.threshold_us, config.freq), (2000, 1000));
        for (key, value) in [
            ("freq", "0"),
            ("freq", "20000"),
            ("threshold_us", "0"),
            ("x", "1"),
        ] {
            assert!(
                NoschedConfig::from_options(&ProbeOptions::new().with(key, value)).is_err(),
                "{key}={value}"
            );
        }
    }
}
