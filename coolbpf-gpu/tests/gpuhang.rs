//! The hang watchdog: a watched call that blocks is reported once, with its stack, and
//! a call that returns never is.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use coolbpf_core::testing::bpf_available;
use coolbpf_core::{FieldValue, LabelValue, MetricValue, Record};
use coolbpf_gpu::CATALOGUE;
use coolbpf_probes::{ProbeOptions, ProbeSession};

use support::{build_c, Program};

const BLOCK_MS: u64 = 2500;
const THRESHOLD_MS: u64 = 800;
const QUICK_CALLS: u64 = 200;

fn text(event: &coolbpf_core::Event, name: &str) -> String {
    match event.field(name) {
        Some(FieldValue::Str(s)) => s.clone(),
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn a_blocked_call_is_reported_once_and_quick_ones_never() {
    if !bpf_available("gpuhang_blocked_call") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let program = build_c("blocker", dir.path());
    let mut child = Program::start(
        Command::new(&program)
            .arg(BLOCK_MS.to_string())
            .arg(QUICK_CALLS.to_string()),
    );
    let pid = child.pid();
    let bin = program.to_str().unwrap();
    let options = ProbeOptions::new()
        .with_pid(pid)
        .with("threshold_ms", &THRESHOLD_MS.to_string())
        .with("watch", &format!("{bin}:block_in_driver,{bin}:quick_call"));
    let probe = CATALOGUE.find("gpuhang").unwrap();
    let mut session =
        ProbeSession::open(probe, &options, Duration::from_millis(100)).expect("open");
    session.start().expect("start");
    let started = Instant::now();
    let done = child.go();
    assert!(done.starts_with("done"), "{done}");
    let took = started.elapsed();
    session.stop().expect("stop");
    let records = session.poll(Duration::ZERO).expect("poll");
    child.finish();

    let events: Vec<_> = records
        .iter()
        .filter_map(|r| match r {
            Record::Event(e) => Some(e),
            _ => None,
        })
        .collect();
    let blocked: Vec<_> = events
        .iter()
        .filter(|e| text(e, "hang") == "call_blocked")
        .collect();
    assert_eq!(blocked.len(), 1, "exactly one report: {events:#?}");
    let hang = blocked[0];
    assert_eq!(text(hang, "function"), "block_in_driver");
    assert_eq!(hang.field("pid"), Some(&FieldValue::UInt(pid.into())));
    let Some(FieldValue::UInt(ms)) = hang.field("blocked_ms") else {
        panic!("blocked_ms");
    };
    // Seen past the threshold, within the threshold plus a few intervals.
    assert!(
        (THRESHOLD_MS..THRESHOLD_MS + 600).contains(ms),
        "{ms} ms (took {took:?})"
    );
    let Some(FieldValue::StrList(stack)) = hang.field("stack") else {
        panic!("stack");
    };
    let stack = stack.join(";");
    assert!(
        stack.ends_with("main;wait_for_gpu;block_in_driver"),
        "{stack}"
    );
    let returned: Vec<_> = events
        .iter()
        .filter(|e| text(e, "hang") == "call_returned")
        .collect();
    assert_eq!(returned.len(), 1, "{events:#?}");
    assert_eq!(text(returned[0], "function"), "block_in_driver");
    let Some(FieldValue::UInt(total)) = returned[0].field("blocked_ms") else {
        panic!("blocked_ms");
    };
    assert!(*total >= BLOCK_MS, "{total}");
    assert!(
        events
            .iter()
            .all(|e| e.field("function") != Some(&FieldValue::Str("quick_call".into()))),
        "a call that returned was reported: {events:#?}"
    );
    // ... and they were watched: every one came back through the watchdog.
    let returned = records.iter().rev().find_map(|r| match r {
        Record::Metric(m)
            if m.name == "gpu_watched_calls_returned_total"
                && m.labels.get("function") == Some(&LabelValue::Str("quick_call".into())) =>
        {
            Some(m.value.clone())
        }
        _ => None,
    });
    assert_eq!(returned, Some(MetricValue::Counter(QUICK_CALLS)));
}
