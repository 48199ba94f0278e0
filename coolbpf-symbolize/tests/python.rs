//! The CPython reader against independent witnesses: its offset tables against each
//! pyenv build's own headers (a C program compiled against them) and 3.13's
//! `_Py_DebugOffsets`; its reference walker against `py-spy dump` on the same stopped
//! process, for 3.10 to 3.13 and Debian's statically linked python3.11.
//!
//! Needs root (reading another process's memory), gcc, the pyenv builds under
//! /root/.pyenv/versions and py-spy 0.4.3 (`pip install --target
//! ~/.cache/coolbpf/py-spy py-spy==0.4.3`, or `PY_SPY=path`). A missing interpreter is
//! skipped with a message; with `COOLBPF_REQUIRE_PYTHON=1`, anything missing fails.

// Shared with the correctness test; this one uses only TempDir and run.
#[allow(dead_code)]
mod support;

#[path = "programs/python/harness.rs"]
mod harness;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use harness::{py_spy, Workload};

use coolbpf_symbolize::python::{DebugOffsets, Offsets, PythonProcess, PythonSymbolizer, Version};

/// (version, pyenv prefix) of each interpreter tested.
const PYENV: [(Version, &str); 4] = [
    (Version::V3_10, "3.10.13"),
    (Version::V3_11, "3.11.7"),
    (Version::V3_12, "3.12.1"),
    (Version::V3_13, "3.13.0"),
];

fn required() -> bool {
    std::env::var_os("COOLBPF_REQUIRE_PYTHON").is_some_and(|v| v == "1")
}

fn skip(why: &str) {
    assert!(!required(), "COOLBPF_REQUIRE_PYTHON=1 but {why}");
    eprintln!("skipping: {why}");
}

fn prefix(version: &str) -> PathBuf {
    Path::new("/root/.pyenv/versions").join(version)
}

fn python_of(version: Version, prefix: &Path) -> PathBuf {
    prefix.join(format!("bin/python{version}"))
}

/// Every interpreter to test: the pyenv builds that exist and Debian's python3.11.
fn interpreters() -> Vec<(Version, PathBuf)> {
    let mut found = Vec::new();
    for (version, dir) in PYENV {
        let python = python_of(version, &prefix(dir));
        if python.exists() {
            found.push((version, python));
        } else {
            skip(&format!("{} is missing", python.display()));
        }
    }
    let debian = PathBuf::from("/usr/bin/python3.11");
    if debian.exists() {
        found.push((Version::V3_11, debian));
    }
    found
}

#[test]
fn offset_tables_match_each_versions_headers() {
    let dir = support::TempDir::new("pyoffsets");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/python_offsets.c");
    let mut checked = 0;
    for (version, name) in PYENV {
        let include = prefix(name).join(format!("include/python{version}"));
        if !include.exists() {
            skip(&format!("{} is missing", include.display()));
            continue;
        }
        let exe = dir.join(format!("offsets{version}"));
        support::run(
            "gcc",
            [
                "-I".as_ref(),
                include.as_os_str(),
                "-o".as_ref(),
                exe.as_os_str(),
                source.as_os_str(),
            ],
        );
        let printed: BTreeMap<String, u32> = support::run(exe.to_str().unwrap(), [""; 0])
            .lines()
            .map(|line| {
                let (name, value) = line.split_once(' ').unwrap();
                (name.to_owned(), value.parse().unwrap())
            })
            .collect();
        for (field, ours) in Offsets::of(version).named() {
            assert_eq!(
                ours,
                printed.get(field).copied(),
                "{version}: {field} (ours vs the headers)"
            );
        }
        checked += 1;
    }
    assert!(checked > 0, "no CPython headers to check against");
}

/// 3.13's table against the `_Py_DebugOffsets` its libpython carries in `.data` (the
/// initial value of `_PyRuntime`), read from the file with readelf's section table.
#[test]
fn table_3_13_matches_its_debug_offsets() {
    let lib = prefix("3.13.0").join("lib/libpython3.13.so.1.0");
    if !lib.exists() {
        return skip(&format!("{} is missing", lib.display()));
    }
    let symbols = support::run("readelf", ["-sW".as_ref(), lib.as_os_str()]);
    let vaddr = symbols
        .lines()
        .find(|l| l.ends_with(" _PyRuntime"))
        .and_then(|l| u64::from_str_radix(l.split_whitespace().nth(1)?, 16).ok())
        .expect("_PyRuntime in readelf -s");
    let headers = support::run("readelf", ["-lW".as_ref(), lib.as_os_str()]);
    // LOAD  Offset VirtAddr PhysAddr FileSiz MemSiz ...: the segment holding it.
    let offset = headers
        .lines()
        .filter(|l| l.trim_start().starts_with("LOAD"))
        .find_map(|l| {
            let f: Vec<u64> = l
                .split_whitespace()
                .skip(1)
                .take(5)
                .map(|x| u64::from_str_radix(x.trim_start_matches("0x"), 16).unwrap())
                .collect();
            (vaddr >= f[1] && vaddr < f[1] + f[3]).then(|| vaddr - f[1] + f[0])
        })
        .expect("a LOAD segment holding _PyRuntime");
    let bytes = std::fs::read(&lib).unwrap();
    let debug = DebugOffsets::parse(&bytes[offset as usize..]).unwrap();
    assert_eq!(debug.version >> 16, 0x030d, "{:#x}", debug.version);
    assert!(!debug.free_threaded);
    let table = Offsets::of(Version::V3_13);
    assert_eq!(&debug.apply(table).unwrap(), table);
}

fn start(python: &Path) -> Workload {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/python");
    Workload::start(python, &dir)
}

/// (function, file, line) of each frame, innermost first.
type Chain = Vec<(String, String, u32)>;

/// py-spy's view of the main thread.
fn py_spy_chain(py_spy: &Path, pid: u32) -> Chain {
    let out = support::run(
        py_spy.to_str().unwrap(),
        ["dump", "--json", "--nonblocking", "--pid", &pid.to_string()],
    );
    let threads: serde_json::Value = serde_json::from_str(&out).unwrap();
    let threads = threads.as_array().unwrap();
    // Without pausing, py-spy cannot always tell 3.10's OS thread ids: the workload has
    // one thread.
    let main = threads
        .iter()
        .find(|t| t["os_thread_id"] == pid)
        .or_else(|| (threads.len() == 1).then(|| &threads[0]))
        .expect("py-spy lists the main thread");
    main["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_owned(),
                f["filename"].as_str().unwrap().to_owned(),
                f["line"].as_u64().unwrap() as u32,
            )
        })
        .collect()
}

/// Our view of the main thread, with both names of each frame (qualified and plain).
fn our_chain(
    process: &PythonProcess,
    names: &mut PythonSymbolizer,
    pid: u32,
) -> Vec<(String, Chain)> {
    let stacks = process.stacks().unwrap();
    let main = stacks
        .iter()
        .find(|s| {
            s.native_thread_id
                .map_or(stacks.len() == 1, |t| t == u64::from(pid))
        })
        .expect("the main thread's state");
    names
        .locations(pid, &main.frames)
        .iter()
        .map(|loc| {
            let f = &loc.frames[0];
            assert!(!loc.is_unknown(), "{loc:?}");
            let entry = (f.raw_name.clone(), f.file.clone().unwrap(), f.line.unwrap());
            (f.function.clone(), vec![entry])
        })
        .collect()
}

fn signal(pid: u32, signal: i32) {
    // SAFETY: kill(2) on a child we spawned and still own (not yet reaped).
    let rc = unsafe { libc::kill(pid as i32, signal) };
    assert_eq!(rc, 0, "kill({pid}, {signal})");
}

#[test]
fn walker_matches_py_spy_on_each_version() {
    let Some(py_spy) = py_spy() else {
        return skip("py-spy is not installed");
    };
    let mut compared = 0;
    for (version, python) in interpreters() {
        let workload = start(&python);
        let pid = workload.pid();
        // Until the interpreter is up and in the hot recursion.
        let deadline = Instant::now() + Duration::from_secs(20);
        let process = loop {
            assert!(
                Instant::now() < deadline,
                "{}: never ran fib",
                python.display()
            );
            std::thread::sleep(Duration::from_millis(100));
            let Ok(Some(process)) = PythonProcess::open(pid) else {
                continue;
            };
            let mut names = PythonSymbolizer::new();
            let ready = process.stacks().is_ok_and(|s| {
                s.iter().any(|t| {
                    names.locations(pid, &t.frames).iter().any(|l| {
                        l.frames[0].function == "Sorter.key" || l.frames[0].function == "key"
                    })
                })
            });
            if ready {
                break process;
            }
        };
        assert_eq!(
            process.interpreter().version,
            version,
            "{}",
            python.display()
        );
        for round in 0..5 {
            let mut names = PythonSymbolizer::new();
            signal(pid, libc::SIGSTOP);
            // Wait until it is really stopped ('T' in /proc/PID/stat).
            while !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap()
                .contains(") T ")
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            let ours = our_chain(&process, &mut names, pid);
            let theirs = py_spy_chain(&py_spy, pid);
            signal(pid, libc::SIGCONT);
            assert_eq!(
                ours.len(),
                theirs.len(),
                "{version} round {round}: {ours:?}\nvs {theirs:?}"
            );
            for ((qualname, ours), theirs) in ours.iter().zip(&theirs) {
                let (name, file, line) = &ours[0];
                // py-spy names a frame by its qualified or plain name.
                assert!(
                    &theirs.0 == name || &theirs.0 == qualname,
                    "{version}: {qualname}/{name} vs {}",
                    theirs.0
                );
                assert_eq!(
                    (file, line),
                    (&theirs.1, &theirs.2),
                    "{version}: {qualname}"
                );
            }
            let functions: Vec<&str> = ours.iter().map(|(q, _)| q.as_str()).collect();
            let tail: Vec<&str> = functions.iter().rev().take(3).copied().collect();
            assert_eq!(
                tail,
                ["<module>", "work", "Sorter.rank"].map(|n| if version == Version::V3_10 {
                    n.trim_start_matches("Sorter.")
                } else {
                    n
                })
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("{version} ({}): matches py-spy", python.display());
        compared += 1;
    }
    assert!(compared > 0, "no interpreter compared");
}

#[test]
fn a_process_without_python_has_no_interpreter() {
    let pid = std::process::id();
    assert!(PythonProcess::open(pid).unwrap().is_none());
    assert!(PythonProcess::open(u32::MAX).is_err());
}
