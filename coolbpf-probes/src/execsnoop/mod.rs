//! `execsnoop`: one event per successful `exec`, with pid, ppid, comm, filename and args.
//!
//! Hook: `sched:sched_process_exec` (tp_btf, else raw_tp, else the classic tracepoint).
//! It fires once the new image is in place, so only successful execs are reported, the
//! comm is the new program's, and the arguments are read from the new process's memory.

mod event;

use coolbpf_core::stream::{Delivery, EventStream, Losses};
use coolbpf_core::{BpfObject, ObjectBuilder, Plugin, PluginContext, Record, Result};
use crossbeam_channel::Receiver;

pub use event::ExecEvent;

use crate::options::{OptionSpec, ProbeOptions};

static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/execsnoop.bpf.o"));

/// The probe's name in the registry and in its records.
pub const NAME: &str = "execsnoop";

const PROGRAMS: [&str; 3] = ["exec_btf", "exec_raw", "exec_tp"];

const BUFFER_KB: OptionSpec = OptionSpec {
    name: "buffer_kb",
    help:
        "ring buffer size in KiB, a power of two >= 4; events that do not fit are counted as lost",
    default: "1024",
};

/// Options `execsnoop` accepts besides `--pid`.
pub const OPTIONS: &[OptionSpec] = &[BUFFER_KB];

/// How to run `execsnoop`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecsnoopConfig {
    /// Report only execs by this process (tgid); `None` reports every exec.
    pub pid: Option<u32>,
    /// Ring buffer size in KiB (a power of two, at least 4).
    pub buffer_kb: u32,
}

impl Default for ExecsnoopConfig {
    fn default() -> Self {
        Self {
            pid: None,
            buffer_kb: 1024,
        }
    }
}

impl ExecsnoopConfig {
    /// The config described by registry options.
    pub fn from_options(options: &ProbeOptions) -> Result<Self> {
        options.check(NAME, OPTIONS)?;
        let buffer_kb: u32 = options.get(&BUFFER_KB)?;
        if buffer_kb < 4 || !buffer_kb.is_power_of_two() {
            return Err(coolbpf_core::Error::InvalidArgument(format!(
                "option buffer_kb={buffer_kb}: {}",
                BUFFER_KB.help
            )));
        }
        Ok(Self {
            pid: options.pid,
            buffer_kb,
        })
    }
}

/// A running `execsnoop`.
pub struct Execsnoop {
    // Field order is drop order: the consumer stops (draining) before the object unloads.
    stream: EventStream<ExecEvent>,
    object: BpfObject,
}

impl Execsnoop {
    /// Loads and attaches the probe; events arrive by `delivery`.
    pub fn start(config: &ExecsnoopConfig, delivery: Delivery<ExecEvent>) -> Result<Self> {
        let mut object = ObjectBuilder::from_bytes(OBJECT)
            .global("coolbpf_filter_tgid", &config.pid.unwrap_or(0))
            .max_entries("events", config.buffer_kb * 1024)
            .alternatives(&PROGRAMS)
            .load()?;
        let stream = EventStream::ring_buffer(&object, "events", ExecEvent::decode, delivery)?;
        object.attach_chosen(&PROGRAMS)?;
        Ok(Self { stream, object })
    }

    /// The events channel (with channel delivery).
    pub fn receiver(&self) -> Option<&Receiver<ExecEvent>> {
        self.stream.receiver()
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

/// `execsnoop` as a runtime plugin: events are emitted as they arrive; every interval
/// adds the loss counters.
#[derive(Default)]
pub struct ExecsnoopPlugin {
    config: ExecsnoopConfig,
    running: Option<Execsnoop>,
}

impl ExecsnoopPlugin {
    /// A plugin that will run with `config`.
    pub fn new(config: ExecsnoopConfig) -> Self {
        Self {
            config,
            running: None,
        }
    }
}

impl Plugin for ExecsnoopPlugin {
    fn name(&self) -> &str {
        NAME
    }

    fn start(&mut self, ctx: &PluginContext) -> Result<()> {
        let emitter = ctx.emitter();
        let delivery = Delivery::callback(move |event: ExecEvent| {
            // A full runtime channel is counted by the emitter itself.
            emitter.emit(Record::Event(event.to_event()));
        });
        self.running = Some(Execsnoop::start(&self.config, delivery)?);
        Ok(())
    }

    fn collect(&mut self, out: &mut Vec<Record>) -> Result<()> {
        if let Some(running) = &self.running {
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
