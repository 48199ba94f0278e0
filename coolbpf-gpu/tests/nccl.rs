//! The `nccl` probe against the real libnccl (nvidia-nccl-cu12 from PyPI), with no GPU and
//! no driver: `ncclGetUniqueId` works, `ncclCommInitRank` fails (1, a CUDA error) and every
//! collective fails at once, and the uprobes see the library's real code with the real
//! arguments. `tests/programs/nccl_ranks.c` runs three rank processes of one
//! communicator; in one run a rank stops early.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use coolbpf_core::testing::bpf_available;
use coolbpf_core::{ErrorKind, Event, FieldValue, LabelValue, MetricValue, Record};
use coolbpf_gpu::nccl::CommId;
use coolbpf_gpu::CATALOGUE;
use coolbpf_probes::{ProbeOptions, ProbeSession};

use support::{build_nccl_ranks, libnccl, Program};

const RANKS: usize = 3;
const STALL_MS: u64 = 1000;
const INTERVAL_MS: u64 = 200;

fn session(lib: &str) -> ProbeSession {
    let probe = CATALOGUE.find("nccl").expect("nccl is in the catalogue");
    let options = ProbeOptions::new()
        .with("lib", lib)
        .with("events", "true")
        .with("stall_ms", &STALL_MS.to_string());
    let interval = Duration::from_millis(INTERVAL_MS);
    let mut session = ProbeSession::open(probe, &options, interval).expect("open");
    session.start().expect("start");
    session
}

/// A run of `nccl_ranks`: the id's comm_id and the ranks' pids.
struct Run {
    comm_id: String,
    pids: Vec<u32>,
}

/// Starts `nccl_ranks` (its parent, which waits for stdin to close) and its ranks.
fn run(
    program: &std::path::Path,
    lib: &str,
    collectives: u32,
    stopped: i32,
    stop_at: u32,
) -> (Program, Run) {
    let args = [
        lib.to_owned(),
        RANKS.to_string(),
        collectives.to_string(),
        stopped.to_string(),
        stop_at.to_string(),
    ];
    let mut parent = Program::start(Command::new(program).args(args));
    let line = parent.go();
    let mut words = line.split_whitespace();
    assert_eq!(words.next(), Some("ranks"), "{line}");
    let id = unhex(words.next().expect("the id"));
    let pids: Vec<u32> = words.map(|w| w.parse().expect("a pid")).collect();
    assert_eq!(pids.len(), RANKS, "{line}");
    let run = Run {
        comm_id: CommId::from_bytes(&id).to_string(),
        pids,
    };
    (parent, run)
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

fn field<'a>(event: &'a Event, name: &str) -> Option<&'a FieldValue> {
    event.field(name)
}

fn text(v: &str) -> FieldValue {
    FieldValue::Str(v.to_owned())
}

fn stragglers<'a>(records: &'a [Record], comm_id: &str) -> Vec<&'a Event> {
    events(records, "nccl_straggler", comm_id)
}

fn events<'a>(records: &'a [Record], kind: &str, comm_id: &str) -> Vec<&'a Event> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Event(e)
                if field(e, "event") == Some(&text(kind))
                    && field(e, "comm_id") == Some(&text(comm_id)) =>
            {
                Some(e)
            }
            _ => None,
        })
        .collect()
}

/// The last value of metric `name` whose labels include `want`.
fn metric(records: &[Record], name: &str, want: &[(&str, LabelValue)]) -> Option<f64> {
    records.iter().rev().find_map(|r| match r {
        Record::Metric(m)
            if m.name == name && want.iter().all(|(k, v)| m.labels.get(*k) == Some(v)) =>
        {
            match m.value {
                MetricValue::Counter(v) => Some(v as f64),
                MetricValue::Gauge(v) => Some(v),
                MetricValue::Histogram(_) => None,
            }
        }
        _ => None,
    })
}

fn s(v: &str) -> LabelValue {
    LabelValue::Str(v.to_owned())
}

fn int(v: impl Into<i64>) -> LabelValue {
    LabelValue::Int(v.into())
}

/// Polls `session` for `wait`, or until `until` holds of what arrived.
fn poll(
    session: &ProbeSession,
    records: &mut Vec<Record>,
    wait: Duration,
    until: impl Fn(&[Record]) -> bool,
) {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline && !until(records) {
        records.extend(session.poll(Duration::from_millis(50)).expect("poll"));
    }
}

/// `nccl_ranks`' schedule: collective i is, by i % 4, AllReduce(1024 float32, sum),
/// AllGather(256 int32), Broadcast(4096 uint8), Reduce(100 float64, max); bytes per call.
const SCHEDULE: [(&str, &str, &str, u64); 4] = [
    ("AllReduce", "sum", "float32", 4096),
    ("AllGather", "none", "int32", 1024),
    ("Broadcast", "none", "uint8", 4096),
    ("Reduce", "max", "float64", 800),
];

/// Every rank's counts, bytes, rank, nranks and sequence number, exactly.
fn assert_counts(records: &[Record], run: &Run, collectives: &[u32]) {
    for (rank, (&pid, &n)) in run.pids.iter().zip(collectives).enumerate() {
        let who = [
            ("pid", int(pid)),
            ("comm_id", s(&run.comm_id)),
            ("rank", int(rank as i32)),
        ];
        for (k, (op, redop, dtype, bytes)) in SCHEDULE.iter().enumerate() {
            let calls = (0..n).filter(|i| *i as usize % 4 == k).count() as f64;
            let mut want = who.to_vec();
            want.extend([
                ("nranks", int(RANKS as i32)),
                ("op", s(op)),
                ("redop", s(redop)),
                ("dtype", s(dtype)),
            ]);
            let got = metric(records, "nccl_collectives_total", &want);
            assert_eq!(got, (calls > 0.0).then_some(calls), "rank {rank} {op}");
            let got = metric(records, "nccl_bytes_total", &want);
            let expect = calls * *bytes as f64;
            assert_eq!(
                got,
                (calls > 0.0).then_some(expect),
                "rank {rank} {op} bytes"
            );
        }
        for op in ["Send", "Recv"] {
            let mut want = who.to_vec();
            want.extend([("op", s(op)), ("dtype", s("int64")), ("redop", s("none"))]);
            assert_eq!(metric(records, "nccl_collectives_total", &want), Some(1.0));
            assert_eq!(metric(records, "nccl_bytes_total", &want), Some(64.0));
        }
        let seq = metric(records, "nccl_last_seq", &who);
        assert_eq!(seq, Some(f64::from(n)), "rank {rank} sequence");
        let init = if rank == RANKS - 1 {
            "ncclCommInitRankConfig"
        } else {
            "ncclCommInitRank"
        };
        let failed = [("pid", int(pid)), ("function", s(init)), ("code", int(1))];
        assert_eq!(
            metric(records, "nccl_call_errors_total", &failed),
            Some(1.0),
            "no driver: init fails with ncclUnhandledCudaError"
        );
    }
}

/// Each rank's calls as events: its init, the group of a send and a receive, then its
/// collectives numbered from 1 with their arguments.
fn assert_call_events(records: &[Record], run: &Run, collectives: &[u32]) {
    let calls = events(records, "nccl_call", &run.comm_id);
    for (rank, (&pid, &n)) in run.pids.iter().zip(collectives).enumerate() {
        let mine: Vec<_> = calls
            .iter()
            .filter(|e| field(e, "pid") == Some(&FieldValue::UInt(pid.into())))
            .collect();
        // Init, Send, Recv and the collectives carry the comm_id; the group calls do not.
        assert_eq!(mine.len() as u32, 3 + n, "rank {rank}");
        for e in &mine {
            assert_eq!(field(e, "rank"), Some(&FieldValue::Int(rank as i64)));
            assert_eq!(field(e, "nranks"), Some(&FieldValue::Int(RANKS as i64)));
        }
        let first = mine
            .iter()
            .find(|e| field(e, "seq") == Some(&FieldValue::UInt(1)))
            .expect("collective 1");
        assert_eq!(field(first, "function"), Some(&text("ncclAllReduce")));
        assert_eq!(field(first, "count"), Some(&FieldValue::UInt(1024)));
        assert_eq!(field(first, "bytes"), Some(&FieldValue::UInt(4096)));
        let reduce = mine
            .iter()
            .find(|e| field(e, "function") == Some(&text("ncclReduce")));
        if n >= 4 {
            let reduce = reduce.expect("a reduce");
            assert_eq!(field(reduce, "peer"), Some(&FieldValue::Int(1)), "root");
            assert_eq!(field(reduce, "seq"), Some(&FieldValue::UInt(4)));
        }
    }
}

#[test]
fn ids_differ_between_calls_in_their_first_48_bytes() {
    let Some(lib) = libnccl("nccl_ids_differ") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let program = build_nccl_ranks(dir.path());
    let out = Command::new(&program)
        .arg(&lib)
        .arg("ids")
        .output()
        .expect("run");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let ids: Vec<Vec<u8>> = text.lines().map(unhex).collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0].len(), 128);
    assert_ne!(ids[0][..48], ids[1][..48]);
    assert_ne!(CommId::from_bytes(&ids[0]), CommId::from_bytes(&ids[1]));
}

#[test]
fn the_stopped_rank_is_named_once_as_the_straggler() {
    let test = "nccl_the_stopped_rank_is_named_once";
    if !bpf_available(test) {
        return;
    }
    let Some(lib) = libnccl(test) else {
        return;
    };
    let lib = lib.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let program = build_nccl_ranks(dir.path());
    let session = session(lib);
    let (collectives, stop_at) = (8, 3);
    let (parent, run) = run(&program, lib, collectives, 1, stop_at);
    let done = Instant::now();
    let mut records = Vec::new();
    // Within stall_ms plus one interval of the others moving on, and a margin for this
    // busy test machine.
    let bound = Duration::from_millis(STALL_MS + INTERVAL_MS + 1000);
    poll(&session, &mut records, bound, |r| {
        !stragglers(r, &run.comm_id).is_empty()
    });
    let found_after = done.elapsed();
    assert!(
        !stragglers(&records, &run.comm_id).is_empty(),
        "no straggler within {bound:?}"
    );
    // And never again for that stall.
    poll(
        &session,
        &mut records,
        Duration::from_millis(3 * STALL_MS),
        |_| false,
    );
    parent.finish();
    let mut session = session;
    session.stop().expect("stop");
    records.extend(session.poll(Duration::ZERO).expect("poll"));

    let found = stragglers(&records, &run.comm_id);
    assert_eq!(found.len(), 1, "{found:#?}");
    let e = found[0];
    assert_eq!(field(e, "pid"), Some(&FieldValue::UInt(run.pids[1].into())));
    assert_eq!(field(e, "rank"), Some(&FieldValue::Int(1)));
    assert_eq!(field(e, "nranks"), Some(&FieldValue::Int(RANKS as i64)));
    assert_eq!(field(e, "seq"), Some(&FieldValue::UInt(stop_at.into())));
    assert_eq!(
        field(e, "lead_seq"),
        Some(&FieldValue::UInt(collectives.into()))
    );
    assert_eq!(field(e, "state"), Some(&text("outside_nccl")));
    assert_eq!(field(e, "last_call"), Some(&text("ncclBroadcast")));
    let stalled = field(e, "stalled_ms").and_then(FieldValue::as_u64).unwrap();
    assert!(stalled >= STALL_MS, "{stalled}");
    let Some(FieldValue::StrList(ahead)) = field(e, "ahead") else {
        panic!("no ahead list");
    };
    assert_eq!(
        ahead,
        &[
            format!("rank 0 pid {} seq {collectives}", run.pids[0]),
            format!("rank 2 pid {} seq {collectives}", run.pids[2]),
        ]
    );
    let Some(FieldValue::StrList(stack)) = field(e, "stack") else {
        panic!("no stack");
    };
    let frames = stack.join(";");
    assert!(
        frames.contains("main;rank_main;run_rank;collective;ncclBroadcast"),
        "{frames}"
    );
    eprintln!("straggler reported {found_after:?} after the others finished");

    let per_rank = [collectives, stop_at, collectives];
    assert_counts(&records, &run, &per_rank);
    assert_call_events(&records, &run, &per_rank);
    let lost = [("source", s("ringbuf_reserve"))];
    assert_eq!(metric(&records, "events_lost_total", &lost), Some(0.0));
}

#[test]
fn ranks_that_finish_equal_are_no_stragglers() {
    let test = "nccl_ranks_that_finish_equal_are_no_stragglers";
    if !bpf_available(test) {
        return;
    }
    let Some(lib) = libnccl(test) else {
        return;
    };
    let lib = lib.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let program = build_nccl_ranks(dir.path());
    let mut session = session(lib);
    let collectives = 6;
    let (parent, run) = run(&program, lib, collectives, -1, 0);
    let mut records = Vec::new();
    poll(
        &session,
        &mut records,
        Duration::from_millis(3 * STALL_MS),
        |_| false,
    );
    parent.finish();
    session.stop().expect("stop");
    records.extend(session.poll(Duration::ZERO).expect("poll"));
    assert_eq!(stragglers(&records, &run.comm_id).len(), 0);
    assert_counts(&records, &run, &[collectives; RANKS]);
}

#[test]
fn bad_input_gets_clear_errors() {
    let probe = CATALOGUE.find("nccl").unwrap();
    let bad = ProbeOptions::new().with("stall_ms", "soon");
    let err = ProbeSession::open(probe, &bad, Duration::from_secs(1)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    let err = ProbeSession::open(
        probe,
        &ProbeOptions::new().with("buffer_kb", "3"),
        Duration::from_secs(1),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    if !bpf_available("nccl_bad_input_gets_clear_errors") {
        return;
    }
    let open = |options: &ProbeOptions| {
        let mut session = ProbeSession::open(probe, options, Duration::from_secs(1))?;
        session.start()?;
        session.stop()
    };
    // A process without NCCL.
    let err = open(&ProbeOptions::new().with_pid(std::process::id())).unwrap_err();
    assert!(err.to_string().contains("no NCCL library"), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("in process {}", std::process::id())),
        "{err}"
    );
    // A missing library, and a file without NCCL's functions.
    let err = open(&ProbeOptions::new().with("lib", "/nonexistent/libnccl.so.2")).unwrap_err();
    assert!(err.to_string().contains("/nonexistent"), "{err}");
    let err = open(&ProbeOptions::new().with("lib", "/bin/true")).unwrap_err();
    assert!(err.to_string().contains("none of"), "{err}");
}
