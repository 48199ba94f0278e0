//! `coolbpf`: a thin command-line face over the coolbpf library.
//!
//! Data goes to stdout (JSON lines with `--json`), errors to stderr. Exit codes: 0 on
//! success, 1 when the kernel or the environment refuses, 2 for bad usage, an unknown
//! probe or an unknown option.

mod commands;
mod signal;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use coolbpf_core::{Error, ErrorKind};

/// Embeddable eBPF observability: kernel features, the probe catalogue, and running probes.
#[derive(Debug, Parser)]
#[command(name = "coolbpf", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Kernel capabilities, as detected by loading and attaching tiny programs.
    Features {
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The probe catalogue, with availability on this kernel and why not.
    List {
        /// JSON lines, one probe per line.
        #[arg(long)]
        json: bool,
    },
    /// Run one probe and print what it sees.
    Run(commands::run::RunArgs),
    /// Addresses to functions, files and lines: of a process, an ELF file, or the kernel.
    Symbolize(commands::symbolize::SymbolizeArgs),
    /// Sample on-CPU stacks (or measure off-CPU time) and write a profile: folded stacks,
    /// pprof, a flame graph SVG, or JSON lines.
    Profile(commands::profile::ProfileArgs),
    /// GPU-side diagnosis.
    #[command(subcommand)]
    Gpu(commands::gpu::GpuCommand),
}

fn main() -> ExitCode {
    signal::default_sigpipe();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // clap prints help/version to stdout with exit 0, usage errors with exit 2.
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() { 2 } else { 0 });
        }
    };
    let result = match cli.command {
        Command::Features { json } => commands::features::run(json),
        Command::List { json } => {
            commands::list::run(json);
            Ok(())
        }
        Command::Run(args) => commands::run::run(&args),
        Command::Symbolize(args) => commands::symbolize::run(&args),
        Command::Profile(args) => commands::profile::run(&args),
        Command::Gpu(command) => commands::gpu::run(&command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("coolbpf: {err}");
            ExitCode::from(exit_code(&err))
        }
    }
}

/// 2 for what the user typed wrong, 1 for everything the system refused.
fn exit_code(err: &Error) -> u8 {
    match err {
        Error::NotFound { what: "probe", .. } => 2,
        _ if err.kind() == ErrorKind::InvalidArgument => 2,
        _ => 1,
    }
}
