//! A `.gnu_debugdata` section that decompresses to far more than a symbol table (an xz
//! "bomb") is refused without the memory it claims: found by fuzzing, where 160 KB of
//! compressed zeros cost 2 GB.

use std::process::Command;

use coolbpf_symbolize::{Source, Symbolizer};

/// This process's peak resident memory (VmHWM), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM");
    line.split_whitespace()
        .nth(1)
        .and_then(|kb| kb.parse::<u64>().ok())
        .expect("kB")
        * 1024
}

#[test]
fn xz_bomb_in_gnu_debugdata_is_refused_within_bounded_memory() {
    let tools = ["sh", "xz", "objcopy"];
    if tools.iter().any(|t| {
        Command::new("which")
            .arg(t)
            .output()
            .map_or(true, |o| !o.status.success())
    }) {
        eprintln!("skipping: needs {tools:?}");
        return;
    }
    let dir = std::env::temp_dir().join(format!("coolbpf-xz-bomb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bomb = dir.join("bomb.xz");
    let binary = dir.join("bombed");
    // 400 MB of zeros compress to well under a megabyte.
    let script = format!(
        "head -c 400000000 /dev/zero | xz -1 -T1 > {bomb} && objcopy --add-section .gnu_debugdata={bomb} /bin/true {binary}",
        bomb = bomb.display(),
        binary = binary.display()
    );
    let made = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .status()
        .expect("sh");
    assert!(made.success(), "building the bomb failed");
    let before = peak_rss();
    let result = Symbolizer::new()
        .symbolize(&Source::elf(&binary), &[0x1000, 0x2000])
        .expect("symbolize");
    let grown = peak_rss().saturating_sub(before);
    std::fs::remove_dir_all(&dir).expect("clean up");
    assert_eq!(result.len(), 2);
    assert!(grown < 160 << 20, "peak memory grew by {} MiB", grown >> 20);
}
