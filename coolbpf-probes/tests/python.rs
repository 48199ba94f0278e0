//! CPython frames in the `profile` probe's stacks, walked by BPF (coolbpf/python.bpf.h)
//! in a running process that was started without any cooperation: a workload of two
//! modules (a recursion `fib`, reached through a class method `Sorter.key` that the C
//! function `sorted` calls back from `Sorter.rank`) on 3.10, 3.11, 3.12, 3.13 (pyenv)
//! and Debian's /usr/bin/python3.11, profiled in pid mode and compared with `py-spy
//! dump` taken on the same process while it is profiled.
//!
//! Checked: the same Python call chains as py-spy (recursion depth folded); at least 95%
//! of the samples that hold `fib` hold its whole chain `<module>`, `work`, `rank`, `key`;
//! Python frames carry their file and a line of the function.
//!
//! Needs root and BPF (`COOLBPF_REQUIRE_BPF=1` makes a skip a failure), the pyenv builds
//! under /root/.pyenv/versions and py-spy 0.4.3 (`pip install --target
//! ~/.cache/coolbpf/py-spy py-spy==0.4.3`, or `PY_SPY=path`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "../../coolbpf-symbolize/tests/programs/python/harness.rs"]
mod harness;

use coolbpf_core::testing::bpf_available;
use coolbpf_probes::profile::{ProfileConfig, ProfileSession};
use coolbpf_symbolize::python::PythonProcess;
use harness::{py_spy, Workload};

const FREQ: u64 = 499;

/// The workload's files (shared with coolbpf-symbolize's reader tests).
fn workload_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../coolbpf-symbolize/tests/programs/python")
}

fn interpreters() -> Vec<PathBuf> {
    let mut found = Vec::new();
    for (dir, minor) in [
        ("3.10.13", "3.10"),
        ("3.11.7", "3.11"),
        ("3.12.1", "3.12"),
        ("3.13.0", "3.13"),
    ] {
        found.push(PathBuf::from(format!(
            "/root/.pyenv/versions/{dir}/bin/python{minor}"
        )));
    }
    found.push(PathBuf::from("/usr/bin/python3.11"));
    found.retain(|p| {
        let there = p.exists();
        if !there {
            eprintln!("skipping {}: not installed", p.display());
        }
        there
    });
    found
}

/// Starts the workload and waits until its main thread runs `Sorter.key` (read by the
/// userspace reference walker).
fn start(python: &Path) -> Workload {
    let workload = Workload::start(python, &workload_dir());
    let pid = workload.pid();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(
            Instant::now() < deadline,
            "{}: never ran key",
            python.display()
        );
        std::thread::sleep(Duration::from_millis(100));
        let Ok(Some(process)) = PythonProcess::open(pid) else {
            continue;
        };
        let in_key = process.stacks().is_ok_and(|stacks| {
            stacks.iter().any(|s| {
                s.frames
                    .iter()
                    .any(|f| process.code(f.code).is_ok_and(|c| c.name == "key"))
            })
        });
        if in_key {
            return workload;
        }
    }
}

/// A chain of plain function names, root first, with runs of one name folded into one
/// (the recursion's depth varies from sample to sample).
fn folded(names: impl IntoIterator<Item = String>) -> String {
    let mut out: Vec<String> = Vec::new();
    for name in names {
        if out.last() != Some(&name) {
            out.push(name);
        }
    }
    out.join(";")
}

/// py-spy's chain of the main thread, root first, folded.
fn py_spy_chain(py_spy: &Path, pid: u32) -> Option<String> {
    let out = Command::new(py_spy)
        .args(["dump", "--json", "--pid", &pid.to_string()])
        .output()
        .ok()?;
    let threads: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let frames = threads.as_array()?.first()?["frames"].as_array()?.clone();
    Some(folded(
        frames
            .iter()
            .rev()
            .map(|f| f["name"].as_str().unwrap_or("?").to_owned()),
    ))
}

#[test]
fn profile_stacks_hold_python_frames_like_py_spy() {
    if !bpf_available("profile_stacks_hold_python_frames_like_py_spy") {
        return;
    }
    let Some(py_spy) = py_spy() else {
        assert!(
            std::env::var_os("COOLBPF_REQUIRE_BPF").is_none_or(|v| v != "1"),
            "py-spy is needed"
        );
        return eprintln!("skipping: py-spy is not installed");
    };
    let interpreters = interpreters();
    assert!(!interpreters.is_empty(), "no CPython to test");
    for python in interpreters {
        let workload = start(&python);
        let pid = workload.pid();
        let config = ProfileConfig {
            frequency: FREQ,
            pid: Some(pid),
            ..ProfileConfig::default()
        };
        let session = ProfileSession::start(&config).expect("start the profiler");
        // py-spy pauses the process for each dump: a few, spread over the profile.
        let mut theirs: BTreeMap<String, u32> = BTreeMap::new();
        for _ in 0..8 {
            std::thread::sleep(Duration::from_millis(250));
            if let Some(chain) = py_spy_chain(&py_spy, pid) {
                *theirs.entry(chain).or_default() += 1;
            }
        }
        let result = session.finish().expect("finish");
        drop(workload);
        let what = python.display().to_string();
        assert_eq!(result.losses.decode_errors, 0, "{what}");

        // Our chains: the Python frames (those with a .py file) of each stack, root
        // first, by qualified name (py-spy's name too: co_qualname from 3.11, co_name
        // before).
        let mut ours: BTreeMap<String, u64> = BTreeMap::new();
        let (mut hot, mut full) = (0u64, 0u64);
        for stack in result.profile.stacks() {
            let frames: Vec<_> = stack
                .user
                .iter()
                .rev()
                .flat_map(|l| l.frames.iter().rev())
                .filter(|f| {
                    let file = f.file.as_deref().map(Path::new);
                    file.is_some_and(|p| p.extension().is_some_and(|e| e == "py"))
                })
                .collect();
            let chain = folded(frames.iter().map(|f| f.function.clone()));
            *ours.entry(chain.clone()).or_default() += stack.weight;
            for f in &frames {
                if f.raw_name == "fib" {
                    assert!(
                        f.file.as_deref().unwrap().ends_with("pywork_lib.py"),
                        "{f:?}"
                    );
                    assert!((5..=8).contains(&f.line.unwrap_or(0)), "{what}: {f:?}");
                }
            }
            if frames.iter().any(|f| f.raw_name == "fib") {
                hot += stack.weight;
                if chain.starts_with("<module>;work;rank;key;fib")
                    || chain.starts_with("<module>;work;Sorter.rank;Sorter.key;fib")
                {
                    full += stack.weight;
                }
            }
        }
        let total: u64 = ours.values().sum();
        let share = full as f64 / hot.max(1) as f64;
        eprintln!(
            "{what}: {total} samples, {hot} in fib, {:.1}% with the full chain; \
             losses {:?}; py-spy saw {theirs:?}",
            share * 100.0,
            result.losses.kernel
        );
        let mut top: Vec<_> = ours.iter().collect();
        top.sort_by_key(|(_, w)| std::cmp::Reverse(**w));
        eprintln!("{what}: our chains {:?}", &top[..top.len().min(4)]);
        assert!(total >= 200, "{what}: only {total} samples");
        assert!(
            share >= 0.95,
            "{what}: {:.1}% of fib samples",
            share * 100.0
        );
        // Every chain py-spy saw, we saw too; and the most common ones agree.
        for chain in theirs.keys() {
            assert!(
                ours.contains_key(chain),
                "{what}: py-spy's {chain} is not ours"
            );
        }
        let their_top = theirs.iter().max_by_key(|(_, n)| **n).map(|(c, _)| c);
        assert_eq!(their_top, Some(top[0].0), "{what}: the most common chain");
        pprof_keeps_python_lines(&what, &result.profile);
    }
}

/// The pprof export keeps each Python frame's file and line: `go tool pprof -lines`
/// (an independent reader of the format) names `fib` at `pywork_lib.py:LINE`, a line of
/// the function.
fn pprof_keeps_python_lines(what: &str, profile: &coolbpf_symbolize::SymbolizedProfile) {
    if Command::new("go").arg("version").output().is_err() {
        assert!(
            std::env::var("COOLBPF_REQUIRE_PEERS").as_deref() != Ok("1"),
            "`go` not found: cannot check with go tool pprof"
        );
        return eprintln!("skipping the pprof check: `go` not found");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("python.pb.gz");
    std::fs::write(
        &file,
        profile.to_pprof(&coolbpf_symbolize::profile::PprofOptions::default()),
    )
    .expect("write pprof");
    let output = Command::new("go")
        .args(["tool", "pprof", "-lines", "-top", "-nodecount=500"])
        .arg(&file)
        .env("HOME", dir.path())
        .env("PPROF_TMPDIR", dir.path())
        .output()
        .expect("go tool pprof runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{what}: go tool pprof failed: {text}"
    );
    let fib_lines: Vec<u32> = text
        .lines()
        .filter(|l| l.contains(" fib ") || l.ends_with(" fib"))
        .filter_map(|l| l.split("pywork_lib.py:").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect();
    eprintln!("{what}: go tool pprof puts fib at pywork_lib.py lines {fib_lines:?}");
    assert!(
        !fib_lines.is_empty() && fib_lines.iter().all(|l| (5..=8).contains(l)),
        "{what}: fib's lines in pprof {fib_lines:?}\n{text}"
    );
}
