//! `coolbpf gpu diagnose --pid P [--duration S] [--json] [--lib PATH]...`

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use coolbpf_core::{Environment, Error, Result};
use coolbpf_gpu::diagnose::{diagnose, DiagnoseConfig};

use super::profile::progress::Progress;
use crate::signal;

/// `coolbpf gpu ...`.
#[derive(Debug, Subcommand)]
pub enum GpuCommand {
    /// Is the process bound by its CPU side or its GPU side? Watches it for an interval.
    Diagnose(DiagnoseArgs),
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
    }
}

fn run_diagnose(args: &DiagnoseArgs) -> Result<()> {
    let duration = Duration::try_from_secs_f64(args.duration)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "--duration {}: expected a positive number of seconds",
                args.duration
            ))
        })?;
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
