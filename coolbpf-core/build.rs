//! Compiles the core's own BPF programs (feature probes, test programs) into OUT_DIR,
//! and passes on the BPF headers of the libbpf being linked.
//!
//! libbpf's BPF-side headers must match the libbpf that loads the object: the USDT
//! argument spec layout in `usdt.bpf.h`, for one, changed between libbpf 1.1 (Debian 12's
//! libbpf-dev) and the vendored 1.7. libbpf-sys publishes its headers as
//! `DEP_BPF_INCLUDE`; re-printing that as `cargo:include` makes it `DEP_COOLBPF_INCLUDE`
//! for every crate that depends on coolbpf-core, which `coolbpf_build` picks up.

fn main() {
    if let Ok(include) = std::env::var("DEP_BPF_INCLUDE") {
        println!("cargo:include={include}");
    }
    for source in [
        "bpf/features.bpf.c",
        "tests/bpf/flood.bpf.c",
        "tests/bpf/attach.bpf.c",
        "tests/bpf/nested.bpf.c",
    ] {
        if let Err(err) = coolbpf_build::BpfBuilder::new(source).compile_to_out_dir() {
            // A panic is how a build script reports failure; the message names the fix.
            panic!("{err}");
        }
    }
}
