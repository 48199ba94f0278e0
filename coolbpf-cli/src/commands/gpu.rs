//! `coolbpf gpu diagnose --pid P [--duration S] [--json] [--lib PATH]...` and
//! `coolbpf gpu launches [--pid P] [--duration S] [--format F] [-o FILE] [--lib PATH]...`

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use clap::{Args, Subcommand};
use coolbpf_core::{Environment, Error, Metric, Record, Result, StackSample};
use coolbpf_gpu::diagnose::{diagnose, DiagnoseConfig};
use coolbpf_gpu::CATALOGUE;
use coolbpf_probes::stacks::profile_from_records;
use coolbpf_probes::{ProbeOptions, ProbeSession};
use coolbpf_symbolize::profile::{FlameGraphOptions, PprofOptions, ValueType};

use super::profile::output::{Output, OutputFormat, Rendered};
use super::profile::progress::Progress;
use crate::signal;

/// `coolbpf gpu ...`.
#[derive(Debug, Subcommand)]
pub enum GpuCommand {
    /// Is the process bound by its CPU side or its GPU side? Watches it for an interval.
    Diagnose(DiagnoseArgs),
    /// A launch flame graph: the CPU stacks that launch CUDA kernels, with the kernel as
    /// the leaf, weighted by launches.
    Launches(LaunchesArgs),
}

/// Arguments of `coolbpf gpu launches`.
#[derive(Debug, Args)]
pub struct LaunchesArgs {
    /// Only this process (default: every process using the CUDA libraries found).
    #[arg(long, value_name = "P")]
    pid: Option<u32>,
    /// How long to trace, seconds.
    #[arg(long, value_name = "S", default_value_t = 10.0)]
    duration: f64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Svg)]
    format: OutputFormat,
    /// Write here instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// A CUDA library (or program linking it) to trace instead of those found
    /// (repeatable).
    #[arg(long, value_name = "PATH")]
    lib: Vec<PathBuf>,
}

/// Arguments of `coolbpf gpu diagnose`.
#[derive(Debug, Args)]
pub struct DiagnoseArgs {
    /// The process.
    #[arg(long, value_name = "P")]
    pid: u32,
    /// How long to watch it, seconds.
    #[arg(long, value_name = "S", default_value_t = 10.0)]
    duration: f64,
    /// JSON lines: the verdict, then one record per thread.
    #[arg(long)]
    json: bool,
    /// A CUDA library (or program linking it) to trace instead of those the process maps
    /// (repeatable).
    #[arg(long, value_name = "PATH")]
    lib: Vec<PathBuf>,
}

/// Runs a `gpu` subcommand.
pub fn run(command: &GpuCommand) -> Result<()> {
    match command {
        GpuCommand::Diagnose(args) => run_diagnose(args),
        GpuCommand::Launches(args) => run_launches(args),
    }
}

fn positive_seconds(value: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "--duration {value}: expected a positive number of seconds"
            ))
        })
}

fn run_launches(args: &LaunchesArgs) -> Result<()> {
    let duration = positive_seconds(args.duration)?;
    let output = Output::open(args.output.as_deref(), args.format)?;
    Environment::prepare()?;
    signal::install();
    let mut options = ProbeOptions::new();
    options.pid = args.pid;
    let libs: Vec<String> = args.lib.iter().map(|p| p.display().to_string()).collect();
    if !libs.is_empty() {
        options = options.with("lib", &libs.join(","));
    }
    // Collected every second, so that launch sites are named while their processes run.
    let probe = CATALOGUE.find(coolbpf_gpu::cuda::NAME)?;
    let mut session = ProbeSession::open(probe, &options, Duration::from_secs(1))?;
    session.start()?;
    let started = Instant::now();
    let taken = SystemTime::now();
    let mut progress = Progress::on_stderr();
    let mut records = Vec::new();
    while started.elapsed() < duration && !signal::interrupted() {
        records.extend(session.poll(Duration::from_millis(200))?);
        let left = duration.saturating_sub(started.elapsed()).as_secs();
        progress.show(&format!(
            "tracing CUDA launches: {left}s left (Ctrl-C to stop)"
        ));
    }
    progress.clear();
    session.stop()?;
    records.extend(session.poll(Duration::ZERO)?);
    let (stacks, metrics) = last_report(records);
    let profile = profile_from_records(&stacks);
    let rendered = Rendered {
        profile: &profile,
        records: stacks,
        metrics,
        pprof: PprofOptions {
            sample_type: ValueType::new("launches", "count"),
            ..PprofOptions::default()
        }
        .taken(taken, started.elapsed()),
        flamegraph: FlameGraphOptions {
            title: "coolbpf CUDA launches".into(),
            subtitle: Some("CPU stacks that launch each kernel; the leaf is the kernel".into()),
            count_name: "launches".into(),
        },
    };
    output.write(args.format, &rendered)
}

/// The stacks of the last report (each report repeats the cumulative launch stacks),
/// and the last value of each counter.
fn last_report(records: Vec<Record>) -> (Vec<StackSample>, Vec<Metric>) {
    let mut stacks: Vec<StackSample> = Vec::new();
    let mut metrics: Vec<Metric> = Vec::new();
    for record in records {
        match record {
            Record::Stack(stack) => stacks.push(stack),
            Record::Metric(metric) => {
                metrics.retain(|m| !(m.name == metric.name && m.labels == metric.labels));
                metrics.push(metric);
            }
            Record::Event(_) => {}
        }
    }
    let last = stacks.iter().map(|s| s.ts_ns).max().unwrap_or(0);
    stacks.retain(|s| s.ts_ns == last);
    (stacks, metrics)
}

fn run_diagnose(args: &DiagnoseArgs) -> Result<()> {
    let duration = positive_seconds(args.duration)?;
    Environment::prepare()?;
    signal::install();
    let config = DiagnoseConfig {
        pid: args.pid,
        duration,
        libraries: args.lib.clone(),
    };
    let mut progress = Progress::on_stderr();
    let diagnosis = diagnose(&config, |elapsed| {
        let left = duration.saturating_sub(elapsed).as_secs();
        progress.show(&format!(
            "diagnosing pid {}: {left}s left (Ctrl-C to stop)",
            args.pid
        ));
        !signal::interrupted()
    });
    progress.clear();
    let diagnosis = diagnosis?;
    if args.json {
        for record in diagnosis.to_records() {
            println!("{}", record.to_json());
        }
    } else {
        print!("{}", diagnosis.text());
    }
    Ok(())
}
