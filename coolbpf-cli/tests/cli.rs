//! The `coolbpf` command's contract: exit codes, stdout carrying only data, JSON lines,
//! and a clear message without privileges.

mod common;

use std::process::{Command, Stdio};

use common::{coolbpf, text};
use coolbpf_core::testing::bpf_available;
use serde_json::Value;

#[test]
fn unknown_probe_exits_2_and_names_the_known_ones() {
    let out = coolbpf(&["run", "no-such-probe"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("no-such-probe")
            && stderr.contains("syscount")
            && stderr.contains("execsnoop"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "stdout carries only data");
}

#[test]
fn gpu_diagnose_says_what_is_wrong() {
    // Bad usage is refused before anything is loaded.
    let out = coolbpf(&["gpu", "diagnose", "--pid", "1", "--duration", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--duration 0"));
    if !bpf_available("gpu_diagnose_says_what_is_wrong") {
        return;
    }
    // A process without CUDA: the environment refuses, with the reason.
    let me = std::process::id().to_string();
    let out = coolbpf(&["gpu", "diagnose", "--pid", &me, "--duration", "0.2"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no CUDA library"),
        "{}",
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "stdout carries only data");
    let out = coolbpf(&["gpu", "diagnose", "--pid", "999999999"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("999999999"),
        "{}",
        text(&out.stderr)
    );
    // The launch flame graph: a library that is not there, and a quiet host (no CUDA
    // process: no launch, so an empty folded profile).
    let out = coolbpf(&["gpu", "launches", "--lib", "/nonexistent/libcudart.so.12"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("/nonexistent/libcudart.so.12"),
        "{}",
        text(&out.stderr)
    );
    let out = coolbpf(&["gpu", "launches", "--duration", "0.3", "--format", "folded"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
}

#[test]
fn unknown_option_exits_2_and_names_the_probes_options() {
    let out = coolbpf(&["run", "syscount", "--opt", "entires=5"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("entires") && stderr.contains("entries"),
        "{stderr}"
    );
    let out = coolbpf(&["run", "syscount", "--opt", "novalue"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn bad_usage_exits_2() {
    for args in [
        &["frobnicate"][..],
        &["run"],
        &["run", "syscount", "--duration", "soon"],
        &["run", "syscount", "--duration", "-1"],
    ] {
        let out = coolbpf(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn missing_pid_is_a_clear_error() {
    let out = coolbpf(&["run", "syscount", "--pid", "999999999", "--duration", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("process not found: 999999999"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn without_privileges_the_missing_capability_is_named() {
    // setpriv (util-linux) runs coolbpf as nobody with no capabilities at all.
    if Command::new("setpriv").arg("--version").output().is_err() || !is_root() {
        eprintln!("skipping: needs root and setpriv to drop privileges");
        return;
    }
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(env!("CARGO_BIN_EXE_coolbpf"))
        .args(["run", "syscount", "--duration", "1"])
        .output()
        .expect("run setpriv");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("CAP_BPF") || stderr.contains("CAP_SYS_ADMIN"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn run_json_lines_follow_the_contract() {
    if !bpf_available("run_json_lines_follow_the_contract") {
        return;
    }
    let out = coolbpf(&["run", "syscount", "--duration", "1", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let records: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let counters: Vec<&Value> = records
        .iter()
        .filter(|r| r["name"] == "syscalls_total")
        .collect();
    assert!(
        !counters.is_empty(),
        "a system-wide second has syscalls: {stdout}"
    );
    for record in &counters {
        assert_eq!(record["probe"], "syscount");
        assert_eq!(record["kind"], "counter");
        assert!(record["labels"]["pid"].is_u64() && record["labels"]["comm"].is_string());
        assert!(
            record["labels"]["syscall"].is_string() && record["value"].as_u64().unwrap_or(0) > 0
        );
    }
    let lost = records
        .iter()
        .filter(|r| r["probe"] == "core" && r["name"] == "events_lost_total")
        .count();
    assert!(lost > 0, "loss counters are reported");
}

#[test]
fn features_and_list_json_parse() {
    if !bpf_available("features_and_list_json_parse") {
        return;
    }
    let out = coolbpf(&["features", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let features: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert!(features.is_object());
    let out = coolbpf(&["list", "--json"]);
    assert!(out.status.success());
    let probes: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let names: Vec<&str> = probes.iter().filter_map(|p| p["name"].as_str()).collect();
    for required in ["syscount", "execsnoop"] {
        assert!(
            names.contains(&required),
            "{required} is registered: {names:?}"
        );
    }
    // Every kernel-side probe runs here; the GPU probes that need a CUDA library or a
    // driver this machine lacks say which, and the xid probe (kernel log) runs anyway.
    let needs_the_host = ["cuda", "gpuhang", "nccl", "nvml"];
    let unavailable: Vec<&Value> = probes
        .iter()
        .filter(|p| p["available"] != true)
        .filter(|p| !needs_the_host.contains(&p["name"].as_str().unwrap_or("")))
        .collect();
    assert!(
        unavailable.is_empty(),
        "every kernel-side probe runs on this kernel: {unavailable:?}"
    );
    for probe in probes.iter().filter(|p| p["available"] != true) {
        let reason = probe["reason"].as_str().unwrap_or("");
        assert!(
            reason.contains("CUDA library")
                || reason.contains("no libnccl")
                || reason.contains("NVML"),
            "{probe}"
        );
    }
    assert!(names.contains(&"xid"), "{names:?}");
}

#[test]
fn a_closed_pipe_ends_quietly() {
    // `coolbpf list | head -1`: the reader goes away early; no panic message may appear.
    let mut child = Command::new(env!("CARGO_BIN_EXE_coolbpf"))
        .arg("list")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    assert!(
        !text(&out.stderr).contains("panicked"),
        "{}",
        text(&out.stderr)
    );
}
