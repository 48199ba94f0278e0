//! The `cuda` probe against the real CUDA runtime (libcudart 12 and 13 from PyPI), with no
//! GPU and no driver: every call fails at once with cudaErrorInsufficientDriver, and the
//! uprobes see the library's real code with the real arguments.

mod support;

use std::process::Command;
use std::time::Duration;

use coolbpf_core::testing::bpf_available;
use coolbpf_core::{ErrorKind, FieldValue, LabelValue, MetricValue, Record};
use coolbpf_gpu::CATALOGUE;
use coolbpf_probes::{ProbeOptions, ProbeSession};

use support::{build_c, build_launches, cudart, nvidia_root, Program};

const CALLS: u64 = 37;

fn session(options: &ProbeOptions) -> ProbeSession {
    let probe = CATALOGUE.find("cuda").expect("cuda is in the catalogue");
    let mut session = ProbeSession::open(probe, options, Duration::from_secs(60)).expect("open");
    session.start().expect("start");
    session
}

fn stop(mut session: ProbeSession) -> Vec<Record> {
    session.stop().expect("stop");
    session.poll(Duration::ZERO).expect("poll")
}

fn label<'a>(labels: &'a coolbpf_core::Labels, name: &str) -> Option<&'a LabelValue> {
    labels.get(name)
}

/// The value of counter `name` whose labels include `want` (name, value) pairs.
fn counter(records: &[Record], name: &str, want: &[(&str, LabelValue)]) -> Option<u64> {
    records.iter().rev().find_map(|r| match r {
        Record::Metric(m)
            if m.name == name && want.iter().all(|(k, v)| label(&m.labels, k) == Some(v)) =>
        {
            match m.value {
                MetricValue::Counter(v) => Some(v),
                _ => None,
            }
        }
        _ => None,
    })
}

/// The stack records of the last report (each report repeats the cumulative stacks).
fn last_stacks(records: &[Record]) -> Vec<&coolbpf_core::StackSample> {
    let stacks: Vec<_> = records
        .iter()
        .filter_map(|r| match r {
            Record::Stack(s) => Some(s),
            _ => None,
        })
        .collect();
    let last = stacks.iter().map(|s| s.ts_ns).max().unwrap_or(0);
    stacks.into_iter().filter(|s| s.ts_ns == last).collect()
}

fn s(v: &str) -> LabelValue {
    LabelValue::Str(v.to_owned())
}

fn calls_counted_exactly(major: u32) {
    let test = format!("cuda_calls_counted_exactly_cudart{major}");
    if !bpf_available(&test) {
        return;
    }
    let Some(root) = nvidia_root(&test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let program = build_c("runtime_calls", dir.path());
    let lib = cudart(&root, major);
    let mut child = Program::start(Command::new(&program).arg(&lib).arg(CALLS.to_string()));
    let pid = child.pid();
    let options = ProbeOptions::new()
        .with_pid(pid)
        .with("events", "true")
        .with("lib", lib.to_str().unwrap());
    let running = session(&options);
    let done = child.go();
    assert_eq!(
        done.trim(),
        "last launch returned 35",
        "no driver here: {done}"
    );
    let records = stop(running);
    child.finish();

    let pid = LabelValue::Int(i64::from(pid));
    for (function, n) in [
        ("cudaLaunchKernel", CALLS),
        ("cudaMalloc", CALLS),
        ("cudaMemcpy", CALLS),
        ("cudaStreamSynchronize", CALLS),
        ("cudaFree", CALLS),
        ("cudaDeviceSynchronize", 1),
    ] {
        let want = [("pid", pid.clone()), ("function", s(function))];
        assert_eq!(
            counter(&records, "cuda_calls_total", &want),
            Some(n),
            "{function}"
        );
    }
    let failed = [("function", s("cudaMalloc")), ("code", LabelValue::Int(35))];
    assert_eq!(
        counter(&records, "cuda_call_errors_total", &failed),
        Some(CALLS)
    );

    assert_arguments_as_passed(&records);

    // The launch flame graph: the test's own functions, the kernel as the leaf.
    let stacks = last_stacks(&records);
    let total: u64 = stacks.iter().map(|s| s.weight).sum();
    assert_eq!(total, CALLS, "{stacks:?}");
    for stack in &stacks {
        let frames = stack.frames.join(";");
        assert!(
            frames.ends_with("main;run_calls;launch_site;cudaLaunchKernel;[cuda] fake_kernel_stub"),
            "{frames}"
        );
    }
    // Failed allocations hold no memory, and nothing was lost.
    assert_eq!(
        counter(
            &records,
            "events_lost_total",
            &[("source", s("ringbuf_reserve"))]
        ),
        Some(0)
    );
}

/// Every call's arguments, exactly as `runtime_calls.c` passed them.
fn assert_arguments_as_passed(records: &[Record]) {
    let events: Vec<_> = records
        .iter()
        .filter_map(|r| match r {
            Record::Event(e) => Some(e),
            _ => None,
        })
        .collect();
    let of = |function: &'static str| {
        events
            .iter()
            .filter(move |e| e.field("function") == Some(&FieldValue::Str(function.into())))
    };
    let field = |e: &coolbpf_core::Event, name: &str| e.field(name).cloned();
    assert_eq!(of("cudaLaunchKernel").count() as u64, CALLS);
    for launch in of("cudaLaunchKernel") {
        assert_eq!(field(launch, "grid"), Some(FieldValue::Str("7x5x3".into())));
        assert_eq!(
            field(launch, "block"),
            Some(FieldValue::Str("128x2x1".into()))
        );
        assert_eq!(field(launch, "shared_mem"), Some(FieldValue::UInt(4096)));
        assert_eq!(
            field(launch, "stream"),
            Some(FieldValue::Str("0xabc0".into()))
        );
    }
    for malloc in of("cudaMalloc") {
        assert_eq!(field(malloc, "bytes"), Some(FieldValue::UInt(1 << 20)));
        assert_eq!(field(malloc, "ret"), Some(FieldValue::Int(35)));
    }
    for copy in of("cudaMemcpy") {
        assert_eq!(field(copy, "bytes"), Some(FieldValue::UInt(4096)));
        assert_eq!(
            field(copy, "direction"),
            Some(FieldValue::Str("host_to_device".into()))
        );
    }
    for sync in of("cudaStreamSynchronize") {
        assert_eq!(field(sync, "on"), Some(FieldValue::Str("0xabc0".into())));
    }
}

#[test]
fn cuda_calls_counted_exactly_cudart12() {
    calls_counted_exactly(12);
}

#[test]
fn cuda_calls_counted_exactly_cudart13() {
    calls_counted_exactly(13);
}

#[test]
fn nvcc_kernels_are_named_with_their_launch_stacks() {
    let test = "nvcc_kernels_are_named_with_their_launch_stacks";
    if !bpf_available(test) {
        return;
    }
    let Some(root) = nvidia_root(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let program = build_launches(&root, dir.path());
    // Host-wide on the library file: the kernels register in the program's static
    // constructors, before it could be given as a pid.
    let lib = cudart(&root, 13);
    let running = session(&ProbeOptions::new().with("lib", lib.to_str().unwrap()));
    let mut child = Program::start(Command::new(&program).arg(CALLS.to_string()));
    let pid = child.pid();
    let done = child.go();
    assert!(done.starts_with("done"), "{done}");
    let records = stop(running);
    child.finish();

    let kernel = "void demo::scale<float>(float*, float, int)";
    let want = [
        ("pid", LabelValue::Int(i64::from(pid))),
        ("kernel", s(kernel)),
    ];
    assert_eq!(
        counter(&records, "cuda_launches_total", &want),
        Some(CALLS),
        "{records:#?}"
    );
    let register = [
        ("pid", LabelValue::Int(i64::from(pid))),
        ("function", s("__cudaRegisterFunction")),
    ];
    assert_eq!(
        counter(&records, "cuda_calls_total", &register),
        Some(2),
        "two kernels"
    );
    let stack = last_stacks(&records)
        .into_iter()
        .find(|s| s.pid == pid)
        .expect("a launch stack");
    let frames = stack.frames.join(";");
    assert!(frames.contains(";main;launch_scales(int);"), "{frames}");
    assert!(frames.ends_with(&format!("[cuda] {kernel}")), "{frames}");
    assert_eq!(stack.weight, CALLS);
}

#[test]
fn bad_input_gets_clear_errors() {
    let probe = CATALOGUE.find("cuda").unwrap();
    let open = |options: &ProbeOptions| {
        let mut session = ProbeSession::open(probe, options, Duration::from_secs(1))?;
        session.start()?;
        session.stop()
    };
    if !bpf_available("cuda_bad_input_gets_clear_errors") {
        return;
    }
    // A process without CUDA.
    let err = open(&ProbeOptions::new().with_pid(std::process::id())).unwrap_err();
    assert!(err.to_string().contains("no CUDA library"), "{err}");
    // A missing library.
    let err = open(&ProbeOptions::new().with("lib", "/nonexistent/libcudart.so.12")).unwrap_err();
    assert!(
        err.to_string().contains("library not found: /nonexistent"),
        "{err}"
    );
    // A library without any of the functions (a version without the symbols).
    let err = open(&ProbeOptions::new().with("lib", "/bin/true")).unwrap_err();
    assert!(err.to_string().contains("none of"), "{err}");
    // A bad option.
    let err = ProbeSession::open(
        probe,
        &ProbeOptions::new().with("buffer_kb", "3"),
        Duration::from_secs(1),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
}

#[test]
fn a_library_opened_after_the_start_is_traced() {
    let test = "cuda_a_library_opened_after_the_start_is_traced";
    if !bpf_available(test) {
        return;
    }
    let Some(root) = nvidia_root(test) else {
        return;
    };
    // Host-wide, nothing named: the cache is in none of the places searched at start, so
    // the library is found only when the program opens it.
    let lib = cudart(&root, 13);
    let probe = CATALOGUE.find("cuda").unwrap();
    let mut session =
        ProbeSession::open(probe, &ProbeOptions::new(), Duration::from_millis(100)).unwrap();
    session.start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let program = build_c("runtime_calls", dir.path());
    let mut child = Program::start(Command::new(&program).arg(&lib).arg(CALLS.to_string()));
    let pid = child.pid();
    let canonical = std::fs::canonicalize(&lib).unwrap();
    let traced = |records: &[Record]| {
        records.iter().any(|r| match r {
            Record::Metric(m) if m.name == "cuda_libraries_traced" => {
                matches!(m.labels.get("path"), Some(LabelValue::Str(p))
                    if std::fs::canonicalize(p).is_ok_and(|p| p == canonical))
            }
            _ => false,
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while !traced(&seen) {
        assert!(
            std::time::Instant::now() < deadline,
            "{} not followed",
            lib.display()
        );
        seen = session.poll(Duration::from_millis(200)).unwrap();
    }
    assert_eq!(child.go().trim(), "last launch returned 35");
    session.stop().unwrap();
    let records = session.poll(Duration::ZERO).unwrap();
    child.finish();
    for function in ["cudaLaunchKernel", "cudaMalloc", "cudaStreamSynchronize"] {
        let want = [
            ("pid", LabelValue::Int(i64::from(pid))),
            ("function", s(function)),
        ];
        assert_eq!(
            counter(&records, "cuda_calls_total", &want),
            Some(CALLS),
            "{function}"
        );
    }
}
