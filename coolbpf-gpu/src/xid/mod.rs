//! `xid`: the NVIDIA driver's Xid errors, as alerts with what they mean and what to do.
//!
//! The driver reports GPU faults as kernel log lines such as
//! `NVRM: Xid (PCI:0000:3b:00): 79, pid=1234, name=python3, GPU has fallen off the bus.`
//! This probe reports each one as an event ([`XidAlert::to_event`]): the bus id
//! (normalized, `0000:3b:00`), MIG instance ids when present, the GPU's index and UUID
//! when a [`GpuLookup`] is given (NVML; left out otherwise), the code with its meaning
//! and recommended action ([`codes`]), the victim's pid, name and cgroup, whether it was
//! logged before the probe started (`past`), and the raw line. It works without a GPU.
//!
//! - Hook: `printk:console` (tp_btf, else raw_tp, else the classic tracepoint), which
//!   fires for every line the kernel logs, `/dev/kmsg` writes included. The BPF program
//!   sends only lines with `NVRM: Xid` starting in their first
//!   [`MARKER_WINDOW`](parse::MARKER_WINDOW) bytes (room for a short `tag: ` prefix).
//! - History: at start, the kernel log (`/dev/kmsg`) is read to its end, so Xids logged
//!   before the probe are reported too, with `past: 1` (option `history=false` skips it).
//!   Each line is reported exactly once although history and tracepoint overlap while
//!   the probe starts: see [`dedup`] for how.
//! - Lines that say `NVRM: Xid` but do not parse ([`parse`] lists the accepted shapes)
//!   are reported all the same, with `parsed: 0`, the reason and the raw line, and
//!   counted in `gpu_xid_unparsed_total`.
//! - Every interval: `gpu_xid_errors_total{gpu,xid}` (every reported line, past ones
//!   included; `gpu` is the GPU's index when known, else its bus id), the unparsed
//!   counter, `gpu_xid_history_lost_total` (kernel log records overwritten before the
//!   history reached them: lines that may have been Xids), and the loss counters.
//!
//! The driver prints each Xid line with one printk. A line assembled from `pr_cont`
//! pieces would reach the tracepoint piece by piece, and only its first piece (the one
//! with the marker) would be seen live.

pub mod alert;
pub mod codes;
pub mod dedup;
pub mod kmsg;
pub mod live;
pub mod parse;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use coolbpf_core::stream::{Delivery, Losses};
use coolbpf_core::{labels, Error, Metric, ObjectBuilder, PluginContext, Record, Result};
use coolbpf_probes::event_probe::EventProbe;
use coolbpf_probes::options::{OptionSpec, ProbeOptions};
use coolbpf_probes::probe_plugin::{ProbePlugin, ProbeSource};
use coolbpf_probes::sched::monotonic_ns;

pub use crate::nvml::GpuIdentity;
pub use alert::{GpuLookup, XidAlert};
pub use parse::{normalize_bus_id, XidLine};

use crate::sync::lock;
use dedup::Gate;
use kmsg::{Kmsg, KmsgRecord};
use live::LiveLine;

static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/xid.bpf.o"));

/// The probe's name in the registry and in its records.
pub const NAME: &str = "xid";

const PROGRAMS: [&str; 3] = ["xid_btf", "xid_raw", "xid_tp"];

const HISTORY: OptionSpec = OptionSpec {
    name: "history",
    help: "true or false: report the Xids already in the kernel log (/dev/kmsg) at start",
    default: "true",
};

const BUFFER_KB: OptionSpec = OptionSpec {
    name: "buffer_kb",
    help: "ring buffer size in KiB, a power of two >= 4; lines that do not fit are counted as lost",
    default: "256",
};

/// Options `xid` accepts.
pub const OPTIONS: &[OptionSpec] = &[HISTORY, BUFFER_KB];

/// How to run `xid`.
#[derive(Clone)]
pub struct XidConfig {
    /// Report the Xids already in the kernel log when the probe starts.
    pub history: bool,
    /// Ring buffer size in KiB (a power of two, at least 4).
    pub buffer_kb: u32,
    /// Where GPU indexes and UUIDs come from; `None` leaves them out.
    pub gpus: Option<Arc<dyn GpuLookup>>,
}

impl Default for XidConfig {
    fn default() -> Self {
        Self {
            history: true,
            buffer_kb: 256,
            gpus: None,
        }
    }
}

impl std::fmt::Debug for XidConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XidConfig")
            .field("history", &self.history)
            .field("buffer_kb", &self.buffer_kb)
            .field("gpus", &self.gpus.is_some())
            .finish()
    }
}

impl XidConfig {
    /// The config described by registry options. `--pid` is refused: Xids are the
    /// driver's, and the victim is only known once a line is parsed.
    pub fn from_options(options: &ProbeOptions) -> Result<Self> {
        options.check(NAME, OPTIONS)?;
        if options.pid.is_some() {
            return Err(Error::InvalidArgument(
                "probe xid reports every process's Xids and takes no --pid".into(),
            ));
        }
        let buffer_kb: u32 = options.get(&BUFFER_KB)?;
        if buffer_kb < 4 || !buffer_kb.is_power_of_two() {
            return Err(Error::InvalidArgument(format!(
                "option buffer_kb={buffer_kb}: {}",
                BUFFER_KB.help
            )));
        }
        Ok(Self {
            history: options.get(&HISTORY)?,
            buffer_kb,
            // With NVML, alerts name the GPU by index and UUID; without it, by bus id.
            gpus: crate::nvml::Gpus::open()
                .ok()
                .map(|gpus| Arc::new(gpus) as Arc<dyn GpuLookup>),
        })
    }
}

/// What one started probe saw of the kernel log's history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryStats {
    /// Records read from `/dev/kmsg`.
    pub records: u64,
    /// Xid lines among them (reported with `past: 1`).
    pub xid_lines: u64,
    /// Records the kernel overwrote before they could be read (by their sequence
    /// numbers): Xids among them are lost, and counted in `gpu_xid_history_lost_total`.
    pub lost: u64,
}

/// The alerts' destination and counters, shared by the stream's thread and the caller.
struct Reporter {
    gpus: Option<Arc<dyn GpuLookup>>,
    output: Box<dyn FnMut(XidAlert) + Send>,
    errors: BTreeMap<(String, u32), u64>,
    unparsed: u64,
}

impl Reporter {
    fn report(&mut self, alert: XidAlert) {
        match &alert.line {
            Some(line) => {
                *self
                    .errors
                    .entry((alert.gpu_label(), line.code))
                    .or_default() += 1;
            }
            None => self.unparsed += 1,
        }
        (self.output)(alert);
    }

    fn report_past(&mut self, record: &KmsgRecord) {
        let ts_ns = record.ts_us.saturating_mul(1000);
        let alert = XidAlert::new(
            &record.message,
            ts_ns,
            true,
            Some(record.seq),
            self.gpus.as_ref(),
        );
        self.report(alert);
    }

    fn report_live(&mut self, line: &LiveLine) {
        let mut alert = XidAlert::new(&line.text, line.ts_ns, false, None, self.gpus.as_ref());
        alert.truncated = line.truncated;
        self.report(alert);
    }
}

struct Shared {
    gate: Gate,
    reporter: Reporter,
}

/// A running `xid` probe.
pub struct Xid {
    probe: EventProbe<LiveLine>,
    shared: Arc<Mutex<Shared>>,
    history: HistoryStats,
}

impl Xid {
    /// Loads and attaches the probe, reports the history (when configured), then calls
    /// `on_alert` for every Xid line from then on. `on_alert` runs on the probe's stream
    /// thread (and on this one for the history).
    pub fn start(
        config: &XidConfig,
        on_alert: impl FnMut(XidAlert) + Send + 'static,
    ) -> Result<Self> {
        // Pass 1 of the history, before the tracepoint is attached (see `dedup`).
        let mut kmsg = config.history.then(Kmsg::open).transpose()?;
        let mut past = Vec::new();
        let mut stats = kmsg::KmsgStats::default();
        if let Some(kmsg) = &mut kmsg {
            stats = kmsg.read_xid_records(&mut past)?;
        }
        let shared = Arc::new(Mutex::new(Shared {
            gate: if config.history {
                Gate::default()
            } else {
                Gate::open_now()
            },
            reporter: Reporter {
                gpus: config.gpus.clone(),
                output: Box::new(on_alert),
                errors: BTreeMap::new(),
                unparsed: 0,
            },
        }));
        let object = ObjectBuilder::from_bytes(OBJECT)
            .max_entries("events", config.buffer_kb.saturating_mul(1024))
            .alternatives(&PROGRAMS)
            .load()?;
        let stream_shared = Arc::clone(&shared);
        let delivery = Delivery::callback(move |line: LiveLine| {
            let mut shared = lock(&stream_shared);
            if let Some(line) = shared.gate.admit(line) {
                shared.reporter.report_live(&line);
            }
        });
        let probe = EventProbe::start(object, LiveLine::decode, delivery, |object| {
            Ok(vec![object.attach_chosen(&PROGRAMS)?])
        })?;
        let mut history = HistoryStats::default();
        if let Some(kmsg) = &mut kmsg {
            let pass_one = past.len();
            let more = kmsg.read_xid_records(&mut past)?;
            let until_ns = monotonic_ns();
            history = HistoryStats {
                records: stats.records + more.records,
                xid_lines: past.len() as u64,
                lost: stats.lost + more.lost,
            };
            let overlap: Vec<String> = past[pass_one..]
                .iter()
                .map(|record| record.message.clone())
                .collect();
            // One lock per line: the stream's thread keeps draining the ring buffer into
            // the gate meanwhile, and the gate keeps the live lines after the past ones.
            for record in &past {
                lock(&shared).reporter.report_past(record);
            }
            let mut shared = lock(&shared);
            for line in shared.gate.open(overlap, until_ns) {
                shared.reporter.report_live(&line);
            }
        }
        Ok(Self {
            probe,
            shared,
            history,
        })
    }

    /// The programs attached.
    pub fn programs(&self) -> &[String] {
        self.probe.programs()
    }

    /// What the start saw of the kernel log's history.
    pub fn history(&self) -> HistoryStats {
        self.history
    }

    /// Live lines left out so far because the history had already reported them (the
    /// overlap while the probe started; see [`dedup`]).
    pub fn duplicates(&self) -> u64 {
        lock(&self.shared).gate.twins()
    }

    /// Lines reported so far, by (`gpu` label, code).
    pub fn counts(&self) -> BTreeMap<(String, u32), u64> {
        lock(&self.shared).reporter.errors.clone()
    }

    /// Lines reported so far that did not parse.
    pub fn unparsed(&self) -> u64 {
        lock(&self.shared).reporter.unparsed
    }

    /// The counters as metrics: `gpu_xid_errors_total{gpu,xid}` and
    /// `gpu_xid_unparsed_total`.
    pub fn metrics(&self) -> Vec<Metric> {
        let shared = lock(&self.shared);
        let mut metrics: Vec<Metric> = shared
            .reporter
            .errors
            .iter()
            .map(|((gpu, xid), count)| {
                Metric::counter(
                    NAME,
                    "gpu_xid_errors_total",
                    labels! { "gpu" => gpu.as_str(), "xid" => *xid },
                    *count,
                )
            })
            .collect();
        metrics.push(Metric::counter(
            NAME,
            "gpu_xid_unparsed_total",
            labels! {},
            shared.reporter.unparsed,
        ));
        metrics.push(Metric::counter(
            NAME,
            "gpu_xid_history_lost_total",
            labels! {},
            self.history.lost,
        ));
        metrics
    }

    /// Delivered and lost counts of the live lines.
    pub fn losses(&self) -> Result<Losses> {
        self.probe.losses()
    }

    /// Detaches, then reports the lines still in flight.
    pub fn stop(&mut self) -> Result<()> {
        self.probe.stop()
    }
}

impl ProbeSource for Xid {
    const NAME: &'static str = NAME;
    type Config = XidConfig;

    fn start(config: &XidConfig, ctx: &PluginContext) -> Result<Self> {
        let emitter = ctx.emitter();
        Self::start(config, move |alert: XidAlert| {
            // A full runtime channel is counted by the emitter itself.
            emitter.emit(Record::Event(alert.to_event()));
        })
    }

    fn collect(&self, out: &mut Vec<Record>) -> Result<()> {
        out.extend(self.metrics().into_iter().map(Record::from));
        out.extend(self.losses()?.to_records(NAME));
        Ok(())
    }

    fn stop(&mut self) -> Result<()> {
        self.probe.stop()
    }
}

/// `xid` as a runtime plugin: alerts are emitted as they arrive; every interval adds
/// the counters and the loss counters.
pub type XidPlugin = ProbePlugin<Xid>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        let config = XidConfig::from_options(&ProbeOptions::new()).unwrap();
        assert!(config.history && config.gpus.is_none());
        assert_eq!(config.buffer_kb, 256);
        let off = ProbeOptions::new().with("history", "false");
        assert!(!XidConfig::from_options(&off).unwrap().history);
        for bad in [
            ProbeOptions::new().with("history", "maybe"),
            ProbeOptions::new().with("buffer_kb", "3"),
            ProbeOptions::new().with("buffer_kb", "1000"),
            ProbeOptions::new().with("nope", "1"),
            ProbeOptions::new().with_pid(1),
        ] {
            assert!(XidConfig::from_options(&bad).is_err(), "{bad:?}");
        }
    }
}
