//! The workload: two forked processes passing a byte back and forth through two pipes a
//! fixed number of times. Every hop wakes the other side, so the run is made of wakeups
//! and context switches, the events runqlat hooks.

use std::io;
use std::time::{Duration, Instant};

/// What one run of the workload cost.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// From the first fork to both children reaped.
    pub wall: Duration,
    /// User plus system CPU time of both children (sched_switch and wakeup hooks run in
    /// the context of the tasks switching and waking, so tracing shows up here).
    pub cpu: Duration,
    /// Context switches on the whole machine meanwhile (`ctxt` in /proc/stat).
    pub switches: u64,
}

/// Context switches since boot: `ctxt` in /proc/stat.
pub fn ctxt() -> io::Result<u64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    stat.lines()
        .find_map(|line| line.strip_prefix("ctxt "))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| io::Error::other("no ctxt line in /proc/stat"))
}

fn pipe() -> io::Result<[libc::c_int; 2]> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid array of two ints for pipe to fill.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fds)
}

fn close(fd: libc::c_int) {
    // SAFETY: closing a descriptor this process owns.
    unsafe { libc::close(fd) };
}

/// One byte through a pipe, raw syscalls only; false when the pipe is broken.
fn send(fd: libc::c_int) -> bool {
    let byte = 1u8;
    // SAFETY: writing one byte from a live u8.
    unsafe { libc::write(fd, std::ptr::from_ref(&byte).cast(), 1) == 1 }
}

fn receive(fd: libc::c_int) -> bool {
    let mut byte = 0u8;
    // SAFETY: reading one byte into a live u8.
    unsafe { libc::read(fd, std::ptr::from_mut(&mut byte).cast(), 1) == 1 }
}

/// Forks a child that runs `body` and leaves with `_exit` (status 0 when `body` returned
/// true). `body` may only make raw, async-signal-safe syscalls: the parent may have
/// other threads (bpftrace's output reader).
fn fork(body: impl FnOnce() -> bool) -> io::Result<libc::pid_t> {
    // SAFETY: the child runs `body`, which by this function's contract only makes raw,
    // async-signal-safe syscalls, and leaves with _exit: no allocation, no locks.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        let ok = body();
        // SAFETY: leaving the forked child without running the parent's destructors.
        unsafe { libc::_exit(i32::from(!ok)) };
    }
    Ok(pid)
}

/// Reaps `pid`; its CPU time, or an error when it did not exit with 0.
fn reap(pid: libc::pid_t) -> io::Result<Duration> {
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: waiting for our own child into live locals.
        let waited = unsafe { libc::wait4(pid, &raw mut status, 0, &raw mut usage) };
        if waited == pid {
            break;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(io::Error::other(format!(
            "ping-pong child {pid} failed: status {status:#x}"
        )));
    }
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Ok(time(usage.ru_utime) + time(usage.ru_stime))
}

/// Pins the calling process to `cpu` (a raw syscall: safe in a forked child).
fn pin(cpu: usize) -> bool {
    // SAFETY: an all-zero cpu_set_t is the empty set; CPU_SET writes inside it (it checks
    // the index against the set's size), and sched_setaffinity reads the live set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set) == 0
    }
}

/// The CPU both ping-pong processes run on: the last online one (away from CPU 0,
/// where most housekeeping lands).
pub fn bench_cpu() -> usize {
    // SAFETY: sysconf has no preconditions.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(online).unwrap_or(1).saturating_sub(1)
}

/// Runs `round_trips` round trips of the ping-pong and measures them. Both processes
/// are pinned to `cpu`: every hop is then a wakeup and a switch on that CPU, the same
/// regime whatever else the machine runs (unpinned, the pair spreads over idle CPUs and
/// each hop becomes a cross-CPU wakeup through idle, or shares a CPU under load, and
/// the two regimes differ by a factor of five).
pub fn ping_pong(round_trips: u32, cpu: usize) -> io::Result<Usage> {
    let there = pipe()?;
    let back = pipe()?;
    let ctxt_before = ctxt()?;
    let started = Instant::now();
    let first = fork(|| {
        if !pin(cpu) {
            return false;
        }
        close(there[0]);
        close(back[1]);
        (0..round_trips).all(|_| send(there[1]) && receive(back[0]))
    });
    let second = fork(|| {
        if !pin(cpu) {
            return false;
        }
        close(there[1]);
        close(back[0]);
        (0..round_trips).all(|_| receive(there[0]) && send(back[1]))
    });
    for fd in there.into_iter().chain(back) {
        close(fd);
    }
    // Reap whatever was forked before reporting a failure to fork.
    let first_cpu = first.and_then(reap);
    let second_cpu = second.and_then(reap);
    let wall = started.elapsed();
    let switches = ctxt()? - ctxt_before;
    Ok(Usage {
        wall,
        cpu: first_cpu? + second_cpu?,
        switches,
    })
}
