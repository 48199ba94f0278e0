//! The unwinding tests' workloads (programs built here without frame pointers, each
//! running a known call chain on request) and perf as the reference.

pub mod perf;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// The flags every C and C++ workload is built with: no frame pointers.
pub const NOFP: &[&str] = &["-O2", "-g", "-fomit-frame-pointer"];

fn source(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/unwind_programs")
        .join(name)
}

/// Builds `tests/unwind_programs/NAME` into `dir` with the compiler its extension calls
/// for (cc, c++, rustc) and `flags` (for rustc: the flags of a no-frame-pointer build).
pub fn build(dir: &Path, name: &str, flags: &[&str]) -> PathBuf {
    let out = dir.join(name.replace('.', "_"));
    let src = source(name);
    let mut command = match src.extension().and_then(|e| e.to_str()) {
        Some("c") => Command::new("cc"),
        Some("cpp") => Command::new("c++"),
        _ => {
            let mut rustc = Command::new("rustc");
            rustc.args(["-C", "opt-level=2", "-C", "force-frame-pointers=no", "-g"]);
            rustc
        }
    };
    let status = command
        .args(flags)
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .status()
        .expect("run the compiler");
    assert!(status.success(), "building {}", src.display());
    out
}

/// A running workload, idle until [`run`](Self::run).
pub struct Workload {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Workload {
    /// Starts `binary`, which runs its chain for `seconds` per request.
    pub fn start(binary: &Path, seconds: f64) -> Self {
        let mut child = Command::new(binary)
            .arg(seconds.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the workload");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Self {
            child,
            stdin,
            stdout,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs the chain once and waits until it is done.
    pub fn run(&mut self) {
        self.stdin.write_all(b"\n").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "done");
    }

    /// Starts a run without waiting (see [`wait`](Self::wait)).
    pub fn start_run(&mut self) {
        self.stdin.write_all(b"\n").unwrap();
        self.stdin.flush().unwrap();
    }

    /// Waits for the run started by [`start_run`](Self::start_run).
    pub fn wait(&mut self) {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "done");
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A function name without its parameter list (`chain::level2(chain::Step&, double)` ->
/// `chain::level2`), a perf `+0x..` offset, or a Rust hash: how perf and we may differ in
/// spelling the same function.
pub fn normalize(name: &str) -> String {
    let name = name.split("+0x").next().unwrap_or(name);
    let name = match name.find('(') {
        Some(at) if !name.starts_with('(') => &name[..at],
        _ => name,
    };
    name.trim().to_owned()
}
