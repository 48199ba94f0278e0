//! Compiles the GPU probes' BPF programs into OUT_DIR.

/// The BPF programs under `bpf/`, by stem.
const PROGRAMS: &[&str] = &["calls", "driver", "opens", "xid"];

fn main() {
    for program in PROGRAMS {
        let source = format!("bpf/{program}.bpf.c");
        if let Err(err) = coolbpf_build::BpfBuilder::new(source).compile_to_out_dir() {
            panic!("{err}");
        }
    }
}
