//! `Object.from_source`: BPF C compiled at run time with the local clang, against the
//! framework's headers, which are embedded in this module and extracted to a cache.
//!
//! Layout of the cache (`$XDG_CACHE_HOME/coolbpf`, else `~/.cache/coolbpf`):
//! - `include-<hash>/`: `vmlinux.h`, `coolbpf/coolbpf.bpf.h` and libbpf's `bpf/*.h`;
//! - `objects/<hash>.bpf.c`, `.defines`, `.bpf.o`: one compiled source, keyed by a hash
//!   of its text, its defines and the headers. A hit also compares the stored source
//!   and defines byte for byte, so a hash collision can only cost a recompile.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use coolbpf_build::BpfBuilder;
use coolbpf_core::Error;
use pyo3::prelude::*;

use crate::errors;

include!(concat!(env!("OUT_DIR"), "/headers.rs"));

/// 128-bit FNV-1a over `parts` (each prefixed by its length, so boundaries count).
fn fnv128(parts: &[&[u8]]) -> u128 {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let mut hash = OFFSET;
    for part in parts {
        for byte in (part.len() as u64).to_le_bytes().iter().chain(part.iter()) {
            hash ^= u128::from(*byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    hash
}

/// The cache directory: `$XDG_CACHE_HOME/coolbpf`, else `$HOME/.cache/coolbpf`.
pub fn cache_root() -> PathBuf {
    let xdg = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let base = xdg.or_else(|| {
        std::env::var_os("HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .map(|home| home.join(".cache"))
    });
    base.unwrap_or_else(std::env::temp_dir).join("coolbpf")
}

fn io_err(context: impl Into<String>, source: io::Error) -> PyErr {
    errors::core(&Error::io(context, source))
}

/// Writes `contents` to `path` through a temporary file and a rename, so that a reader
/// never sees half a file.
fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    fs::write(&tmp, contents)?;
    fs::rename(&tmp, path)
}

/// Extracts the embedded headers (once per distinct set) and returns their directory.
pub fn headers_dir() -> PyResult<PathBuf> {
    let parts: Vec<&[u8]> = HEADERS
        .iter()
        .flat_map(|(name, data)| [name.as_bytes(), *data])
        .collect();
    let root = cache_root();
    let dir = root.join(format!("include-{:032x}", fnv128(&parts)));
    if dir.join(".complete").is_file() {
        return Ok(dir);
    }
    let tmp = root.join(format!("include-tmp-{}", std::process::id()));
    let extract = || -> io::Result<()> {
        let _ = fs::remove_dir_all(&tmp);
        for (name, data) in HEADERS {
            let path = tmp.join(name);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::write(path, data)?;
        }
        fs::write(tmp.join(".complete"), b"")?;
        match fs::rename(&tmp, &dir) {
            Ok(()) => Ok(()),
            // Another process extracted the same headers first.
            Err(_) if dir.join(".complete").is_file() => {
                let _ = fs::remove_dir_all(&tmp);
                Ok(())
            }
            Err(e) => Err(e),
        }
    };
    extract().map_err(|e| {
        io_err(
            format!("cannot extract BPF headers to {}", dir.display()),
            e,
        )
    })?;
    Ok(dir)
}

/// Compiles `source` (or takes it from the cache) and returns the object's path.
pub fn compile(source: &str, defines: &[String]) -> PyResult<PathBuf> {
    if defines.iter().any(|d| d.is_empty() || d.contains('\0')) {
        return Err(errors::invalid(
            "defines must be non-empty NAME or NAME=VALUE strings",
        ));
    }
    if source.contains('\0') {
        return Err(errors::invalid("BPF C source must not contain NUL bytes"));
    }
    let headers = headers_dir()?;
    let defines_text = defines.join("\n");
    let key = fnv128(&[
        source.as_bytes(),
        defines_text.as_bytes(),
        headers.as_os_str().as_encoded_bytes(),
    ]);
    let objects = cache_root().join("objects");
    fs::create_dir_all(&objects)
        .map_err(|e| io_err(format!("cannot create {}", objects.display()), e))?;
    let stem = objects.join(format!("{key:032x}"));
    let (c_path, defines_path, object_path) = (
        stem.with_extension("bpf.c"),
        stem.with_extension("defines"),
        stem.with_extension("bpf.o"),
    );
    let same = |path: &Path, text: &str| fs::read(path).is_ok_and(|b| b == text.as_bytes());
    if object_path.is_file() && same(&c_path, source) && same(&defines_path, &defines_text) {
        return Ok(object_path);
    }
    let write = || -> io::Result<()> {
        write_atomic(&c_path, source.as_bytes())?;
        write_atomic(&defines_path, defines_text.as_bytes())
    };
    write().map_err(|e| io_err(format!("cannot write {}", c_path.display()), e))?;
    let mut builder = BpfBuilder::new(&c_path).include(&headers);
    for define in defines {
        builder = builder.define(define.clone());
    }
    let tmp = stem.with_extension(format!("tmp-{}.o", std::process::id()));
    builder.compile(&tmp).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        errors::build(&e)
    })?;
    fs::rename(&tmp, &object_path)
        .map_err(|e| io_err(format!("cannot write {}", object_path.display()), e))?;
    Ok(object_path)
}

/// Compiles BPF C `source` with the local clang against coolbpf's headers (`vmlinux.h`,
/// `coolbpf/coolbpf.bpf.h`, libbpf's `bpf/*.h`), caching the object by content, and
/// returns the object file's path. `defines` are `NAME` or `NAME=VALUE` macros.
#[pyfunction]
#[pyo3(signature = (source, defines=Vec::new()))]
pub fn compile_source(py: Python<'_>, source: &str, defines: Vec<String>) -> PyResult<PathBuf> {
    py.detach(|| compile(source, &defines))
}

/// The directory `compile_source` caches headers and objects in.
#[pyfunction]
pub fn cache_dir() -> PathBuf {
    cache_root()
}
