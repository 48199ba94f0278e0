//! Helpers of the unwind-table tests: readelf as the reference, and a program blocked
//! in a known call chain.

pub mod compare;
pub mod readelf;
pub mod snapshot;

use std::path::Path;
use std::process::Command;

/// Compiles tests/programs/`source` with gcc and `flags` into `out`.
pub fn build_c(source: &str, out: &Path, flags: &[&str]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/programs")
        .join(source);
    let status = Command::new("gcc")
        .args(flags)
        .arg("-o")
        .arg(out)
        .arg(&path)
        .status()
        .expect("run gcc");
    assert!(status.success(), "gcc {flags:?} {}", path.display());
}
