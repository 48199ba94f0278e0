//! `coolbpf symbolize`: its exit codes, the JSON line shape, and kernel addresses checked
//! against /proc/kallsyms read here.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::text;
use serde_json::Value;

/// Runs `coolbpf symbolize ARGS...`.
fn coolbpf(args: &[&str]) -> Output {
    common::coolbpf(&[&["symbolize"], args].concat())
}

fn json_lines(out: &Output) -> Vec<Value> {
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

/// The address of core-kernel text symbol `name`, from kallsyms as is; `None` when the
/// kernel hides addresses.
fn kallsyms_address(name: &str) -> Option<u64> {
    let kallsyms = std::fs::read_to_string("/proc/kallsyms").ok()?;
    kallsyms.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let matches = fields.len() == 3 && fields[2] == name && matches!(fields[1], "T" | "t");
        matches
            .then(|| u64::from_str_radix(fields[0], 16).ok())
            .flatten()
            .filter(|&a| a != 0)
    })
}

#[test]
fn bad_usage_exits_2_with_nothing_on_stdout() {
    for args in [
        &["0x1000"][..],
        &["--kernel"],
        &["--kernel", "--pid", "1", "0x1000"],
        &["--elf", "/bin/true", "--kernel", "0x1000"],
        &["--kernel", "0xzz"],
        &["--kernel", "12abc"],
        &["--kernel", "0x"],
        &["--kernel", "-5"],
        &["--pid", "notapid", "0x1000"],
    ] {
        let out = coolbpf(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "{args:?}: stdout carries only data");
    }
}

#[test]
fn missing_process_exits_1_and_says_so() {
    let out = coolbpf(&["--pid", "999999999", "0x1000"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("process not found: 999999999"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn unreadable_elf_files_exit_1_and_name_the_file() {
    for path in ["/nonexistent/coolbpf-elf", "/proc/self/status"] {
        let out = coolbpf(&["--elf", path, "0x10"]);
        assert_eq!(out.status.code(), Some(1), "{path}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(path), "{stderr}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn kernel_function_as_json_and_text() {
    let Some(schedule) = kallsyms_address("schedule") else {
        eprintln!("skipped: /proc/kallsyms shows no addresses (not root, or kptr_restrict)");
        return;
    };
    let hex = format!("{schedule:#x}");
    let decimal = schedule.to_string();
    let out = coolbpf(&["--kernel", "--json", &hex, &decimal]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 2, "one line per address");
    for line in &lines {
        assert_eq!(
            line["addr"],
            Value::String(hex.clone()),
            "decimal input, hex output"
        );
        let frames = line["frames"].as_array().expect("frames is an array");
        assert_eq!(frames.len(), 1, "{line}");
        let frame = &frames[0];
        assert_eq!(frame["function"], "schedule");
        assert_eq!(frame["inlined"], false);
        for key in ["file", "line", "column"] {
            assert!(
                frame.get(key).is_some(),
                "{key} present (null when unknown): {frame}"
            );
        }
        assert!(line.get("reason").is_none(), "{line}");
    }

    let out = coolbpf(&["--kernel", &format!("{:#x}", schedule + 4)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("{:#x} schedule+0x4\n", schedule + 4)
    );
}

#[test]
fn unknown_addresses_have_empty_frames_and_a_reason() {
    let pid = std::process::id().to_string();
    let out = coolbpf(&["--pid", &pid, "--json", "0x10"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["addr"], "0x10");
    assert_eq!(lines[0]["frames"], Value::Array(Vec::new()));
    assert!(
        lines[0]["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{}",
        lines[0]
    );

    let out = coolbpf(&["--pid", &pid, "0x10"]);
    assert_eq!(text(&out.stdout), "0x10 ?? (address is not mapped)\n");
}

/// A C program with an inlined helper; `None` without a compiler.
fn build_program() -> Option<PathBuf> {
    let dir = std::env::temp_dir();
    let source = dir.join(format!("coolbpf-cli-sym-{}.c", std::process::id()));
    let binary = dir.join(format!("coolbpf-cli-sym-{}", std::process::id()));
    std::fs::write(
        &source,
        "static inline __attribute__((always_inline)) int helper(int x) {\n\
         \x20   return x * 7 + 1;\n\
         }\n\
         __attribute__((noinline)) int target_fn(int x) {\n\
         \x20   return helper(x) + 3;\n\
         }\n\
         int main(int argc, char **argv) { (void)argv; return target_fn(argc); }\n",
    )
    .ok()?;
    let built = Command::new("cc")
        .args(["-g", "-O1", "-o"])
        .arg(&binary)
        .arg(&source)
        .status();
    let _ = std::fs::remove_file(&source);
    built.is_ok_and(|s| s.success()).then_some(binary)
}

#[test]
fn elf_addresses_match_addr2line() {
    let Some(binary) = build_program() else {
        eprintln!("skipped: no C compiler");
        return;
    };
    let nm = Command::new("nm").arg(&binary).output().expect("nm");
    let target = text(&nm.stdout)
        .lines()
        .find_map(|l| {
            l.strip_suffix(" T target_fn")
                .and_then(|a| u64::from_str_radix(a, 16).ok())
        })
        .expect("nm lists target_fn");
    let addr = format!("{target:#x}");
    let a2l = Command::new("addr2line")
        .args(["-f", "-i", "-e"])
        .arg(&binary)
        .arg(&addr)
        .output();
    let out = coolbpf(&["--elf", binary.to_str().unwrap(), "--json", &addr]);
    let _ = std::fs::remove_file(&binary);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let line = &json_lines(&out)[0];
    let got: Vec<(String, u64)> = line["frames"]
        .as_array()
        .expect("frames")
        .iter()
        .map(|f| {
            let function = f["function"].as_str().unwrap_or_default().to_owned();
            (function, f["line"].as_u64().unwrap_or(0))
        })
        .collect();
    let Ok(a2l) = a2l else {
        assert_eq!(
            got.last().map(|f| f.0.as_str()),
            Some("target_fn"),
            "{line}"
        );
        return;
    };
    // addr2line: function and file:line pairs, innermost first.
    let expected: Vec<(String, u64)> = text(&a2l.stdout)
        .lines()
        .collect::<Vec<_>>()
        .chunks(2)
        .map(|pair| {
            let number = pair[1].rsplit(':').next().unwrap_or_default();
            let number = number.split_whitespace().next().unwrap_or_default();
            (pair[0].to_owned(), number.parse().unwrap_or(0))
        })
        .collect();
    assert_eq!(got, expected, "{line}");
    let inlined: Vec<bool> = line["frames"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| f["inlined"] == true)
        .collect();
    assert_eq!(
        inlined.last(),
        Some(&false),
        "the outermost frame is the real function"
    );
}
