//! syscount against the real kernel: a child makes exactly N getppid calls while
//! syscount watches its pid, and the count is exactly N.

use std::time::Duration;

use coolbpf_core::sink::MemorySink;
use coolbpf_core::testing::bpf_available;
use coolbpf_core::{LabelValue, MetricValue, Record, Runtime};
use coolbpf_probes::syscount::{Syscount, SyscountConfig};
use coolbpf_probes::{ProbeOptions, ProbeSession};

/// A forked child that waits for a byte on a pipe, makes `calls` getppid syscalls and
/// exits. Between fork and exit it only makes raw syscalls (async-signal-safe).
struct Child {
    pid: libc::pid_t,
    go: libc::c_int,
}

impl Child {
    fn spawn(calls: u64) -> Self {
        let mut fds = [0; 2];
        // SAFETY: fds is a valid array of two ints for pipe to fill.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
        // SAFETY: the child branch below only calls async-signal-safe functions.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork");
        if pid == 0 {
            let mut byte = 0u8;
            // SAFETY: raw syscalls on fds this process owns, then _exit; no allocation,
            // no locks, as required after fork in a multi-threaded process.
            unsafe {
                libc::close(fds[1]);
                libc::read(fds[0], std::ptr::from_mut(&mut byte).cast(), 1);
                for _ in 0..calls {
                    libc::syscall(libc::SYS_getppid);
                }
                libc::_exit(0);
            }
        }
        // SAFETY: closing the read end this process no longer needs.
        unsafe { libc::close(fds[0]) };
        Self { pid, go: fds[1] }
    }

    /// Lets the child run and waits for it to exit.
    fn run_to_exit(self) {
        let byte = 1u8;
        let mut status = 0;
        // SAFETY: writing one byte from a live u8 to our pipe end, then reaping our child.
        unsafe {
            assert_eq!(libc::write(self.go, std::ptr::from_ref(&byte).cast(), 1), 1);
            libc::close(self.go);
            assert_eq!(libc::waitpid(self.pid, &raw mut status, 0), self.pid);
        }
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "child status {status}"
        );
    }
}

#[test]
fn counts_exactly_the_getppid_calls_of_a_watched_child() {
    if !bpf_available("counts_exactly_the_getppid_calls_of_a_watched_child") {
        return;
    }
    const CALLS: u64 = 1000;
    let child = Child::spawn(CALLS);
    let pid = child.pid as u32;
    let syscount = Syscount::start(&SyscountConfig {
        pid: Some(pid),
        ..Default::default()
    })
    .expect("start");
    child.run_to_exit();
    let counts = syscount.counts().expect("counts");
    eprintln!("program {}: {counts:?}", syscount.program());
    let getppid: Vec<_> = counts.iter().filter(|c| c.name == "getppid").collect();
    assert_eq!(getppid.len(), 1, "one (pid, getppid) entry");
    assert_eq!(getppid[0].count, CALLS, "exactly the calls the child made");
    assert!(
        counts.iter().all(|c| c.pid == pid),
        "the pid filter keeps other processes out"
    );
    let exit_group = counts
        .iter()
        .find(|c| c.name == "exit_group")
        .map(|c| c.count);
    assert_eq!(exit_group, Some(1), "the child exited once");
    assert_eq!(syscount.losses().expect("losses").total(), 0);
}

#[test]
fn plugin_emits_syscalls_total_records_through_the_runtime() {
    if !bpf_available("plugin_emits_syscalls_total_records_through_the_runtime") {
        return;
    }
    const CALLS: u64 = 250;
    let child = Child::spawn(CALLS);
    let options = ProbeOptions::new().with_pid(child.pid as u32);
    let plugin = coolbpf_probes::CATALOGUE
        .find("syscount")
        .expect("registered")
        .create(&options)
        .expect("plugin");
    let sink = MemorySink::new();
    let mut runtime = Runtime::builder()
        .interval(Duration::from_secs(60))
        .sink(Box::new(sink.clone()))
        .build()
        .expect("runtime");
    let id = runtime.add(plugin).expect("add");
    runtime.start_plugin(id).expect("start");
    child.run_to_exit();
    runtime.shutdown().expect("shutdown");
    let records = sink.records();
    let getppid = records.iter().find_map(|record| match record {
        Record::Metric(m)
            if m.name == "syscalls_total"
                && m.label("syscall") == Some(&LabelValue::from("getppid")) =>
        {
            Some((m.value.clone(), m.label("pid").cloned(), m.to_owned()))
        }
        _ => None,
    });
    let (value, pid, metric) = getppid.expect("a getppid record from the final collect");
    assert_eq!(value, MetricValue::Counter(CALLS));
    assert_eq!(pid, Some(LabelValue::from(child_pid_label(&metric))));
    let json = Record::Metric(metric).to_json();
    assert!(
        json.starts_with(
            r#"{"probe":"syscount","kind":"counter","name":"syscalls_total","labels":{"#
        ),
        "{json}"
    );
}

/// The pid label as the probe wrote it (an integer label).
fn child_pid_label(metric: &coolbpf_core::Metric) -> i64 {
    match metric.label("pid") {
        Some(LabelValue::Int(pid)) => *pid,
        other => panic!("pid label should be an integer, got {other:?}"),
    }
}

#[test]
fn session_polls_the_exact_count_after_stop() {
    if !bpf_available("session_polls_the_exact_count_after_stop") {
        return;
    }
    const CALLS: u64 = 321;
    let child = Child::spawn(CALLS);
    let options = ProbeOptions::new().with_pid(child.pid as u32);
    let mut session = ProbeSession::open(
        coolbpf_probes::CATALOGUE.find("syscount").unwrap(),
        &options,
        Duration::from_secs(60),
    )
    .expect("open");
    session.start().expect("start");
    assert!(session.is_running());
    child.run_to_exit();
    session.stop().expect("stop");
    assert!(!session.is_running());
    // Stopping delivered the final collect: it is queued, and one poll takes all of it.
    let records = session.poll(Duration::from_secs(5)).expect("poll");
    let getppid = records.iter().find_map(|record| match record {
        Record::Metric(m)
            if m.name == "syscalls_total"
                && m.label("syscall") == Some(&LabelValue::from("getppid")) =>
        {
            Some(m.value.clone())
        }
        _ => None,
    });
    assert_eq!(getppid, Some(MetricValue::Counter(CALLS)), "{records:?}");
    assert_eq!(session.records_dropped(), 0);
    assert!(session
        .poll(Duration::from_millis(10))
        .expect("poll")
        .is_empty());
}
