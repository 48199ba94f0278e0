//! `coolbpf run PROBE [--duration S] [--interval S] [--pid P] [--json] [--opt KEY=VALUE]...`

use std::time::{Duration, Instant};

use clap::Args;
use coolbpf_core::sink::json::JsonLinesSink;
use coolbpf_core::sink::text::TextSink;
use coolbpf_core::{Environment, Error, PluginStatus, Result, Runtime, Sink};
use coolbpf_gpu::CATALOGUE;
use coolbpf_probes::ProbeOptions;

use crate::signal;

/// Arguments of `coolbpf run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The probe to run (see `coolbpf list`).
    probe: String,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long, value_name = "S")]
    duration: Option<f64>,
    /// Emit records every this many seconds (and once more at the end).
    #[arg(long, value_name = "S", default_value_t = 10.0)]
    interval: f64,
    /// Trace only this process.
    #[arg(long, value_name = "P")]
    pid: Option<u32>,
    /// JSON lines, one record per line.
    #[arg(long)]
    json: bool,
    /// A probe option, KEY=VALUE (repeatable; see `coolbpf list`).
    #[arg(long = "opt", value_name = "KEY=VALUE")]
    opts: Vec<String>,
}

fn seconds(name: &str, value: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "--{name} {value}: expected a positive number of seconds"
            ))
        })
}

/// Runs the probe until the duration ends or a signal arrives.
pub fn run(args: &RunArgs) -> Result<()> {
    let probe = CATALOGUE.find(&args.probe)?;
    let mut options = ProbeOptions::new();
    options.pid = args.pid;
    for pair in &args.opts {
        options.set_pair(pair)?;
    }
    let duration = args.duration.map(|d| seconds("duration", d)).transpose()?;
    let interval = seconds("interval", args.interval)?;
    if let Some(pid) = args.pid {
        Environment::require_process(pid)?;
    }
    // Bad options are reported before touching the kernel.
    let plugin = probe.create(&options)?;
    Environment::prepare()?;

    let sink: Box<dyn Sink> = if args.json {
        Box::new(JsonLinesSink::stdout())
    } else {
        Box::new(TextSink::stdout())
    };
    let mut runtime = Runtime::builder().interval(interval).sink(sink).build()?;
    let id = runtime.add(plugin)?;
    signal::install();
    runtime.start_plugin(id)?;

    let deadline = duration.map(|d| Instant::now() + d);
    while !signal::interrupted() && deadline.is_none_or(|d| Instant::now() < d) {
        if let Some(PluginStatus::Failed { reason }) = runtime.status(id) {
            runtime.shutdown()?;
            return Err(Error::Plugin {
                plugin: probe.name.to_owned(),
                reason,
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    runtime.shutdown()?;
    match runtime.status(id) {
        Some(PluginStatus::Failed { reason }) => Err(Error::Plugin {
            plugin: probe.name.to_owned(),
            reason,
        }),
        _ => Ok(()),
    }
}
