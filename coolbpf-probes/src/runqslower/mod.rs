//! `runqslower`: one event for each run-queue wait longer than a threshold, naming the
//! task that waited and the task that had the CPU until it got it.
//!
//! Hooks: as [`runqlat`](crate::runqlat) (`sched_wakeup`, `sched_wakeup_new`,
//! `sched_switch`; tp_btf, else raw_tp, else classic tracepoints); events travel through
//! a ring buffer, and every one that does not fit is counted as lost.

mod event;

use coolbpf_core::stream::{Delivery, EventStream, Losses};
use coolbpf_core::{
    BpfObject, Error, MapView, ObjectBuilder, Plugin, PluginContext, Record, Result,
};
use crossbeam_channel::Receiver;

pub use event::RunqslowerEvent;

use crate::options::{OptionSpec, ProbeOptions};
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

/// A running `runqslower`.
pub struct Runqslower {
    // Field order is drop order: the consumer stops (draining) before the object unloads.
    stream: EventStream<RunqslowerEvent>,
    counters: MapView,
    object: BpfObject,
    programs: Vec<String>,
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
        let mut object = roles.configure(builder).load()?;
        let stream =
            EventStream::ring_buffer(&object, "events", RunqslowerEvent::decode, delivery)?;
        let programs = roles.attach(&mut object)?;
        Ok(Self {
            stream,
            counters: object.map("sched_counters")?,
            object,
            programs,
        })
    }

    /// The programs attached, one per hook.
    pub fn programs(&self) -> &[String] {
        &self.programs
    }

    /// The events channel (with channel delivery).
    pub fn receiver(&self) -> Option<&Receiver<RunqslowerEvent>> {
        self.stream.receiver()
    }

    /// Switches seen and events produced.
    pub fn counters(&self) -> Result<SchedCounters> {
        SchedCounters::read(&self.counters)
    }

    /// Delivered and lost counts.
    pub fn losses(&self) -> Result<Losses> {
        self.stream.losses()
    }

    /// Detaches, then drains the ring buffer: events already produced are still delivered.
    pub fn stop(&mut self) -> Result<()> {
        self.object.detach_all();
        self.stream.stop()
    }
}

/// `runqslower` as a runtime plugin: events are emitted as they arrive; every interval
/// adds `sched_switch_total` and the loss counters.
#[derive(Default)]
pub struct RunqslowerPlugin {
    config: RunqslowerConfig,
    running: Option<Runqslower>,
}

impl RunqslowerPlugin {
    /// A plugin that will run with `config`.
    pub fn new(config: RunqslowerConfig) -> Self {
        Self {
            config,
            running: None,
        }
    }
}

impl Plugin for RunqslowerPlugin {
    fn name(&self) -> &str {
        NAME
    }

    fn start(&mut self, ctx: &PluginContext) -> Result<()> {
        let emitter = ctx.emitter();
        let delivery = Delivery::callback(move |event: RunqslowerEvent| {
            // A full runtime channel is counted by the emitter itself.
            emitter.emit(Record::Event(event.to_event()));
        });
        self.running = Some(Runqslower::start(&self.config, delivery)?);
        Ok(())
    }

    fn collect(&mut self, out: &mut Vec<Record>) -> Result<()> {
        if let Some(running) = &self.running {
            out.push(running.counters()?.to_metric(NAME).into());
            out.extend(running.losses()?.to_records(NAME));
        }
        Ok(())
    }

    fn stop(&mut self) -> Result<()> {
        match self.running.take() {
            Some(mut running) => running.stop(),
            None => Ok(()),
        }
    }
}

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
