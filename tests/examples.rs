//! The top-level examples really work: their tracing code, compiled from the example files
//! themselves, run against the kernel and checked against what the test itself did.

use std::io::{self, Write};
use std::process::Command;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use coolbpf::sink::JsonLinesSink;
use coolbpf::testing::bpf_available;
use coolbpf::PluginStatus;
use serde_json::Value;

// The examples' own code, so that what is tested is what `cargo run --example` runs.
#[expect(
    dead_code,
    reason = "the example's main and argument parsing are not under test"
)]
#[path = "../examples/hello_ringbuf.rs"]
mod hello_ringbuf;

#[expect(
    dead_code,
    reason = "the example's main and argument parsing are not under test"
)]
#[path = "../examples/runtime_two_plugins.rs"]
mod runtime_two_plugins;

use hello_ringbuf::{Exec, ExecTracer};

#[test]
fn hello_ringbuf_sees_an_exec_with_the_childs_pid() {
    if !bpf_available("hello_ringbuf_sees_an_exec_with_the_childs_pid") {
        return;
    }
    let mut tracer = ExecTracer::start().expect("start the hello tracer");
    let mut child = Command::new("/bin/true")
        .arg("hello_ringbuf_test")
        .spawn()
        .expect("spawn /bin/true");
    let pid = child.id();
    assert!(child.wait().expect("wait for /bin/true").success());
    // Other processes exec too: look for ours among everything the tracer reports.
    let deadline = Instant::now() + Duration::from_secs(5);
    let seen = std::iter::from_fn(|| tracer.events().recv_deadline(deadline).ok())
        .find(|exec| exec.pid == pid);
    let losses = tracer.stop().expect("stop the tracer");
    assert_eq!(
        seen,
        Some(Exec {
            pid,
            ppid: std::process::id(),
            comm: "true".into(),
            filename: "/bin/true".into(),
        }),
        "the exec of /bin/true (pid {pid}) was reported as the kernel ran it; losses: {losses:?}"
    );
    assert_eq!(losses.decode_errors, 0, "{losses:?}");
}

#[test]
fn hello_event_decoding_rejects_short_payloads() {
    let err = Exec::decode(&[0; 16]).expect_err("16 bytes is not a hello event");
    assert!(err.to_string().contains("hello event"), "{err}");
}

/// A `Write` whose bytes stay readable after the runtime that owns the sink is gone.
#[derive(Clone, Default)]
struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn runtime_two_plugins_reports_the_workload_from_both_probes() {
    if !bpf_available("runtime_two_plugins_reports_the_workload_from_both_probes") {
        return;
    }
    let output = SharedBuffer::default();
    let statuses = runtime_two_plugins::run_two_plugins(
        Duration::from_millis(1500),
        Box::new(JsonLinesSink::new(output.clone())),
    )
    .expect("run the example");
    let names: Vec<&str> = statuses.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["syscount", "execsnoop"]);
    for plugin in &statuses {
        assert_eq!(plugin.status, PluginStatus::Stopped, "{}", plugin.name);
    }

    let text = String::from_utf8(output.0.lock().unwrap().clone()).expect("UTF-8 output");
    let records: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("every line is one JSON record"))
        .collect();
    let pid = u64::from(std::process::id());
    // The workload's children: execs of /bin/true by this process with the example's
    // marker argument (other tests of this binary run /bin/true too).
    let children = records
        .iter()
        .filter(|r| r["probe"] == "execsnoop" && r["kind"] == "event")
        .filter(|r| r["ppid"] == pid && r["filename"] == "/bin/true")
        .filter(|r| r["args"] == serde_json::json!(["/bin/true", "runtime_two_plugins"]))
        .count() as u64;
    assert!(
        children >= 2,
        "execsnoop saw {children} workload execs:\n{text}"
    );
    // syscount, restricted to this process, counted at least one wait4 per child reaped
    // (counters are cumulative, so the largest value is the final one).
    let wait4 = records
        .iter()
        .filter(|r| r["probe"] == "syscount" && r["name"] == "syscalls_total")
        .filter(|r| r["labels"]["pid"] == pid && r["labels"]["syscall"] == "wait4")
        .filter_map(|r| r["value"].as_u64())
        .max()
        .unwrap_or(0);
    assert!(
        wait4 >= children,
        "syscount counted {wait4} wait4 calls for {children} children:\n{text}"
    );
    assert!(
        records.iter().all(|r| r["probe"] != "syscount"
            || r["name"] != "syscalls_total"
            || r["labels"]["pid"] == pid),
        "syscount reported another process despite its pid filter:\n{text}"
    );
}
