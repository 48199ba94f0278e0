//! Bindings throughput: events per second delivered from the same BPF program and
//! workload through coolbpf's Rust API and its C API (and its Python module, when one is
//! given), measured in the same run.
//!
//! The program is the transport benchmark's (`benches/bpf/transport.bpf.c`): one 64-byte
//! ring-buffer event per `getppid` of one thread, into a ring large enough for a whole
//! run. Each binding loads it as a user object, consumes the ring with a callback that
//! checks the sequence number and counts, while the same thread that loaded it makes N
//! syscalls. The time is from the first syscall to the last event reaching the callback.
//! Two rates come of it: events per second of that wall time (bounded by the producer
//! here, so it mostly shows that no binding holds the producer back), and events per
//! second of consumer CPU time (the process's CPU time over the run minus the producing
//! thread's; for Python, whose producer is another process, all of its CPU time): what
//! one core could deliver through each binding, the binding's own cost per event.
//!
//! - Rust: in this process, `EventStream::ring_buffer` with `Delivery::callback`.
//! - C: `benches/bindings/throughput.c`, compiled with `cc` against the C library as
//!   `coolbpf-c/install.sh` installs it (`cargo build --release -p coolbpf-c` first; in
//!   smoke mode the debug build), run as a process of its own.
//! - Python: `$COOLBPF_PYTHON benches/bindings/throughput.py --object OBJECT --events N
//!   --ring-bytes B` when `COOLBPF_PYTHON` names a python with the coolbpf module
//!   installed (e.g. `.venv/bin/python` after `scripts/python-test.sh`); it prints the
//!   same line as the C program (`delivered=D produced=P lost=L out_of_order=O ns=T
//!   cpu_ns=C`) and
//!   consumes in batches of up to 65,536 events. Otherwise the Python row says "not
//!   measured".
//!
//! Every run must account for every event (`delivered + lost == produced`, in order).
//! Rounds interleave the bindings (rotating who goes first); medians are reported, with
//! each binding's ratio to Rust. Run with `sudo cargo bench --bench bindings`; without
//! `--bench` (as `cargo test --benches` runs it) one short round is a smoke test. Without
//! root or BPF it says why and exits successfully.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use coolbpf::stream::{Delivery, EventStream};
use coolbpf::Environment;
use transport_workload::{decode_seq, getppid_times, median, OBJECT, RECORD_BYTES, RING_BYTES};

#[path = "../transport_workload/mod.rs"]
mod transport_workload;

const EVENTS: u64 = 800_000;
const ROUNDS: usize = 9;
const SMOKE_EVENTS: u64 = 20_000;
const SMOKE_ROUNDS: usize = 1;
const _: () = assert!(EVENTS * RECORD_BYTES <= RING_BYTES as u64);
const RUN_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy)]
struct Run {
    delivered: u64,
    produced: u64,
    lost: u64,
    out_of_order: u64,
    wall: Duration,
    /// CPU time spent consuming.
    consumer_cpu: Duration,
}

impl Run {
    fn rate(&self) -> f64 {
        self.delivered as f64 / self.wall.as_secs_f64()
    }

    /// Events per second of consumer CPU time.
    fn cpu_rate(&self) -> f64 {
        self.delivered as f64 / self.consumer_cpu.as_secs_f64().max(1e-9)
    }

    fn check(&self, binding: &str, events: u64) -> Result<(), String> {
        if self.delivered + self.lost == self.produced
            && self.produced == events
            && self.out_of_order == 0
        {
            Ok(())
        } else {
            Err(format!(
                "{binding}: accounting failed: {self:?} (expected {events} events)"
            ))
        }
    }
}

/// CPU time (user + system) of the process (`RUSAGE_SELF`) or the calling thread
/// (`RUSAGE_THREAD`).
fn cpu_time(who: libc::c_int) -> Duration {
    // SAFETY: an all-zero rusage is a valid value for getrusage to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a live, writable rusage.
    unsafe { libc::getrusage(who, &raw mut usage) };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

fn rust_run(events: u64) -> Result<Run, String> {
    let text = |e: coolbpf::Error| e.to_string();
    let mut object = transport_workload::load()?;
    let seen = Arc::new(AtomicU64::new(0));
    let out_of_order = Arc::new(AtomicU64::new(0));
    let (done_tx, done_rx) = crossbeam_channel::bounded::<Instant>(1);
    let (seen_cb, order_cb) = (Arc::clone(&seen), Arc::clone(&out_of_order));
    let (mut count, mut next_seq) = (0u64, 0u64);
    let mut stream = EventStream::ring_buffer(
        &object,
        "events",
        decode_seq,
        Delivery::callback(move |seq: u64| {
            if seq != next_seq {
                order_cb.fetch_add(1, Ordering::Relaxed);
            }
            next_seq = seq + 1;
            count += 1;
            seen_cb.store(count, Ordering::Relaxed);
            if count == events {
                let _ = done_tx.try_send(Instant::now());
            }
        }),
    )
    .map_err(text)?;
    let (process_cpu, thread_cpu) = (cpu_time(libc::RUSAGE_SELF), cpu_time(libc::RUSAGE_THREAD));
    let start = Instant::now();
    getppid_times(events);
    let last = done_rx
        .recv_timeout(RUN_TIMEOUT)
        .unwrap_or_else(|_| Instant::now());
    let process_cpu = cpu_time(libc::RUSAGE_SELF).saturating_sub(process_cpu);
    let consumer_cpu =
        process_cpu.saturating_sub(cpu_time(libc::RUSAGE_THREAD).saturating_sub(thread_cpu));
    object.detach_all();
    stream.stop().map_err(text)?;
    let losses = stream.losses().map_err(text)?;
    Ok(Run {
        delivered: losses.delivered,
        produced: object.global_u64("produced").map_err(text)?,
        lost: losses.total(),
        out_of_order: out_of_order.load(Ordering::Relaxed),
        wall: last - start,
        consumer_cpu,
    })
}

/// Parses `delivered=D produced=P lost=L out_of_order=O ns=T`.
fn parse_line(binding: &str, stdout: &str) -> Result<Run, String> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("delivered="))
        .ok_or_else(|| format!("{binding}: no result line in {stdout:?}"))?;
    let field = |name: &str| -> Result<u64, String> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{binding}: no {name} in {line:?}"))
    };
    Ok(Run {
        delivered: field("delivered")?,
        produced: field("produced")?,
        lost: field("lost")?,
        out_of_order: field("out_of_order")?,
        wall: Duration::from_nanos(field("ns")?),
        consumer_cpu: Duration::from_nanos(field("cpu_ns")?),
    })
}

fn process_run(binding: &str, mut command: Command) -> Result<Run, String> {
    let output = command
        .output()
        .map_err(|e| format!("{binding}: cannot run: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "{binding}: {}: {}{}",
            output.status,
            stdout,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    parse_line(binding, &stdout)
}

/// The C program, built against the installed C library; `Err` says why it cannot be.
fn build_c(profile_dir: &Path) -> Result<(PathBuf, PathBuf), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if !profile_dir.join("libcoolbpf_c.so").exists() {
        return Err(format!(
            "{} has no libcoolbpf_c.so: run `cargo build --release -p coolbpf-c` first",
            profile_dir.display()
        ));
    }
    let prefix = profile_dir.join("coolbpf-c-bench");
    let run = |command: &mut Command, what: &str| -> Result<(), String> {
        let output = command.output().map_err(|e| format!("{what}: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{what}: {}",
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    };
    run(
        Command::new("sh")
            .arg(root.join("coolbpf-c/install.sh"))
            .arg("--lib-dir")
            .arg(profile_dir)
            .arg(&prefix),
        "install.sh",
    )?;
    let binary = prefix.join("throughput");
    run(
        Command::new("cc")
            .args(["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror"])
            .arg(root.join("benches/bindings/throughput.c"))
            .arg("-o")
            .arg(&binary)
            .arg(format!("-I{}", prefix.join("include").display()))
            .arg(format!("-L{}", prefix.join("lib").display()))
            .arg("-lcoolbpf"),
        "cc throughput.c",
    )?;
    Ok((binary, prefix.join("lib")))
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (events, rounds) = if bench {
        (EVENTS, ROUNDS)
    } else {
        (SMOKE_EVENTS, SMOKE_ROUNDS)
    };
    if let Err(err) = Environment::prepare() {
        println!("bindings benchmark skipped: BPF unavailable: {err}");
        return;
    }
    let profile_dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(Path::to_path_buf))
        .expect("the bench binary is in <profile>/deps");
    let object_path = profile_dir.join("bindings-transport.bpf.o");
    std::fs::write(&object_path, OBJECT).expect("write the transport object");
    let object_arg = object_path.to_string_lossy().into_owned();
    let c = build_c(&profile_dir);
    if let Err(why) = &c {
        println!("C: not measured: {why}");
    }
    let python = std::env::var_os("COOLBPF_PYTHON");
    // Per binding: its name, then per run the wall rate and the consumer-CPU rate.
    let mut rates: Vec<(&str, Vec<(f64, f64)>)> =
        vec![("Rust", vec![]), ("C", vec![]), ("Python", vec![])];
    let mut failed = false;
    for round in 0..rounds {
        for slot in 0..3 {
            let which = (slot + round) % 3;
            let result = match which {
                0 => rust_run(events),
                1 => match &c {
                    Ok((binary, lib)) => {
                        let mut command = Command::new(binary);
                        command
                            .args([&object_arg, &events.to_string(), &RING_BYTES.to_string()])
                            .env("LD_LIBRARY_PATH", lib);
                        process_run("C", command)
                    }
                    Err(_) => continue,
                },
                _ => match &python {
                    Some(python) => {
                        let mut command = Command::new(python);
                        command
                            .arg(
                                Path::new(env!("CARGO_MANIFEST_DIR"))
                                    .join("benches/bindings/throughput.py"),
                            )
                            .args(["--object", &object_arg, "--events", &events.to_string()])
                            .args(["--ring-bytes", &RING_BYTES.to_string()]);
                        process_run("Python", command)
                    }
                    None => continue,
                },
            };
            let name = rates[which].0;
            match result.and_then(|run| run.check(name, events).map(|()| run)) {
                Ok(run) => {
                    println!(
                        "round {round} {name:<6} {:>10.0} events/s, {:>10.0} per consumer CPU s ({} delivered, {} lost, {:.1} ms, consumer CPU {:.1} ms)",
                        run.rate(),
                        run.cpu_rate(),
                        run.delivered,
                        run.lost,
                        run.wall.as_secs_f64() * 1e3,
                        run.consumer_cpu.as_secs_f64() * 1e3
                    );
                    rates[which].1.push((run.rate(), run.cpu_rate()));
                }
                Err(err) => {
                    println!("round {round} {name}: FAILED: {err}");
                    failed = true;
                }
            }
        }
    }
    let wall = |values: &[(f64, f64)]| median(values.iter().map(|v| v.0).collect());
    let cpu = |values: &[(f64, f64)]| median(values.iter().map(|v| v.1).collect());
    let (rust_wall, rust_cpu) = (wall(&rates[0].1), cpu(&rates[0].1));
    println!(
        "\n| binding | events/s (median of {rounds}) | vs Rust | events per consumer CPU s | vs Rust |\n|---|---|---|---|---|"
    );
    for (name, values) in &rates {
        if values.is_empty() {
            println!("| {name} | not measured | | | |");
        } else {
            let (w, c) = (wall(values), cpu(values));
            println!(
                "| {name} | {w:.0} | {:.3}x | {c:.0} | {:.3}x |",
                w / rust_wall,
                c / rust_cpu
            );
        }
    }
    let _ = std::fs::remove_file(&object_path);
    if failed {
        std::process::exit(1);
    }
}
