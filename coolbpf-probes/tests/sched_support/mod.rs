//! What the scheduler probes' tests share: workloads made of forked children (which only
//! make raw syscalls between fork and exit, as a multi-threaded parent requires), the
//! kernel's own context-switch count, and bpftrace as a peer run over the same window.

#![allow(dead_code)] // Each test file uses a different part.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child as Process, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use coolbpf_core::Histogram;
use coolbpf_probes::sched::HistKey;

/// The environment variable that turns a missing peer tool into a failure.
pub const REQUIRE_PEERS_ENV: &str = "COOLBPF_REQUIRE_PEERS";

/// Context switches since boot: `ctxt` in /proc/stat.
pub fn ctxt() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
    stat.lines()
        .find_map(|line| line.strip_prefix("ctxt "))
        .and_then(|n| n.trim().parse().ok())
        .expect("ctxt line in /proc/stat")
}

/// Forks a child that runs `body` (raw syscalls only) and then `_exit(0)`s.
pub fn fork(body: impl FnOnce()) -> libc::pid_t {
    // SAFETY: the child runs `body`, which by this module's contract only makes raw,
    // async-signal-safe syscalls, and leaves with _exit: no allocation, no locks.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        body();
        // SAFETY: leaving the forked child without running the parent's destructors.
        unsafe { libc::_exit(0) };
    }
    pid
}

/// Waits for a child and asserts it exited with 0.
pub fn reap(pid: libc::pid_t) {
    let mut status = 0;
    // SAFETY: waiting for our own child into a live int.
    let waited = unsafe { libc::waitpid(pid, &raw mut status, 0) };
    assert_eq!(waited, pid, "waitpid");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child {pid} status {status}"
    );
}

/// Waits for a child, asserts it exited with 0, and returns the CPU time it used (user
/// plus system: the scheduler's exact runtime, split by tick samples).
pub fn reap_cpu_time(pid: libc::pid_t) -> Duration {
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child into live locals.
    let waited = unsafe { libc::wait4(pid, &raw mut status, 0, &raw mut usage) };
    assert_eq!(waited, pid, "wait4");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child {pid} status {status}"
    );
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// The CPU the spinners share: the last one, away from CPU 0's housekeeping.
pub fn shared_cpu() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get() - 1)
}

fn pipe() -> [libc::c_int; 2] {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid array of two ints for pipe to fill.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
    fds
}

fn close(fd: libc::c_int) {
    // SAFETY: closing a descriptor this process owns.
    unsafe { libc::close(fd) };
}

/// One byte through a pipe, raw syscalls only.
fn send(fd: libc::c_int) {
    let byte = 1u8;
    // SAFETY: writing one byte from a live u8.
    unsafe { libc::write(fd, std::ptr::from_ref(&byte).cast(), 1) };
}

fn receive(fd: libc::c_int) {
    let mut byte = 0u8;
    // SAFETY: reading one byte into a live u8.
    unsafe { libc::read(fd, std::ptr::from_mut(&mut byte).cast(), 1) };
}

/// Two processes passing a byte back and forth `round_trips` times through two pipes:
/// every hop wakes the other side, so the run is made of wakeups and context switches.
/// Returns both pids once both exited.
pub fn ping_pong(round_trips: u32) -> [u32; 2] {
    let held = HeldPair::ping_pong(round_trips);
    let pids = held.pids;
    held.release();
    pids
}

/// Two forked processes that, once their work is done, stay blocked (switched out) until
/// released: their `/proc/PID/schedstat` can then be read against a probe's view of them.
pub struct HeldPair {
    /// Both pids.
    pub pids: [u32; 2],
    release: libc::c_int,
}

impl HeldPair {
    /// [`ping_pong`], held.
    pub fn ping_pong(round_trips: u32) -> Self {
        let there = pipe();
        let back = pipe();
        let held = Self::run(
            || {
                close(there[0]);
                close(back[1]);
                for _ in 0..round_trips {
                    send(there[1]);
                    receive(back[0]);
                }
            },
            || {
                close(there[1]);
                close(back[0]);
                for _ in 0..round_trips {
                    receive(there[0]);
                    send(back[1]);
                }
            },
        );
        for fd in there.into_iter().chain(back) {
            close(fd);
        }
        held
    }

    /// Two processes pinned to `cpu`, each spinning in user space for `duration` of wall
    /// time: each waits for the CPU while the other has it, in time slices.
    pub fn spinners(cpu: usize, duration: Duration) -> Self {
        let spin = || {
            pin_to(cpu);
            let end = monotonic_ns() + duration.as_nanos() as u64;
            while monotonic_ns() < end {
                std::hint::spin_loop();
            }
        };
        Self::run(spin, spin)
    }

    /// Forks `first` and `second`, and returns once both finished and have been blocked
    /// for a while (so that their last run has ended in a switch-out).
    fn run(first: impl FnOnce(), second: impl FnOnce()) -> Self {
        let done = pipe();
        let release = pipe();
        let hold = || {
            send(done[1]);
            close(release[1]);
            // Blocks until the parent sends a byte. (Not until it closes its end: later
            // forked children inherit that end too.)
            receive(release[0]);
        };
        let pids = [
            fork(|| {
                first();
                hold();
            }),
            fork(|| {
                second();
                hold();
            }),
        ];
        close(done[1]);
        close(release[0]);
        receive(done[0]);
        receive(done[0]);
        close(done[0]);
        let pids = pids.map(|pid| pid as u32);
        for pid in pids {
            wait_until_sleeping(pid);
        }
        // The state reads S from just before the switch: give it time to happen.
        std::thread::sleep(Duration::from_millis(50));
        Self {
            pids,
            release: release[1],
        }
    }

    /// Lets both processes exit and reaps them.
    pub fn release(self) {
        send(self.release);
        send(self.release);
        close(self.release);
        for pid in self.pids {
            reap(pid as libc::pid_t);
        }
    }
}

/// Waits (up to 10 s) until `pid`'s state in /proc/PID/stat is S (sleeping).
fn wait_until_sleeping(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
        let state = stat.rsplit_once(") ").map(|(_, rest)| &rest[..1]);
        if state == Some("S") {
            return;
        }
        assert!(Instant::now() < deadline, "{pid} never blocked: {stat}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The scheduler's own accounting for `pid` (/proc/PID/schedstat): ns waited on a run
/// queue, and the number of waits.
pub fn schedstat(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).expect("schedstat");
    let fields: Vec<u64> = text
        .split_whitespace()
        .map(|field| field.parse().expect("a number"))
        .collect();
    (fields[1], fields[2])
}

/// The kernel's monotonic clock, ns (async-signal-safe: a vDSO call).
pub fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// Pins the calling task to `cpu` (async-signal-safe).
fn pin_to(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET and sched_setaffinity only
    // touch it and the calling task.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set);
    }
}

/// `count` children pinned to `cpu`, each spinning in user space for `duration`.
/// Returns their pids (reap them with [`reap`]).
pub fn spinners(count: usize, cpu: usize, duration: Duration) -> Vec<libc::pid_t> {
    (0..count)
        .map(|_| {
            fork(|| {
                pin_to(cpu);
                let end = monotonic_ns() + duration.as_nanos() as u64;
                while monotonic_ns() < end {
                    std::hint::spin_loop();
                }
            })
        })
        .collect()
}

/// A bpftrace script running as a peer, started and ready (its BEGIN probe has run).
pub struct Bpftrace {
    process: Process,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Bpftrace {
    /// Starts `script` (whose BEGIN must print a line `ready`) and waits until it is
    /// ready. `None` (with a message) when bpftrace is not installed; a failure instead
    /// when `COOLBPF_REQUIRE_PEERS=1`.
    pub fn start(test: &str, script: &str) -> Option<Self> {
        let spawned = Command::new("bpftrace")
            .args(["-B", "line", "-e", script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut process = match spawned {
            Ok(process) => process,
            Err(err) => {
                let required = std::env::var(REQUIRE_PEERS_ENV).is_ok_and(|v| v == "1");
                assert!(
                    !required,
                    "{test}: bpftrace is required ({REQUIRE_PEERS_ENV}=1): {err}"
                );
                eprintln!("{test}: skipping the bpftrace comparison: cannot run bpftrace: {err}");
                return None;
            }
        };
        let (sender, lines) = mpsc::channel();
        let stdout = process.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut peer = Self {
            process,
            lines,
            seen: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !peer.seen.iter().any(|line| line == "ready") {
            let left = deadline.saturating_duration_since(Instant::now());
            match peer.lines.recv_timeout(left) {
                Ok(line) => peer.seen.push(line),
                Err(why) => panic!(
                    "{test}: bpftrace not ready ({why}): {}",
                    peer.stop_with_stderr()
                ),
            }
        }
        Some(peer)
    }

    /// Interrupts bpftrace (so it runs END and prints its maps) and returns all it wrote.
    pub fn stop(mut self) -> String {
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(self.process.id() as libc::pid_t, libc::SIGINT) };
        let status = self.process.wait().expect("wait for bpftrace");
        self.seen.extend(self.lines.iter());
        assert!(
            status.success(),
            "bpftrace: {status}: {}",
            self.seen.join("\n")
        );
        self.seen.join("\n")
    }

    fn stop_with_stderr(&mut self) -> String {
        let _ = self.process.kill();
        let _ = self.process.wait();
        let mut stderr = String::new();
        if let Some(mut pipe) = self.process.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        format!("stdout {:?}, stderr {stderr}", self.seen)
    }
}

/// The value bpftrace printed for `@name: N` (0 when absent: an empty map is not printed).
pub fn scalar(output: &str, name: &str) -> u64 {
    let prefix = format!("@{name}: ");
    output
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0, |n| n.trim().parse().expect("a count"))
}

/// The values bpftrace printed for `@name[KEY]: N`.
pub fn keyed(output: &str, name: &str) -> HashMap<u64, u64> {
    let prefix = format!("@{name}[");
    output
        .lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .filter_map(|rest| {
            let (key, value) = rest.split_once("]: ")?;
            Some((key.trim().parse().ok()?, value.trim().parse().ok()?))
        })
        .collect()
}

/// `|ours - theirs| <= tolerance * theirs`, with a message naming both.
pub fn assert_close(what: &str, ours: u64, theirs: u64, tolerance: f64) {
    let diff = ours.abs_diff(theirs) as f64;
    eprintln!(
        "{what}: ours {ours}, peer {theirs}, difference {:.3}%",
        100.0 * diff / theirs.max(1) as f64
    );
    assert!(
        theirs > 0 && diff <= tolerance * theirs as f64,
        "{what}: ours {ours} vs peer {theirs}: more than {}% apart",
        tolerance * 100.0
    );
}

/// Process `pid`'s histogram among per-process ones (a process has one key at most).
pub fn pid_histogram(histograms: &[(HistKey, Histogram)], pid: u32) -> Option<&Histogram> {
    histograms
        .iter()
        .find(|(key, _)| matches!(key, HistKey::Pid { pid: p, .. } if *p == pid))
        .map(|(_, histogram)| histogram)
}

/// How many values process `pid`'s histogram holds (0 without one).
pub fn count_of(histograms: &[(HistKey, Histogram)], pid: u32) -> u64 {
    pid_histogram(histograms, pid).map_or(0, |histogram| histogram.count)
}
