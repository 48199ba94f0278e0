//! The profile tests' workload, cgroup and perf helpers.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// The function the workload spins in.
pub const HOT: &str = "coolbpf_hot_spin";

/// Set to 1 to make a missing peer tool (perf) a failure instead of a skip.
const REQUIRE_PEERS_ENV: &str = "COOLBPF_REQUIRE_PEERS";

/// The workload: spins in `coolbpf_hot_spin` for argv[1] seconds per line on stdin, then
/// writes `done`. Checking the clock every million iterations keeps the time spent
/// outside the hot function (in the vdso) far below 1%.
const SOURCE: &str = r#"
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

volatile unsigned long long coolbpf_sink;

__attribute__((noinline)) void coolbpf_hot_spin(double seconds)
{
	double end = now() + seconds;
	unsigned long long x = 1;

	do {
		for (int i = 0; i < 1000000; i++)
			x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		coolbpf_sink = x;
	} while (now() < end);
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 1.0;
	char c;

	while (read(0, &c, 1) == 1) {
		if (c != '\n')
			continue;
		coolbpf_hot_spin(seconds);
		if (write(1, "done\n", 5) != 5)
			return 1;
	}
	return 0;
}
"#;

fn required(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v == "1")
}

/// Serializes the tests of one binary: they measure CPU time.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The spinning child process.
pub struct Spinner {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    _dir: tempfile::TempDir,
}

impl Spinner {
    /// Builds and starts the workload (idle until [`spin`](Self::spin)); `None` (a skip)
    /// without a C compiler, unless BPF tests are required.
    pub fn start(seconds: f64) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("spin.c");
        let binary = dir.path().join("coolbpf-spin");
        std::fs::write(&source, SOURCE).unwrap();
        let built = ["cc", "clang", "gcc"].iter().any(|cc| {
            Command::new(cc)
                .args(["-O1", "-g", "-fno-omit-frame-pointer", "-o"])
                .arg(&binary)
                .arg(&source)
                .status()
                .is_ok_and(|s| s.success())
        });
        if !built {
            assert!(
                !required(coolbpf_core::testing::REQUIRE_BPF_ENV),
                "no C compiler (cc, clang, gcc) to build the workload"
            );
            eprintln!("skipping: no C compiler to build the workload");
            return None;
        }
        let mut child = Command::new(&binary)
            .arg(seconds.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Some(Self {
            child,
            stdin,
            stdout,
            _dir: dir,
        })
    }

    /// The workload's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Spins once and returns how long the workload was on a CPU meanwhile.
    pub fn spin(&mut self) -> Duration {
        let before = self.on_cpu();
        self.stdin.write_all(b"\n").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        assert_eq!(line, "done\n", "the workload did not finish its spin");
        self.on_cpu().saturating_sub(before)
    }

    /// Time on a CPU so far: /proc/PID/schedstat's first field (ns).
    fn on_cpu(&self) -> Duration {
        let text = std::fs::read_to_string(format!("/proc/{}/schedstat", self.pid()))
            .expect("/proc/PID/schedstat (CONFIG_SCHED_INFO)");
        let ns = text
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .expect("schedstat's on-CPU time");
        Duration::from_nanos(ns)
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A cgroup v2 directory made for a test, removed (with its processes moved back to this
/// process's cgroup) when dropped.
pub struct CgroupDir {
    path: PathBuf,
    home: PathBuf,
}

impl CgroupDir {
    /// Creates one under the cgroup v2 mount; `None` (a skip) without one.
    pub fn create() -> Option<Self> {
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let mount = mounts.lines().find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(fields[1]))
        });
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let own = own.lines().find_map(|l| l.strip_prefix("0::"));
        let (Some(mount), Some(own)) = (mount, own) else {
            eprintln!("skipping: no cgroup v2 mount");
            return None;
        };
        let path = mount.join(format!("coolbpf-profile-test-{}", std::process::id()));
        if let Err(err) = std::fs::create_dir(&path) {
            eprintln!("skipping: cannot create {}: {err}", path.display());
            return None;
        }
        Some(Self {
            path,
            home: mount.join(own.trim_start_matches('/')),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Moves process `pid` into it.
    pub fn adopt(&self, pid: u32) {
        std::fs::write(self.path.join("cgroup.procs"), pid.to_string()).unwrap();
    }
}

impl Drop for CgroupDir {
    fn drop(&mut self) {
        let procs = std::fs::read_to_string(self.path.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.lines() {
            let _ = std::fs::write(self.home.join("cgroup.procs"), pid);
        }
        let _ = std::fs::remove_dir(&self.path);
    }
}

fn find_perf() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("perf"))
        .find(|candidate| candidate.is_file())
}

fn skip_peer(why: &str) -> Option<String> {
    assert!(!required(REQUIRE_PEERS_ENV), "{REQUIRE_PEERS_ENV}=1: {why}");
    eprintln!("skipping the perf cross-check: {why}");
    None
}

/// The top function (by self samples) of `perf record -F 99 -g -e EVENT -p PID` over one
/// spin of `spinner`; `None` (a skip) without a working perf, unless peers are required.
pub fn perf_top_function(spinner: &mut Spinner, event: &str) -> Option<String> {
    let Some(perf) = find_perf() else {
        return skip_peer("perf is not installed (Debian: apt-get install linux-perf)");
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("perf.data");
    let log = std::fs::File::create(dir.path().join("record.log")).unwrap();
    let pid = spinner.pid().to_string();
    let mut record = Command::new(&perf)
        .args(["record", "-F", "99", "-g", "-e", event, "-p", &pid, "-o"])
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    // perf needs a moment to open its events; only the top function is compared, so a
    // late start costs samples, not correctness.
    std::thread::sleep(Duration::from_secs(2));
    spinner.spin();
    // SAFETY: kill has no memory arguments; the pid is our own child's.
    unsafe {
        libc::kill(record.id() as i32, libc::SIGINT);
    }
    let _ = record.wait();
    let report = Command::new(&perf)
        .args([
            "report",
            "--stdio",
            "--no-children",
            "-g",
            "none",
            "--sort",
            "symbol",
            "-q",
            "-i",
        ])
        .arg(&data)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&report.stdout);
    let top = text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // "  98.44%  [.] coolbpf_hot_spin  -  -"
        (fields.len() >= 3 && fields[0].ends_with('%')).then(|| fields[2].to_owned())
    });
    if top.is_none() {
        let log = std::fs::read_to_string(dir.path().join("record.log")).unwrap_or_default();
        return skip_peer(&format!(
            "perf gave no samples:\n{log}\n{}",
            String::from_utf8_lossy(&report.stderr)
        ));
    }
    top
}
