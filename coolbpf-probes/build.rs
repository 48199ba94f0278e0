//! Compiles the catalogue's BPF programs (every `bpf/*.bpf.c`) into OUT_DIR, each as
//! `NAME.bpf.o`.

fn main() {
    // The directory as a whole: a new program, or a change to a shared header (the builder
    // tracks each .bpf.c itself, not what it includes), rebuilds.
    println!("cargo:rerun-if-changed=bpf");
    let mut sources: Vec<_> = std::fs::read_dir("bpf")
        .expect("coolbpf-probes/bpf")
        .map(|entry| entry.expect("coolbpf-probes/bpf entry").path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.ends_with(".bpf.c"))
        })
        .collect();
    sources.sort();
    for source in sources {
        if let Err(err) = coolbpf_build::BpfBuilder::new(source).compile_to_out_dir() {
            panic!("{err}");
        }
    }
}
