//! xid against the real kernel: Xid lines written to /dev/kmsg (which printk:console sees
//! like the driver's own lines) are reported exactly once each, live or from the kernel
//! log's history, with the right code, meaning, victim and cgroup.
//!
//! The kernel log keeps older runs' lines, so each test tags its lines with a marker of
//! its own and looks only at those.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use coolbpf_core::testing::bpf_available;
use coolbpf_core::{Event, FieldValue, MetricValue, Record};
use coolbpf_gpu::xid::{codes, Xid, XidAlert, XidConfig};
use coolbpf_probes::{ProbeOptions, ProbeSession};

/// Logs `line` through /dev/kmsg, at debug level so that consoles do not print it. Each
/// open file has its own rate limit (ten lines per five seconds), so every line gets a
/// fresh one.
fn log(line: &str) {
    let mut kmsg = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/kmsg")
        .expect("open /dev/kmsg for writing");
    kmsg.write_all(format!("<7>{line}\n").as_bytes())
        .expect("write to /dev/kmsg");
}

fn marker(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    format!("coolbpf-{test}-{}-{nanos}", std::process::id())
}

fn session() -> ProbeSession {
    let info = coolbpf_gpu::CATALOGUE
        .find("xid")
        .expect("xid is registered");
    ProbeSession::open(info, &ProbeOptions::new(), Duration::from_millis(200)).expect("open")
}

/// Stops the session and returns its records.
fn finish(mut session: ProbeSession) -> Vec<Record> {
    session.stop().expect("stop");
    session.poll(Duration::ZERO).expect("poll")
}

/// The xid events whose raw line contains `tag`.
fn events_with<'a>(records: &'a [Record], tag: &str) -> Vec<&'a Event> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Event(e) if e.probe == "xid" => Some(e),
            _ => None,
        })
        .filter(|e| {
            e.field("raw")
                .and_then(FieldValue::as_str)
                .is_some_and(|raw| raw.contains(tag))
        })
        .collect()
}

fn uint(event: &Event, name: &str) -> Option<u64> {
    event.field(name).and_then(FieldValue::as_u64)
}

fn string<'a>(event: &'a Event, name: &str) -> Option<&'a str> {
    event.field(name).and_then(FieldValue::as_str)
}

/// The last value of counter `name` with label `xid` = `xid` (any `xid` when `None`).
fn counter(records: &[Record], name: &str, xid: Option<u32>) -> Option<u64> {
    records.iter().rev().find_map(|r| match r {
        Record::Metric(m)
            if m.name == name
                && xid.is_none_or(|x| {
                    m.label("xid")
                        .is_some_and(|l| l.to_string() == x.to_string())
                }) =>
        {
            match m.value {
                MetricValue::Counter(v) => Some(v),
                _ => None,
            }
        }
        _ => None,
    })
}

fn own_comm() -> String {
    std::fs::read_to_string("/proc/self/comm")
        .expect("comm")
        .trim_end()
        .to_owned()
}

fn own_cgroup() -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_owned)
}

struct Case {
    code: u32,
    line: String,
    bus: Option<&'static str>,
    victim: bool,
}

/// Lines of at least eight codes in the current format (with and without MIG fields, with
/// a known and an unknown victim) and the older one without `PCI:` and victim.
fn live_cases(tag: &str, victim: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    for (i, code) in [13u32, 31, 79, 94].into_iter().enumerate() {
        cases.push(Case {
            code,
            line: format!("NVRM: Xid (PCI:0000:3b:00): {code}, {victim}, {tag} case {i}"),
            bus: Some("0000:3b:00"),
            victim: true,
        });
    }
    cases.push(Case {
        code: 48,
        line: format!(
            "NVRM: Xid (PCI:0000:3B:00 GPU-I:05 GPU-CI:01): 48, {victim}, DBE {tag} case mig"
        ),
        bus: Some("0000:3b:00"),
        victim: true,
    });
    cases.push(Case {
        code: 43,
        line: format!(
            "NVRM: Xid (PCI:0000:3b:00): 43, pid='<unknown>', name=<unknown>, {tag} case unknown"
        ),
        bus: Some("0000:3b:00"),
        victim: false,
    });
    for (i, code) in [32u32, 62, 119, 140].into_iter().enumerate() {
        cases.push(Case {
            code,
            line: format!("NVRM: Xid (0000:03:00): {code}, 0001 00000000 {tag} old {i}"),
            bus: Some("0000:03:00"),
            victim: false,
        });
    }
    cases
}

/// Checks that `case` was reported exactly once, live, with everything it says.
fn check_case(records: &[Record], case: &Case, comm: &str, cgroup: Option<&str>) {
    assert!(codes::is_known(case.code), "the test uses documented codes");
    let found: Vec<&Event> = events_with(records, &case.line);
    assert_eq!(found.len(), 1, "exactly one event for {:?}", case.line);
    let event = found[0];
    assert_eq!(uint(event, "past"), Some(0), "{:?}", case.line);
    assert_eq!(uint(event, "parsed"), Some(1));
    assert_eq!(uint(event, "xid"), Some(case.code.into()));
    let entry = codes::lookup(case.code);
    assert_eq!(string(event, "meaning"), Some(entry.meaning));
    assert_eq!(string(event, "action"), Some(entry.action));
    assert_eq!(string(event, "bus_id"), case.bus);
    assert_eq!(string(event, "raw"), Some(case.line.as_str()));
    if case.victim {
        assert_eq!(uint(event, "pid"), Some(std::process::id().into()));
        assert_eq!(string(event, "name"), Some(comm));
        assert_eq!(string(event, "cgroup"), cgroup, "the victim's cgroup");
    } else {
        assert_eq!((event.field("pid"), event.field("name")), (None, None));
        assert_eq!(event.field("cgroup"), None);
    }
    assert!(
        counter(records, "gpu_xid_errors_total", Some(case.code)) >= Some(1),
        "counter for Xid {}",
        case.code
    );
}

fn lost_total(records: &[Record]) -> u64 {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Metric(m) if m.name == "events_lost_total" => match m.value {
                MetricValue::Counter(v) => Some(v),
                _ => None,
            },
            _ => None,
        })
        .sum()
}

#[test]
fn live_xids_are_reported_once_with_meaning_and_victim() {
    if !bpf_available("live_xids_are_reported_once_with_meaning_and_victim") {
        return;
    }
    let tag = marker("live");
    let comm = own_comm();
    let cases = live_cases(&tag, &format!("pid={}, name={comm}", std::process::id()));
    let malformed = format!("NVRM: Xid (PCI:0000:3b:00): bogus, {tag} malformed");
    let not_xid = format!("NVRM: GPU at PCI:0000:3b:00: GPU-1234 {tag} not an xid");

    let mut session = session();
    session.start().expect("start");
    for case in &cases {
        log(&case.line);
    }
    log(&malformed);
    log(&not_xid);
    std::thread::sleep(Duration::from_millis(300));
    let records = finish(session);

    let cgroup = own_cgroup();
    for case in &cases {
        check_case(&records, case, &comm, cgroup.as_deref());
    }
    let mig = events_with(&records, &format!("{tag} case mig"));
    assert_eq!(uint(mig[0], "gpu_instance"), Some(5));
    assert_eq!(uint(mig[0], "compute_instance"), Some(1));

    let bad = events_with(&records, &malformed);
    assert_eq!(bad.len(), 1, "the malformed line, once");
    assert_eq!(uint(bad[0], "parsed"), Some(0));
    assert_eq!(uint(bad[0], "past"), Some(0));
    assert!(bad[0].field("xid").is_none());
    assert!(string(bad[0], "error").is_some_and(|e| e.contains("no Xid code")));
    assert!(counter(&records, "gpu_xid_unparsed_total", None) >= Some(1));
    assert!(
        events_with(&records, &not_xid).is_empty(),
        "not an Xid line"
    );
    assert_eq!(lost_total(&records), 0, "nothing lost");
}

#[test]
fn lines_logged_before_the_start_are_reported_once_as_past() {
    if !bpf_available("lines_logged_before_the_start_are_reported_once_as_past") {
        return;
    }
    let tag = marker("past");
    let first = format!("NVRM: Xid (PCI:0000:3b:00): 79, pid=1, name=init, {tag} first");
    let repeated = format!("NVRM: Xid (0000:03:00): 63, {tag} repeated");
    let unparsed = format!("NVRM: Xid (PCI:0000:3b:00 {tag} unparsed");
    let live = format!("NVRM: Xid (PCI:0000:3b:00): 45, {tag} live");
    log(&first);
    log(&repeated);
    log(&repeated);
    log(&unparsed);

    let mut session = session();
    session.start().expect("start");
    log(&live);
    std::thread::sleep(Duration::from_millis(300));
    let records = finish(session);

    let past = |line: &str, times: usize| {
        let found = events_with(&records, line);
        assert_eq!(found.len(), times, "{line:?}");
        for event in found {
            assert_eq!(uint(event, "past"), Some(1), "{line:?}");
            assert!(
                uint(event, "seq").is_some(),
                "a past line has its log sequence number"
            );
        }
    };
    past(&first, 1);
    past(&repeated, 2);
    past(&unparsed, 1);
    let first_event = events_with(&records, &first)[0];
    assert_eq!(uint(first_event, "xid"), Some(79));
    assert_eq!(uint(first_event, "pid"), Some(1));
    // pid 1 runs, but a past line's victim may be a reused pid: only a matching comm
    // gives a cgroup, and pid 1's comm is not "init" everywhere.
    let live_events = events_with(&records, &live);
    assert_eq!(live_events.len(), 1);
    assert_eq!(uint(live_events[0], "past"), Some(0));
    assert_eq!(uint(events_with(&records, &unparsed)[0], "parsed"), Some(0));
}

/// Lines logged while the probe starts land in the history, live, or both: each is still
/// reported exactly once. A writer logs lines from before the start until after it.
#[test]
fn lines_logged_while_the_probe_starts_are_reported_exactly_once() {
    if !bpf_available("lines_logged_while_the_probe_starts_are_reported_exactly_once") {
        return;
    }
    let tag = marker("overlap");
    let mut overlaps = 0;
    let mut attempts = 0;
    // The interesting case, lines logged between the attach and the end of the history,
    // depends on timing: try a few starts until one saw it (each is checked anyway).
    while overlaps == 0 && attempts < 5 {
        attempts += 1;
        let tag = format!("{tag}-a{attempts}");
        let line = move |i: usize| format!("NVRM: Xid (PCI:0000:3b:00): 13, {tag} n{i}.");
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let stop = Arc::clone(&stop);
            let line = line.clone();
            std::thread::spawn(move || {
                // At most ~50 KiB of lines, well within the smallest kernel log (128 KiB),
                // so that none is overwritten before the history reaches it.
                let mut written = 0;
                while !stop.load(Ordering::Relaxed) && written < 500 {
                    log(&line(written));
                    written += 1;
                    std::thread::sleep(Duration::from_micros(100));
                }
                written
            })
        };
        std::thread::sleep(Duration::from_millis(20));
        let (sender, alerts) = crossbeam_channel::unbounded::<XidAlert>();
        let mut xid = Xid::start(&XidConfig::default(), move |alert| {
            let _ = sender.send(alert);
        })
        .expect("start");
        std::thread::sleep(Duration::from_millis(20));
        stop.store(true, Ordering::Relaxed);
        let written = writer.join().expect("writer");
        std::thread::sleep(Duration::from_millis(200));
        xid.stop().expect("stop");
        overlaps = xid.duplicates();

        let mut seen: HashMap<String, (usize, bool)> = HashMap::new();
        let ours = line(0).replace(" n0.", " n");
        for alert in alerts.try_iter().filter(|a| a.raw.contains(&ours)) {
            let entry = seen.entry(alert.raw.clone()).or_default();
            entry.0 += 1;
            entry.1 = alert.past;
        }
        for i in 0..written {
            let (times, _) = seen.get(&line(i)).copied().unwrap_or_default();
            assert_eq!(
                times,
                1,
                "{:?} reported {times} times (history: {:?})",
                line(i),
                xid.history()
            );
        }
        assert_eq!(
            seen.len(),
            written,
            "no line of this attempt beyond those written"
        );
        let past = seen.values().filter(|(_, past)| *past).count();
        eprintln!(
            "attempt {attempts}: {written} lines, {past} from the history, {} live, \
             {overlaps} live twins of history lines left out",
            written - past
        );
    }
}
