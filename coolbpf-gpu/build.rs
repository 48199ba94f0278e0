//! Compiles the GPU probes' BPF programs into OUT_DIR.

fn main() {
    for probe in ["cuda", "xid"] {
        let source = format!("bpf/{probe}.bpf.c");
        if let Err(err) = coolbpf_build::BpfBuilder::new(source).compile_to_out_dir() {
            panic!("{err}");
        }
    }
}
