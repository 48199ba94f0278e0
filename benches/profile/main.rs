//! Profiler benchmark: what on-CPU profiling at 99 Hz on every CPU costs.
//!
//! 1. Slowdown: a fixed CPU-bound workload (one thread per CPU, each running a fixed
//!    number of iterations 14 calls deep, so each sample has a real user stack to walk)
//!    is timed alone, under coolbpf's profiler, and under `perf record -F 99 -a -g`. Runs
//!    are interleaved over several rounds (the order rotates each round), and each
//!    profiled run is divided by the unprofiled run of its round. The workload keeps every
//!    CPU busy, so whatever the profiler's own process does also takes CPU from it. The
//!    kernel's own accounting of the BPF program's run time (`BPF_ENABLE_STATS`) gives
//!    the in-kernel cost per sample directly, which other load cannot blur.
//! 2. The profiling process itself over 60 s at 99 Hz on every CPU, with the workload
//!    spinning on every CPU: CPU time and peak RSS of a process doing what `coolbpf
//!    profile` does (drain and symbolize user addresses every second, then the kernel's,
//!    then render folded stacks); the same from symbol tables only (`--symbols-only`); the
//!    same without symbolization; the same restricted to
//!    the workload's cgroup (so only the workload is symbolized); and `perf record` over
//!    the same time plus `perf report` (perf's symbolization).
//!
//! With `COOLBPF_BENCH_NOFP=1` the workload is built without frame pointers (as Debian's
//! libraries are), coolbpf unwinds by CFI in the kernel (`unwind=cfi`, its default) and
//! perf records `--call-graph dwarf` (8 KiB of stack copied per sample); otherwise the
//! workload has frame pointers, coolbpf walks them (`unwind=fp`) and perf records `-g`.
//!
//! The profiler runs in a child process (this binary again), so its rusage is its own.
//! Run with `sudo cargo bench --bench profile` (about 9 minutes on 2 vCPUs;
//! `COOLBPF_BENCH_ROUNDS=N` and `COOLBPF_BENCH_STEADY_SECONDS=S` change the plan, S = 0
//! skipping part 2). Without
//! `--bench` (`cargo test --benches`) it runs one short round as a smoke test. Without
//! root or BPF it says why and exits 0; without perf the perf rows are left out. Results
//! and their reading are in BENCHMARKS.md.

mod bpfstats;
mod child;
mod measure;
mod perf;
mod workload;

use std::io;
use std::path::Path;
use std::time::Duration;

use coolbpf::Environment;

use child::{Cgroup, Mode, ProfilerChild, Symbolize};
use measure::Usage;
use workload::Workload;

/// Samples per second, per CPU, for every profiler here.
pub const FREQUENCY: u64 = 99;

/// Set (to 1) for the workload without frame pointers, CFI unwinding and perf's DWARF
/// call graphs.
pub const NOFP_ENV: &str = "COOLBPF_BENCH_NOFP";

/// Whether this run is the one without frame pointers.
pub fn without_frame_pointers() -> bool {
    std::env::var(NOFP_ENV).is_ok_and(|v| v == "1")
}

/// perf's call-graph mode for this run.
fn perf_call_graph() -> &'static str {
    if without_frame_pointers() {
        "dwarf"
    } else {
        "fp"
    }
}

/// Sizes of the full run and of the smoke test.
struct Plan {
    rounds: usize,
    /// Seconds the fixed workload should take unprofiled.
    workload_seconds: f64,
    /// Seconds of each profiling-process measurement.
    steady_seconds: u64,
}

const FULL: Plan = Plan {
    rounds: 7,
    workload_seconds: 5.0,
    steady_seconds: 60,
};
const SMOKE: Plan = Plan {
    rounds: 1,
    workload_seconds: 0.5,
    steady_seconds: 2,
};

fn main() {
    if let Ok(limit) = std::env::var(child::ENV) {
        if let Err(err) = child::main(&limit) {
            eprintln!("profiler child: {err}");
            std::process::exit(1);
        }
        return;
    }
    if let Err(err) = Environment::prepare() {
        println!("skipping the profile benchmark: BPF unavailable: {err}");
        return;
    }
    let mut plan = if std::env::args().any(|a| a == "--bench") {
        FULL
    } else {
        SMOKE
    };
    // More rounds, or a shorter (0: no) steady-state part, for experiments.
    if let Some(rounds) = env_number("COOLBPF_BENCH_ROUNDS").filter(|&n| n > 0) {
        plan.rounds = rounds as usize;
    }
    if let Some(seconds) = env_number("COOLBPF_BENCH_STEADY_SECONDS") {
        plan.steady_seconds = seconds;
    }
    let dir = std::env::temp_dir().join(format!("coolbpf-bench-profile-{}", std::process::id()));
    let result = std::fs::create_dir_all(&dir).and_then(|()| run(&plan, &dir));
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(err) = result {
        eprintln!("profile benchmark failed: {err}");
        std::process::exit(1);
    }
}

/// A number from environment variable `name`, if set (a bad value is ignored, with a
/// word on stderr).
fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let number = text.parse().ok();
    if number.is_none() {
        eprintln!("ignoring {name}={text}: expected a number");
    }
    number
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Alone,
    Coolbpf,
    Perf,
}

/// Per-round ratios to the workload alone, and the BPF program's accounting.
#[derive(Default)]
struct Slowdown {
    /// (variant, wall ratio, cpu ratio)
    ratios: Vec<(Variant, f64, f64)>,
    bpf_ns: u64,
    bpf_runs: u64,
    event: String,
}

fn run(plan: &Plan, dir: &Path) -> io::Result<()> {
    let cpus = coolbpf::sys::perf_event::online_cpus()
        .map_err(io::Error::other)?
        .len();
    let workload = Workload::build(dir, cpus, !without_frame_pointers())?;
    if without_frame_pointers() {
        eprintln!("workload without frame pointers: coolbpf unwind=cfi, perf --call-graph dwarf");
    }
    let perf = perf::find();
    if perf.is_none() {
        eprintln!("perf not found: the perf rows are left out");
    }
    // Calibrate: the chunk count that takes about `workload_seconds` unprofiled.
    let probe = workload.run(20)?;
    let chunks = ((20.0 * plan.workload_seconds / probe.wall.as_secs_f64()).round() as u64).max(1);
    eprintln!("{cpus} CPUs; workload: {cpus} threads x {chunks} M iterations");
    let _stats = bpfstats::enable()?;
    let slowdown = slowdown(plan, &workload, perf.as_deref(), dir, chunks)?;
    print_slowdown(&slowdown);
    if plan.steady_seconds == 0 {
        return Ok(());
    }
    steady(plan, &workload, perf.as_deref(), dir, &slowdown.event)
}

fn slowdown(
    plan: &Plan,
    workload: &Workload,
    perf: Option<&Path>,
    dir: &Path,
    chunks: u64,
) -> io::Result<Slowdown> {
    let mut variants = vec![Variant::Alone, Variant::Coolbpf];
    if perf.is_some() {
        variants.push(Variant::Perf);
    }
    let everything = Mode {
        symbolize: Symbolize::DebugInfo,
        cgroup: None,
    };
    let mut out = Slowdown {
        event: "cpu-clock".into(),
        ..Slowdown::default()
    };
    for round in 0..plan.rounds {
        let mut measured = Vec::new();
        for offset in 0..variants.len() {
            let variant = variants[(round + offset) % variants.len()];
            let usage = match (variant, perf) {
                (Variant::Coolbpf, _) => {
                    let profiler = ProfilerChild::start(3600, &everything)?;
                    out.event.clone_from(&profiler.event);
                    let before = bpfstats::of_process(profiler.pid())?;
                    let usage = workload.run(chunks)?;
                    let after = bpfstats::of_process(profiler.pid())?;
                    out.bpf_ns += after.0 - before.0;
                    out.bpf_runs += after.1 - before.1;
                    let (_, summary) = profiler.stop()?;
                    eprintln!("  coolbpf: {summary}");
                    usage
                }
                (Variant::Perf, Some(perf)) => {
                    let record = perf::PerfRecord::start(
                        perf,
                        dir,
                        &out.event,
                        FREQUENCY,
                        perf_call_graph(),
                    )?;
                    let usage = workload.run(chunks)?;
                    record.stop()?;
                    usage
                }
                _ => workload.run(chunks)?,
            };
            eprintln!(
                "round {round} {variant:?}: workload wall {:.3} s, cpu {:.3} s",
                usage.wall.as_secs_f64(),
                usage.cpu.as_secs_f64()
            );
            measured.push((variant, usage));
        }
        let alone = measured
            .iter()
            .find(|(v, _)| *v == Variant::Alone)
            .map(|(_, u)| *u)
            .expect("every round runs the workload alone");
        for (variant, usage) in measured.into_iter().filter(|(v, _)| *v != Variant::Alone) {
            let wall = usage.wall.as_secs_f64() / alone.wall.as_secs_f64();
            let cpu = usage.cpu.as_secs_f64() / alone.cpu.as_secs_f64();
            out.ratios.push((variant, wall, cpu));
        }
    }
    Ok(out)
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

fn print_slowdown(slowdown: &Slowdown) {
    println!(
        "\nworkload time under profiling at {FREQUENCY} Hz ({}), every CPU, / time alone",
        slowdown.event
    );
    println!(
        "{:<24} {:>24} {:>24}",
        "profiler", "wall: median (range)", "cpu: median (range)"
    );
    for (variant, name) in [
        (Variant::Coolbpf, "coolbpf profile"),
        (Variant::Perf, "perf record -a (-g/dwarf)"),
    ] {
        let of = |pick: fn(&(Variant, f64, f64)) -> f64| -> Vec<f64> {
            slowdown
                .ratios
                .iter()
                .filter(|r| r.0 == variant)
                .map(pick)
                .collect()
        };
        let (wall, cpu) = (of(|r| r.1), of(|r| r.2));
        if wall.is_empty() {
            continue;
        }
        let ((w, w_lo, w_hi), (c, c_lo, c_hi)) = (median(wall), median(cpu));
        println!("{name:<24} {w:>7.4}x ({w_lo:.3}-{w_hi:.3}) {c:>7.4}x ({c_lo:.3}-{c_hi:.3})");
    }
    if slowdown.bpf_runs > 0 {
        let per_run = slowdown.bpf_ns as f64 / slowdown.bpf_runs as f64;
        println!(
            "coolbpf's BPF program: {} runs, {per_run:.0} ns each (kernel accounting): \
             {:.4}% of each CPU at {FREQUENCY} Hz",
            slowdown.bpf_runs,
            per_run * FREQUENCY as f64 / 1e7
        );
    }
}

/// The profiling process's own cost over `steady_seconds` of a busy machine.
fn steady(
    plan: &Plan,
    workload: &Workload,
    perf: Option<&Path>,
    dir: &Path,
    event: &str,
) -> io::Result<()> {
    let seconds = plan.steady_seconds;
    println!("\nthe profiling process over {seconds} s at {FREQUENCY} Hz, every CPU busy with the workload");
    println!(
        "{:<46} {:>9} {:>14} {:>11}",
        "process", "cpu (s)", "% of one core", "peak RSS"
    );
    let cgroup = Cgroup::create();
    let modes = [
        (
            "coolbpf, every CPU (sampling + symbolization)",
            Symbolize::DebugInfo,
            false,
        ),
        (
            "coolbpf, every CPU, symbols only",
            Symbolize::SymbolTables,
            false,
        ),
        ("coolbpf, every CPU, sampling only", Symbolize::None, false),
        (
            "coolbpf, the workload's cgroup (+ symbolization)",
            Symbolize::DebugInfo,
            true,
        ),
    ];
    for (name, symbolize, in_cgroup) in modes {
        if in_cgroup && cgroup.is_none() {
            eprintln!("no cgroup v2 mount: the cgroup row is left out");
            continue;
        }
        let mut busy = workload.spawn_for(seconds as f64 + 5.0)?;
        let mode = Mode {
            symbolize,
            cgroup: in_cgroup
                .then(|| cgroup.as_ref().map(|c| c.path().to_path_buf()))
                .flatten(),
        };
        if let (true, Some(cgroup)) = (in_cgroup, &cgroup) {
            cgroup.adopt(busy.id())?;
        }
        let (usage, summary) =
            ProfilerChild::start(seconds, &mode)?.wait(Duration::from_secs(seconds))?;
        let _ = busy.kill();
        let _ = busy.wait();
        eprintln!("  {name}: {summary}");
        row(name, &usage, seconds);
    }
    let Some(perf) = perf else {
        return Ok(());
    };
    let mut busy = workload.spawn_for(seconds as f64 + 5.0)?;
    let record = perf::PerfRecord::start(perf, dir, event, FREQUENCY, perf_call_graph())?;
    std::thread::sleep(Duration::from_secs(seconds));
    let (recorded, data) = record.stop()?;
    let _ = busy.kill();
    let _ = busy.wait();
    let report = perf::report(perf, &data)?;
    row("perf record", &recorded, seconds);
    row("perf report (symbolization)", &report, seconds);
    let both = Usage {
        wall: recorded.wall,
        cpu: recorded.cpu + report.cpu,
        max_rss_kb: recorded.max_rss_kb.max(report.max_rss_kb),
    };
    row("perf record + perf report", &both, seconds);
    Ok(())
}

fn row(name: &str, usage: &Usage, seconds: u64) {
    println!(
        "{name:<46} {:>9.3} {:>13.3}% {:>8.1} MB",
        usage.cpu.as_secs_f64(),
        usage.cpu.as_secs_f64() * 100.0 / seconds as f64,
        usage.max_rss_kb as f64 / 1024.0
    );
}
