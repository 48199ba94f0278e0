//! `RLIMIT_MEMLOCK`, which kernels before 5.11 charge BPF maps and programs against.

use std::io;

/// A resource limit; `None` means unlimited (`RLIM_INFINITY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The limit enforced now.
    pub soft: Option<u64>,
    /// The ceiling an unprivileged process may raise the soft limit to.
    pub hard: Option<u64>,
}

impl Limit {
    /// Whether both limits are unlimited.
    pub fn is_unlimited(self) -> bool {
        self.soft.is_none() && self.hard.is_none()
    }
}

fn from_raw(value: libc::rlim_t) -> Option<u64> {
    (value != libc::RLIM_INFINITY).then_some(value)
}

/// The calling process's `RLIMIT_MEMLOCK`.
pub fn memlock() -> io::Result<Limit> {
    let mut raw = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `raw` is a valid, writable rlimit that the kernel fills in.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &raw mut raw) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Limit {
        soft: from_raw(raw.rlim_cur),
        hard: from_raw(raw.rlim_max),
    })
}

/// Sets `RLIMIT_MEMLOCK` to unlimited; raising the hard limit needs `CAP_SYS_RESOURCE`
/// (EPERM otherwise).
pub fn set_memlock_unlimited() -> io::Result<()> {
    let raw = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: `raw` is a valid rlimit that the kernel only reads.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &raw const raw) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_current_limit() {
        // Whatever the limit, reading it works and an unlimited value maps to None.
        let limit = memlock().unwrap();
        assert_eq!(
            limit.is_unlimited(),
            limit.soft.is_none() && limit.hard.is_none()
        );
        assert_eq!(from_raw(libc::RLIM_INFINITY), None);
        assert_eq!(from_raw(65536), Some(65536));
    }
}
