//! `coolbpf profile --off-cpu`: the registry's `offcpu` probe, run as a plugin whose
//! stack records are merged into one profile.
//!
//! Only the plugin interface is used (any probe that emits `Record::Stack` per interval
//! would do), so the command does not depend on the probe's own API.

use std::time::{Duration, Instant};

use coolbpf_core::sink::MemorySink;
use coolbpf_core::{
    Environment, Error, Features, Metric, PluginStatus, Record, Result, Runtime, StackSample,
};
use coolbpf_gpu::CATALOGUE;
use coolbpf_probes::offcpu::StackTotals;
use coolbpf_probes::profile::profile_from_records;
use coolbpf_probes::ProbeOptions;
use coolbpf_symbolize::profile::{FlameGraphOptions, PprofOptions};

use super::output::{Output, Rendered};
use super::progress::{self, Progress};
use super::ProfileArgs;
use crate::signal;

/// The off-CPU probe's registry name.
const PROBE: &str = "offcpu";

/// Runs `offcpu` for `args` and writes its stacks, weighted in microseconds off the CPU.
pub fn run(args: &ProfileArgs, duration: Option<Duration>) -> Result<()> {
    let (pid, format, path) = (args.pid, args.format, args.output.as_deref());
    let probe = CATALOGUE.find(PROBE).map_err(|_| Error::Unsupported {
        feature: "off-CPU profiling (--off-cpu)".into(),
        reason: "not available yet: this build of coolbpf has no offcpu probe".into(),
    })?;
    let mut options = ProbeOptions::new();
    options.pid = pid;
    if args.symbols_only {
        options = options.with("debug_info", "false");
    }
    let plugin = probe.create(&options)?;
    let output = Output::open(path, format)?;
    Environment::prepare()?;
    let availability = probe.availability(Features::detect()?);
    if !availability.available {
        return Err(Error::Unsupported {
            feature: "off-CPU profiling (--off-cpu)".into(),
            reason: availability.reason.unwrap_or_default(),
        });
    }
    let sink = MemorySink::new();
    // Collected every second so that user stacks are symbolized while processes run.
    let mut runtime = Runtime::builder()
        .interval(Duration::from_secs(1))
        .sink(Box::new(sink.clone()))
        .build()?;
    let id = runtime.add(plugin)?;
    signal::install();
    runtime.start_plugin(id)?;
    let started = Instant::now();
    let mut progress = Progress::on_stderr();
    let waited = progress::wait(started, duration, || {
        if let Some(PluginStatus::Failed { reason }) = runtime.status(id) {
            return Err(Error::Plugin {
                plugin: PROBE.into(),
                reason,
            });
        }
        progress.show(&format!(
            "off-CPU profiling {}: {}",
            pid.map_or_else(|| "all tasks".to_owned(), |pid| format!("pid {pid}")),
            progress::time_text(started, duration)
        ));
        Ok(pid.is_none_or(Environment::process_exists))
    });
    progress.clear();
    runtime.shutdown()?;
    waited?;
    if let Some(PluginStatus::Failed { reason }) = runtime.status(id) {
        return Err(Error::Plugin {
            plugin: PROBE.into(),
            reason,
        });
    }
    let (records, metrics) = merge(sink.take());
    let profile = profile_from_records(&records);
    let rendered = Rendered {
        profile: &profile,
        records,
        metrics,
        pprof: PprofOptions::off_cpu(),
        flamegraph: FlameGraphOptions::off_cpu(),
    };
    output.write(format, &rendered)
}

/// One record per distinct stack (the plugin emits each interval's time), and the last
/// value of each counter (they are cumulative).
fn merge(records: Vec<Record>) -> (Vec<StackSample>, Vec<Metric>) {
    let mut stacks = StackTotals::new();
    let mut metrics: Vec<Metric> = Vec::new();
    for record in records {
        match record {
            Record::Stack(stack) => stacks.add(stack),
            Record::Metric(metric) => {
                let same = |m: &Metric| {
                    m.probe == metric.probe && m.name == metric.name && m.labels == metric.labels
                };
                metrics.retain(|m| !same(m));
                metrics.push(metric);
            }
            Record::Event(_) => {}
        }
    }
    (stacks.into_stacks(), metrics)
}
