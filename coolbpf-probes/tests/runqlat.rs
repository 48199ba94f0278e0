//! runqlat against the real kernel: over one window with a pipe ping-pong workload, the
//! number of run-queue latencies it measured agrees with a bpftrace script applying the
//! same rules to the same tracepoints, its switch count agrees with /proc/stat `ctxt`,
//! and every hook kind measures the same thing.

mod sched_support;

use std::sync::Mutex;
use std::time::Duration;

use coolbpf_core::sink::MemorySink;
use coolbpf_core::testing::bpf_available;
use coolbpf_core::{MetricValue, Record, Runtime};
use coolbpf_probes::runqlat::{Runqlat, RunqlatConfig};
use coolbpf_probes::sched::{HistKey, HookKind, Per};
use coolbpf_probes::ProbeOptions;
use sched_support::{assert_close, ctxt, keyed, ping_pong, scalar, Bpftrace};

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

/// The latencies measured for process `pid`.
fn count_of(histograms: &[(HistKey, coolbpf_core::Histogram)], pid: u32) -> u64 {
    histograms
        .iter()
        .filter(|(key, _)| matches!(key, HistKey::Pid { pid: p, .. } if *p == pid))
        .map(|(_, h)| h.count)
        .sum()
}

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
    let config = RunqlatConfig {
        per: Per::Pid,
        ..Default::default()
    };
    let mut runqlat = Runqlat::start(&config).expect("start");
    let (ctxt_before, ours_before) = (ctxt(), runqlat.counters().expect("counters").switches);
    let pids = ping_pong(100_000);
    let (ctxt_after, ours_after) = (ctxt(), runqlat.counters().expect("counters").switches);
    runqlat.stop();
    let output = peer.map(Bpftrace::stop);
    eprintln!("programs {:?}", runqlat.programs());

    assert_close(
        "sched_switch vs /proc/stat ctxt",
        ours_after - ours_before,
        ctxt_after - ctxt_before,
        0.02,
    );
    let histograms = runqlat.histograms().expect("histograms");
    let total: u64 = histograms.iter().map(|(_, h)| h.count).sum();
    let workload: Vec<u64> = pids.iter().map(|&pid| count_of(&histograms, pid)).collect();
    assert!(
        workload.iter().all(|&n| n >= 10_000),
        "each ping-pong process waited for a CPU many times: {workload:?}"
    );
    let losses = runqlat.losses().expect("losses");
    assert_eq!(losses.total(), 0, "{losses:?}");
    let Some(output) = output else {
        return;
    };
    assert_close(
        "runq latencies, all tasks",
        total,
        scalar(&output, "n"),
        0.02,
    );
    let theirs = keyed(&output, "p");
    for (pid, ours) in pids.iter().zip(&workload) {
        let theirs = theirs.get(&u64::from(*pid)).copied().unwrap_or(0);
        assert_close(
            &format!("runq latencies of workload pid {pid}"),
            *ours,
            theirs,
            0.02,
        );
    }
}

#[test]
fn every_hook_kind_measures_the_same_workload() {
    if !bpf_available("every_hook_kind_measures_the_same_workload") {
        return;
    }
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let kinds = [HookKind::TpBtf, HookKind::RawTp, HookKind::Tracepoint];
    let mut probes: Vec<Runqlat> = kinds
        .iter()
        .map(|&hook| {
            Runqlat::start(&RunqlatConfig {
                per: Per::Pid,
                hook,
                ..Default::default()
            })
            .unwrap_or_else(|e| panic!("{hook}: {e}"))
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
    for ((probe, hook), measured) in probes.iter().zip(kinds).zip(&counts) {
        eprintln!(
            "{hook}: programs {:?}, workload counts {measured:?}",
            probe.programs()
        );
        let suffix = match hook {
            HookKind::TpBtf => "_btf",
            HookKind::RawTp => "_raw",
            _ => "_tp",
        };
        assert!(probe.programs().iter().all(|p| p.ends_with(suffix)));
        for ((pid, &count), &reference) in pids.iter().zip(measured).zip(&counts[0]) {
            assert!(count >= 5_000, "{hook}: pid {pid} measured {count} times");
            assert_close(
                &format!("{hook} vs tp_btf, pid {pid}"),
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
    let plugin = coolbpf_probes::find("runqlat")
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
