//! Losses the kernel counts, provoked for real: a program run the kernel skips is
//! reported as `program_misses`, one for one.

use std::path::PathBuf;

use coolbpf_core::stream::KernelLosses;
use coolbpf_core::testing::bpf_available;
use coolbpf_core::{AttachTarget, Environment, ObjectBuilder};

static NESTED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/nested.bpf.o"));

/// Puts the bpf_trace_printk trace event's `enable` back as it was when dropped: loading
/// a program that calls bpf_printk switches it on for good, and an enabled trace event
/// leaves a task-name recorder on sched_switch that other tests would see.
struct PrintkEventRestorer {
    enable: PathBuf,
    was: String,
}

impl PrintkEventRestorer {
    fn new() -> Self {
        let enable = Environment::tracefs()
            .expect("tracefs")
            .join("events/bpf_trace/bpf_trace_printk/enable");
        let was = std::fs::read_to_string(&enable).expect("read the event's enable");
        Self { enable, was }
    }
}

impl Drop for PrintkEventRestorer {
    fn drop(&mut self) {
        if let Err(err) = std::fs::write(&self.enable, self.was.trim()) {
            eprintln!("cannot restore {}: {err}", self.enable.display());
        }
    }
}

#[test]
fn runs_the_kernel_skips_are_counted_as_program_misses() {
    if !bpf_available("runs_the_kernel_skips_are_counted_as_program_misses") {
        return;
    }
    let _restore = PrintkEventRestorer::new();
    // SAFETY: gettid has no preconditions and cannot fail.
    let tid = (unsafe { libc::gettid() }) as u32;
    let mut object = ObjectBuilder::from_bytes(NESTED)
        .global("target_tid", &tid)
        .load()
        .expect("load");
    // Each of our getppid calls prints once (printk_on_tracepoint); printk_again_on_raw_tp
    // runs on that print and prints again, which fires its own tracepoint inside it: the
    // kernel skips that nested run and counts it.
    let printk: AttachTarget = "raw_tp:bpf_trace_printk".parse().expect("parse");
    object
        .attach("printk_again_on_raw_tp", &printk)
        .expect("attach raw_tp");
    let getppid: AttachTarget = "tracepoint:syscalls:sys_enter_getppid"
        .parse()
        .expect("parse");
    object
        .attach("printk_on_tracepoint", &getppid)
        .expect("attach tracepoint");
    let before = KernelLosses::read(&object).expect("losses");
    for _ in 0..300 {
        // SAFETY: getppid has no preconditions.
        std::hint::black_box(unsafe { libc::getppid() });
    }
    let after = KernelLosses::read(&object).expect("losses");
    assert_eq!(
        object.global_u64("printk_again_runs").expect("runs"),
        300,
        "the program ran once per call, never nested"
    );
    assert_eq!(
        after.program_misses - before.program_misses,
        300,
        "each skipped nested run is counted: {after:?}"
    );
    assert_eq!(after.total() - before.total(), 300, "and is a loss");
}
