//! Attach targets against the real kernel, each checked against a count the test knows
//! independently: the calls it made itself, or frequency x time x CPUs for sampling.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use coolbpf_core::testing::bpf_available;
use coolbpf_core::{
    AttachTarget, BpfObject, ObjectBuilder, PerfEventConfig, PerfEventKind, PerfEventScope,
    Sampling,
};

static ATTACH: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/attach.bpf.o"));

fn current_tid() -> u32 {
    // SAFETY: gettid has no preconditions and cannot fail.
    (unsafe { libc::gettid() }) as u32
}

fn load() -> BpfObject {
    ObjectBuilder::from_bytes(ATTACH)
        .global("target_tid", &current_tid())
        .load()
        .expect("load attach object")
}

/// Calls libc's getppid wrapper `n` times from this thread.
fn call_getppid(n: u64) {
    for _ in 0..n {
        // SAFETY: getppid has no preconditions.
        std::hint::black_box(unsafe { libc::getppid() });
    }
}

/// The path of the libc this process has mapped, from /proc/self/maps.
fn mapped_libc() -> PathBuf {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("maps");
    maps.lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .find(|path| path.contains("/libc.so") || path.contains("/libc-"))
        .map(PathBuf::from)
        .expect("libc is mapped")
}

#[test]
fn uprobe_by_symbol_at_library_counts_every_call() {
    if !bpf_available("uprobe_by_symbol_at_library_counts_every_call") {
        return;
    }
    let mut object = load();
    // "getppid@libc": the library found on the standard paths, as a user would write it.
    let target: AttachTarget = "uprobe:getppid@libc".parse().expect("parse");
    object.attach("on_uprobe", &target).expect("attach uprobe");
    let retprobe: AttachTarget = format!("uretprobe:{}:getppid", mapped_libc().display())
        .parse()
        .expect("parse");
    object
        .attach("on_uretprobe", &retprobe)
        .expect("attach uretprobe");
    call_getppid(500);
    assert_eq!(object.global_u64("uprobe_hits").expect("read"), 500);
    assert_eq!(object.global_u64("uretprobe_hits").expect("read"), 500);
    object.detach_all();
    call_getppid(10);
    assert_eq!(
        object.global_u64("uprobe_hits").expect("read"),
        500,
        "detached probes stay quiet"
    );
}

#[test]
fn uprobe_by_file_offset_counts_every_call() {
    if !bpf_available("uprobe_by_file_offset_counts_every_call") {
        return;
    }
    // The file offset of getppid in the mapped libc, from its address and the mapping.
    let address = libc::getppid as *const () as usize;
    let maps = std::fs::read_to_string("/proc/self/maps").expect("maps");
    let (binary, offset) = maps
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (start, end) = fields.first()?.split_once('-')?;
            let (start, end) = (
                usize::from_str_radix(start, 16).ok()?,
                usize::from_str_radix(end, 16).ok()?,
            );
            let file_offset = usize::from_str_radix(fields.get(2)?, 16).ok()?;
            let path = PathBuf::from(fields.get(5)?);
            (start..end)
                .contains(&address)
                .then(|| (path, address - start + file_offset))
        })
        .expect("getppid is in a file mapping");
    let mut object = load();
    let target = AttachTarget::Uprobe {
        binary,
        symbol: None,
        offset,
        pid: None,
        retprobe: false,
        cookie: 0,
    };
    object
        .attach("on_uprobe", &target)
        .expect("attach by offset");
    call_getppid(321);
    assert_eq!(object.global_u64("uprobe_hits").expect("read"), 321);
}

#[test]
fn classic_tracepoint_and_raw_tracepoint_count_every_syscall() {
    if !bpf_available("classic_tracepoint_and_raw_tracepoint_count_every_syscall") {
        return;
    }
    let mut object = load();
    object
        .attach(
            "on_tracepoint",
            &AttachTarget::tracepoint("syscalls", "sys_enter_getppid"),
        )
        .expect("tracepoint");
    object
        .attach("on_raw_tp", &AttachTarget::raw_tracepoint("sys_enter"))
        .expect("raw_tp");
    call_getppid(200);
    assert_eq!(object.global_u64("tracepoint_hits").expect("read"), 200);
    // raw_tp sees every syscall of the thread: at least the 200 getppid calls.
    assert!(object.global_u64("raw_tp_hits").expect("read") >= 200);
}

#[test]
fn perf_event_sampling_on_every_cpu_matches_frequency() {
    if !bpf_available("perf_event_sampling_on_every_cpu_matches_frequency") {
        return;
    }
    // A fixed period (5 ms of cpu-clock) rather than a frequency: the kernel's frequency
    // mode adapts the period as it goes, a fixed one makes the expected count exact.
    // cpu-clock does not tick on an idle CPU (perf record -a on an idle 2-CPU VM gets
    // half the samples), so every CPU is kept busy by a spinner for the whole window.
    const PERIOD_NS: u64 = 5_000_000;
    const HZ: u64 = 1_000_000_000 / PERIOD_NS;
    let cpus = coolbpf_core::sys::perf_event::online_cpus()
        .expect("cpus")
        .len() as u64;
    let mut object = load();
    let config = PerfEventConfig {
        kind: PerfEventKind::CpuClock,
        sampling: Sampling::Period(PERIOD_NS),
        scope: PerfEventScope::AllCpus,
    };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let spinners: Vec<_> = (0..cpus)
        .map(|_| {
            let stop = std::sync::Arc::clone(&stop);
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        })
        .collect();
    let started = Instant::now();
    object
        .attach("on_perf_event", &AttachTarget::PerfEvent(config))
        .expect("perf_event");
    assert_eq!(
        object.attachment_count() as u64,
        cpus,
        "one perf event per online CPU"
    );
    std::thread::sleep(Duration::from_secs(2));
    object.detach_all();
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for spinner in spinners {
        spinner.join().expect("spinner");
    }
    let samples = object.global_u64("perf_samples").expect("read") as f64;
    let expected = HZ as f64 * elapsed * cpus as f64;
    eprintln!("{samples} samples, expected {expected:.0} ({HZ} Hz x {elapsed:.2} s x {cpus} CPUs)");
    assert!(
        (samples - expected).abs() / expected < 0.1,
        "{samples} vs {expected:.0}"
    );
}

#[test]
fn hardware_events_fail_clearly_without_a_pmu() {
    if !bpf_available("hardware_events_fail_clearly_without_a_pmu") {
        return;
    }
    if coolbpf_core::Features::detect()
        .expect("features")
        .perf_event_hardware
        .available
    {
        eprintln!("this machine has a PMU: nothing to check");
        return;
    }
    let mut object = load();
    let config = PerfEventConfig {
        kind: PerfEventKind::Cycles,
        sampling: Sampling::Frequency(99),
        scope: PerfEventScope::AllCpus,
    };
    let err = object
        .attach("on_perf_event", &AttachTarget::PerfEvent(config))
        .expect_err("no PMU");
    assert!(err.to_string().contains("no hardware PMU"), "{err}");
    assert_eq!(
        object.attachment_count(),
        0,
        "nothing half-attached is left"
    );
}

#[test]
fn bad_targets_are_clear_errors() {
    if !bpf_available("bad_targets_are_clear_errors") {
        return;
    }
    let mut object = load();
    let err = object
        .attach(
            "on_tracepoint",
            &AttachTarget::tracepoint("sched", "no_such_event"),
        )
        .expect_err("bad tp");
    assert!(
        err.to_string().contains("tracepoint:sched:no_such_event"),
        "{err}"
    );
    let err = object
        .attach(
            "no_such_program",
            &AttachTarget::raw_tracepoint("sys_enter"),
        )
        .expect_err("bad program");
    assert!(
        err.to_string().contains("no_such_program") && err.to_string().contains("on_uprobe"),
        "{err}"
    );
    let err = object
        .attach(
            "on_uprobe",
            &"uprobe:no_such_function@libc".parse().expect("parse"),
        )
        .expect_err("bad symbol");
    assert!(err.to_string().contains("no_such_function"), "{err}");
    let err = ObjectBuilder::from_bytes(ATTACH)
        .global("target_tid", &1u64)
        .load()
        .expect_err("wrong size");
    assert!(err.to_string().contains("4 bytes"), "{err}");
    let err = ObjectBuilder::from_bytes(ATTACH)
        .global("no_such_global", &1u32)
        .load()
        .expect_err("unknown global");
    assert!(err.to_string().contains("no_such_global"), "{err}");
    let err = ObjectBuilder::from_bytes(ATTACH)
        .global_int("target_tid", 1 << 32)
        .load()
        .expect_err("an integer too large for the variable");
    assert!(err.to_string().contains("4 bytes"), "{err}");
    let object = ObjectBuilder::from_bytes(ATTACH)
        .global_int("target_tid", 0xffff_fffe)
        .load()
        .expect("an integer sized from BTF");
    assert_eq!(
        object.global_bytes("target_tid").expect("read"),
        0xffff_fffe_u32.to_ne_bytes()
    );
}
