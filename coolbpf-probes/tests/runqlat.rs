//! runqlat against the real kernel: over one window with a pipe ping-pong workload, the
//! number of run-queue latencies each method measured agrees with a bpftrace script
//! applying the wakeup method's rules to the same tracepoints, its switch count agrees
//! with /proc/stat `ctxt`, every method and hook kind measures the same thing, and the
//! sched_info method's waits add up to what /proc/PID/schedstat says.

mod sched_support;

use std::sync::Mutex;
use std::time::Duration;

use coolbpf_core::sink::MemorySink;
use coolbpf_core::testing::bpf_available;
use coolbpf_core::{MetricValue, Record, Runtime};
use coolbpf_probes::runqlat::{Method, Runqlat, RunqlatConfig};
use coolbpf_probes::sched::{HookKind, Per};
use coolbpf_probes::ProbeOptions;
use sched_support::{
    assert_close, count_of, ctxt, keyed, pid_histogram, ping_pong, scalar, schedstat, shared_cpu,
    Bpftrace, HeldPair,
};

/// The tests measure the whole system: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// runqlat's rules in bpftrace: a woken task, or one switched out still runnable
/// (prev_state 0, or reported preempted: TASK_REPORT_MAX), is queued; a queued task
/// switched in is one latency. CPUs' idle tasks (pid 0) never queue.
const PEER: &str = r#"
BEGIN { printf("ready\n"); }
tracepoint:sched:sched_wakeup, tracepoint:sched:sched_wakeup_new {
    if (args->pid != 0) { @q[args->pid] = nsecs; }
}
tracepoint:sched:sched_switch {
    @sw = count();
    if (args->prev_pid != 0 && (args->prev_state == 0 || (args->prev_state & 256) != 0)) {
        @q[args->prev_pid] = nsecs;
    }
    if (@q[args->next_pid] != 0) {
        @n = count();
        @p[args->next_pid] = count();
        delete(@q[args->next_pid]);
    }
}
END { print(@n); print(@sw); print(@p); clear(@q); clear(@n); clear(@sw); clear(@p); }
"#;

#[test]
fn agrees_with_bpftrace_and_the_kernels_switch_count() {
    if !bpf_available("agrees_with_bpftrace_and_the_kernels_switch_count") {
        return;
    }
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // Feature detection loads and attaches probes of its own: done before the window.
    coolbpf_core::Features::detect().expect("features");
    let peer = Bpftrace::start("runqlat", PEER);
    let mut probes: Vec<Runqlat> = [Method::SchedInfo, Method::Wakeup]
        .into_iter()
        .map(|method| {
            let config = RunqlatConfig {
                per: Per::Pid,
                method,
                ..Default::default()
            };
            Runqlat::start(&config).unwrap_or_else(|e| panic!("{method}: {e}"))
        })
        .collect();
    let switches = |probe: &Runqlat| probe.counters().expect("counters").switches;
    let ours_before: Vec<u64> = probes.iter().map(switches).collect();
    let ctxt_before = ctxt();
    let pids = ping_pong(100_000);
    let ctxt_after = ctxt();
    let ours_after: Vec<u64> = probes.iter().map(switches).collect();
    for probe in &mut probes {
        probe.stop();
    }
    let output = peer.map(Bpftrace::stop);

    for (i, probe) in probes.iter().enumerate() {
        let method = probe.method();
        eprintln!("{method}: programs {:?}", probe.programs());
        assert_close(
            &format!("{method}: sched_switch vs /proc/stat ctxt"),
            ours_after[i] - ours_before[i],
            ctxt_after - ctxt_before,
            0.02,
        );
        let histograms = probe.histograms().expect("histograms");
        let total: u64 = histograms.iter().map(|(_, h)| h.count).sum();
        let workload: Vec<u64> = pids.iter().map(|&pid| count_of(&histograms, pid)).collect();
        assert!(
            workload.iter().all(|&n| n >= 10_000),
            "{method}: each ping-pong process waited for a CPU many times: {workload:?}"
        );
        let losses = probe.losses().expect("losses");
        assert_eq!(losses.total(), 0, "{method}: {losses:?}");
        let Some(output) = &output else {
            continue;
        };
        assert_close(
            &format!("{method}: runq latencies, all tasks"),
            total,
            scalar(output, "n"),
            0.02,
        );
        let theirs = keyed(output, "p");
        for (pid, ours) in pids.iter().zip(&workload) {
            let theirs = theirs.get(&u64::from(*pid)).copied().unwrap_or(0);
            assert_close(
                &format!("{method}: runq latencies of workload pid {pid}"),
                *ours,
                theirs,
                0.02,
            );
        }
    }
}

#[test]
fn schedinfo_waits_add_up_to_proc_schedstat() {
    if !bpf_available("schedinfo_waits_add_up_to_proc_schedstat") {
        return;
    }
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let config = RunqlatConfig {
        per: Per::Pid,
        method: Method::SchedInfo,
        ..Default::default()
    };
    let runqlat = Runqlat::start(&config).expect("start");
    // Started after the probe, so every wait of theirs is under watch; blocked when
    // read, so each wait has been followed by the switch-out that accounts it. The
    // ping-pong makes many short waits, the spinners sharing a CPU few long ones (where
    // the microsecond truncation of each wait matters little).
    let workloads = [
        HeldPair::ping_pong(20_000),
        HeldPair::spinners(shared_cpu(), Duration::from_secs(1)),
    ];
    let kernel: Vec<Vec<(u64, u64)>> = workloads
        .iter()
        .map(|held| held.pids.iter().map(|&pid| schedstat(pid)).collect())
        .collect();
    let histograms = runqlat.histograms().expect("histograms");
    let pids: Vec<[u32; 2]> = workloads.iter().map(|held| held.pids).collect();
    for held in workloads {
        held.release();
    }
    for (&pid, &(run_delay_ns, waits)) in pids.iter().flatten().zip(kernel.iter().flatten()) {
        let (count, sum_us) = pid_histogram(&histograms, pid).map_or((0, 0), |h| (h.count, h.sum));
        eprintln!(
            "pid {pid}: ours {count} waits, {sum_us} us; /proc/{pid}/schedstat {waits} waits, \
             {run_delay_ns} ns"
        );
        assert!(waits >= 20, "pid {pid}: only {waits} waits");
        assert_eq!(count, waits, "pid {pid}: waits vs /proc/{pid}/schedstat");
        // Each wait is truncated to whole microseconds before it is added.
        let exact_us = run_delay_ns / 1000;
        assert!(
            sum_us <= exact_us && sum_us + count >= exact_us,
            "pid {pid}: {sum_us} us vs {run_delay_ns} ns in /proc/{pid}/schedstat"
        );
    }
}

#[test]
fn every_method_and_hook_kind_measures_the_same_workload() {
    if !bpf_available("every_method_and_hook_kind_measures_the_same_workload") {
        return;
    }
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let variants = [
        (Method::SchedInfo, HookKind::TpBtf),
        (Method::Wakeup, HookKind::TpBtf),
        (Method::Wakeup, HookKind::RawTp),
        (Method::Wakeup, HookKind::Tracepoint),
    ];
    let mut probes: Vec<Runqlat> = variants
        .iter()
        .map(|&(method, hook)| {
            Runqlat::start(&RunqlatConfig {
                per: Per::Pid,
                method,
                hook,
                ..Default::default()
            })
            .unwrap_or_else(|e| panic!("{method} {hook}: {e}"))
        })
        .collect();
    let pids = ping_pong(20_000);
    for probe in &mut probes {
        probe.stop();
    }
    let counts: Vec<Vec<u64>> = probes
        .iter()
        .map(|probe| {
            let histograms = probe.histograms().expect("histograms");
            pids.iter().map(|&pid| count_of(&histograms, pid)).collect()
        })
        .collect();
    for ((probe, (method, hook)), measured) in probes.iter().zip(variants).zip(&counts) {
        eprintln!(
            "{method} {hook}: programs {:?}, workload counts {measured:?}",
            probe.programs()
        );
        assert_eq!(probe.method(), method);
        let suffix = match hook {
            HookKind::TpBtf => "_btf",
            HookKind::RawTp => "_raw",
            _ => "_tp",
        };
        assert!(probe.programs().iter().all(|p| p.ends_with(suffix)));
        for ((pid, &count), &reference) in pids.iter().zip(measured).zip(&counts[0]) {
            assert!(
                count >= 5_000,
                "{method} {hook}: pid {pid} measured {count} times"
            );
            assert_close(
                &format!("{method} {hook} vs schedinfo, pid {pid}"),
                count,
                reference,
                0.02,
            );
        }
    }
}

#[test]
fn plugin_emits_histograms_per_cpu_and_the_switch_counter() {
    if !bpf_available("plugin_emits_histograms_per_cpu_and_the_switch_counter") {
        return;
    }
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let plugin = coolbpf_probes::CATALOGUE
        .find("runqlat")
        .expect("registered")
        .create(&ProbeOptions::new().with("per", "cpu"))
        .expect("plugin");
    let sink = MemorySink::new();
    let mut runtime = Runtime::builder()
        .interval(Duration::from_secs(60))
        .sink(Box::new(sink.clone()))
        .build()
        .expect("runtime");
    let id = runtime.add(plugin).expect("add");
    runtime.start_plugin(id).expect("start");
    ping_pong(2_000);
    runtime.shutdown().expect("shutdown");
    let records = sink.records();
    let histograms: Vec<&Record> = records
        .iter()
        .filter(|r| matches!(r, Record::Metric(m) if m.name == "runq_latency"))
        .collect();
    assert!(!histograms.is_empty(), "{records:?}");
    for record in &histograms {
        let json = record.to_json();
        assert!(
            json.starts_with(
                r#"{"probe":"runqlat","kind":"histogram","name":"runq_latency","labels":{"cpu":"#
            ),
            "{json}"
        );
        assert!(json.contains(r#""unit":"us","buckets":[{"le":"#), "{json}");
    }
    let switches = records.iter().find_map(|r| match r {
        Record::Metric(m) if m.name == "sched_switch_total" => Some(m.value.clone()),
        _ => None,
    });
    assert!(
        matches!(switches, Some(MetricValue::Counter(n)) if n >= 4_000),
        "{switches:?}"
    );
}
