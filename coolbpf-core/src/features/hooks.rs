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
const SLOT_USDT_ERROR: u32 = 2;

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
                .map_err(failed("attach"))
        },
        make_a_syscall,
        NO_CHECK,
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
                .map_err(failed("attach"))
        },
        make_a_syscall,
        NO_CHECK,
    )
}

/// BTF-typed raw tracepoint `sys_enter` (the target is in the section name).
pub(super) fn tp_btf() -> Feature {
    run(
        "feature_tp_btf",
        |program| program.attach().map_err(failed("attach")),
        make_a_syscall,
        NO_CHECK,
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
                .map_err(failed("attach"))?;
            // libbpf's perf link owns the event from now on and closes it on detach.
            let _owned_by_link = event.into_raw_fd();
            Ok(link)
        },
        spin_a_millisecond,
        NO_CHECK,
    )
}

/// A kprobe (or kretprobe) on `vfs_read`.
pub(super) fn kprobe(retprobe: bool) -> Feature {
    let program = if retprobe {
        "feature_kretprobe"
    } else {
        "feature_kprobe"
    };
    let feature = run(
        program,
        |program| {
            program
                .attach_kprobe(retprobe, KERNEL_FUNCTION)
                .map_err(failed("attach"))
        },
        read_a_file,
        NO_CHECK,
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
        |program| program.attach().map_err(failed("attach")),
        read_a_file,
        NO_CHECK,
    )
}

/// A uprobe (or uretprobe) on a function of this process, which is then called.
pub(super) fn uprobe(retprobe: bool) -> Feature {
    let program = if retprobe {
        "feature_uretprobe"
    } else {
        "feature_uprobe"
    };
    run(
        program,
        |program| {
            let (binary, offset) = uprobe::target_location()?;
            program
                .attach_uprobe(retprobe, this_process(), binary, offset)
                .map_err(failed("attach"))
        },
        uprobe::call_target,
        NO_CHECK,
    )
}

/// A USDT probe point of this process; the program must also read the probe's argument
/// back, which proves that libbpf parsed the note and that the `usdt.bpf.h` the object
/// was compiled with matches the libbpf that attached it.
pub(super) fn usdt() -> Feature {
    run(
        "feature_usdt",
        |program| {
            let binary = usdt::location()?;
            program
                .attach_usdt(this_process(), binary, usdt::PROVIDER, usdt::NAME)
                .map_err(failed("attach"))
        },
        usdt::fire,
        check_usdt_argument,
    )
}

/// Compares what the USDT program read with `bpf_usdt_arg()` with what was passed.
fn check_usdt_argument(object: &Object) -> Step<()> {
    let read = read_slot(object, SLOT_USDT_ARGUMENT)?;
    if read == usdt::ARGUMENT {
        return Ok(());
    }
    // The slot holds a negative errno as a two's complement u64.
    let error = read_slot(object, SLOT_USDT_ERROR)? as i64;
    Err(format!(
        "the USDT program ran, but bpf_usdt_arg() returned {error} and read {read:#x} instead \
         of {:#x}: does the usdt.bpf.h it was compiled with match the libbpf that attached it?",
        usdt::ARGUMENT
    ))
}

/// Loads `program` alone, attaches it, triggers its hook until it runs (or
/// [`FIRE_TIMEOUT`] passes), then runs `check` on what it recorded.
fn run(
    program: &str,
    attach: impl FnOnce(&ProgramMut<'_>) -> Step<Link>,
    trigger: impl Fn(),
    check: impl FnOnce(&Object) -> Step<()>,
) -> Feature {
    libbpf_log::discard();
    Feature::from_outcome(probe(program, attach, trigger, check).map_err(|reason| {
        match libbpf_log::take_warning_about(program) {
            Some(warning) => format!("{reason} (libbpf: {warning})"),
            None => reason,
        }
    }))
}

/// [`run`]'s steps; the first failure is the reason.
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
    let mut open = ObjectBuilder::default()
        .open_memory(OBJECT)
        .map_err(failed("opening features.bpf.o"))?;
    let mut found = false;
    for mut candidate in open.progs_mut() {
        let wanted = candidate.name() == program;
        candidate.set_autoload(wanted);
        found |= wanted;
    }
    if !found {
        return Err(format!("features.bpf.o has no program {program}"));
    }
    open.load().map_err(failed("load"))
}

/// Reads one `u64` slot of the `feature_hits` map.
fn read_slot(object: &Object, slot: u32) -> Step<u64> {
    let map = object
        .maps()
        .find(|map| map.name() == "feature_hits")
        .ok_or("features.bpf.o has no feature_hits map")?;
    let value = map
        .lookup(&slot.to_ne_bytes(), MapFlags::ANY)
        .map_err(failed("reading feature_hits"))?
        .ok_or_else(|| format!("feature_hits has no slot {slot}"))?;
    let value = <[u8; 8]>::try_from(value.as_slice())
        .map_err(|_| format!("feature_hits values are {} bytes, not 8", value.len()))?;
    Ok(u64::from_ne_bytes(value))
}

/// Turns a libbpf error into `"<step> failed: <error with its errno>"`.
fn failed(step: &'static str) -> impl Fn(libbpf_rs::Error) -> String {
    move |error| format!("{step} failed: {error:#}")
}

/// For hooks whose program only has to run.
const NO_CHECK: fn(&Object) -> Step<()> = |_| Ok(());

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
