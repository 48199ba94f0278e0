//! Split DWARF builds of the test programs, and what is done to their `.dwo` files:
//! packed into a `.dwp`, moved along with the binary, or removed.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::run_in;

/// Compiles `source` to `dir/prog.o` with `flags` and `split_flags`, then links
/// `dir/prog`: both in `dir`, so the skeleton names its `.dwo` (`prog.dwo`) relative to
/// `dir`, and the `.dwo` is there.
pub fn build_objects(
    compiler: &str,
    flags: &[&str],
    split_flags: &[&str],
    source: &Path,
    dir: &Path,
) -> PathBuf {
    let mut compile: Vec<OsString> = flags.iter().chain(split_flags).map(Into::into).collect();
    compile.extend(["-c".into(), "-o".into(), "prog.o".into(), source.into()]);
    run_in(dir, compiler, compile);
    let mut link: Vec<OsString> = flags.iter().map(Into::into).collect();
    link.extend(["-o".into(), "prog".into(), "prog.o".into()]);
    run_in(dir, compiler, link);
    dir.join("prog")
}

/// Builds `source` with rustc in `dir` as `dir/prog` (its `.dwo` files, or its `.dwp`,
/// land there too).
pub fn build_rustc(flags: &[&str], split_flags: &[&str], source: &Path, dir: &Path) -> PathBuf {
    let mut args: Vec<OsString> = flags.iter().chain(split_flags).map(Into::into).collect();
    args.extend(["-o".into(), "prog".into(), source.into()]);
    run_in(dir, "rustc", args);
    dir.join("prog")
}

/// The `.dwo` files in `dir`.
pub fn dwo_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "dwo"))
        .collect();
    files.sort();
    files
}

/// Packs the `.dwo` files of `binary` into `BINARY.dwp` with llvm-dwp, or binutils' dwp
/// (which reads GNU split DWARF only, and crashes on DWARF 5); `None` when neither is
/// installed or can pack it.
pub fn package(binary: &Path) -> Option<PathBuf> {
    let dir = binary.parent().unwrap();
    let mut out = binary.as_os_str().to_owned();
    out.push(".dwp");
    let out = PathBuf::from(out);
    let packed = ["llvm-dwp", "dwp"].into_iter().any(|tool| {
        Command::new(tool)
            .arg("-e")
            .arg(binary)
            .arg("-o")
            .arg(&out)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    packed.then_some(out)
}
