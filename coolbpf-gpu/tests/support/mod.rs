//! What the GPU tests share: the real NVIDIA libraries from PyPI (installed by
//! `scripts/nvidia-libs.sh` into a cache outside the repository), test programs built
//! from `tests/programs`, and running a child that waits for its go.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// Set to 1 (CI does) to fail instead of skipping when the NVIDIA libraries are missing.
const REQUIRE_PEERS_ENV: &str = "COOLBPF_REQUIRE_PEERS";

/// Where `scripts/nvidia-libs.sh` unpacked the wheels: `$COOLBPF_NVIDIA_ROOT`, else
/// `~/.cache/coolbpf/nvidia`. `None` (after saying why) when absent and not required.
pub fn nvidia_root(test: &str) -> Option<PathBuf> {
    let root = std::env::var_os("COOLBPF_NVIDIA_ROOT").map_or_else(
        || {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/coolbpf/nvidia")
        },
        PathBuf::from,
    );
    if root.join("nvidia/cu13/lib/libcudart.so.13").exists() {
        return Some(root);
    }
    let required = std::env::var(REQUIRE_PEERS_ENV).is_ok_and(|v| v == "1");
    assert!(
        !required,
        "{test}: the NVIDIA libraries are required but not in {} (run scripts/nvidia-libs.sh)",
        root.display()
    );
    eprintln!(
        "skipping {test}: no NVIDIA libraries in {} (scripts/nvidia-libs.sh)",
        root.display()
    );
    None
}

/// libcudart 12 and 13 of the cache.
pub fn cudart(root: &Path, major: u32) -> PathBuf {
    match major {
        12 => root.join("nvidia/cuda_runtime/lib/libcudart.so.12"),
        _ => root.join("nvidia/cu13/lib/libcudart.so.13"),
    }
}

/// The cache's libnccl (nvidia-nccl-cu12), or `None` after saying why (a failure when
/// the NVIDIA libraries are required).
pub fn libnccl(test: &str) -> Option<PathBuf> {
    let lib = nvidia_root(test)?.join("nvidia/nccl/lib/libnccl.so.2");
    if lib.exists() {
        return Some(lib);
    }
    let required = std::env::var(REQUIRE_PEERS_ENV).is_ok_and(|v| v == "1");
    assert!(
        !required,
        "{test}: {} is required but missing (scripts/nvidia-libs.sh)",
        lib.display()
    );
    eprintln!(
        "skipping {test}: no {} (scripts/nvidia-libs.sh)",
        lib.display()
    );
    None
}

fn programs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs")
}

/// `tests/programs/nccl_ranks.c`, compiled with frame pointers into `dir`.
pub fn build_nccl_ranks(dir: &Path) -> PathBuf {
    build_c("nccl_ranks", dir)
}

/// `tests/programs/NAME.c`, compiled with frame pointers into `dir`.
pub fn build_c(name: &str, dir: &Path) -> PathBuf {
    let out = dir.join(name);
    let status = Command::new("gcc")
        .args(["-O1", "-g", "-fno-omit-frame-pointer", "-o"])
        .arg(&out)
        .arg(programs().join(format!("{name}.c")))
        .arg("-ldl")
        .status()
        .expect("run gcc");
    assert!(status.success(), "gcc failed");
    out
}

/// `tests/programs/launches.cu`, compiled by the real nvcc (13) into `dir`, linked
/// against the cache's libcudart 13.
pub fn build_launches(root: &Path, dir: &Path) -> PathBuf {
    let cu13 = root.join("nvidia/cu13");
    let out = dir.join("launches");
    let lib = cu13.join("lib");
    let output = Command::new(cu13.join("bin/nvcc"))
        .env(
            "PATH",
            format!(
                "{}:{}",
                cu13.join("bin").display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .args([
            "-arch=sm_90",
            "-g",
            "-Xcompiler",
            "-fno-omit-frame-pointer",
            "-cudart",
            "shared",
        ])
        .arg(format!("-L{}", lib.display()))
        .arg(format!("-Xlinker=-rpath={}", lib.display()))
        .arg("-o")
        .arg(&out)
        .arg(programs().join("launches.cu"))
        .output()
        .expect("run nvcc");
    assert!(
        output.status.success(),
        "nvcc failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    out
}

/// A test program that prints "ready", waits for a byte, works, and waits for its
/// stdin to close.
pub struct Program {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Program {
    /// Starts `command` and waits for "ready".
    pub fn start(command: &mut Command) -> Self {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn test program");
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read ready");
        assert_eq!(line.trim(), "ready", "the program did not start");
        Self {
            child,
            stdin,
            stdout,
        }
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Lets it work and returns the line it prints when done.
    pub fn go(&mut self) -> String {
        self.stdin
            .as_mut()
            .expect("stdin")
            .write_all(b"g")
            .expect("write go");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read done");
        line
    }

    /// Closes its stdin and waits for it to exit.
    pub fn finish(mut self) {
        drop(self.stdin.take());
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "{status}");
    }
}
