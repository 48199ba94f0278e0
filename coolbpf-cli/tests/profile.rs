//! `coolbpf profile`: usage errors, and every output format on a workload that spins in a
//! known function (the probes crate's test workload, shared by path).

mod common;
#[allow(dead_code)]
#[path = "../../coolbpf-probes/tests/profile_support/mod.rs"]
mod profile_support;

use std::process::{Command, Stdio};
use std::time::Duration;

use coolbpf_core::testing::bpf_available;
use serde_json::Value;

use common::{coolbpf, text};
use profile_support::{Spinner, HOT};

#[test]
fn bad_usage_exits_2() {
    for args in [
        &["profile", "--format", "bogus"][..],
        &["profile", "--freq", "0", "--duration", "1"],
        &["profile", "--freq", "many"],
        &["profile", "--duration", "-1"],
        &["profile", "--off-cpu", "--freq", "99", "--duration", "1"],
        &["profile", "--unwind", "dwarf"],
    ] {
        let out = coolbpf(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            out.stdout.is_empty(),
            "{args:?}: usage errors print no data"
        );
    }
}

#[test]
fn a_missing_process_exits_1() {
    let out = coolbpf(&["profile", "--pid", "999999999", "--duration", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("process not found: 999999999"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn an_unwritable_output_fails_before_profiling() {
    let out = coolbpf(&[
        "profile",
        "--duration",
        "30",
        "-o",
        "/nonexistent/dir/x.svg",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("/nonexistent/dir/x.svg"),
        "{}",
        text(&out.stderr)
    );
}

/// Starts `coolbpf profile --pid PID --duration 5 ARGS...`.
fn profile(pid: u32, args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_coolbpf"))
        .args(["profile", "--pid", &pid.to_string(), "--duration", "5"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run coolbpf")
}

#[test]
fn every_format_shows_the_hot_function() {
    if !bpf_available("every_format_shows_the_hot_function") {
        return;
    }
    let Some(mut spinner) = Spinner::start(2.0) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("flame.svg");
    let pprof = dir.path().join("cpu.pb.gz");
    let svg_arg = svg.to_string_lossy().into_owned();
    let pprof_arg = pprof.to_string_lossy().into_owned();
    let pid = spinner.pid();
    // Five profilers of the same process at once, each with its own perf event.
    let runs = [
        profile(pid, &[]),
        profile(pid, &["--format", "json"]),
        profile(pid, &["--format", "svg", "-o", &svg_arg]),
        profile(pid, &["--format", "pprof", "-o", &pprof_arg]),
        profile(pid, &["--symbols-only"]),
    ];
    // Loading takes seconds when five debug binaries verify the CFI unwinder on two CPUs
    // at once: spin only once every one of them samples.
    for run in &runs {
        wait_until_sampling(run.id());
    }
    spinner.spin();
    let outputs: Vec<_> = runs
        .into_iter()
        .map(|run| run.wait_with_output().unwrap())
        .collect();
    for out in &outputs {
        assert!(out.status.success(), "{}", text(&out.stderr));
    }

    // With debug info and from symbol tables alone, the workload's frames read the same.
    for out in [&outputs[0], &outputs[4]] {
        let folded = text(&out.stdout);
        let hot_line = folded
            .lines()
            .find(|line| line.contains(&format!(";main;{HOT} ")))
            .unwrap_or_else(|| panic!("no folded line ends in main;{HOT}: {folded}"));
        let count: u64 = hot_line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(count > 0, "{hot_line}");
    }

    let records: Vec<Value> = text(&outputs[1].stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let hot = records
        .iter()
        .find(|r| {
            r["kind"] == "stacks"
                && r["frames"].as_array().and_then(|f| f.last()) == Some(&Value::from(HOT))
        })
        .expect("a stacks record ending in the hot function");
    assert_eq!(hot["probe"], "profile");
    assert_eq!(hot["pid"], pid);
    assert!(hot["comm"].is_string() && hot["count"].as_u64().unwrap_or(0) > 0);
    assert!(records
        .iter()
        .any(|r| r["probe"] == "core" && r["name"] == "events_lost_total"));

    let svg_text = std::fs::read_to_string(&svg).unwrap();
    assert!(svg_text.starts_with("<?xml") && svg_text.contains(HOT));
    let pprof_bytes = std::fs::read(&pprof).unwrap();
    assert_eq!(&pprof_bytes[..2], &[0x1f, 0x8b], "gzipped profile.proto");
}

/// Waits until the profiler process `pid` holds a perf event, the same one through 300 ms
/// (feature detection opens and closes some of its own within milliseconds).
fn wait_until_sampling(pid: u32) {
    let perf_events = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|fd| {
                std::fs::read_link(fd.path())
                    .is_ok_and(|target| target.as_os_str() == "anon_inode:[perf_event]")
            })
            .map(|fd| fd.path())
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        let seen = perf_events();
        if !seen.is_empty() {
            std::thread::sleep(Duration::from_millis(300));
            if perf_events().iter().any(|fd| seen.contains(fd)) {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("profiler {pid} held no perf event within 60 s");
}

#[test]
fn off_cpu_runs_the_offcpu_probe() {
    if !bpf_available("off_cpu_runs_the_offcpu_probe") {
        return;
    }
    for extra in [&[][..], &["--symbols-only"]] {
        let mut args = vec!["profile", "--off-cpu", "--duration", "2"];
        args.extend_from_slice(extra);
        let out = coolbpf(&args);
        let stderr = text(&out.stderr);
        assert!(out.status.success(), "{args:?}: {stderr}");
        let folded = text(&out.stdout);
        // Something always sleeps in two seconds (this very command's threads, at least).
        assert!(!folded.is_empty(), "{args:?}: no off-CPU stacks");
        assert!(
            folded.lines().all(|line| line
                .rsplit_once(' ')
                .is_some_and(|(_, n)| n.parse::<u64>().is_ok())),
            "{args:?}: {folded}"
        );
    }
}
