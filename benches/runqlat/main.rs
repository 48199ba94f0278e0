//! runqlat overhead benchmark: how much slower a context-switch-heavy workload runs while
//! run-queue latency is being measured.
//!
//! The workload is a pipe ping-pong between two forked processes, a fixed number of round
//! trips; every hop is a wakeup and a context switch, the events runqlat hooks. It is
//! timed (wall, and the CPU time of both processes) with no tracing, with coolbpf's
//! `runqlat` running in this process (`Runqlat::start`: one histogram of every task,
//! tp_btf hooks; once with the default sched_info method, once with the wakeup method),
//! with the equivalent bpftrace script running (started, and waited for until its BEGIN
//! probe ran, before the workload starts), and with empty programs on each method's
//! hooks (the floor: what running any BPF program there costs). Variants are
//! interleaved over rounds (the order rotates each round) and each traced run is divided
//! by the untraced run of its round; the medians and ranges of those ratios are reported,
//! and coolbpf's time divided by bpftrace's in the same round. Finally each tracer runs
//! the workload once more with `BPF_ENABLE_STATS`, for the kernel's own accounting of the
//! programs' run time (kept off during the timed rounds, as it adds a cost of its own).
//!
//! Run with `sudo cargo bench --bench runqlat`. Without `--bench` (`cargo test
//! --benches`) it runs one tiny round as a smoke test. Without root or BPF it says why
//! and exits 0; without bpftrace the bpftrace rows are left out. Results and their
//! reading are in BENCHMARKS.md.

#[path = "../profile/bpfstats.rs"]
mod bpfstats;
#[path = "../peers/bpftrace.rs"]
mod bpftrace;
mod workload;

use std::io;
use std::path::Path;

use coolbpf::probes::runqlat::{Method, Runqlat, RunqlatConfig};
use coolbpf::{BpfObject, Environment, ObjectBuilder};

use bpftrace::Bpftrace;
use workload::{bench_cpu, ping_pong, Usage};

/// runqlat in bpftrace, with the rules of the probe's bpftrace comparison test
/// (coolbpf-probes/tests/runqlat.rs): a woken task, or one switched out still runnable
/// (prev_state 0, or reported preempted: TASK_REPORT_MAX), is queued; a queued task
/// switched in is one latency. As runqlat does by default, latencies go into one log2
/// histogram in microseconds, and every switch is counted.
pub const SCRIPT: &str = r#"
BEGIN { printf("ready\n"); }
tracepoint:sched:sched_wakeup, tracepoint:sched:sched_wakeup_new {
    if (args->pid != 0) { @q[args->pid] = nsecs; }
}
tracepoint:sched:sched_switch {
    @sw = count();
    if (args->prev_pid != 0 && (args->prev_state == 0 || (args->prev_state & 256) != 0)) {
        @q[args->prev_pid] = nsecs;
    }
    $queued = @q[args->next_pid];
    if ($queued != 0) {
        @usecs = hist((nsecs - $queued) / 1000);
        delete(@q[args->next_pid]);
    }
}
END { clear(@q); }
"#;

/// The switches the bpftrace script counted (`@sw`), from what it printed.
fn switches_counted(output: &[String]) -> u64 {
    output
        .iter()
        .find_map(|line| line.strip_prefix("@sw: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Sizes of the full run and of the smoke test.
struct Plan {
    rounds: usize,
    round_trips: u32,
}

const FULL: Plan = Plan {
    rounds: 7,
    round_trips: 200_000,
};
const SMOKE: Plan = Plan {
    rounds: 1,
    round_trips: 2_000,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    None,
    /// An empty program on sched_switch: the floor of the sched_info method.
    FloorSwitch,
    /// Empty programs on the wakeup method's three hooks: its floor.
    FloorWakeup,
    /// runqlat's default: the sched_info method.
    Coolbpf,
    /// runqlat with the wakeup method (bpftrace's way).
    CoolbpfWakeup,
    Bpftrace,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Self::None => "no tracing",
            Self::FloorSwitch => "empty: switch",
            Self::FloorWakeup => "empty: 3 hooks",
            Self::Coolbpf => "coolbpf",
            Self::CoolbpfWakeup => "coolbpf wakeup",
            Self::Bpftrace => "bpftrace script",
        }
    }

    /// The runqlat config of a coolbpf variant.
    fn config(self) -> Option<RunqlatConfig> {
        let method = match self {
            Self::Coolbpf => Method::SchedInfo,
            Self::CoolbpfWakeup => Method::Wakeup,
            _ => return None,
        };
        Some(RunqlatConfig {
            method,
            ..RunqlatConfig::default()
        })
    }

    /// The empty programs of a floor variant.
    fn floor(self) -> Option<&'static [&'static str]> {
        match self {
            Self::FloorSwitch => Some(&["floor_switch"]),
            Self::FloorWakeup => Some(&["floor_wakeup", "floor_wakeup_new", "floor_switch"]),
            _ => None,
        }
    }
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("skipping the runqlat benchmark: not root");
        return;
    }
    if let Err(err) = Environment::prepare() {
        println!("skipping the runqlat benchmark: BPF unavailable: {err}");
        return;
    }
    let mut plan = if std::env::args().any(|a| a == "--bench") {
        FULL
    } else {
        SMOKE
    };
    // Shorter or longer runs for experiments, without editing the plan.
    if let Some(rounds) = env_number("COOLBPF_BENCH_ROUNDS") {
        plan.rounds = rounds as usize;
    }
    if let Some(trips) = env_number("COOLBPF_BENCH_ROUND_TRIPS") {
        plan.round_trips = trips;
    }
    if let Err(err) = run(&plan) {
        eprintln!("runqlat benchmark failed: {err}");
        std::process::exit(1);
    }
}

/// A positive number from environment variable `name`, if set (a bad value is ignored,
/// with a word on stderr).
fn env_number(name: &str) -> Option<u32> {
    let text = std::env::var(name).ok()?;
    match text.parse::<u32>() {
        Ok(n) if n > 0 => Some(n),
        _ => {
            eprintln!("ignoring {name}={text}: expected a positive integer");
            None
        }
    }
}

/// Runs the workload under `variant`; the usage and the switches the tracer counted.
fn measure(variant: Variant, bpftrace: Option<&Path>, round_trips: u32) -> io::Result<Measured> {
    if let Some(config) = variant.config() {
        let mut probe = Runqlat::start(&config).map_err(io::Error::other)?;
        let before = probe.counters().map_err(io::Error::other)?.switches;
        let usage = ping_pong(round_trips, bench_cpu())?;
        let after = probe.counters().map_err(io::Error::other)?.switches;
        probe.stop();
        let latencies = probe.total().map_err(io::Error::other)?.count;
        return Ok(Measured {
            usage,
            traced: Some(after - before),
            latencies,
        });
    }
    if let Some(programs) = variant.floor() {
        let floor = Floor::attach(programs).map_err(io::Error::other)?;
        let usage = ping_pong(round_trips, bench_cpu())?;
        drop(floor);
        return Ok(Measured {
            usage,
            traced: None,
            latencies: 0,
        });
    }
    Ok(match (variant, bpftrace) {
        (Variant::Bpftrace, Some(path)) => {
            let peer = Bpftrace::start(path, SCRIPT)?;
            let usage = ping_pong(round_trips, bench_cpu())?;
            let traced = switches_counted(&peer.stop()?);
            Measured {
                usage,
                traced: Some(traced),
                latencies: 0,
            }
        }
        _ => Measured {
            usage: ping_pong(round_trips, bench_cpu())?,
            traced: None,
            latencies: 0,
        },
    })
}

/// The empty programs of `benches/bpf/sched_floor.bpf.c`, attached; dropping detaches.
struct Floor {
    _object: BpfObject,
}

impl Floor {
    fn attach(programs: &[&str]) -> coolbpf::Result<Self> {
        static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/sched_floor.bpf.o"));
        let mut object = ObjectBuilder::from_bytes(OBJECT).load()?;
        for program in programs {
            object.attach_auto(program)?;
        }
        Ok(Self { _object: object })
    }
}

struct Measured {
    usage: Usage,
    /// Switches the tracer counted during the workload (bpftrace: while it ran).
    traced: Option<u64>,
    /// Latencies coolbpf measured (0 for the others).
    latencies: u64,
}

/// Per round: (variant, usage).
type Rounds = Vec<Vec<(Variant, Usage)>>;

fn run(plan: &Plan) -> io::Result<()> {
    // Feature detection loads probes of its own: done once, before anything is timed.
    coolbpf::Features::detect().map_err(io::Error::other)?;
    let bpftrace = bpftrace::find();
    let mut variants = vec![
        Variant::None,
        Variant::FloorSwitch,
        Variant::FloorWakeup,
        Variant::Coolbpf,
        Variant::CoolbpfWakeup,
    ];
    if bpftrace.is_some() {
        variants.push(Variant::Bpftrace);
    } else {
        println!("bpftrace not found: the bpftrace rows are left out");
    }
    // A warm-up run, not counted.
    ping_pong(plan.round_trips / 10, bench_cpu())?;
    let mut rounds: Rounds = Vec::new();
    for round in 0..plan.rounds {
        let mut this = Vec::new();
        for offset in 0..variants.len() {
            let variant = variants[(round + offset) % variants.len()];
            let m = measure(variant, bpftrace.as_deref(), plan.round_trips)?;
            eprintln!(
                "round {round} {:<16} wall {:>8.3} s  cpu {:>7.3} s  switches {:>8} ({} traced, {} latencies)",
                variant.name(),
                m.usage.wall.as_secs_f64(),
                m.usage.cpu.as_secs_f64(),
                m.usage.switches,
                m.traced.map_or_else(|| "-".into(), |n| n.to_string()),
                m.latencies,
            );
            this.push((variant, m.usage));
        }
        rounds.push(this);
    }
    print_results(plan, &variants, &rounds);
    kernel_accounting(&variants, bpftrace.as_deref(), plan.round_trips)
}

fn median(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    let median = if values.len() % 2 == 0 {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    };
    (median, values[0], values[values.len() - 1])
}

/// The ratio `of / to` in every round, by `pick` (wall or cpu seconds).
fn ratios(rounds: &Rounds, of: Variant, to: Variant, pick: fn(&Usage) -> f64) -> Vec<f64> {
    rounds
        .iter()
        .filter_map(|round| {
            let find = |v: Variant| round.iter().find(|(w, _)| *w == v).map(|(_, u)| pick(u));
            Some(find(of)? / find(to)?)
        })
        .collect()
}

fn print_results(plan: &Plan, variants: &[Variant], rounds: &Rounds) {
    let wall = |u: &Usage| u.wall.as_secs_f64();
    let cpu = |u: &Usage| u.cpu.as_secs_f64();
    println!(
        "\npipe ping-pong, {} round trips, {} rounds (order rotated each round)",
        plan.round_trips, plan.rounds
    );
    println!(
        "{:<16} {:>24} {:>24} {:>14}",
        "variant", "wall: median (range)", "cpu: median (range)", "switches (med)"
    );
    for &variant in variants {
        let all = |pick: fn(&Usage) -> f64| -> Vec<f64> {
            rounds
                .iter()
                .flatten()
                .filter(|(v, _)| *v == variant)
                .map(|(_, u)| pick(u))
                .collect()
        };
        let (w, w_lo, w_hi) = median(all(wall));
        let (c, c_lo, c_hi) = median(all(cpu));
        let (s, _, _) = median(all(|u| u.switches as f64));
        println!(
            "{:<16} {w:>7.3} s ({w_lo:.3}-{w_hi:.3}) {c:>7.3} s ({c_lo:.3}-{c_hi:.3}) {s:>14.0}",
            variant.name()
        );
    }
    println!(
        "\n{:<30} {:>24} {:>24}",
        "ratio (same round)", "wall: median (range)", "cpu: median (range)"
    );
    let pairs = [
        (Variant::FloorSwitch, Variant::None, "empty: switch / none"),
        (Variant::FloorWakeup, Variant::None, "empty: 3 hooks / none"),
        (Variant::Coolbpf, Variant::None, "coolbpf / none"),
        (
            Variant::CoolbpfWakeup,
            Variant::None,
            "coolbpf wakeup / none",
        ),
        (Variant::Bpftrace, Variant::None, "bpftrace / none"),
        (Variant::Coolbpf, Variant::Bpftrace, "coolbpf / bpftrace"),
        (
            Variant::CoolbpfWakeup,
            Variant::Bpftrace,
            "coolbpf wakeup / bpftrace",
        ),
    ];
    for (of, to, name) in pairs {
        let w = ratios(rounds, of, to, wall);
        let c = ratios(rounds, of, to, cpu);
        if w.is_empty() {
            continue;
        }
        let ((w, w_lo, w_hi), (c, c_lo, c_hi)) = (median(w), median(c));
        println!("{name:<30} {w:>7.4}x ({w_lo:.3}-{w_hi:.3}) {c:>7.4}x ({c_lo:.3}-{c_hi:.3})");
    }
}

/// One more workload run per tracer with BPF run-time statistics on: the programs' runs
/// and time as the kernel accounts them.
fn kernel_accounting(
    variants: &[Variant],
    bpftrace: Option<&Path>,
    round_trips: u32,
) -> io::Result<()> {
    let _stats = bpfstats::enable()?;
    println!("\nkernel accounting (BPF_ENABLE_STATS), one more run each");
    println!(
        "{:<16} {:>12} {:>12} {:>16} {:>14}",
        "tracer", "prog runs", "ns per run", "runs/round trip", "BPF ms in all"
    );
    for &variant in variants {
        let me = std::process::id();
        let (ns, runs) = match (variant, bpftrace) {
            (Variant::FloorSwitch | Variant::FloorWakeup, _) => {
                let programs = variant.floor().unwrap_or_default();
                let floor = Floor::attach(programs).map_err(io::Error::other)?;
                let before = bpfstats::of_process(me)?;
                ping_pong(round_trips, bench_cpu())?;
                let after = bpfstats::of_process(me)?;
                drop(floor);
                (after.0 - before.0, after.1 - before.1)
            }
            (Variant::Coolbpf | Variant::CoolbpfWakeup, _) => {
                let config = variant.config().unwrap_or_default();
                let mut probe = Runqlat::start(&config).map_err(io::Error::other)?;
                let before = bpfstats::of_process(me)?;
                ping_pong(round_trips, bench_cpu())?;
                let after = bpfstats::of_process(me)?;
                probe.stop();
                (after.0 - before.0, after.1 - before.1)
            }
            (Variant::Bpftrace, Some(path)) => {
                let peer = Bpftrace::start(path, SCRIPT)?;
                let before = bpfstats::of_process(peer.pid())?;
                ping_pong(round_trips, bench_cpu())?;
                let after = bpfstats::of_process(peer.pid())?;
                peer.stop()?;
                (after.0 - before.0, after.1 - before.1)
            }
            _ => continue,
        };
        println!(
            "{:<16} {runs:>12} {:>12.0} {:>16.2} {:>14.1}",
            variant.name(),
            ns as f64 / runs.max(1) as f64,
            runs as f64 / f64::from(round_trips),
            ns as f64 / 1e6
        );
    }
    Ok(())
}
