//! Compiles the BPF programs of the top-level examples and benchmarks.

fn main() {
    for source in [
        "examples/bpf/hello.bpf.c",
        "benches/bpf/transport.bpf.c",
        "benches/bpf/sched_floor.bpf.c",
    ] {
        if let Err(err) = coolbpf_build::BpfBuilder::new(source).compile_to_out_dir() {
            panic!("{err}");
        }
    }
}
