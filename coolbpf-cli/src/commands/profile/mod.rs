//! `coolbpf profile [--duration S] [--freq HZ] [--pid P] [--off-cpu] [--symbols-only]
//! [--unwind cfi|fp] [--no-python] [--format folded|pprof|svg|json] [-o FILE]`
//!
//! One [`ProfileSession`], on-CPU at `--freq` on every CPU (or each thread of `--pid`),
//! or off-CPU time (`--off-cpu`), symbolizing user addresses every second while the
//! processes still run. Data goes to stdout or `-o FILE`; a progress line goes to stderr
//! when it is a terminal; warnings (losses, symbolization failures) go to stderr.

pub(crate) mod output;
pub(crate) mod progress;

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use clap::Args;
use coolbpf_core::{labels, Environment, Error, Metric, Result};
use coolbpf_probes::offcpu::OffCpuConfig;
use coolbpf_probes::profile::{ProfileConfig, ProfileKind, ProfileSession, SessionResult};
use coolbpf_probes::stacks::UnwindMode;
use coolbpf_symbolize::profile::AddressSpace;

use crate::signal;
use output::{Output, OutputFormat, Rendered};
use progress::Progress;

/// Arguments of `coolbpf profile`.
#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long, value_name = "S")]
    duration: Option<f64>,
    /// Samples per second, per CPU (per thread with --pid) [default: 99].
    #[arg(long, value_name = "HZ")]
    freq: Option<u64>,
    /// Only this process (all its threads).
    #[arg(long, value_name = "P")]
    pid: Option<u32>,
    /// Off-CPU time (blocked, sleeping, waiting to run) by stack, instead of on-CPU samples.
    #[arg(long)]
    off_cpu: bool,
    /// Name frames from symbol tables only: no inlined frames and no source lines, but
    /// far less CPU time and memory on binaries with large debug info.
    #[arg(long)]
    symbols_only: bool,
    /// How user stacks are walked: cfi (each binary's CFI, in the kernel: code built
    /// without frame pointers keeps its callers) or fp (frame pointers only).
    #[arg(long, value_enum, value_name = "HOW", default_value = "cfi")]
    unwind: Unwind,
    /// Leave CPython frames out of the stacks (they are read from running interpreters,
    /// 3.10 to 3.13, by default).
    #[arg(long)]
    no_python: bool,
    /// Output format.
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "folded")]
    format: OutputFormat,
    /// Write to FILE instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
}

/// `--unwind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Unwind {
    /// CFI tables in the kernel, frame pointers where a file has none.
    Cfi,
    /// Frame pointers only.
    Fp,
}

impl From<Unwind> for UnwindMode {
    fn from(unwind: Unwind) -> Self {
        match unwind {
            Unwind::Cfi => Self::Cfi,
            Unwind::Fp => Self::FramePointers,
        }
    }
}

/// Profiles until the duration ends, a signal arrives, or the `--pid` process exits, then
/// writes the profile.
pub fn run(args: &ProfileArgs) -> Result<()> {
    let duration = args
        .duration
        .map(|seconds| {
            Duration::try_from_secs_f64(seconds)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "--duration {seconds}: expected a positive number of seconds"
                    ))
                })
        })
        .transpose()?;
    if args.off_cpu && args.freq.is_some() {
        return Err(Error::InvalidArgument(
            "--freq sets the on-CPU sampling rate; --off-cpu measures every switch".into(),
        ));
    }
    if let Some(pid) = args.pid {
        Environment::require_process(pid)?;
    }
    let kind = if args.off_cpu {
        ProfileKind::OffCpu(OffCpuConfig {
            pid: args.pid,
            debug_info: !args.symbols_only,
            unwind: args.unwind.into(),
            python: !args.no_python,
            ..OffCpuConfig::default()
        })
    } else {
        let config = ProfileConfig {
            frequency: args.freq.unwrap_or(99),
            pid: args.pid,
            debug_info: !args.symbols_only,
            unwind: args.unwind.into(),
            python: !args.no_python,
            interval: None,
            ..ProfileConfig::default()
        };
        // Bad values are reported before anything is created or loaded.
        config.validate()?;
        ProfileKind::OnCpu(config)
    };
    let output = Output::open(args.output.as_deref(), args.format)?;
    Environment::prepare()?;
    let what = match &kind {
        ProfileKind::OnCpu(config) => format!("profiling at {} Hz", config.frequency),
        ProfileKind::OffCpu(_) => "off-CPU profiling".to_owned(),
    };
    let mut session = ProfileSession::start(kind)?;
    signal::install();
    let (started, wall) = (Instant::now(), SystemTime::now());
    let scope = args
        .pid
        .map_or_else(|| "all CPUs".to_owned(), |pid| format!("pid {pid}"));
    let mut progress = Progress::on_stderr();
    let waited = progress::wait(started, duration, || {
        session.tick()?;
        progress.show(&format!(
            "{what} {scope}: {}, {} {}",
            progress::time_text(started, duration),
            session.sample_count()?,
            if args.off_cpu { "spans" } else { "samples" }
        ));
        // Like perf record -p: the profile ends with its process.
        Ok(args.pid.is_none_or(Environment::process_exists))
    });
    progress.clear();
    let elapsed = started.elapsed();
    let result = session.finish()?;
    waited?;
    warn(&result);
    let probe = result.probe();
    let total = if args.off_cpu {
        "off_cpu_spans_total"
    } else {
        "samples_total"
    };
    let mut metrics = vec![Metric::counter(probe, total, labels! {}, result.samples)];
    metrics.extend(result.losses.to_metrics(probe));
    let rendered = Rendered {
        profile: &result.profile,
        records: result.stack_records(),
        metrics,
        pprof: result.pprof(wall, elapsed),
        flamegraph: result.flame_graph(&scope, elapsed),
    };
    output.write(args.format, &rendered)
}

/// Says on stderr what the profile is missing, if anything.
fn warn(result: &SessionResult) {
    let kernel = &result.losses.kernel;
    if kernel.ringbuf_reserve > 0 {
        eprintln!(
            "coolbpf: warning: {} samples lost: the ring buffer was full",
            kernel.ringbuf_reserve
        );
    }
    if kernel.stack > 0 {
        eprintln!(
            "coolbpf: warning: {} stack walks failed (those samples lack that half of their stack)",
            kernel.stack
        );
    }
    if result.losses.decode_errors > 0 {
        eprintln!(
            "coolbpf: warning: {} samples could not be decoded",
            result.losses.decode_errors
        );
    }
    // Processes that exit between a sample and the next second's symbolization are
    // common on a busy machine (compilers, shells): one line for all of them.
    let (exited, other): (Vec<_>, Vec<_>) = result.failures.iter().partition(|failure| {
        matches!(failure.space, AddressSpace::Process(_)) && failure.error.contains("not found")
    });
    if !exited.is_empty() {
        let addresses: usize = exited.iter().map(|failure| failure.addresses).sum();
        let processes = match exited.len() {
            1 => "1 process".to_owned(),
            n => format!("{n} processes"),
        };
        eprintln!(
            "coolbpf: note: {processes} exited before being symbolized \
             ({addresses} addresses show as [unknown])"
        );
    }
    for failure in other {
        let space = match failure.space {
            AddressSpace::Kernel => "the kernel".to_owned(),
            AddressSpace::Process(pid) => format!("pid {pid}"),
        };
        eprintln!(
            "coolbpf: warning: {} addresses of {space} not symbolized: {}",
            failure.addresses, failure.error
        );
    }
}
