//! Helpers shared by the command's integration tests.

use std::process::{Command, Output, Stdio};

/// Runs the built `coolbpf` with `args`, no stdin, capturing its output.
pub fn coolbpf(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_coolbpf"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run coolbpf")
}

/// Lossy text of captured output.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
