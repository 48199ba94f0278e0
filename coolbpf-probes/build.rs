//! Compiles the catalogue's BPF programs into OUT_DIR.

fn main() {
    // Headers the probes include; the builder only tracks each .bpf.c itself.
    println!("cargo:rerun-if-changed=bpf/sched.bpf.h");
    for probe in [
        "syscount",
        "execsnoop",
        "runqlat",
        "cpudist",
        "runqslower",
        "offcpu",
        "hardirqs",
        "softirqs",
        "nosched",
        "profile",
    ] {
        let source = format!("bpf/{probe}.bpf.c");
        if let Err(err) = coolbpf_build::BpfBuilder::new(source).compile_to_out_dir() {
            panic!("{err}");
        }
    }
}
