//! `runtime_two_plugins`: two catalogue probes side by side in one [`Runtime`], their
//! records written as JSON lines to stdout.
//!
//! The probes come from the registry by name, the way the `coolbpf` command finds them:
//! `syscount` (restricted to this process, so that its counts are the workload's) and
//! `execsnoop` (every exec on the machine). Each runs on its own worker thread; the
//! runtime collects both every second and hands the records to a [`JsonLinesSink`]. A
//! tiny workload started by the example itself (a `/bin/true` now and then) makes sure
//! there is output: `execsnoop` events for the children, and `syscount` counters for the
//! system calls that start and reap them (`clone3`, `wait4`...) besides the runtime's own.
//! At the end, each plugin's final status goes to stderr, so stdout carries only data.
//!
//! Loading BPF needs root (`CAP_BPF` and `CAP_PERFMON`):
//!
//! ```text
//! sudo cargo run --example runtime_two_plugins          # run for 3 seconds
//! sudo cargo run --example runtime_two_plugins -- 10    # run for 10 seconds
//! ```
//!
//! `tests/examples.rs` runs this file's [`run_two_plugins`] and checks its output.

use std::error::Error;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use coolbpf::probes::ProbeOptions;
use coolbpf::sink::JsonLinesSink;
use coolbpf::{Environment, PluginInfo, Runtime, Sink, CATALOGUE};

/// How long to run when no argument is given.
const DEFAULT_SECONDS: u64 = 3;
/// How often the runtime collects from each plugin.
const INTERVAL: Duration = Duration::from_secs(1);
/// How often the workload runs `/bin/true`.
const WORKLOAD_PERIOD: Duration = Duration::from_millis(250);

/// Runs `syscount` (this process only) and `execsnoop` for `duration` into `sink`, with
/// a `/bin/true` every [`WORKLOAD_PERIOD`] as the workload, then shuts the runtime down
/// (a final collect of each plugin, sinks flushed) and returns each plugin's status.
pub fn run_two_plugins(
    duration: Duration,
    sink: Box<dyn Sink>,
) -> Result<Vec<PluginInfo>, Box<dyn Error>> {
    // Fails with the missing capability named, rather than a bare EPERM from the load.
    Environment::prepare()?;
    let mut runtime = Runtime::builder().interval(INTERVAL).sink(sink).build()?;
    let syscount = CATALOGUE
        .find("syscount")?
        .create(&ProbeOptions::new().with_pid(std::process::id()))?;
    let execsnoop = CATALOGUE.find("execsnoop")?.create(&ProbeOptions::new())?;
    runtime.add(syscount)?;
    runtime.add(execsnoop)?;
    // One plugin failing to start leaves the other running; the error still ends the
    // example, since it exists to show both.
    runtime.start_all()?;
    let deadline = Instant::now() + duration;
    while Instant::now() < deadline {
        Command::new("/bin/true")
            .arg("runtime_two_plugins")
            .status()
            .map_err(|err| format!("cannot run /bin/true: {err}"))?;
        std::thread::sleep(WORKLOAD_PERIOD.min(deadline.saturating_duration_since(Instant::now())));
    }
    runtime.shutdown()?;
    Ok(runtime.statuses())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("runtime_two_plugins: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    let seconds = match std::env::args().nth(1) {
        None => DEFAULT_SECONDS,
        Some(arg) => arg.parse().map_err(|_| {
            format!("usage: runtime_two_plugins [SECONDS]; {arg:?} is not a number")
        })?,
    };
    let statuses = run_two_plugins(
        Duration::from_secs(seconds),
        Box::new(JsonLinesSink::stdout()),
    )?;
    for plugin in statuses {
        eprintln!("{}: {}", plugin.name, plugin.status);
    }
    Ok(())
}
