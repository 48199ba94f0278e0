//! The CPU-or-GPU verdict on processes of known shape, calling the real libcudart: one
//! that launches back to back (launch-bound) and one that sleeps between launches
//! (blocked elsewhere). The GPU-bound shape needs a device that makes syncs wait; its
//! rule is unit-tested in `diagnose::verdict`.

mod support;

use std::process::Command;
use std::time::Duration;

use coolbpf_core::testing::bpf_available;
use coolbpf_gpu::diagnose::{diagnose, Bound, DiagnoseConfig, Diagnosis};

use support::{build_c, cudart, nvidia_root, Program};

fn diagnosed(mode: &str, test: &str) -> Option<Diagnosis> {
    if !bpf_available(test) {
        return None;
    }
    let root = nvidia_root(test)?;
    let dir = tempfile::tempdir().unwrap();
    let program = build_c("launch_loop", dir.path());
    let lib = cudart(&root, 12);
    let mut child = Program::start(Command::new(&program).arg(&lib).arg(mode).arg("4"));
    let config = DiagnoseConfig {
        pid: child.pid(),
        duration: Duration::from_secs(2),
        libraries: vec![lib],
    };
    let started = std::thread::spawn({
        let config = config.clone();
        move || diagnose(&config, |_| true)
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(child.go().trim(), "done");
    let diagnosis = started.join().unwrap().expect("diagnose");
    child.finish();
    Some(diagnosis)
}

#[test]
fn a_process_launching_back_to_back_is_launch_bound() {
    let Some(d) = diagnosed("busy", "diagnose_launch_bound") else {
        return;
    };
    assert_eq!(d.verdict.bound, Bound::Launch, "{}", d.text());
    let main = &d.threads[0];
    assert_eq!(main.tid, d.pid);
    assert!(main.launches > 1000, "{}", d.text());
    assert_eq!(main.cuda_calls, main.launches);
    let (median, _) = d.launch_gap_ms.expect("gaps");
    assert!(median < 1.0, "{}", d.text());
    assert!(
        d.verdict
            .summary
            .starts_with("launch-bound: thread launch_loop is "),
        "{}",
        d.verdict.summary
    );
}

#[test]
fn a_process_sleeping_between_launches_is_blocked_elsewhere() {
    let Some(d) = diagnosed("sleepy", "diagnose_blocked_elsewhere") else {
        return;
    };
    assert_eq!(d.verdict.bound, Bound::BlockedElsewhere, "{}", d.text());
    let (median, _) = d.launch_gap_ms.expect("gaps");
    // 20 ms of sleep between launches, plus the scheduler's slack.
    assert!((20.0..30.0).contains(&median), "{}", d.text());
    // Two seconds at one launch per ~20 ms.
    assert!((70..=101).contains(&d.launches), "{}", d.text());
}

#[test]
fn a_process_without_cuda_is_a_clear_error() {
    if !bpf_available("diagnose_without_cuda") {
        return;
    }
    let config = DiagnoseConfig {
        pid: std::process::id(),
        duration: Duration::from_millis(100),
        libraries: Vec::new(),
    };
    let err = diagnose(&config, |_| true).unwrap_err();
    assert!(err.to_string().contains("no CUDA library"), "{err}");
    let config = DiagnoseConfig {
        pid: u32::MAX - 1,
        ..config
    };
    let err = diagnose(&config, |_| true).unwrap_err();
    assert!(err.to_string().contains("process"), "{err}");
}
