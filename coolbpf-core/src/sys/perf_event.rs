//! `perf_event_open(2)` for sampling events, and the online CPU list.

use std::fmt;
use std::os::fd::{FromRawFd, OwnedFd};
use std::str::FromStr;

use libbpf_rs::libbpf_sys as sys;

use crate::error::{Error, Result};

/// The event a perf event samples on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PerfEventKind {
    /// Software CPU clock: works everywhere, including VMs without a PMU.
    CpuClock,
    /// Software per-task clock.
    TaskClock,
    /// Hardware CPU cycles (needs a PMU).
    Cycles,
    /// Hardware retired instructions (needs a PMU).
    Instructions,
}

impl PerfEventKind {
    fn type_and_config(self) -> (u32, u64) {
        match self {
            Self::CpuClock => (
                sys::PERF_TYPE_SOFTWARE,
                u64::from(sys::PERF_COUNT_SW_CPU_CLOCK),
            ),
            Self::TaskClock => (
                sys::PERF_TYPE_SOFTWARE,
                u64::from(sys::PERF_COUNT_SW_TASK_CLOCK),
            ),
            Self::Cycles => (
                sys::PERF_TYPE_HARDWARE,
                u64::from(sys::PERF_COUNT_HW_CPU_CYCLES),
            ),
            Self::Instructions => (
                sys::PERF_TYPE_HARDWARE,
                u64::from(sys::PERF_COUNT_HW_INSTRUCTIONS),
            ),
        }
    }

    /// Whether this event needs a hardware PMU.
    pub fn is_hardware(self) -> bool {
        matches!(self, Self::Cycles | Self::Instructions)
    }
}

impl fmt::Display for PerfEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::CpuClock => "cpu-clock",
            Self::TaskClock => "task-clock",
            Self::Cycles => "cycles",
            Self::Instructions => "instructions",
        })
    }
}

impl FromStr for PerfEventKind {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "cpu-clock" => Ok(Self::CpuClock),
            "task-clock" => Ok(Self::TaskClock),
            "cycles" | "cpu-cycles" => Ok(Self::Cycles),
            "instructions" => Ok(Self::Instructions),
            _ => Err(Error::InvalidArgument(format!(
                "perf event {text:?}: expected cpu-clock, task-clock, cycles or instructions"
            ))),
        }
    }
}

/// How often a sampling event fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampling {
    /// Samples per second (the kernel adjusts the period).
    Frequency(u64),
    /// One sample every N events (ns for the software clocks).
    Period(u64),
}

impl fmt::Display for Sampling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Frequency(hz) => write!(f, "{hz}hz"),
            Self::Period(period) => write!(f, "{period}"),
        }
    }
}

impl FromStr for Sampling {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let bad = || {
            Error::InvalidArgument(format!(
                "sampling rate {text:?}: expected e.g. 99hz or a period like 100000"
            ))
        };
        let (number, frequency) = match text.strip_suffix("hz") {
            Some(number) => (number, true),
            None => (text, false),
        };
        let value: u64 = number.parse().map_err(|_| bad())?;
        if value == 0 {
            return Err(bad());
        }
        Ok(if frequency {
            Self::Frequency(value)
        } else {
            Self::Period(value)
        })
    }
}

/// Opens a sampling event on `cpu` (or -1) for `pid` (or -1), close-on-exec.
pub fn open_sampling(
    kind: PerfEventKind,
    sampling: Sampling,
    pid: i32,
    cpu: i32,
) -> Result<OwnedFd> {
    let (type_, config) = kind.type_and_config();
    let mut attr = sys::perf_event_attr {
        type_,
        size: size_of::<sys::perf_event_attr>() as u32,
        config,
        ..Default::default()
    };
    match sampling {
        Sampling::Frequency(hz) => {
            attr.set_freq(1);
            attr.__bindgen_anon_1.sample_freq = hz;
        }
        Sampling::Period(period) => attr.__bindgen_anon_1.sample_period = period,
    }
    // SAFETY: attr is a fully initialised perf_event_attr whose size field matches the
    // struct; the other arguments are plain integers. The kernel only reads attr.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            std::ptr::from_ref(&attr),
            pid,
            cpu,
            -1,
            libc::c_ulong::from(sys::PERF_FLAG_FD_CLOEXEC),
        )
    };
    if fd < 0 {
        let err = std::io::Error::last_os_error();
        let hint = match err.raw_os_error() {
            Some(libc::ENOENT | libc::EOPNOTSUPP) if kind.is_hardware() => {
                " (no hardware PMU here: use cpu-clock)"
            }
            Some(libc::ESRCH) => " (no such process)",
            Some(libc::EACCES | libc::EPERM) => " (needs CAP_PERFMON or root)",
            _ => "",
        };
        return Err(Error::io(
            format!("perf_event_open({kind}, pid {pid}, cpu {cpu}){hint}"),
            err,
        ));
    }
    // SAFETY: the syscall returned a new, valid fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The online CPUs, from `/sys/devices/system/cpu/online`.
pub fn online_cpus() -> Result<Vec<u32>> {
    let path = "/sys/devices/system/cpu/online";
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::io(format!("reading {path}"), e))?;
    parse_cpu_list(&text)
}

/// Parses a kernel CPU list such as `0-3,5,7-8`.
pub fn parse_cpu_list(text: &str) -> Result<Vec<u32>> {
    let bad = || Error::Decode(format!("bad CPU list {text:?}"));
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((first, last)) => {
                let (first, last): (u32, u32) = (
                    first.parse().map_err(|_| bad())?,
                    last.parse().map_err(|_| bad())?,
                );
                if first > last {
                    return Err(bad());
                }
                cpus.extend(first..=last);
            }
            None => cpus.push(part.parse().map_err(|_| bad())?),
        }
    }
    Ok(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(
            parse_cpu_list("0-3,5,7-8\n").unwrap(),
            vec![0, 1, 2, 3, 5, 7, 8]
        );
        assert_eq!(parse_cpu_list("0\n").unwrap(), vec![0]);
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("a").is_err());
    }

    #[test]
    fn sampling_forms() {
        assert_eq!("99hz".parse::<Sampling>().unwrap(), Sampling::Frequency(99));
        assert_eq!(
            "100000".parse::<Sampling>().unwrap(),
            Sampling::Period(100_000)
        );
        assert!("0hz".parse::<Sampling>().is_err());
        assert!("fast".parse::<Sampling>().is_err());
    }
}
