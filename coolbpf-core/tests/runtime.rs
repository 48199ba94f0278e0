//! The plugin runtime with plain Rust plugins (no BPF): scheduling, failure isolation,
//! final collects and loss accounting.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use coolbpf_core::sink::MemorySink;
use coolbpf_core::{
    labels, Error, LabelValue, Metric, MetricValue, Plugin, PluginContext, PluginStatus, Record,
    Result, Runtime, Sink,
};
use crossbeam_channel::Receiver;

const TICK: Duration = Duration::from_millis(20);
/// Long enough that a plugin with it only ever sees its final collect.
const NEVER: Duration = Duration::from_secs(60);

/// What a test can observe of a plugin from outside.
#[derive(Default)]
struct Probe {
    collects: AtomicU64,
    stopped: AtomicBool,
}

/// Counts its collects into `NAME/ticks_total`; optionally panics or fails on one of them.
struct Ticker {
    name: &'static str,
    interval: Option<Duration>,
    panic_on: Option<u64>,
    fail_start: bool,
    probe: Arc<Probe>,
}

impl Ticker {
    fn new(name: &'static str) -> (Self, Arc<Probe>) {
        let probe = Arc::new(Probe::default());
        let ticker = Self {
            name,
            interval: None,
            panic_on: None,
            fail_start: false,
            probe: Arc::clone(&probe),
        };
        (ticker, probe)
    }
}

impl Plugin for Ticker {
    fn name(&self) -> &str {
        self.name
    }

    fn start(&mut self, _ctx: &PluginContext) -> Result<()> {
        if self.fail_start {
            return Err(Error::InvalidArgument("no such tracepoint".into()));
        }
        Ok(())
    }

    fn collect(&mut self, out: &mut Vec<Record>) -> Result<()> {
        let n = self.probe.collects.fetch_add(1, Ordering::SeqCst) + 1;
        out.push(Metric::counter(self.name, "ticks_total", labels! {}, n).into());
        assert!(self.panic_on != Some(n), "boom on call {n}");
        Ok(())
    }

    fn stop(&mut self) -> Result<()> {
        self.probe.stopped.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn interval(&self) -> Option<Duration> {
        self.interval
    }
}

fn runtime(sink: &MemorySink) -> Runtime {
    Runtime::builder()
        .interval(TICK)
        .sink(Box::new(sink.clone()))
        .build()
        .unwrap()
}

/// Values of counter `probe/name` in delivery order (with the `plugin` label when given).
fn counter_values(sink: &MemorySink, probe: &str, name: &str, plugin: Option<&str>) -> Vec<u64> {
    sink.records()
        .iter()
        .filter_map(|record| match record {
            Record::Metric(Metric {
                probe: p,
                name: n,
                labels,
                value: MetricValue::Counter(v),
            }) if p == probe
                && n == name
                && plugin.is_none_or(|plugin| {
                    labels.get("plugin") == Some(&LabelValue::from(plugin))
                }) =>
            {
                Some(*v)
            }
            _ => None,
        })
        .collect()
}

fn ticks(sink: &MemorySink, probe: &str) -> Vec<u64> {
    counter_values(sink, probe, "ticks_total", None)
}

fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        thread::sleep(Duration::from_millis(5));
    }
    condition()
}

#[test]
fn panicking_plugin_fails_alone() {
    let sink = MemorySink::new();
    let mut runtime = runtime(&sink);
    let (mut panicker, panicker_probe) = Ticker::new("panicker");
    panicker.panic_on = Some(3);
    let (steady, steady_probe) = Ticker::new("steady");
    let panicker = runtime.add(Box::new(panicker)).unwrap();
    let steady = runtime.add(Box::new(steady)).unwrap();
    runtime.start_all().unwrap();

    let failed = || matches!(runtime.status(panicker), Some(PluginStatus::Failed { .. }));
    assert!(
        wait_until(Duration::from_secs(2), failed),
        "{:?}",
        runtime.statuses()
    );
    let Some(PluginStatus::Failed { reason }) = runtime.status(panicker) else {
        unreachable!()
    };
    assert!(
        reason.contains("collect panicked: boom on call 3"),
        "{reason}"
    );
    assert!(
        panicker_probe.stopped.load(Ordering::SeqCst),
        "stop was attempted"
    );

    // The steady plugin keeps producing after the failure.
    let at_failure = ticks(&sink, "steady").last().copied().unwrap_or(0);
    let later = || {
        ticks(&sink, "steady")
            .iter()
            .filter(|&&v| v > at_failure)
            .count()
            >= 3
    };
    assert!(
        wait_until(Duration::from_secs(2), later),
        "{:?}",
        ticks(&sink, "steady")
    );
    assert_eq!(runtime.status(steady), Some(PluginStatus::Running));

    runtime.shutdown().unwrap();
    assert_eq!(runtime.status(steady), Some(PluginStatus::Stopped));
    assert!(matches!(
        runtime.status(panicker),
        Some(PluginStatus::Failed { .. })
    ));
    // Every collect of the steady plugin, the final one included, was delivered in order.
    let steady_total = steady_probe.collects.load(Ordering::SeqCst);
    assert_eq!(
        ticks(&sink, "steady"),
        (1..=steady_total).collect::<Vec<_>>()
    );
    assert!(steady_probe.stopped.load(Ordering::SeqCst));
    // What the panicking collect pushed before panicking is delivered; nothing after it.
    assert_eq!(ticks(&sink, "panicker"), vec![1, 2, 3]);
    assert_eq!(panicker_probe.collects.load(Ordering::SeqCst), 3);
    assert_eq!(
        counter_values(&sink, "core", "plugin_failures_total", Some("panicker")),
        vec![1]
    );
    assert!(counter_values(&sink, "core", "plugin_failures_total", Some("steady")).is_empty());
    assert_eq!(
        counter_values(&sink, "core", "events_lost_total", None),
        vec![0]
    );
}

#[test]
fn failing_start_is_reported_and_isolated() {
    let sink = MemorySink::new();
    let mut runtime = runtime(&sink);
    let (mut broken, broken_probe) = Ticker::new("broken");
    broken.fail_start = true;
    let (steady, _) = Ticker::new("steady");
    let broken = runtime.add(Box::new(broken)).unwrap();
    let steady = runtime.add(Box::new(steady)).unwrap();

    let err = runtime.start_all().unwrap_err();
    assert!(
        matches!(&err, Error::Plugin { plugin, .. } if plugin == "broken"),
        "{err}"
    );
    let Some(PluginStatus::Failed { reason }) = runtime.status(broken) else {
        panic!("{:?}", runtime.status(broken));
    };
    assert!(
        reason.contains("start failed") && reason.contains("no such tracepoint"),
        "{reason}"
    );
    assert!(
        broken_probe.stopped.load(Ordering::SeqCst),
        "stop was attempted"
    );
    assert_eq!(runtime.status(steady), Some(PluginStatus::Running));

    assert!(wait_until(Duration::from_secs(2), || ticks(
        &sink, "steady"
    )
    .len()
        >= 3));
    runtime.shutdown().unwrap();
    assert_eq!(broken_probe.collects.load(Ordering::SeqCst), 0);
    assert_eq!(
        counter_values(&sink, "core", "plugin_failures_total", Some("broken")),
        vec![1]
    );
    assert_eq!(runtime.status(steady), Some(PluginStatus::Stopped));
}

#[test]
fn stopping_one_plugin_leaves_the_other_running() {
    let sink = MemorySink::new();
    let mut runtime = runtime(&sink);
    let (first, first_probe) = Ticker::new("first");
    let (second, _) = Ticker::new("second");
    let first = runtime.add(Box::new(first)).unwrap();
    let second = runtime.add(Box::new(second)).unwrap();
    runtime.start_all().unwrap();
    assert!(wait_until(Duration::from_secs(2), || ticks(&sink, "first")
        .len()
        >= 2));

    runtime.stop_plugin(first).unwrap();
    assert_eq!(runtime.status(first), Some(PluginStatus::Stopped));
    assert!(first_probe.stopped.load(Ordering::SeqCst));
    let first_total = first_probe.collects.load(Ordering::SeqCst);
    let second_at_stop = ticks(&sink, "second").len();

    let later = || ticks(&sink, "second").len() >= second_at_stop + 3;
    assert!(wait_until(Duration::from_secs(2), later));
    assert_eq!(runtime.status(second), Some(PluginStatus::Running));
    assert_eq!(
        first_probe.collects.load(Ordering::SeqCst),
        first_total,
        "first kept collecting"
    );

    runtime.shutdown().unwrap();
    assert_eq!(ticks(&sink, "first"), (1..=first_total).collect::<Vec<_>>());
}

/// Emits a record only from the collect that runs once it is asked to stop.
struct FinalOnly {
    stopping: Arc<AtomicBool>,
}

impl Plugin for FinalOnly {
    fn name(&self) -> &'static str {
        "final"
    }

    fn start(&mut self, _ctx: &PluginContext) -> Result<()> {
        Ok(())
    }

    fn collect(&mut self, out: &mut Vec<Record>) -> Result<()> {
        // With a one-minute interval, the only collect in this test is the final one.
        let stopped_before = self.stopping.load(Ordering::SeqCst);
        out.push(Metric::counter("final", "flushed", labels! {}, u64::from(stopped_before)).into());
        Ok(())
    }

    fn stop(&mut self) -> Result<()> {
        self.stopping.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn interval(&self) -> Option<Duration> {
        Some(NEVER)
    }
}

#[test]
fn stop_runs_a_final_collect_before_stop() {
    let sink = MemorySink::new();
    let mut runtime = runtime(&sink);
    let stopping = Arc::new(AtomicBool::new(false));
    let id = runtime
        .add(Box::new(FinalOnly {
            stopping: Arc::clone(&stopping),
        }))
        .unwrap();
    runtime.start_plugin(id).unwrap();
    thread::sleep(TICK);

    let asked = Instant::now();
    runtime.stop_plugin(id).unwrap();
    // The worker wakes on the stop signal rather than sleeping out its interval.
    assert!(
        asked.elapsed() < NEVER / 4,
        "stop took {:?}",
        asked.elapsed()
    );
    assert!(stopping.load(Ordering::SeqCst));
    runtime.shutdown().unwrap();
    // Delivered, and collected while the plugin was still attached (before stop()).
    assert_eq!(counter_values(&sink, "final", "flushed", None), vec![0]);
}

/// Lets its first write through only once `gate` opens, to hold the sink thread back.
struct GatedSink {
    inner: MemorySink,
    gate: Receiver<()>,
    opened: bool,
}

impl Sink for GatedSink {
    fn write(&mut self, record: &Record) -> Result<()> {
        if !self.opened {
            self.opened = true;
            // Bounded so that a broken test fails instead of hanging.
            let _ = self.gate.recv_timeout(Duration::from_secs(3));
        }
        self.inner.write(record)
    }
}

/// Emits `count` records as fast as it can when started, then opens the gate.
struct Flood {
    count: u64,
    gate: crossbeam_channel::Sender<()>,
    dropped_seen: Arc<AtomicU64>,
}

impl Plugin for Flood {
    fn name(&self) -> &'static str {
        "flood"
    }

    fn start(&mut self, ctx: &PluginContext) -> Result<()> {
        let emitter = ctx.emitter();
        let mut refused = 0;
        for n in 0..self.count {
            if !emitter.emit(Metric::counter("flood", "n", labels! {}, n)) {
                refused += 1;
            }
        }
        assert_eq!(
            refused,
            emitter.dropped(),
            "emit's answer matches the counter"
        );
        self.dropped_seen.store(refused, Ordering::SeqCst);
        let _ = self.gate.send(());
        Ok(())
    }

    fn collect(&mut self, _out: &mut Vec<Record>) -> Result<()> {
        Ok(())
    }

    fn stop(&mut self) -> Result<()> {
        Ok(())
    }

    fn interval(&self) -> Option<Duration> {
        Some(NEVER)
    }
}

#[test]
fn flood_is_delivered_or_counted_exactly() {
    const EMITTED: u64 = 20_000;
    let sink = MemorySink::new();
    let (gate_tx, gate) = crossbeam_channel::bounded(1);
    let gated = GatedSink {
        inner: sink.clone(),
        gate,
        opened: false,
    };
    let mut runtime = Runtime::builder()
        .interval(TICK)
        .channel_capacity(4)
        .sink(Box::new(gated))
        .build()
        .unwrap();
    let dropped_seen = Arc::new(AtomicU64::new(0));
    let flood = Flood {
        count: EMITTED,
        gate: gate_tx,
        dropped_seen: Arc::clone(&dropped_seen),
    };
    runtime.add(Box::new(flood)).unwrap();
    runtime.start_all().unwrap();
    runtime.shutdown().unwrap();

    let delivered = sink
        .records()
        .iter()
        .filter(|r| r.probe() == "flood")
        .count() as u64;
    let dropped = runtime.records_dropped();
    assert_eq!(delivered + dropped, EMITTED);
    assert_eq!(dropped, dropped_seen.load(Ordering::SeqCst));
    // The sink was held back while the flood ran: at most the channel (4) and the record
    // being written got through.
    assert!((1..=5).contains(&delivered), "delivered {delivered}");
    assert_eq!(
        counter_values(&sink, "core", "events_lost_total", None),
        vec![dropped]
    );
    assert!(runtime.sink_errors().is_empty());
}
