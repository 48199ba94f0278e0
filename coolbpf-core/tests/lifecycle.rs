//! 1000 load/attach/stream/drop cycles, and 100 cycles of operations that fail half-way,
//! leave no BPF program, link, map or fd behind.
//!
//! This file holds one test so that nothing else in the process loads programs while it
//! counts.

use std::time::{Duration, Instant};

use coolbpf_core::stream::{Delivery, EventStream};
use coolbpf_core::sys::bpf_ids::{ids, BpfObjectKind};
use coolbpf_core::testing::bpf_available;
use coolbpf_core::{
    AttachTarget, ObjectBuilder, PerfEventConfig, PerfEventKind, PerfEventScope, Sampling,
};

static FLOOD: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/flood.bpf.o"));

/// This process's fds by kind, from the targets of /proc/self/fd links.
fn fd_kinds() -> Vec<String> {
    let mut kinds: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .map(|target| {
            let target = target.to_string_lossy().into_owned();
            // "socket:[123]" and "anon_inode:bpf-prog" → their kind, without inode numbers.
            target.split(":[").next().unwrap_or(&target).to_owned()
        })
        .collect();
    kinds.sort();
    kinds
}

fn bpf_fds(kinds: &[String]) -> usize {
    kinds
        .iter()
        .filter(|k| k.contains("bpf") || k.contains("perf_event"))
        .count()
}

fn live_ids() -> (usize, usize, usize) {
    (
        ids(BpfObjectKind::Program).len(),
        ids(BpfObjectKind::Link).len(),
        ids(BpfObjectKind::Map).len(),
    )
}

#[test]
fn thousand_cycles_leak_nothing() {
    if !bpf_available("thousand_cycles_leak_nothing") {
        return;
    }
    // One warm-up cycle, so lazily created process-wide state (libbpf's caches) is
    // in the baseline rather than counted as a leak.
    let cycle = |i: u32| {
        let mut object = ObjectBuilder::from_bytes(FLOOD)
            .global("target_tid", &(current_tid()))
            .global("target_syscall", &(libc::SYS_getppid as u32))
            .disable_program("flood_perf")
            .load()
            .unwrap_or_else(|e| panic!("cycle {i}: load: {e}"));
        object
            .attach_auto("flood_ringbuf")
            .unwrap_or_else(|e| panic!("cycle {i}: attach: {e}"));
        let stream = EventStream::ring_buffer_raw(&object, "events", Delivery::channel(8))
            .unwrap_or_else(|e| panic!("cycle {i}: stream: {e}"));
        // SAFETY: getppid has no preconditions.
        unsafe { libc::getppid() };
        drop(stream);
        drop(object);
    };
    // Error paths, each of which has opened something by the time it fails.
    let failing_cycle = |i: u32| {
        let mut object = ObjectBuilder::from_bytes(FLOOD)
            .global("target_tid", &current_tid())
            .global("target_syscall", &(libc::SYS_getppid as u32))
            .disable_program("flood_perf")
            .load()
            .unwrap_or_else(|e| panic!("cycle {i}: load: {e}"));
        assert!(object
            .attach(
                "flood_ringbuf",
                &AttachTarget::tracepoint("sched", "no_such_event")
            )
            .is_err());
        let hardware = PerfEventConfig {
            kind: PerfEventKind::Cycles,
            sampling: Sampling::Frequency(99),
            scope: PerfEventScope::AllCpus,
        };
        let _ = object.attach("flood_ringbuf", &AttachTarget::PerfEvent(hardware));
        assert!(EventStream::perf_buffer_raw(&object, "events", Delivery::channel(1)).is_err());
        assert!(ObjectBuilder::from_bytes(FLOOD)
            .global("target_tid", &0u64)
            .load()
            .is_err());
        assert!(ObjectBuilder::from_vec(FLOOD[..FLOOD.len() / 2].to_vec())
            .load()
            .is_err());
    };
    cycle(0);
    failing_cycle(0);
    let fds_before = fd_kinds();
    let ids_before = live_ids();
    let started = Instant::now();
    for i in 1..=1000 {
        cycle(i);
        if i % 10 == 0 {
            failing_cycle(i);
        }
    }
    eprintln!("1000 cycles in {:?}", started.elapsed());
    assert_eq!(
        fd_kinds(),
        fds_before,
        "fds of this process after 1000 cycles"
    );
    assert_eq!(bpf_fds(&fds_before), 0, "no BPF fd is open between cycles");
    // The kernel frees programs, links and maps after an RCU grace period: give it a
    // moment, then every id this test created must be gone. Other processes may load
    // programs meanwhile, so only an increase over the baseline that persists fails.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut now = live_ids();
    while now != ids_before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        now = live_ids();
        if now.0 <= ids_before.0 && now.1 <= ids_before.1 && now.2 <= ids_before.2 {
            break;
        }
    }
    assert!(
        now.0 <= ids_before.0 && now.1 <= ids_before.1 && now.2 <= ids_before.2,
        "kernel (programs, links, maps) before {ids_before:?}, after {now:?}"
    );
}

/// This thread's id.
fn current_tid() -> u32 {
    // SAFETY: gettid has no preconditions and cannot fail.
    (unsafe { libc::gettid() }) as u32
}
