//! nosched against the real kernel: a task that reads 256 MiB from /dev/zero in one
//! system call stays in the kernel for far longer than the threshold and is reported,
//! with a kernel stack in the read; a task spinning in user space, and one making many
//! short system calls, on the CPU just as long without rescheduling, are not.
//!
//! The three run pinned to one CPU as SCHED_FIFO, so that nothing preempts them: each
//! has the CPU to itself for the whole run, and only time in the kernel tells them apart.

mod sched_support;

use std::sync::Mutex;
use std::time::Duration;

use coolbpf_core::stream::Delivery;
use coolbpf_core::testing::bpf_available;
use coolbpf_probes::nosched::{Nosched, NoschedConfig, NoschedEvent};
use coolbpf_probes::sched::HookKind;
use coolbpf_symbolize::Symbolizer;
use sched_support::{fork, monotonic_ns, reap, shared_cpu};

/// One probe at a time: attaching or detaching a program on a tracepoint while another is
/// attached there can make the kernel skip the other one for an event or two, and a
/// missed stint boundary would look like a long stint.
static SERIAL: Mutex<()> = Mutex::new(());

const READ_BYTES: usize = 256 << 20;
const RUN: Duration = Duration::from_millis(300);

/// Pins the calling (child) task to `cpu` as SCHED_FIFO priority 1.
fn pin_realtime(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is an empty set; these calls only touch the calling task
    // and live locals.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set);
        let param = libc::sched_param { sched_priority: 1 };
        libc::sched_setscheduler(0, libc::SCHED_FIFO, &raw const param);
    }
}

/// One long read(2) from /dev/zero into fresh anonymous memory.
fn long_read() {
    pin_realtime(shared_cpu());
    // SAFETY: raw syscalls on a path literal, a fresh private mapping and our own fd.
    unsafe {
        let fd = libc::open(c"/dev/zero".as_ptr(), libc::O_RDONLY);
        let buffer = libc::mmap(
            std::ptr::null_mut(),
            READ_BYTES,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if fd >= 0 && buffer != libc::MAP_FAILED {
            libc::read(fd, buffer, READ_BYTES);
        }
    }
}

/// Short system calls back to back for `RUN`.
fn many_syscalls() {
    pin_realtime(shared_cpu());
    let end = monotonic_ns() + RUN.as_nanos() as u64;
    while monotonic_ns() < end {
        // SAFETY: a raw syscall without arguments.
        unsafe { libc::syscall(libc::SYS_getppid) };
    }
}

/// User-space spinning for `RUN`.
fn spin() {
    pin_realtime(shared_cpu());
    let end = monotonic_ns() + RUN.as_nanos() as u64;
    while monotonic_ns() < end {
        std::hint::spin_loop();
    }
}

/// Runs the three workloads under `nosched` with `hook` and checks what it reports.
fn check_workloads(hook: HookKind) {
    const THRESHOLD_US: u64 = 5_000;
    let config = NoschedConfig {
        threshold_us: THRESHOLD_US,
        hook,
        ..Default::default()
    };
    let mut nosched = Nosched::start(&config, Delivery::channel(4096)).expect("start");
    let reader = fork(long_read);
    reap(reader);
    let syscaller = fork(many_syscalls);
    reap(syscaller);
    let spinner = fork(spin);
    reap(spinner);
    nosched.stop().expect("stop");
    let events: Vec<NoschedEvent> = nosched.receiver().expect("channel").try_iter().collect();
    eprintln!("{hook}: programs {:?}", nosched.programs());
    let symbolizer = Symbolizer::new();
    for event in &events {
        eprintln!(
            "pid {} ({}) cpu {}: {} us in the kernel: {}",
            event.pid,
            event.comm,
            event.cpu,
            event.duration_ns / 1000,
            event.stack_names(&symbolizer).join(";")
        );
    }
    let of = |pid: libc::pid_t| -> Vec<&NoschedEvent> {
        events.iter().filter(|e| e.pid == pid as u32).collect()
    };
    let read = of(reader);
    assert!(!read.is_empty(), "the long read is reported");
    assert!(read.iter().all(|e| e.duration_ns >= THRESHOLD_US * 1000));
    // The read itself; unmapping the 256 MiB at exit may be reported too (it is long).
    let in_read = read.iter().any(|event| {
        let stack = event.stack_names(&symbolizer);
        stack.iter().any(|f| f.contains("read"))
    });
    assert!(in_read, "a kernel stack in the read");
    assert!(
        of(syscaller).is_empty(),
        "short syscalls are not one long stint"
    );
    assert!(
        of(spinner).is_empty(),
        "user-space spinning is not kernel time"
    );
    assert_eq!(nosched.losses().expect("losses").total(), 0);
}

#[test]
fn reports_long_kernel_stints_and_not_user_spins_or_short_syscalls() {
    if !bpf_available("reports_long_kernel_stints_and_not_user_spins_or_short_syscalls") {
        return;
    }
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for hook in [HookKind::Auto, HookKind::Tracepoint] {
        check_workloads(hook);
    }
}

#[test]
fn a_quiet_process_is_never_reported() {
    if !bpf_available("a_quiet_process_is_never_reported") {
        return;
    }
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // The default threshold, this (mostly sleeping) test process only, for a second.
    let config = NoschedConfig {
        pid: Some(std::process::id()),
        ..Default::default()
    };
    let mut nosched = Nosched::start(&config, Delivery::channel(64)).expect("start");
    std::thread::sleep(Duration::from_secs(1));
    nosched.stop().expect("stop");
    let events: Vec<NoschedEvent> = nosched.receiver().expect("channel").try_iter().collect();
    assert!(events.is_empty(), "{events:?}");
    assert!(
        nosched.counters().expect("counters").switches > 0,
        "it was watching"
    );
}
