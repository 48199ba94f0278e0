//! `gpuhang`: calls into the GPU stack that do not come back, seen from outside the
//! process.
//!
//! Two detectors, both fed by the `cuda` probe's call tracer:
//!
//! - **A call entered and not returned after T** (`threshold_ms`): any traced call that
//!   returns (the sync family, copies, allocations, and the functions named with
//!   `--opt watch=BINARY:SYMBOL,...`) waits in the tracer's in-flight map until it returns.
//!   Each interval the map is read; a call older than T on a live thread is reported once
//!   (`gpu_hang`, `kind: call_blocked`) with its pid, tid, function, how long it has been
//!   blocked, its CPU stack at entry and the process's last kernel launches (those on the
//!   same stream first: the "launched but never completed" candidates). When it returns
//!   at last, `kind: call_returned` says after how long.
//! - **An event that stays not ready, exact where the program polls**: PyTorch's watchdog
//!   records a CUDA event after each collective (`cudaEventRecord(event, stream)`) and polls
//!   it with `cudaEventQuery`. When the same event keeps answering 600
//!   (`cudaErrorNotReady`) for longer than T, the kernels launched on that stream before
//!   the record have not completed: `kind: event_not_ready` names them.
//!
//! Every interval it also reports `gpu_hangs_total{kind}`, `gpu_calls_in_flight` and
//! `gpu_watched_calls_returned_total{function}` (the calls it watched that came back).
//!
//! Detection latency is T plus at most one interval. Nothing is added per call beyond
//! the uprobes the tracer already has: the in-flight map is read once an interval.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use coolbpf_core::{
    labels, Emitter, Error, Event, FieldValue, Metric, PluginContext, Record, Result,
};
use coolbpf_probes::options::{OptionSpec, ProbeOptions};
use coolbpf_probes::probe_plugin::{ProbePlugin, ProbeSource};
use coolbpf_probes::sched::monotonic_ns;

use crate::calls::CallRecord;
use crate::cuda::{self, CudaCall, CudaTracer, OnCall, TraceConfig};
use crate::sync::lock;

/// The probe's name in the registry and in its records.
pub const NAME: &str = "gpuhang";

const THRESHOLD_MS: OptionSpec = OptionSpec {
    name: "threshold_ms",
    help: "a call blocked (or an event not ready) this long is a hang, ms (> 0)",
    default: "5000",
};
const WATCH: OptionSpec = OptionSpec {
    name: "watch",
    help: "more functions to watch, comma-separated BINARY:SYMBOL",
    default: "",
};

/// Options `gpuhang` accepts besides `--pid`.
pub const OPTIONS: &[OptionSpec] = &[cuda::LIB, cuda::BUFFER_KB, THRESHOLD_MS, WATCH];

/// How to run `gpuhang`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HangConfig {
    /// What to trace (with the watched functions).
    pub trace: TraceConfig,
    /// Blocked this long is a hang, ns.
    pub threshold_ns: u64,
}

impl HangConfig {
    /// The config described by registry options.
    pub fn from_options(options: &ProbeOptions) -> Result<Self> {
        options.check(NAME, OPTIONS)?;
        let threshold_ms: u64 = options.get(&THRESHOLD_MS)?;
        if threshold_ms == 0 {
            return Err(Error::InvalidArgument(format!(
                "option threshold_ms=0: {}",
                THRESHOLD_MS.help
            )));
        }
        let watch: String = options.get(&WATCH)?;
        let watch = watch
            .split(',')
            .filter(|s| !s.is_empty())
            .map(parse_watch)
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            trace: cuda::trace_config(options, watch)?,
            threshold_ns: threshold_ms.saturating_mul(1_000_000),
        })
    }
}

fn parse_watch(item: &str) -> Result<(PathBuf, String)> {
    match item.rsplit_once(':') {
        Some((binary, symbol)) if !binary.is_empty() && !symbol.is_empty() => {
            Ok((PathBuf::from(binary), symbol.to_owned()))
        }
        _ => Err(Error::InvalidArgument(format!(
            "option watch={item:?}: {}",
            WATCH.help
        ))),
    }
}

/// A call, by the thread, function and entry time that make it one call.
type CallKey = (u32, u16, u64);

/// A running `gpuhang`.
pub struct GpuHang {
    tracer: CudaTracer,
    threshold_ns: u64,
    /// Calls and not-ready events already reported.
    reported: Arc<Mutex<HashSet<CallKey>>>,
    reported_events: Mutex<HashSet<(u32, u64, u64)>>,
    hangs: Mutex<[u64; 2]>,
    /// Returned calls per watched function id: what the watchdog watched and let go.
    returned: Arc<Mutex<BTreeMap<u16, u64>>>,
    watched: Vec<(PathBuf, String)>,
}

impl GpuHang {
    /// Starts tracing with `config`; reports go to `emitter` (none: only the counts).
    pub fn start(config: &HangConfig, emitter: Option<Emitter>) -> Result<Self> {
        let reported: Arc<Mutex<HashSet<CallKey>>> = Arc::default();
        let seen = Arc::clone(&reported);
        let returns = emitter;
        let watched = config.trace.watch.clone();
        let returned: Arc<Mutex<BTreeMap<u16, u64>>> = Arc::default();
        let counts = Arc::clone(&returned);
        let on_call: OnCall = Box::new(move |_, record: &CallRecord| {
            let Some(ns) = record.duration_ns() else {
                return;
            };
            *lock(&counts).entry(record.function).or_default() += 1;
            let key = (record.tid, record.function, record.entry_ns);
            if lock(&seen).remove(&key) {
                if let Some(emitter) = &returns {
                    let event = Event::new(NAME, record.return_ns.unwrap_or_default())
                        .with("hang", FieldValue::Str("call_returned".into()))
                        .with("pid", FieldValue::UInt(record.pid.into()))
                        .with("tid", FieldValue::UInt(record.tid.into()))
                        .with("comm", FieldValue::Str(record.comm.clone()))
                        .with(
                            "function",
                            FieldValue::Str(cuda::function_name(&watched, record.function)),
                        )
                        .with("blocked_ms", FieldValue::UInt(ns / 1_000_000));
                    emitter.emit(Record::Event(event));
                }
            }
        });
        Ok(Self {
            tracer: CudaTracer::start(&config.trace, on_call)?,
            threshold_ns: config.threshold_ns,
            reported,
            reported_events: Mutex::default(),
            hangs: Mutex::default(),
            returned,
            watched: config.trace.watch.clone(),
        })
    }

    /// The tracer underneath.
    pub fn tracer(&self) -> &CudaTracer {
        &self.tracer
    }

    /// Looks for hangs now: returns the new reports.
    pub fn check(&self) -> Result<Vec<Event>> {
        Ok(self.check_calls(&self.tracer.in_flight()?))
    }

    /// The new reports among calls `in_flight` (as the kernel held them just now), and
    /// among events polled not ready.
    fn check_calls(&self, in_flight: &[CallRecord]) -> Vec<Event> {
        let now = monotonic_ns();
        let mut found = Vec::new();
        for call in in_flight {
            let blocked = now.saturating_sub(call.entry_ns);
            let key = (call.tid, call.function, call.entry_ns);
            if blocked < self.threshold_ns
                || !thread_alive(call.pid, call.tid)
                || !lock(&self.reported).insert(key)
            {
                continue;
            }
            found.push(self.blocked_call(call, blocked));
            lock(&self.hangs)[0] += 1;
        }
        found.extend(self.events_not_ready(now));
        found
    }

    fn blocked_call(&self, call: &CallRecord, blocked_ns: u64) -> Event {
        let function = self.tracer.function_name(call.function);
        let stream =
            cuda::functions::by_id(call.function).and_then(|f| match CudaCall::decode(f, call) {
                CudaCall::Sync { on } if on != 0 && f.name.contains("Stream") => Some(on),
                _ => None,
            });
        let mut recent = self.tracer.recent_launches(call.pid).unwrap_or_default();
        if let Some(stream) = stream {
            recent.retain(|(l, _)| l.stream == stream);
        }
        let state = self.tracer.state();
        let launches: Vec<String> = recent
            .iter()
            .rev()
            .map(|(l, kernel)| {
                let ago = call.entry_ns.saturating_sub(l.ts_ns) / 1_000_000;
                format!(
                    "{} ({ago} ms before)",
                    self.tracer.kernel_name(&state, call.pid, *kernel)
                )
            })
            .collect();
        drop(state);
        let mut event = Event::new(NAME, call.entry_ns)
            .with("hang", FieldValue::Str("call_blocked".into()))
            .with("pid", FieldValue::UInt(call.pid.into()))
            .with("tid", FieldValue::UInt(call.tid.into()))
            .with("comm", FieldValue::Str(call.comm.clone()))
            .with("function", FieldValue::Str(function))
            .with("blocked_ms", FieldValue::UInt(blocked_ns / 1_000_000))
            .with(
                "stack",
                FieldValue::StrList(self.tracer.frames(call.pid, &call.comm, &call.stack)),
            )
            .with("last_launches", FieldValue::StrList(launches));
        if let Some(stream) = stream {
            event = event.with("stream", FieldValue::Str(format!("{stream:#x}")));
        }
        event
    }

    fn events_not_ready(&self, now: u64) -> Vec<Event> {
        let pids: Vec<u32> = self
            .tracer
            .state()
            .not_ready
            .keys()
            .map(|(p, _)| *p)
            .collect();
        let recent: std::collections::HashMap<u32, _> = pids
            .into_iter()
            .map(|pid| (pid, self.tracer.recent_launches(pid).unwrap_or_default()))
            .collect();
        let state = self.tracer.state();
        let mut out = Vec::new();
        for ((pid, event), not_ready) in &state.not_ready {
            let waited = now.saturating_sub(not_ready.since_ns);
            if waited < self.threshold_ns
                || !lock(&self.reported_events).insert((*pid, *event, not_ready.since_ns))
            {
                continue;
            }
            let recorded = state.recorded_events.get(&(*pid, *event));
            // The launches on the event's stream before it was recorded (of those the
            // kernel still keeps: the last 16 of the process).
            let kernels: Vec<String> = recorded
                .map(|r| {
                    recent[pid]
                        .iter()
                        .rev()
                        .filter(|(l, _)| l.stream == r.stream && l.ts_ns <= r.ts_ns)
                        .map(|(_, kernel)| self.tracer.kernel_name(&state, *pid, *kernel))
                        .collect()
                })
                .unwrap_or_default();
            let mut report = Event::new(NAME, not_ready.since_ns)
                .with("hang", FieldValue::Str("event_not_ready".into()))
                .with("pid", FieldValue::UInt((*pid).into()))
                .with("tid", FieldValue::UInt(not_ready.tid.into()))
                .with("comm", FieldValue::Str(not_ready.comm.clone()))
                .with("event", FieldValue::Str(format!("{event:#x}")))
                .with("not_ready_ms", FieldValue::UInt(waited / 1_000_000))
                .with("kernels_not_completed", FieldValue::StrList(kernels));
            if let Some(recorded) = recorded {
                report = report.with("stream", FieldValue::Str(format!("{:#x}", recorded.stream)));
            }
            out.push(report);
            lock(&self.hangs)[1] += 1;
        }
        out
    }
}

fn thread_alive(pid: u32, tid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}/task/{tid}")).exists()
}

impl ProbeSource for GpuHang {
    const NAME: &'static str = NAME;
    type Config = HangConfig;

    fn start(config: &HangConfig, ctx: &PluginContext) -> Result<Self> {
        Self::start(config, Some(ctx.emitter()))
    }

    fn collect(&self, out: &mut Vec<Record>) -> Result<()> {
        // One read of the in-flight map serves the check and the gauge.
        let in_flight = self.tracer.in_flight()?;
        let found = self.check_calls(&in_flight);
        out.extend(found.into_iter().map(Record::Event));
        let [calls, events] = *lock(&self.hangs);
        for (kind, count) in [("call_blocked", calls), ("event_not_ready", events)] {
            out.push(
                Metric::counter(NAME, "gpu_hangs_total", labels! {"hang" => kind}, count).into(),
            );
        }
        for (id, count) in lock(&self.returned).iter() {
            let labels = labels! {"function" => cuda::function_name(&self.watched, *id)};
            out.push(
                Metric::counter(NAME, "gpu_watched_calls_returned_total", labels, *count).into(),
            );
        }
        let in_flight = in_flight.len() as f64;
        out.push(Metric::gauge(NAME, "gpu_calls_in_flight", labels! {}, in_flight).into());
        out.extend(self.tracer.losses()?.to_records(NAME));
        Ok(())
    }

    /// Detaches and drains: returns of reported calls still in the ring buffer are
    /// reported by the call callback on the way.
    fn stop(&mut self) -> Result<()> {
        self.tracer.stop()
    }

    // The returned-calls counts come from calls the ring buffer may still hold.
    const COLLECT_AFTER_STOP: bool = true;
}

/// `gpuhang` as a runtime plugin.
pub type GpuHangPlugin = ProbePlugin<GpuHang>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        let ok = HangConfig::from_options(
            &ProbeOptions::new()
                .with("watch", "/bin/x:f,/lib/y.so:g")
                .with("threshold_ms", "250"),
        )
        .unwrap();
        assert_eq!(ok.threshold_ns, 250_000_000);
        assert_eq!(ok.trace.watch.len(), 2);
        assert_eq!(ok.trace.watch[1].1, "g");
        for bad in [
            ("threshold_ms", "0"),
            ("watch", "nosymbol"),
            ("watch", ":f"),
            ("threshold_ms", "x"),
        ] {
            let err =
                HangConfig::from_options(&ProbeOptions::new().with(bad.0, bad.1)).unwrap_err();
            assert_eq!(
                err.kind(),
                coolbpf_core::ErrorKind::InvalidArgument,
                "{bad:?}: {err}"
            );
        }
    }
}
