//! Embeds the headers BPF C needs (`vmlinux.h`, `coolbpf/coolbpf.bpf.h`, and libbpf's
//! `bpf/*.h` of the libbpf coolbpf links) so that `Object.from_source` can compile on a
//! machine that has clang but no coolbpf checkout.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    let framework = manifest.join("../coolbpf-build/include");
    for name in ["vmlinux.h", "coolbpf/coolbpf.bpf.h"] {
        files.push((name.to_owned(), framework.join(name)));
    }
    // coolbpf-core re-exports libbpf-sys's header directory as `cargo:include`.
    if let Some(dir) = std::env::var_os("DEP_COOLBPF_INCLUDE") {
        add_dir(&Path::new(&dir).join("bpf"), "bpf", &mut files);
    }
    let mut code = String::from("/// Headers embedded at build time: (relative path, contents).\npub(crate) const HEADERS: &[(&str, &[u8])] = &[\n");
    for (name, path) in &files {
        let path = path
            .canonicalize()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        println!("cargo:rerun-if-changed={}", path.display());
        writeln!(
            code,
            "    ({name:?}, include_bytes!({:?})),",
            path.display().to_string()
        )
        .expect("writing to a String");
    }
    code.push_str("];\n");
    std::fs::write(out.join("headers.rs"), code).expect("write headers.rs");
    println!("cargo:rerun-if-env-changed=DEP_COOLBPF_INCLUDE");
}

fn add_dir(dir: &Path, prefix: &str, files: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "h"))
        .collect();
    found.sort();
    for path in found {
        let name = path
            .file_name()
            .expect("a file")
            .to_string_lossy()
            .into_owned();
        files.push((format!("{prefix}/{name}"), path));
    }
}
