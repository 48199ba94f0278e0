//! Feature detection checked against the kernel's own config and against attach attempts
//! made here, independently of `Features`.
//!
//! These tests load BPF into the running kernel. Without the privileges they are skipped
//! with a message, unless `COOLBPF_REQUIRE_BPF=1`, which turns a skip into a failure.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use coolbpf_core::testing::bpf_available;
use coolbpf_core::{Environment, Features};
use libbpf_rs::{MapCore, MapFlags, ObjectBuilder};

/// The object whose programs `Features` probes with.
static FEATURES_OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/features.bpf.o"));

/// Serializes the tests of this file: the leak check counts this process's BPF file
/// descriptors, which a test running beside it would change.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The detected features, or `None` (after saying why) when this process may not use BPF;
/// with `COOLBPF_REQUIRE_BPF=1` that is a failure instead.
fn features_or_skip(test: &str) -> Option<&'static Features> {
    bpf_available(test).then(|| Features::detect().expect("detection after a successful prepare"))
}

/// The kernel's build config from `/proc/config.gz` (`CONFIG_X` -> value; options that
/// are "not set" are absent), or `None` when the kernel does not expose it.
fn kernel_config() -> Option<HashMap<String, String>> {
    let compressed = std::fs::read("/proc/config.gz").ok()?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(compressed.as_slice())
        .read_to_string(&mut text)
        .expect("/proc/config.gz decompresses");
    Some(
        text.lines()
            .filter_map(|line| line.split_once('='))
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect(),
    )
}

fn enabled(config: &HashMap<String, String>, option: &str) -> bool {
    config.get(option).is_some_and(|value| value == "y")
}

#[test]
fn agrees_with_the_kernel_config() {
    let _serial = serial();
    let Some(features) = features_or_skip("agrees_with_the_kernel_config") else {
        return;
    };
    let Some(config) = kernel_config() else {
        eprintln!("no /proc/config.gz: nothing to compare with");
        return;
    };
    let on = |option| enabled(&config, option);
    // BPF kprobes need kprobes, their perf PMU (KPROBE_EVENTS) and the BPF event glue.
    assert_eq!(
        features.kprobe.available,
        on("CONFIG_KPROBES") && on("CONFIG_KPROBE_EVENTS") && on("CONFIG_BPF_EVENTS"),
        "kprobe vs CONFIG_KPROBES: {:?}",
        features.kprobe
    );
    if !on("CONFIG_KPROBES") {
        assert!(!features.kretprobe.available, "{:?}", features.kretprobe);
    }
    // Trampolines are JIT code patched into the ftrace nop at function entry.
    if !on("CONFIG_BPF_JIT") || !on("CONFIG_FUNCTION_TRACER") {
        assert!(
            !features.fentry.available,
            "fentry without JIT/ftrace: {:?}",
            features.fentry
        );
    }
    if !on("CONFIG_BPF_EVENTS") {
        assert!(!features.tracepoint.available && !features.raw_tp.available);
    }
    if !on("CONFIG_UPROBES") {
        assert!(!features.uprobe.available && !features.usdt.available);
    }
    if !on("CONFIG_DEBUG_INFO_BTF") {
        assert!(
            !features.tp_btf.available,
            "tp_btf without kernel BTF: {:?}",
            features.tp_btf
        );
    }
}

#[test]
fn agrees_with_independent_attach_attempts() {
    let _serial = serial();
    let Some(features) = features_or_skip("agrees_with_independent_attach_attempts") else {
        return;
    };
    // libbpf attaches kprobes through the kprobe PMU (kernels since 4.17).
    let kprobe_pmu = Path::new("/sys/bus/event_source/devices/kprobe").exists();
    assert_eq!(
        features.kprobe.available, kprobe_pmu,
        "{:?}",
        features.kprobe
    );

    let cycles = open_hardware_cycles();
    assert_eq!(
        features.perf_event_hardware.available,
        cycles.is_ok(),
        "perf_event_open(cycles) here: {cycles:?}; detected: {:?}",
        features.perf_event_hardware
    );

    if features.tp_btf.available {
        assert!(
            tp_btf_fires(),
            "tp_btf detected, but a tp_btf program attached here never ran"
        );
    }
}

/// Opens a hardware cycles counter on this thread, as `perf stat -e cycles` would.
fn open_hardware_cycles() -> std::io::Result<()> {
    use libbpf_rs::libbpf_sys as sys;
    let attr = sys::perf_event_attr {
        type_: sys::PERF_TYPE_HARDWARE,
        size: size_of::<sys::perf_event_attr>() as u32,
        config: u64::from(sys::PERF_COUNT_HW_CPU_CYCLES),
        ..Default::default()
    };
    // SAFETY: `attr` is a fully initialised perf_event_attr whose size field matches; the
    // kernel only reads it. The other arguments are plain integers.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &raw const attr,
            0,
            -1,
            -1,
            libc::c_ulong::from(sys::PERF_FLAG_FD_CLOEXEC),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the fd was just returned by the kernel and nothing else owns it.
    unsafe { libc::close(fd as i32) };
    Ok(())
}

/// Loads `feature_tp_btf` alone, attaches it to `sys_enter` and waits for it to run.
fn tp_btf_fires() -> bool {
    let mut open = ObjectBuilder::default()
        .open_memory(FEATURES_OBJECT)
        .expect("open");
    for mut program in open.progs_mut() {
        let wanted = program.name() == "feature_tp_btf";
        program.set_autoload(wanted);
    }
    let object = open.load().expect("load tp_btf");
    let program = object
        .progs_mut()
        .find(|p| p.name() == "feature_tp_btf")
        .expect("program");
    let _link = program.attach().expect("attach tp_btf");
    let hits = object
        .maps()
        .find(|m| m.name() == "feature_hits")
        .expect("feature_hits");
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        std::hint::black_box(std::process::id());
        let value = hits
            .lookup(&0u32.to_ne_bytes(), MapFlags::ANY)
            .expect("lookup")
            .expect("slot");
        if u64::from_ne_bytes(value.try_into().expect("u64 slot")) > 0 {
            return true;
        }
    }
    false
}

/// The development machines (kernel BTF, kprobes compiled out, a Firecracker VM without
/// a PMU that refuses fentry) must report exactly what they can and cannot do.
#[test]
fn kprobe_less_btf_kernel_profile() {
    let _serial = serial();
    let Some(features) = features_or_skip("kprobe_less_btf_kernel_profile") else {
        return;
    };
    let Some(config) = kernel_config() else {
        return;
    };
    if enabled(&config, "CONFIG_KPROBES") || !Path::new("/sys/kernel/btf/vmlinux").exists() {
        eprintln!("not a kprobe-less BTF kernel: profile check does not apply");
        return;
    }
    assert!(!features.kprobe.available, "{:?}", features.kprobe);
    assert!(!features.fentry.available, "{:?}", features.fentry);
    assert!(features.tp_btf.available, "{:?}", features.tp_btf);
    assert!(
        !features.perf_event_hardware.available,
        "{:?}",
        features.perf_event_hardware
    );
    for name in [
        "tracepoint",
        "raw_tp",
        "perf_event_software",
        "uprobe",
        "usdt",
        "ringbuf",
    ] {
        features
            .require(name)
            .unwrap_or_else(|error| panic!("{error}"));
    }
    println!("{features}");
}

#[test]
fn report_round_trips_through_json() {
    let _serial = serial();
    let Some(features) = features_or_skip("report_round_trips_through_json") else {
        return;
    };
    let json = serde_json::to_string_pretty(features).expect("serialize");
    println!("{json}");
    let back: Features = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(&back, features);
}

#[test]
fn prepare_mounts_tracefs() {
    let _serial = serial();
    if features_or_skip("prepare_mounts_tracefs").is_none() {
        return;
    }
    let tracefs = Environment::tracefs().expect("tracefs is mounted or mountable as root");
    assert!(
        tracefs.join("events").is_dir(),
        "{}/events missing",
        tracefs.display()
    );
    let report = Environment::prepare().expect("prepared");
    assert!(report.tracefs.available, "{:?}", report.tracefs);
    println!(
        "{}",
        serde_json::to_string_pretty(report).expect("serialize")
    );
}

#[test]
fn detection_is_cached_once_per_process() {
    let _serial = serial();
    let Some(first) = features_or_skip("detection_is_cached_once_per_process") else {
        return;
    };
    let second = Features::detect().expect("detect again");
    assert!(
        std::ptr::eq(first, second),
        "detect() must return the cached report"
    );
    let start = Instant::now();
    let fresh = Features::detect_uncached().expect("uncached detection");
    eprintln!("uncached detection took {:?}", start.elapsed());
    assert_eq!(&fresh.kernel_release, &first.kernel_release);
}

#[test]
fn detection_leaks_nothing() {
    let _serial = serial();
    if features_or_skip("detection_leaks_nothing").is_none() {
        return;
    }
    let before = bpf_file_descriptors();
    Features::detect_uncached().expect("uncached detection");
    assert_eq!(
        bpf_file_descriptors(),
        before,
        "BPF or perf fds left open by detection"
    );
}

/// This process's open programs, maps, links, BTF objects and perf events, by kind
/// (`anon_inode:bpf-prog`, `anon_inode:[perf_event]`...), sorted.
fn bpf_file_descriptors() -> Vec<String> {
    let mut kinds: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .map(|target| target.to_string_lossy().into_owned())
        .filter(|target| {
            ["bpf", "btf", "perf_event"]
                .iter()
                .any(|kind| target.contains(kind))
        })
        .collect();
    kinds.sort();
    kinds
}
