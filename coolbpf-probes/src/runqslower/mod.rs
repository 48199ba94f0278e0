//! `runqslower`: one event for each run-queue wait longer than a threshold, naming the
//! task that waited and the task that had the CPU until it got it.
//!
//! Hooks: as [`runqlat`](crate::runqlat) (`sched_wakeup`, `sched_wakeup_new`,
//! `sched_switch`; tp_btf, else raw_tp, else classic tracepoints); events travel through
//! a ring buffer, and every one that does not fit is counted as lost.

mod event;

use coolbpf_core::stream::Delivery;
use coolbpf_core::{Error, MapView, ObjectBuilder, PluginContext, Record, Result};

pub use event::RunqslowerEvent;

use crate::event_probe::{emitting, EventProbe};
use crate::options::{OptionSpec, ProbeOptions};
use crate::probe_plugin::{ProbePlugin, ProbeSource};
use crate::sched::{HookKind, Roles, SchedCounters, HOOK};

static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/runqslower.bpf.o"));

/// The probe's name in the registry and in its records.
pub const NAME: &str = "runqslower";

const ROLES: [&str; 3] = ["wakeup", "wakeup_new", "switch"];

const MIN_US: OptionSpec = OptionSpec {
    name: "min_us",
    help: "report run-queue waits of at least this many microseconds (a number)",
    default: "10000",
};

const BUFFER_KB: OptionSpec = OptionSpec {
    name: "buffer_kb",
    help:
        "ring buffer size in KiB, a power of two >= 4; events that do not fit are counted as lost",
    default: "256",
};

/// Options `runqslower` accepts besides `--pid`.
pub const OPTIONS: &[OptionSpec] = &[MIN_US, BUFFER_KB, HOOK];

/// How to run `runqslower`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunqslowerConfig {
    /// Report only this process's tasks (tgid); `None` reports every task.
    pub pid: Option<u32>,
    /// The threshold, µs.
    pub min_us: u64,
    /// Ring buffer size in KiB (a power of two, at least 4).
    pub buffer_kb: u32,
    /// Which kind of hook to attach with.
    pub hook: HookKind,
}

impl Default for RunqslowerConfig {
    fn default() -> Self {
        Self {
            pid: None,
            min_us: 10_000,
            buffer_kb: 256,
            hook: HookKind::Auto,
        }
    }
}

impl RunqslowerConfig {
    /// The config described by registry options.
    pub fn from_options(options: &ProbeOptions) -> Result<Self> {
        options.check(NAME, OPTIONS)?;
        let config = Self {
            pid: options.pid,
            min_us: options.get(&MIN_US)?,
            buffer_kb: options.get(&BUFFER_KB)?,
            hook: options.get(&HOOK)?,
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        if self.buffer_kb < 4 || !self.buffer_kb.is_power_of_two() || self.buffer_kb > 1 << 21 {
            return Err(Error::InvalidArgument(format!(
                "option buffer_kb={}: {}",
                self.buffer_kb, BUFFER_KB.help
            )));
        }
        Ok(())
    }
}

/// A running `runqslower`: an [`EventProbe`] (its readers are reached through `Deref`)
/// and the probe's counters.
pub struct Runqslower {
    probe: EventProbe<RunqslowerEvent>,
    counters: MapView,
}

impl Runqslower {
    /// Loads and attaches the probe; events arrive by `delivery`.
    pub fn start(config: &RunqslowerConfig, delivery: Delivery<RunqslowerEvent>) -> Result<Self> {
        config.validate()?;
        let roles = Roles::new(&ROLES, config.hook);
        let builder = ObjectBuilder::from_bytes(OBJECT)
            .global("coolbpf_filter_tgid", &config.pid.unwrap_or(0))
            .global("min_delay_us", &config.min_us)
            .max_entries("events", config.buffer_kb * 1024);
        let object = roles.configure(builder).load()?;
        let probe = EventProbe::start(object, RunqslowerEvent::decode, delivery, |object| {
            roles.attach(object)
        })?;
        Ok(Self {
            counters: probe.map("sched_counters")?,
            probe,
        })
    }

    /// Switches seen and events produced.
    pub fn counters(&self) -> Result<SchedCounters> {
        SchedCounters::read(&self.counters)
    }
}

impl std::ops::Deref for Runqslower {
    type Target = EventProbe<RunqslowerEvent>;

    fn deref(&self) -> &Self::Target {
        &self.probe
    }
}

impl std::ops::DerefMut for Runqslower {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.probe
    }
}

impl ProbeSource for Runqslower {
    const NAME: &'static str = NAME;
    type Config = RunqslowerConfig;

    fn start(config: &RunqslowerConfig, ctx: &PluginContext) -> Result<Self> {
        let delivery = emitting(ctx, |event: RunqslowerEvent| {
            Record::Event(event.to_event())
        });
        Self::start(config, delivery)
    }

    fn collect(&self, out: &mut Vec<Record>) -> Result<()> {
        out.push(self.counters()?.to_metric(NAME).into());
        out.extend(self.losses()?.to_records(NAME));
        Ok(())
    }

    fn stop(&mut self) -> Result<()> {
        self.probe.stop()
    }
}

/// `runqslower` as a runtime plugin: events are emitted as they arrive; every interval
/// adds `sched_switch_total` and the loss counters.
pub type RunqslowerPlugin = ProbePlugin<Runqslower>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        let config =
            RunqslowerConfig::from_options(&ProbeOptions::new().with("min_us", "500")).unwrap();
        assert_eq!(config.min_us, 500);
        assert_eq!(
            RunqslowerConfig::from_options(&ProbeOptions::new())
                .unwrap()
                .min_us,
            10_000
        );
        for (key, value) in [
            ("min_us", "-1"),
            ("buffer_kb", "3"),
            ("hook", "kprobe"),
            ("x", "1"),
        ] {
            assert!(
                RunqslowerConfig::from_options(&ProbeOptions::new().with(key, value)).is_err(),
                "{key}={value}"
            );
        }
    }
}
