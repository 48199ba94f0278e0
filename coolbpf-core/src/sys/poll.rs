//! Waiting on a kernel buffer's epoll fd and a stop signal at once.
//!
//! libbpf's ring and perf buffers expose an epoll fd; polling that fd together with an
//! eventfd lets a consumer thread sleep until data arrives or it is asked to stop, with
//! no timeout-driven wakeups and no delay on stop.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// An eventfd used as a wake-up signal.
#[derive(Debug)]
pub struct Waker {
    fd: OwnedFd,
}

impl Waker {
    /// A new, unsignalled waker.
    pub fn new() -> io::Result<Self> {
        // SAFETY: eventfd has no pointer arguments; a non-negative return is a new fd.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { fd })
    }

    /// Signals the waker; stays signalled (level-triggered) until the fd is closed.
    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to an eventfd we own. A full counter
        // (EAGAIN) means it is already signalled, which is all we need.
        unsafe {
            libc::write(self.fd.as_raw_fd(), std::ptr::from_ref(&one).cast(), 8);
        }
    }

    fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// What [`wait`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// The buffer has data to consume.
    pub data: bool,
    /// The waker was signalled.
    pub woken: bool,
}

/// Sleeps until `buffer_fd` is readable, `waker` is signalled, or `timeout` passes.
/// Interrupted waits return as "nothing ready".
pub fn wait(buffer_fd: RawFd, waker: &Waker, timeout: Duration) -> io::Result<Readiness> {
    let mut fds = [
        libc::pollfd {
            fd: buffer_fd,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: waker.raw(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let millis = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: fds is a live array of two initialised pollfd structs and its length is
    // passed alongside; poll only writes their revents fields.
    let ret = unsafe { libc::poll(fds.as_mut_ptr(), 2, millis) };
    if ret < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(Readiness {
                data: false,
                woken: false,
            });
        }
        return Err(err);
    }
    Ok(Readiness {
        data: fds[0].revents != 0,
        woken: fds[1].revents != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waker_wakes_and_timeout_times_out() {
        let waker = Waker::new().unwrap();
        let other = Waker::new().unwrap();
        let idle = wait(other.raw(), &waker, Duration::from_millis(10)).unwrap();
        assert_eq!(
            idle,
            Readiness {
                data: false,
                woken: false
            }
        );
        waker.wake();
        let woken = wait(other.raw(), &waker, Duration::from_secs(5)).unwrap();
        assert!(woken.woken && !woken.data);
        other.wake();
        assert!(
            wait(other.raw(), &waker, Duration::from_secs(5))
                .unwrap()
                .data
        );
    }
}
