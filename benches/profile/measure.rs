//! Reaping a child with its resource usage: wall time, CPU time and peak RSS.

use std::io;
use std::process::Child;
use std::time::{Duration, Instant};

/// What a child process cost.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// From `started` to its exit.
    pub wall: Duration,
    /// User plus system CPU time (its own, and its reaped children's).
    pub cpu: Duration,
    /// Peak resident set size, KiB.
    pub max_rss_kb: u64,
}

fn timeval(tv: libc::timeval) -> Duration {
    Duration::from_secs(tv.tv_sec as u64) + Duration::from_micros(tv.tv_usec as u64)
}

/// Waits for `child` with `wait4`, so its rusage comes with its exit status; an exit
/// other than 0 (or SIGINT) is an error. The child must not be waited for otherwise.
pub fn reap(child: &Child, started: Instant) -> io::Result<Usage> {
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain old data; all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: status and usage are live, writable locals; pid is our own child's.
        let ret = unsafe { libc::wait4(pid, &raw mut status, 0, &raw mut usage) };
        if ret == pid {
            break;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    let wall = started.elapsed();
    // perf record re-raises the SIGINT it was stopped with once it has written its data.
    let stopped_by_sigint = libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGINT;
    let succeeded = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    if !succeeded && !stopped_by_sigint {
        return Err(io::Error::other(format!(
            "child {pid} failed: status {status:#x}"
        )));
    }
    Ok(Usage {
        wall,
        cpu: timeval(usage.ru_utime) + timeval(usage.ru_stime),
        max_rss_kb: usage.ru_maxrss as u64,
    })
}
