//! Hook probes: load one program of `features.bpf.o`, attach it, trigger its hook, and
//! check that the program really ran.

use std::os::fd::{AsRawFd, IntoRawFd};
use std::path::Path;
use std::time::{Duration, Instant};

use libbpf_rs::{Link, MapCore, MapFlags, Object, ObjectBuilder, ProgramMut, TracepointCategory};

use super::{libbpf_log, uprobe, usdt, Feature};
use crate::sys::perf_event::{self, PerfEventKind, Sampling};

/// The probe programs, one per hook (`bpf/features.bpf.c`).
static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/features.bpf.o"));

/// Slots of the `feature_hits` map (`enum feature_slot` in features.bpf.c).
const SLOT_HITS: u32 = 0;
const SLOT_USDT_ARGUMENT: u32 = 1;

/// How long a hook may take to fire once triggered. Working hooks fire at once (the
/// sampling ones within a few periods), so only a broken hook waits this long.
const FIRE_TIMEOUT: Duration = Duration::from_millis(250);

/// The kernel function the kprobe and fentry probes attach to: present on every kernel.
const KERNEL_FUNCTION: &str = "vfs_read";

/// Where the kernel lists its kprobe PMU; libbpf attaches kprobes through it.
const KPROBE_PMU: &str = "/sys/bus/event_source/devices/kprobe";

/// A step's failure, as the reason an unavailable feature shows.
type Step<T> = Result<T, String>;

/// Classic tracepoint `raw_syscalls/sys_enter`; needs tracefs, whose mount error (from
/// the environment) explains a failure.
pub(super) fn tracepoint(tracefs_error: Option<&str>) -> Feature {
    let feature = run(
        "feature_tracepoint",
        |program| {
            program
                .attach_tracepoint(TracepointCategory::RawSyscalls, "sys_enter")
                .map_err(attach_failed)
        },
        make_a_syscall,
        no_check,
    );
    match (&feature.reason, tracefs_error) {
        (Some(reason), Some(tracefs)) => Feature::unavailable(format!("{reason}; {tracefs}")),
        _ => feature,
    }
}

/// Raw tracepoint `sys_enter`.
pub(super) fn raw_tp() -> Feature {
    run(
        "feature_raw_tp",
        |program| {
            program
                .attach_raw_tracepoint("sys_enter")
                .map_err(attach_failed)
        },
        make_a_syscall,
        no_check,
    )
}

/// BTF-typed raw tracepoint `sys_enter` (the target is in the section name).
pub(super) fn tp_btf() -> Feature {
    run(
        "feature_tp_btf",
        |program| program.attach().map_err(attach_failed),
        make_a_syscall,
        no_check,
    )
}

/// A `perf_event` program on the software CPU clock, sampling every 0.1 ms of CPU time.
pub(super) fn perf_event_software() -> Feature {
    perf_event(PerfEventKind::CpuClock, Sampling::Period(100_000))
}

/// A `perf_event` program on hardware cycles, sampling every million cycles.
pub(super) fn perf_event_hardware() -> Feature {
    perf_event(PerfEventKind::Cycles, Sampling::Period(1_000_000))
}

/// The event samples this thread (pid 0, any CPU) while it spins, so it fires within a
/// few periods whatever the rest of the machine does.
fn perf_event(kind: PerfEventKind, sampling: Sampling) -> Feature {
    run(
        "feature_perf_event",
        |program| {
            let event =
                perf_event::open_sampling(kind, sampling, 0, -1).map_err(|e| e.to_string())?;
            let link = program
                .attach_perf_event(event.as_raw_fd())
                .map_err(attach_failed)?;
            // libbpf's perf link owns the event from now on and closes it on detach.
            let _owned_by_link = event.into_raw_fd();
            Ok(link)
        },
        spin_a_millisecond,
        no_check,
    )
}

/// A kprobe (or kretprobe) on `vfs_read`.
pub(super) fn kprobe(retprobe: bool) -> Feature {
    let feature = run(
        if retprobe {
            "feature_kretprobe"
        } else {
            "feature_kprobe"
        },
        |program| {
            program
                .attach_kprobe(retprobe, KERNEL_FUNCTION)
                .map_err(attach_failed)
        },
        read_a_file,
        no_check,
    );
    match &feature.reason {
        Some(reason) if !Path::new(KPROBE_PMU).exists() => Feature::unavailable(format!(
            "{reason}; CONFIG_KPROBES appears off: no kprobe PMU at {KPROBE_PMU}"
        )),
        _ => feature,
    }
}

/// An fentry trampoline on `vfs_read` (the target is in the section name).
pub(super) fn fentry() -> Feature {
    run(
        "feature_fentry",
        |program| program.attach().map_err(attach_failed),
        read_a_file,
        no_check,
    )
}

/// A uprobe (or uretprobe) on a function of this process, which is then called.
pub(super) fn uprobe(retprobe: bool) -> Feature {
    run(
        if retprobe {
            "feature_uretprobe"
        } else {
            "feature_uprobe"
        },
        |program| {
            let (binary, offset) = uprobe::target_location()?;
            program
                .attach_uprobe(retprobe, this_process(), binary, offset)
                .map_err(attach_failed)
        },
        uprobe::call_target,
        no_check,
    )
}

/// A USDT probe point of this process; its program must also read the argument back.
pub(super) fn usdt() -> Feature {
    run(
        "feature_usdt",
        |program| {
            let binary = usdt::location()?;
            program
                .attach_usdt(this_process(), binary, usdt::PROVIDER, usdt::NAME)
                .map_err(attach_failed)
        },
        usdt::fire,
        |object| match read_slot(object, SLOT_USDT_ARGUMENT)? {
            usdt::ARGUMENT => Ok(()),
            read => Err(format!(
                "the USDT program ran but read argument {read:#x}, not {:#x}",
                usdt::ARGUMENT
            )),
        },
    )
}

/// Loads `program` alone, attaches it, triggers its hook until it runs (or
/// [`FIRE_TIMEOUT`] passes), then runs `check` on what it recorded.
fn run(
    program: &str,
    attach: impl FnOnce(&ProgramMut<'_>) -> Step<Link>,
    trigger: impl Fn(),
    check: impl FnOnce(&Object) -> Step<()>,
) -> Feature {
    Feature::from_outcome(probe(program, attach, trigger, check))
}

fn probe(
    program: &str,
    attach: impl FnOnce(&ProgramMut<'_>) -> Step<Link>,
    trigger: impl Fn(),
    check: impl FnOnce(&Object) -> Step<()>,
) -> Step<()> {
    let object = load(program)?;
    let loaded = object
        .progs_mut()
        .find(|candidate| candidate.name() == program)
        .ok_or_else(|| format!("{program} is missing after load"))?;
    let _link = attach(&loaded)?;
    let deadline = Instant::now() + FIRE_TIMEOUT;
    loop {
        trigger();
        if read_slot(&object, SLOT_HITS)? > 0 {
            return check(&object);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "attached, but the program never ran within {FIRE_TIMEOUT:?} of triggering its hook"
            ));
        }
    }
}

/// Opens the probe object with only `program` to be loaded, and loads it.
fn load(program: &str) -> Step<Object> {
    libbpf_log::discard();
    let mut open = ObjectBuilder::default()
        .open_memory(OBJECT)
        .map_err(|e| failed("opening features.bpf.o", &e))?;
    let mut found = false;
    for mut candidate in open.progs_mut() {
        let wanted = candidate.name() == program;
        candidate.set_autoload(wanted);
        found |= wanted;
    }
    if !found {
        return Err(format!("features.bpf.o has no program {program}"));
    }
    open.load().map_err(|e| failed("load", &e))
}

/// Reads one `u64` slot of the `feature_hits` map.
fn read_slot(object: &Object, slot: u32) -> Step<u64> {
    let map = object
        .maps()
        .find(|map| map.name() == "feature_hits")
        .ok_or("features.bpf.o has no feature_hits map")?;
    let value = map
        .lookup(&slot.to_ne_bytes(), MapFlags::ANY)
        .map_err(|e| failed("reading feature_hits", &e))?
        .ok_or_else(|| format!("feature_hits has no slot {slot}"))?;
    let value = <[u8; 8]>::try_from(value.as_slice())
        .map_err(|_| format!("feature_hits values are {} bytes, not 8", value.len()))?;
    Ok(u64::from_ne_bytes(value))
}

fn attach_failed(error: libbpf_rs::Error) -> String {
    failed("attach", &error)
}

/// `"<step> failed: <error with its errno>"`, plus libbpf's last warning when it says more.
fn failed(step: &str, error: &libbpf_rs::Error) -> String {
    let mut reason = format!("{step} failed: {error:#}");
    if let Some(warning) = libbpf_log::take_last_warning() {
        reason.push_str(&format!(" (libbpf: {warning})"));
    }
    reason
}

fn no_check(_: &Object) -> Step<()> {
    Ok(())
}

fn this_process() -> i32 {
    std::process::id() as i32
}

/// Fires the `sys_enter` tracepoints.
fn make_a_syscall() {
    std::hint::black_box(std::process::id());
}

/// Fires `vfs_read`: only the read(2) matters, not what it reads.
fn read_a_file() {
    drop(std::fs::read("/proc/self/stat"));
}

/// Burns CPU time on this thread, which the sampling events count.
fn spin_a_millisecond() {
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(1) {
        std::hint::spin_loop();
    }
}
