//! The driver-hang probe on a real blocked ioctl, with a pty as the device: the stuck
//! call is reported once with the kernel stack where it waits, then its return; quick
//! ioctls are counted and never reported; a thread in D state is reported once; the Xid
//! 79 logged before them is joined to each report.

mod support;

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use coolbpf_core::testing::bpf_available;
use coolbpf_core::{ErrorKind, Event, FieldValue, LabelValue, MetricValue, Record};
use coolbpf_gpu::driver::{DriverConfig, GpuDriver};
use coolbpf_gpu::CATALOGUE;
use coolbpf_probes::{ProbeOptions, ProbeSession};

use support::{build_c, Program};

const BLOCK_MS: u64 = 2500;
const D_MS: u64 = 1500;
const THRESHOLD_MS: u64 = 800;
const QUICK_CALLS: u64 = 1000;
const INTERVAL: Duration = Duration::from_millis(100);

fn text(event: &Event, name: &str) -> String {
    match event.field(name) {
        Some(FieldValue::Str(s)) => s.clone(),
        other => panic!("{name}: {other:?} in {event:#?}"),
    }
}

fn number(event: &Event, name: &str) -> u64 {
    event
        .field(name)
        .and_then(FieldValue::as_u64)
        .unwrap_or_else(|| panic!("{name} in {event:#?}"))
}

fn list(event: &Event, name: &str) -> Vec<String> {
    match event.field(name) {
        Some(FieldValue::StrList(l)) => l.clone(),
        other => panic!("{name}: {other:?} in {event:#?}"),
    }
}

/// Logs `line` through /dev/kmsg, at debug level so that consoles do not print it.
fn log(line: &str) {
    let mut kmsg = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/kmsg")
        .expect("open /dev/kmsg for writing");
    kmsg.write_all(format!("<7>{line}\n").as_bytes())
        .expect("write to /dev/kmsg");
}

/// `key=value` out of the program's "done ..." line.
fn done_field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
}

/// What one run of the test program left behind.
struct Run {
    records: Vec<Record>,
    pid: u32,
    /// The program's "done ..." line: the blocked thread, the pty's fd and path.
    done: String,
    /// The text of the Xid line logged before the run.
    marker: String,
}

impl Run {
    fn events(&self) -> Vec<&Event> {
        self.records
            .iter()
            .filter_map(|r| match r {
                Record::Event(e) if number(e, "pid") == u64::from(self.pid) => Some(e),
                _ => None,
            })
            .collect()
    }

    fn of(&self, hang: &str) -> Vec<&Event> {
        self.events()
            .into_iter()
            .filter(|e| text(e, "hang") == hang)
            .collect()
    }

    /// The last value of metric `name` with `label` = `value`.
    fn metric(&self, name: &str, label: &str, value: &str) -> Option<MetricValue> {
        self.records.iter().rev().find_map(|r| match r {
            Record::Metric(m)
                if m.name == name
                    && m.labels.get(label) == Some(&LabelValue::Str(value.into())) =>
            {
                Some(m.value.clone())
            }
            _ => None,
        })
    }
}

/// Runs the probe on every pty (`devices=/dev/pts/`) while the test program blocks.
fn run() -> Run {
    let dir = tempfile::tempdir().unwrap();
    let program = build_c("ioctl_block", dir.path());
    let options = ProbeOptions::new()
        .with("devices", "/dev/pts/")
        .with("threshold_ms", &THRESHOLD_MS.to_string());
    let probe = CATALOGUE.find("gpudriver").unwrap();
    let mut session = ProbeSession::open(probe, &options, INTERVAL).expect("open");
    session.start().expect("start");
    // Started after the probe: its pty is picked up by the next scan.
    let mut child = Program::start(Command::new(&program).args([
        BLOCK_MS.to_string(),
        QUICK_CALLS.to_string(),
        D_MS.to_string(),
    ]));
    let pid = child.pid();
    // The GPU "falls off the bus" before the hang: a real kernel log line, which the
    // probe reads from /dev/kmsg.
    let marker = format!("coolbpf-gpudriver-{pid}");
    log(&format!(
        "NVRM: Xid (PCI:0000:3b:00): 79, pid={pid}, name=ioctl_block, GPU has fallen off the bus. {marker}"
    ));
    std::thread::sleep(INTERVAL * 4);
    let done = child.go();
    assert!(done.starts_with("done"), "{done}");
    std::thread::sleep(INTERVAL * 3);
    session.stop().expect("stop");
    let records = session.poll(Duration::ZERO).expect("poll");
    child.finish();
    Run {
        records,
        pid,
        done,
        marker,
    }
}

#[test]
fn a_blocked_ioctl_is_reported_once_with_its_stack_and_quick_ones_are_only_counted() {
    if !bpf_available("gpudriver_blocked_ioctl") {
        return;
    }
    let run = run();
    let events = run.events();
    for event in &events {
        for (name, _) in &event.fields {
            assert!(
                !["kind", "probe", "ts_ns"].contains(&name.as_str()),
                "{name}"
            );
        }
        // The Xid 79 logged before the hang is joined to every report.
        let xid = list(event, "xid");
        assert!(
            xid.iter()
                .any(|l| l.starts_with("79 at 0000:3b:00: ") && l.contains(&run.marker)),
            "{xid:?}"
        );
        let summary = text(event, "summary");
        assert!(
            summary.contains("; and the GPU fell off the bus (Xid 79 at 0000:3b:00)"),
            "{summary}"
        );
    }
    check_the_blocked_ioctl(&run);
    check_the_d_state(&run);
    assert!(run.of("hung_task").is_empty(), "{events:#?}");

    // The quick ioctls were seen (and the blocked one): counted, none reported.
    let path = done_field(&run.done, "path");
    assert_eq!(
        run.metric("gpu_driver_ioctls_total", "device", path),
        Some(MetricValue::Counter(QUICK_CALLS + 1))
    );
    // Other processes' ptys are watched too: at least ours.
    for kind in ["ioctl", "d_state"] {
        assert!(
            matches!(run.metric("gpu_driver_hangs_total", "hang", kind), Some(MetricValue::Counter(n)) if n >= 1),
            "{kind}"
        );
    }
}

fn check_the_blocked_ioctl(run: &Run) {
    let tid: u64 = done_field(&run.done, "tid").parse().unwrap();
    let fd: u64 = done_field(&run.done, "fd").parse().unwrap();
    let path = done_field(&run.done, "path");
    assert_eq!(done_field(&run.done, "ret"), "0", "{}", run.done);
    let blocked = run.of("ioctl");
    assert_eq!(blocked.len(), 1, "exactly one ioctl report: {blocked:#?}");
    let hang = blocked[0];
    assert_eq!(number(hang, "tid"), tid);
    assert_eq!(number(hang, "fd"), fd);
    assert_eq!(text(hang, "device"), path);
    assert_eq!(text(hang, "cmd"), format!("{:#x}", libc::TCGETS));
    let ms = number(hang, "blocked_ms");
    assert!((THRESHOLD_MS..THRESHOLD_MS + 600).contains(&ms), "{ms} ms");
    // Where it really waits: in the page fault of the ioctl's copy_to_user.
    let stack = list(hang, "stack").join(";");
    assert!(
        stack.contains("__x64_sys_ioctl;tty_ioctl;tty_mode_ioctl")
            && stack.ends_with("handle_userfault"),
        "{stack}"
    );
    assert_eq!(text(hang, "state"), "S");
    assert!(text(hang, "summary").contains(path), "{hang:#?}");

    let returned = run.of("ioctl_returned");
    assert_eq!(returned.len(), 1, "{returned:#?}");
    let back = returned[0];
    assert_eq!(number(back, "tid"), tid);
    assert_eq!(text(back, "device"), path);
    assert!(number(back, "blocked_ms") >= BLOCK_MS, "{back:#?}");
    assert_eq!(number(back, "seen_blocked"), 1);
    assert_eq!(back.field("ret"), Some(&FieldValue::Int(0)));
    let at = |event: &Event| {
        run.records
            .iter()
            .position(|r| matches!(r, Record::Event(e) if std::ptr::eq(e, event)))
    };
    assert!(at(hang) < at(back), "the return came before the report");
}

/// The vfork parent waited in D state for D_MS: reported once, with that stack.
fn check_the_d_state(run: &Run) {
    let d = run.of("d_state");
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(number(d[0], "tid"), u64::from(run.pid));
    assert!(number(d[0], "d_state_ms") >= THRESHOLD_MS, "{:#?}", d[0]);
    let stack = list(d[0], "stack").join(";");
    assert!(stack.contains("__do_sys_vfork"), "{stack}");
}

#[test]
fn the_hung_task_tracepoint_attaches() {
    if !bpf_available("gpudriver_hung_task_attaches") {
        return;
    }
    // The detector itself cannot be provoked here (a task must stay in D state past
    // kernel.hung_task_timeout_secs, 120 s): this shows that its hook is attached.
    let config = DriverConfig {
        xid_window_us: 0,
        ..DriverConfig::default()
    };
    // Available here, as `coolbpf list` says for every kernel-side probe.
    let features = coolbpf_core::Features::detect().expect("features");
    let availability = CATALOGUE.find("gpudriver").unwrap().availability(features);
    assert!(availability.available, "{availability:?}");
    let mut driver = GpuDriver::start(&config, |_| {}).expect("start");
    let programs = driver.programs().to_vec();
    assert_eq!(programs.len(), 3, "{programs:?}");
    assert!(programs[0].starts_with("sys_enter_"), "{programs:?}");
    assert!(programs[1].starts_with("sys_exit_"), "{programs:?}");
    assert!(programs[2].starts_with("process_hang_"), "{programs:?}");
    driver.check().expect("check");
    assert!(driver
        .metrics()
        .unwrap()
        .iter()
        .any(|m| m.name == "gpu_driver_watched_fds"));
    driver.stop().expect("stop");
}

#[test]
fn bad_options_are_refused() {
    let probe = CATALOGUE.find("gpudriver").unwrap();
    for (key, value) in [
        ("threshold_ms", "0"),
        ("devices", ""),
        ("devices", "nvidia"),
    ] {
        let options = ProbeOptions::new().with(key, value);
        let err = probe.create(&options).err().expect(key);
        assert_eq!(
            err.kind(),
            ErrorKind::InvalidArgument,
            "{key}={value}: {err}"
        );
    }
}
