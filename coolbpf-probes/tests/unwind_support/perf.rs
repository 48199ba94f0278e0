//! `perf record --call-graph dwarf` on a workload, and its most frequent stack.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use super::{normalize, Workload};

/// perf's most frequent user stack of `workload` during one run, root first, names
/// normalized; `None` (with a message) when perf cannot sample here.
pub fn top_stack(workload: &mut Workload, dir: &Path, seconds: f64) -> Option<(Vec<String>, u64)> {
    let data = dir.join("perf.data");
    let mut perf = Command::new("perf")
        .args([
            "record",
            "-e",
            "cpu-clock",
            "--call-graph",
            "dwarf",
            "-F",
            "99",
            "-p",
        ])
        .arg(workload.pid().to_string())
        .arg("-o")
        .arg(&data)
        .args(["--", "sleep"])
        .arg(seconds.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    // perf needs a moment to attach before the run starts.
    std::thread::sleep(std::time::Duration::from_millis(300));
    workload.start_run();
    let status = perf.wait().ok()?;
    workload.wait();
    if !status.success() {
        eprintln!("perf record failed: {status}");
        return None;
    }
    let script = Command::new("perf")
        .args(["script", "-F", "ip,sym", "-i"])
        .arg(&data)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&script.stdout);
    let mut counts: HashMap<Vec<String>, u64> = HashMap::new();
    for block in text.split("\n\n") {
        let mut frames: Vec<String> = block
            .lines()
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                let _ip = fields.next()?;
                Some(normalize(&fields.collect::<Vec<_>>().join(" ")))
            })
            .collect();
        if frames.is_empty() {
            continue;
        }
        frames.reverse();
        *counts.entry(frames).or_default() += 1;
    }
    counts.into_iter().max_by_key(|(_, n)| *n)
}
