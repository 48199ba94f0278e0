//! cpudist against the real kernel: over one window with a pipe ping-pong workload, the
//! number of on-CPU spans it measured agrees with a bpftrace script applying the same
//! rules to the same tracepoint, and its switch count agrees with /proc/stat `ctxt`.

mod sched_support;

use std::sync::Mutex;
use std::time::Duration;

use coolbpf_core::testing::bpf_available;
use coolbpf_probes::cpudist::{Cpudist, CpudistConfig};
use coolbpf_probes::sched::{HookKind, Per};
use sched_support::{
    assert_close, count_of, ctxt, keyed, pid_histogram, ping_pong, reap_cpu_time, scalar,
    shared_cpu, spinners, Bpftrace,
};

/// The tests measure the whole system: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// cpudist's rules in bpftrace: a task switched in starts a span, the same task switched
/// out ends it; CPUs' idle tasks (pid 0) are left out.
const PEER: &str = r#"
BEGIN { printf("ready\n"); }
tracepoint:sched:sched_switch {
    @sw = count();
    if (args->prev_pid != 0 && @s[args->prev_pid] != 0) {
        @n = count();
        @p[args->prev_pid] = count();
        delete(@s[args->prev_pid]);
    }
    if (args->next_pid != 0) { @s[args->next_pid] = nsecs; }
}
END { print(@n); print(@sw); print(@p); clear(@s); clear(@n); clear(@sw); clear(@p); }
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
    let peer = Bpftrace::start("cpudist", PEER);
    let mut cpudist = Cpudist::start(&CpudistConfig {
        per: Per::Pid,
        ..Default::default()
    })
    .expect("start");
    let (ctxt_before, ours_before) = (ctxt(), cpudist.counters().expect("counters").switches);
    let pids = ping_pong(100_000);
    let (ctxt_after, ours_after) = (ctxt(), cpudist.counters().expect("counters").switches);
    cpudist.stop();
    let output = peer.map(Bpftrace::stop);
    eprintln!("programs {:?}", cpudist.programs());

    assert_close(
        "sched_switch vs /proc/stat ctxt",
        ours_after - ours_before,
        ctxt_after - ctxt_before,
        0.02,
    );
    let histograms = cpudist.histograms().expect("histograms");
    let total: u64 = histograms.iter().map(|(_, h)| h.count).sum();
    let workload: Vec<u64> = pids.iter().map(|&pid| count_of(&histograms, pid)).collect();
    assert!(
        workload.iter().all(|&n| n >= 10_000),
        "each ping-pong process ran many short spans: {workload:?}"
    );
    assert_eq!(cpudist.losses().expect("losses").total(), 0);
    let Some(output) = output else {
        return;
    };
    assert_close("on-CPU spans, all tasks", total, scalar(&output, "n"), 0.02);
    let theirs = keyed(&output, "p");
    for (pid, ours) in pids.iter().zip(&workload) {
        let theirs = theirs.get(&u64::from(*pid)).copied().unwrap_or(0);
        assert_close(
            &format!("on-CPU spans of workload pid {pid}"),
            *ours,
            theirs,
            0.02,
        );
    }
}

#[test]
fn spans_of_spinners_sharing_a_cpu_add_up_to_their_cpu_time() {
    if !bpf_available("spans_of_spinners_sharing_a_cpu_add_up_to_their_cpu_time") {
        return;
    }
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // Two spinners share one CPU for 1 s: each runs in slices (as long as the scheduler's
    // slice when nothing else wakes up there; shorter on a busy machine), and its spans
    // add up to the CPU time the kernel charged it.
    let mut cpudist = Cpudist::start(&CpudistConfig {
        per: Per::Pid,
        hook: HookKind::Auto,
        ..Default::default()
    })
    .expect("start");
    let pids = spinners(2, shared_cpu(), Duration::from_secs(1));
    let cpu_times: Vec<Duration> = pids.iter().map(|&pid| reap_cpu_time(pid)).collect();
    cpudist.stop();
    let histograms = cpudist.histograms().expect("histograms");
    for (&pid, cpu_time) in pids.iter().zip(cpu_times) {
        let histogram = pid_histogram(&histograms, pid as u32).expect("a histogram per spinner");
        let median = histogram.percentile(0.5).unwrap_or(0);
        eprintln!(
            "spinner {pid}: {} spans, {} us on CPU (kernel: {} us), median <= {median} us",
            histogram.count,
            histogram.sum,
            cpu_time.as_micros()
        );
        assert_close(
            &format!("on-CPU time of spinner {pid} vs its rusage"),
            histogram.sum,
            cpu_time.as_micros() as u64,
            0.05,
        );
    }
}
