//! `execsnoop`: one event per successful `exec`, with pid, ppid, comm, filename and args.
//!
//! Hook: `sched:sched_process_exec` (tp_btf, else raw_tp, else the classic tracepoint).
//! It fires once the new image is in place, so only successful execs are reported, the
//! comm is the new program's, and the arguments are read from the new process's memory.

mod event;

use coolbpf_core::stream::Delivery;
use coolbpf_core::{ObjectBuilder, PluginContext, Record, Result};

pub use event::ExecEvent;

use crate::event_probe::{emitting, EventProbe};
use crate::options::{OptionSpec, ProbeOptions};
use crate::probe_plugin::{ProbePlugin, ProbeSource};

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

/// A running `execsnoop`: an [`EventProbe`] (its readers are reached through `Deref`).
pub struct Execsnoop(EventProbe<ExecEvent>);

impl Execsnoop {
    /// Loads and attaches the probe; events arrive by `delivery`.
    pub fn start(config: &ExecsnoopConfig, delivery: Delivery<ExecEvent>) -> Result<Self> {
        let object = ObjectBuilder::from_bytes(OBJECT)
            .global("coolbpf_filter_tgid", &config.pid.unwrap_or(0))
            .max_entries("events", config.buffer_kb * 1024)
            .alternatives(&PROGRAMS)
            .load()?;
        EventProbe::start(object, ExecEvent::decode, delivery, |object| {
            Ok(vec![object.attach_chosen(&PROGRAMS)?])
        })
        .map(Self)
    }
}

impl std::ops::Deref for Execsnoop {
    type Target = EventProbe<ExecEvent>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Execsnoop {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl ProbeSource for Execsnoop {
    const NAME: &'static str = NAME;
    type Config = ExecsnoopConfig;

    fn start(config: &ExecsnoopConfig, ctx: &PluginContext) -> Result<Self> {
        let delivery = emitting(ctx, |event: ExecEvent| Record::Event(event.to_event()));
        Self::start(config, delivery)
    }

    fn collect(&self, out: &mut Vec<Record>) -> Result<()> {
        out.extend(self.losses()?.to_records(NAME));
        Ok(())
    }

    fn stop(&mut self) -> Result<()> {
        self.0.stop()
    }
}

/// `execsnoop` as a runtime plugin: events are emitted as they arrive; every interval
/// adds the loss counters.
pub type ExecsnoopPlugin = ProbePlugin<Execsnoop>;
