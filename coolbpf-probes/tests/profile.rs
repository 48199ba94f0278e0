//! The `profile` probe against a workload that spins in a known function: the samples
//! name it, their count matches the frequency times the workload's CPU time, and `perf
//! record` on the same workload names the same top function.
//!
//! The workload is a C program built here with frame pointers; each line on its stdin
//! makes it spin in `coolbpf_hot_spin` for a fixed time and answer `done`, so a profiler
//! is always attached before the spin starts, and the process is still alive (blocked on
//! stdin, off the CPU) when the profile is symbolized. Its on-CPU time is read from
//! `/proc/PID/schedstat`, so a machine busy with other work (the expected count is
//! frequency x time actually on a CPU) does not make the counts wrong.
//!
//! Tests in this file run one at a time: they measure CPU time, and two spinners on a
//! 2-CPU machine would take it from each other.

mod profile_support;

use std::time::Duration;

use coolbpf_core::sink::MemorySink;
use coolbpf_core::testing::bpf_available;
use coolbpf_core::{ErrorKind, Record, Runtime};
use coolbpf_probes::profile::{
    ProfileConfig, ProfileFileSink, ProfileFormat, ProfilePlugin, ProfileSession,
};
use coolbpf_symbolize::profile::SymbolizedProfile;

use profile_support::{perf_top_function, serial, CgroupDir, Spinner, HOT};

const FREQ: u64 = 99;

/// Fraction of `pid`'s sample weight whose stack contains `function`, and that weight.
fn share_containing(profile: &SymbolizedProfile, pid: u32, function: &str) -> (f64, u64) {
    let (mut with, mut all) = (0, 0);
    for stack in profile.stacks().iter().filter(|s| s.pid == pid) {
        all += stack.weight;
        if stack.frame_names().iter().any(|name| name == function) {
            with += stack.weight;
        }
    }
    let share = if all == 0 {
        0.0
    } else {
        with as f64 / all as f64
    };
    (share, all)
}

/// Asserts `count` is within 10% of `FREQ` x `on_cpu`, and returns the expected count.
fn assert_count(what: &str, count: u64, on_cpu: Duration) -> f64 {
    let expected = FREQ as f64 * on_cpu.as_secs_f64();
    let error = (count as f64 - expected).abs() / expected;
    eprintln!(
        "{what}: {count} samples, expected {expected:.0} ({FREQ} Hz x {:.3} s on CPU), off by {:.1}%",
        on_cpu.as_secs_f64(),
        error * 100.0
    );
    assert!(
        error <= 0.10,
        "{what}: {count} samples, expected {expected:.0} +- 10%"
    );
    expected
}

#[test]
fn pid_profile_names_the_hot_function_and_counts_right() {
    if !bpf_available("pid_profile_names_the_hot_function_and_counts_right") {
        return;
    }
    let _serial = serial();
    let Some(mut spinner) = Spinner::start(5.0) else {
        return;
    };
    let config = ProfileConfig {
        frequency: FREQ,
        pid: Some(spinner.pid()),
        ..ProfileConfig::default()
    };
    let session = ProfileSession::start(&config).expect("start the profiler");
    let event = session.profiler().expect("on-CPU").event();
    assert_eq!(
        session.profiler().expect("on-CPU").perf_events(),
        1,
        "one thread, one event"
    );
    let on_cpu = spinner.spin();
    let result = session.finish().expect("finish");

    let (share, samples) = share_containing(&result.profile, spinner.pid(), HOT);
    eprintln!(
        "pid profile: {:.2}% of {samples} samples contain {HOT}",
        share * 100.0
    );
    assert!(share >= 0.95, "only {:.2}% contain {HOT}", share * 100.0);
    assert_eq!(samples, result.samples, "a pid profile has only that pid");
    assert_count("pid profile", samples, on_cpu);
    let top = result.profile.top(1);
    let ours = top.entries.first().map(|e| e.function.clone());
    assert_eq!(ours.as_deref(), Some(HOT), "{top}");
    assert_eq!(result.losses.kernel.ringbuf_reserve, 0);
    assert_eq!(result.losses.kernel.stack, 0);
    assert_eq!(result.losses.decode_errors, 0);
    // Root first: the spinning frames end with the hot function, after main.
    let hot = result
        .profile
        .stacks()
        .iter()
        .max_by_key(|s| s.weight)
        .unwrap();
    let names = hot.frame_names();
    assert_eq!(names.last().map(String::as_str), Some(HOT), "{names:?}");
    assert!(names.iter().any(|n| n == "main"), "{names:?}");

    match perf_top_function(&mut spinner, &event.to_string()) {
        Some(perf) => {
            eprintln!("perf record -F {FREQ} -g -p: top function {perf}");
            assert_eq!(perf, HOT, "perf names another top function");
        }
        None => eprintln!("perf's cross-check skipped (see above)"),
    }
}

#[test]
fn every_cpu_profile_counts_the_spinner_like_a_pid_profile() {
    if !bpf_available("every_cpu_profile_counts_the_spinner_like_a_pid_profile") {
        return;
    }
    let _serial = serial();
    let Some(mut spinner) = Spinner::start(3.0) else {
        return;
    };
    let session = ProfileSession::start(&ProfileConfig::default()).expect("start");
    let cpus = coolbpf_core::sys::perf_event::online_cpus().unwrap().len();
    assert_eq!(session.profiler().expect("on-CPU").perf_events(), cpus);
    let on_cpu = spinner.spin();
    let result = session.finish().expect("finish");
    let (share, samples) = share_containing(&result.profile, spinner.pid(), HOT);
    eprintln!(
        "all-CPU profile: {:.2}% of the spinner's {samples} samples contain {HOT}; {} samples in all",
        share * 100.0,
        result.samples
    );
    assert!(share >= 0.95, "only {:.2}% contain {HOT}", share * 100.0);
    assert_count("all-CPU profile, the spinner's samples", samples, on_cpu);
    assert_eq!(result.losses.kernel.ringbuf_reserve, 0);
}

#[test]
fn cgroup_filter_keeps_only_that_cgroup() {
    if !bpf_available("cgroup_filter_keeps_only_that_cgroup") {
        return;
    }
    let _serial = serial();
    let Some(mut spinner) = Spinner::start(3.0) else {
        return;
    };
    let Some(cgroup) = CgroupDir::create() else {
        return;
    };
    cgroup.adopt(spinner.pid());
    let config = ProfileConfig {
        cgroup: Some(cgroup.path().to_path_buf()),
        ..ProfileConfig::default()
    };
    let session = ProfileSession::start(&config).expect("start");
    assert!(session.profiler().expect("on-CPU").cgroup_id().is_some());
    let on_cpu = spinner.spin();
    let result = session.finish().expect("finish");
    let pids: std::collections::BTreeSet<u32> =
        result.profile.stacks().iter().map(|s| s.pid).collect();
    eprintln!("cgroup profile: pids {pids:?}, {} samples", result.samples);
    assert_eq!(pids.into_iter().collect::<Vec<_>>(), vec![spinner.pid()]);
    assert_count("cgroup profile", result.samples, on_cpu);
}

#[test]
fn plugin_emits_stack_records_and_the_file_sink_writes_profiles() {
    if !bpf_available("plugin_emits_stack_records_and_the_file_sink_writes_profiles") {
        return;
    }
    let _serial = serial();
    let Some(mut spinner) = Spinner::start(2.0) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let memory = MemorySink::new();
    let files = ProfileFileSink::new(dir.path(), ProfileFormat::Folded).unwrap();
    let mut runtime = Runtime::builder()
        .sink(Box::new(memory.clone()))
        .sink(Box::new(files))
        .build()
        .unwrap();
    let config = ProfileConfig {
        pid: Some(spinner.pid()),
        interval: Some(Duration::from_secs(1)),
        ..ProfileConfig::default()
    };
    runtime.add(Box::new(ProfilePlugin::new(config))).unwrap();
    runtime.start_all().unwrap();
    spinner.spin();
    runtime.shutdown().unwrap();

    let records = memory.take();
    let stacks: Vec<_> = records
        .iter()
        .filter_map(|r| match r {
            Record::Stack(s) => Some(s),
            _ => None,
        })
        .collect();
    let total: u64 = stacks.iter().map(|s| s.weight).sum();
    let hot: u64 = stacks
        .iter()
        .filter(|s| s.frames.iter().any(|f| f == HOT))
        .map(|s| s.weight)
        .sum();
    eprintln!("plugin: {hot} of {total} samples contain {HOT}");
    assert!(total > 0 && hot as f64 >= 0.95 * total as f64);
    let heaviest = stacks.iter().max_by_key(|s| s.weight).unwrap();
    assert_eq!(
        heaviest.frames.last().map(String::as_str),
        Some(HOT),
        "frames run root first"
    );
    let json = Record::Stack(stacks[0].clone()).to_json();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["probe"], "profile");
    assert_eq!(value["kind"], "stacks");
    assert_eq!(value["pid"], spinner.pid());
    assert!(
        value["frames"].is_array() && value["count"].is_u64(),
        "{json}"
    );
    let samples_total = records.iter().any(
        |r| matches!(r, Record::Metric(m) if m.probe == "profile" && m.name == "samples_total"),
    );
    assert!(samples_total, "the samples counter is emitted");

    let written: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!written.is_empty(), "one file per interval with samples");
    let folded: String = written
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(folded.contains(&format!(";main;{HOT} ")), "{folded}");
}

#[test]
fn a_missing_process_is_not_found() {
    let config = ProfileConfig {
        pid: Some(u32::MAX),
        ..ProfileConfig::default()
    };
    let err = ProfileSession::start(&config).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}
