//! The kernel's own accounting of BPF program run time (`BPF_ENABLE_STATS`), for the
//! in-kernel cost per sample: a direct measure that other load on the machine does not
//! blur, unlike a workload's run time.

use std::collections::BTreeSet;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use libbpf_rs::libbpf_sys;
use libbpf_rs::query::ProgInfoIter;

/// Keeps run-time statistics enabled while alive.
pub struct StatsEnabled {
    _fd: OwnedFd,
}

/// Enables run-time statistics for every BPF program until the guard is dropped.
pub fn enable() -> io::Result<StatsEnabled> {
    // SAFETY: a plain syscall wrapper taking an enum value.
    let fd = unsafe { libbpf_sys::bpf_enable_stats(libbpf_sys::BPF_STATS_RUN_TIME) };
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(-fd));
    }
    // SAFETY: the call returned a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    Ok(StatsEnabled { _fd: fd })
}

/// Total (run time ns, runs) of the BPF programs process `pid` holds open.
pub fn of_process(pid: u32) -> io::Result<(u64, u64)> {
    let mut ids = BTreeSet::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fdinfo"))? {
        let Ok(text) = std::fs::read_to_string(entry?.path()) else {
            continue;
        };
        let id = text
            .lines()
            .find_map(|l| l.strip_prefix("prog_id:"))
            .and_then(|v| v.trim().parse::<u32>().ok());
        ids.extend(id);
    }
    Ok(ProgInfoIter::default()
        .filter(|info| ids.contains(&info.id))
        .fold((0, 0), |(time, runs), info| {
            (time + info.run_time_ns, runs + info.run_cnt)
        }))
}
