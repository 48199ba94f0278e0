//! execsnoop against the real kernel: K execs of /bin/true with distinct arguments are
//! each reported once, with the pid and ppid that std::process saw.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use coolbpf_core::stream::Delivery;
use coolbpf_core::testing::bpf_available;
use coolbpf_probes::execsnoop::{ExecEvent, Execsnoop, ExecsnoopConfig};

#[test]
fn reports_each_exec_with_filename_and_args() {
    if !bpf_available("reports_each_exec_with_filename_and_args") {
        return;
    }
    const EXECS: usize = 20;
    let nonce = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let mut execsnoop =
        Execsnoop::start(&ExecsnoopConfig::default(), Delivery::channel(1 << 16)).expect("start");
    let mut children = Vec::new();
    for i in 0..EXECS {
        let marker = format!("coolbpf-exec-{nonce}-{i}");
        let mut child = Command::new("/bin/true")
            .arg(&marker)
            .arg("second arg")
            .spawn()
            .expect("spawn /bin/true");
        let pid = child.id();
        assert!(child.wait().expect("wait").success());
        children.push((pid, marker));
    }
    execsnoop.stop().expect("stop drains");
    let events: Vec<ExecEvent> = execsnoop.receiver().expect("channel").try_iter().collect();
    let losses = execsnoop.losses().expect("losses");
    assert_eq!(losses.total(), 0, "{losses:?}");
    for (pid, marker) in &children {
        let matching: Vec<&ExecEvent> = events
            .iter()
            .filter(|e| e.args.get(1) == Some(marker))
            .collect();
        assert_eq!(matching.len(), 1, "exactly one event for {marker}");
        let event = matching[0];
        assert_eq!(event.filename, "/bin/true");
        assert_eq!(
            event.args,
            vec![
                "/bin/true".to_owned(),
                marker.clone(),
                "second arg".to_owned()
            ]
        );
        assert_eq!(event.pid, *pid, "pid as std::process reported it");
        assert_eq!(
            event.ppid,
            std::process::id(),
            "parent is this test process"
        );
        assert_eq!(event.comm, "true");
        assert!(!event.args_truncated);
    }
}

#[test]
fn long_argument_lists_are_truncated_and_flagged() {
    if !bpf_available("long_argument_lists_are_truncated_and_flagged") {
        return;
    }
    let mut execsnoop =
        Execsnoop::start(&ExecsnoopConfig::default(), Delivery::channel(1 << 16)).expect("start");
    let long = "x".repeat(5000);
    let mut child = Command::new("/bin/true").arg(&long).spawn().expect("spawn");
    let pid = child.id();
    assert!(child.wait().expect("wait").success());
    execsnoop.stop().expect("stop");
    let event = execsnoop
        .receiver()
        .expect("channel")
        .try_iter()
        .find(|e| e.pid == pid)
        .expect("event for the long exec");
    assert!(event.args_truncated);
    assert_eq!(event.args[0], "/bin/true");
    assert!(event.args[1].len() < 2048 && event.args[1].chars().all(|c| c == 'x'));
}
