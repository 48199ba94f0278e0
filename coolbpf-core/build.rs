//! Compiles the core's own BPF programs (feature probes) into OUT_DIR.

fn main() {
    for source in ["bpf/features.bpf.c", "tests/bpf/flood.bpf.c"] {
        if let Err(err) = coolbpf_build::BpfBuilder::new(source).compile_to_out_dir() {
            // A panic is how a build script reports failure; the message names the fix.
            panic!("{err}");
        }
    }
}
