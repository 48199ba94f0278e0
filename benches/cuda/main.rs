//! Cost per traced CUDA call: a loop calling the real `cudaLaunchKernel` of libcudart 12
//! (PyPI's wheel; without a driver each call fails at once, so the loop measures the
//! probe), timed by the loop itself (ns per launch), with no tracing, with coolbpf's
//! `cuda` probe (a uprobe that takes the caller's user stack and sends the launch to
//! userspace, which aggregates counts and launch stacks), and with the bpftrace script
//! that does the same with a uprobe and `ustack` (`@[ustack] = count()`). Variants are
//! interleaved over rounds; the added cost of each is its median minus the untraced
//! median, and the figure of merit is coolbpf's added cost over bpftrace's.
//!
//! Run with `sudo cargo bench --bench cuda`. Without `--bench` (`cargo test --benches`)
//! it runs one tiny round as a smoke test. Without root, BPF or the NVIDIA libraries
//! (`scripts/nvidia-libs.sh`) it says why and exits 0. Results are in BENCHMARKS.md.

// Shared with the runqlat bench, which also reads the peer's pid.
#[allow(dead_code)]
#[path = "../peers/bpftrace.rs"]
mod bpftrace;

use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use coolbpf::probes::{ProbeOptions, ProbeSession};
use coolbpf::{Environment, CATALOGUE};

use bpftrace::Bpftrace;

struct Plan {
    rounds: usize,
    launches: u64,
}

const FULL: Plan = Plan {
    rounds: 7,
    launches: 300_000,
};
const SMOKE: Plan = Plan {
    rounds: 1,
    launches: 2_000,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    None,
    /// bpftrace with a uprobe that only counts (`@n = count()`): about the floor every
    /// uprobe tracer pays, the trap and one map update.
    Floor,
    Coolbpf,
    Bpftrace,
}

fn main() -> io::Result<()> {
    let plan = if std::env::args().any(|a| a == "--bench") {
        FULL
    } else {
        SMOKE
    };
    if let Err(err) = Environment::prepare() {
        println!("cuda bench skipped: {err}");
        return Ok(());
    }
    let root = std::env::var_os("COOLBPF_NVIDIA_ROOT").map_or_else(
        || {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/coolbpf/nvidia")
        },
        PathBuf::from,
    );
    let lib = root.join("nvidia/cuda_runtime/lib/libcudart.so.12");
    if !lib.exists() {
        println!(
            "cuda bench skipped: no {} (scripts/nvidia-libs.sh)",
            lib.display()
        );
        return Ok(());
    }
    let dir = std::env::temp_dir().join(format!("coolbpf-cuda-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let program = build(&dir)?;
    let peer = bpftrace::find();
    let mut variants = vec![Variant::None, Variant::Coolbpf];
    if peer.is_some() {
        variants.extend([Variant::Floor, Variant::Bpftrace]);
    }
    let mut results: Vec<(Variant, Vec<f64>)> = variants.iter().map(|v| (*v, Vec::new())).collect();
    for round in 0..plan.rounds {
        for i in 0..variants.len() {
            let variant = variants[(i + round) % variants.len()];
            let ns = measure(variant, &program, &lib, plan.launches, peer.as_deref())?;
            println!("round {round} {variant:?}: {ns:.1} ns per launch");
            results
                .iter_mut()
                .find(|(v, _)| *v == variant)
                .unwrap()
                .1
                .push(ns);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let median_of = |variant| {
        let mut all = results.iter().find(|(v, _)| *v == variant)?.1.clone();
        all.sort_by(f64::total_cmp);
        Some(all[all.len() / 2])
    };
    let base = median_of(Variant::None).unwrap_or(0.0);
    println!(
        "\n| variant | ns per launch (median of {}) | added ns per call |",
        plan.rounds
    );
    println!("|---|---|---|");
    for variant in &variants {
        let m = median_of(*variant).unwrap_or(0.0);
        println!("| {variant:?} | {m:.1} | {:.1} |", m - base);
    }
    if let (Some(ours), Some(theirs)) = (median_of(Variant::Coolbpf), median_of(Variant::Bpftrace))
    {
        println!(
            "\ncoolbpf's added cost / bpftrace's: {:.2}x",
            (ours - base) / (theirs - base)
        );
        if let Some(floor) = median_of(Variant::Floor) {
            println!(
                "above the floor ({:.1} ns, a uprobe that only counts): coolbpf {:.1} ns, \
                 bpftrace {:.1} ns, ratio {:.2}x",
                floor - base,
                ours - floor,
                theirs - floor,
                (ours - floor) / (theirs - floor)
            );
        }
    }
    Ok(())
}

fn build(dir: &Path) -> io::Result<PathBuf> {
    let source =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("coolbpf-gpu/tests/programs/launch_loop.c");
    let out = dir.join("launch_loop");
    let status = Command::new("gcc")
        .args(["-O2", "-fno-omit-frame-pointer", "-o"])
        .arg(&out)
        .arg(source)
        .arg("-ldl")
        .status()?;
    if !status.success() {
        return Err(io::Error::other("gcc failed"));
    }
    Ok(out)
}

/// One timed run of `launches` launches under `variant`, in ns per launch as the loop
/// itself measured it.
fn measure(
    variant: Variant,
    program: &Path,
    lib: &Path,
    launches: u64,
    peer: Option<&Path>,
) -> io::Result<f64> {
    let mut child = Command::new(program)
        .arg(lib)
        .arg("count")
        .arg(launches.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    stdout.read_line(&mut line)?;
    let session = match variant {
        Variant::Coolbpf => {
            let probe = CATALOGUE.find("cuda").map_err(io::Error::other)?;
            let options = ProbeOptions::new().with("lib", &lib.to_string_lossy());
            let mut session = ProbeSession::open(probe, &options, Duration::from_secs(1))
                .map_err(io::Error::other)?;
            session.start().map_err(io::Error::other)?;
            Some(session)
        }
        _ => None,
    };
    let action = if variant == Variant::Floor {
        "@n = count();"
    } else {
        "@[ustack] = count();"
    };
    let script = format!(
        "BEGIN {{ printf(\"ready\\n\"); }} uprobe:{}:cudaLaunchKernel {{ {action} }}",
        lib.display()
    );
    let tracer = match (variant, peer) {
        (Variant::Bpftrace | Variant::Floor, Some(path)) => Some(Bpftrace::start(path, &script)?),
        _ => None,
    };
    let mut stdin = child.stdin.take().expect("piped");
    stdin.write_all(b"g")?;
    line.clear();
    stdout.read_line(&mut line)?;
    drop(stdin);
    child.wait()?;
    if let Some(mut session) = session {
        session.stop().map_err(io::Error::other)?;
    }
    if let Some(tracer) = tracer {
        tracer.stop()?;
    }
    line.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| io::Error::other(format!("unexpected output: {line}")))
}
