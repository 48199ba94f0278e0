//! The checked-in `include/coolbpf.h` must be what cbindgen generates from the sources.
//!
//! Regenerate it after changing the C API with
//! `COOLBPF_BLESS=1 cargo test -p coolbpf-c --test header`.

use std::path::Path;

fn generate() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml"))
        .unwrap_or_else(|err| panic!("coolbpf-c/cbindgen.toml: {err}"));
    // From lib.rs, following its `mod`s, rather than from the crate: no `cargo metadata`
    // run, so no wait on cargo's locks and no network.
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(dir.join("src/lib.rs"))
        .generate()
        .unwrap_or_else(|err| panic!("cbindgen failed: {err}"));
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("cbindgen writes UTF-8")
}

#[test]
fn header_is_up_to_date() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/coolbpf.h");
    let generated = generate();
    if std::env::var_os("COOLBPF_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated).expect("write include/coolbpf.h");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    if checked_in != generated {
        let line = checked_in
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| checked_in.lines().count().min(generated.lines().count()));
        panic!(
            "coolbpf-c/include/coolbpf.h differs from what cbindgen generates (first at line {}).\n\
             Regenerate it with: COOLBPF_BLESS=1 cargo test -p coolbpf-c --test header",
            line + 1
        );
    }
}
