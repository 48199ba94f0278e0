//! [`ProfileConfig`] and the registry options it is built from.

use std::path::PathBuf;
use std::time::Duration;

use coolbpf_core::{Error, PerfEventKind, Result};

use crate::options::{OptionSpec, ProbeOptions};
use crate::stacks::python::PYTHON;
use crate::stacks::{UnwindMode, DEBUG_INFO, UNWIND};

use super::NAME;

/// The collection interval of a [`ProfilePlugin`](super::ProfilePlugin) made from a
/// default config: one profile per 10 s.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// Where the sampling rate is capped when the kernel does not say
/// (`/proc/sys/kernel/perf_event_max_sample_rate`'s usual default).
const DEFAULT_MAX_RATE: u64 = 100_000;

const FREQ: OptionSpec = OptionSpec {
    name: "freq",
    help: "samples per second per CPU (or per thread with --pid), a number >= 1",
    default: "99",
};
const EVENT: OptionSpec = OptionSpec {
    name: "event",
    help:
        "what to sample on: auto (cycles where there is a PMU, else cpu-clock), cpu-clock or cycles",
    default: "auto",
};
const CGROUP: OptionSpec = OptionSpec {
    name: "cgroup",
    help: "only tasks in this cgroup v2 directory (e.g. /sys/fs/cgroup/system.slice); empty: all",
    default: "",
};
const IDLE: OptionSpec = OptionSpec {
    name: "idle",
    help: "also sample the idle task (true or false)",
    default: "false",
};
const KERNEL: OptionSpec = OptionSpec {
    name: "kernel",
    help: "capture kernel stacks (true or false)",
    default: "true",
};
const USER: OptionSpec = OptionSpec {
    name: "user",
    help: "capture user stacks (true or false)",
    default: "true",
};
const BUFFER_KB: OptionSpec = OptionSpec {
    name: "buffer_kb",
    help: "ring buffer size in KiB, a power of two >= 4; 0 sizes it from the rate and CPUs",
    default: "0",
};

/// Options `profile` accepts besides `--pid`.
pub const OPTIONS: &[OptionSpec] = &[
    FREQ, EVENT, CGROUP, IDLE, KERNEL, USER, UNWIND, DEBUG_INFO, PYTHON, BUFFER_KB,
];

/// How to run the profiler.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)] // Independent switches, each an option of its own.
pub struct ProfileConfig {
    /// Samples per second: per CPU, or per thread when `pid` is set (default 99, which
    /// stays out of lockstep with timer ticks at 100 Hz).
    pub frequency: u64,
    /// The event to sample on; `None` picks `cycles` where the kernel has a hardware PMU
    /// and `cpu-clock` otherwise.
    pub event: Option<PerfEventKind>,
    /// Only this process: one perf event per thread, following threads it starts (see
    /// [`Profiler::follow_threads`](super::Profiler::follow_threads)).
    pub pid: Option<u32>,
    /// Only tasks in this cgroup v2 directory (every CPU is sampled, the BPF program
    /// keeps samples whose cgroup id matches).
    pub cgroup: Option<PathBuf>,
    /// Also keep samples of the idle task (pid 0).
    pub include_idle: bool,
    /// Capture kernel stacks.
    pub kernel_stacks: bool,
    /// Capture user stacks (walked as [`unwind`](Self::unwind) says).
    pub user_stacks: bool,
    /// How user stacks are walked (default: CFI, falling back to frame pointers).
    pub unwind: UnwindMode,
    /// Symbolize with DWARF where binaries have it: inlined functions become frames of
    /// their own and frames get source lines. Off, frames are named from symbol tables
    /// only (as bcc's tools do), which costs a fraction of the CPU time and memory on
    /// binaries with large debug info.
    pub debug_info: bool,
    /// Put the CPython frames of Python processes in their user stacks, walked by BPF
    /// from the interpreter's state at sample time (needs user stacks).
    pub python: bool,
    /// Ring buffer size in KiB (a power of two, at least 4); `None` sizes it to hold
    /// about a second of deep stacks from every CPU.
    pub buffer_kb: Option<u32>,
    /// How often a [`ProfilePlugin`](super::ProfilePlugin) emits its stacks; `None`
    /// leaves it to the runtime (what `coolbpf run --interval` sets).
    pub interval: Option<Duration>,
}

impl Default for ProfileConfig {
    fn default() -> Self {
        Self {
            frequency: 99,
            event: None,
            pid: None,
            cgroup: None,
            include_idle: false,
            kernel_stacks: true,
            user_stacks: true,
            unwind: UnwindMode::Cfi,
            debug_info: true,
            python: true,
            buffer_kb: None,
            interval: Some(DEFAULT_INTERVAL),
        }
    }
}

impl ProfileConfig {
    /// The config described by registry options (the runtime's interval applies).
    pub fn from_options(options: &ProbeOptions) -> Result<Self> {
        options.check(NAME, OPTIONS)?;
        let event: String = options.get(&EVENT)?;
        let cgroup: String = options.get(&CGROUP)?;
        let buffer_kb: u32 = options.get(&BUFFER_KB)?;
        let config = Self {
            frequency: options.get(&FREQ)?,
            event: match event.as_str() {
                "auto" => None,
                other => Some(other.parse()?),
            },
            pid: options.pid,
            cgroup: (!cgroup.is_empty()).then(|| PathBuf::from(cgroup)),
            include_idle: options.get(&IDLE)?,
            kernel_stacks: options.get(&KERNEL)?,
            user_stacks: options.get(&USER)?,
            unwind: options.get(&UNWIND)?,
            debug_info: options.get(&DEBUG_INFO)?,
            python: options.get(&PYTHON)?,
            buffer_kb: (buffer_kb != 0).then_some(buffer_kb),
            interval: None,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks what can be checked before touching the kernel.
    pub fn validate(&self) -> Result<()> {
        let max = max_sample_rate();
        if self.frequency == 0 || self.frequency > max {
            return Err(Error::InvalidArgument(format!(
                "profile frequency {} Hz: expected 1 to {max} (kernel.perf_event_max_sample_rate)",
                self.frequency
            )));
        }
        if !self.kernel_stacks && !self.user_stacks {
            return Err(Error::InvalidArgument(
                "profile: kernel and user stacks are both off; nothing to sample".into(),
            ));
        }
        if let Some(kb) = self.buffer_kb {
            if kb < 4 || !kb.is_power_of_two() {
                return Err(Error::InvalidArgument(format!(
                    "option buffer_kb={kb}: {}",
                    BUFFER_KB.help
                )));
            }
        }
        if self.interval.is_some_and(|i| i.is_zero()) {
            return Err(Error::InvalidArgument(
                "profile interval must be greater than zero".into(),
            ));
        }
        if matches!(self.event, Some(PerfEventKind::TaskClock)) && self.pid.is_none() {
            // task-clock only counts for a task: on a CPU-wide event it never fires.
            return Err(Error::InvalidArgument(
                "profile event task-clock needs a pid; use cpu-clock for every CPU".into(),
            ));
        }
        Ok(())
    }
}

/// The kernel's cap on sampling rates; what perf itself refuses to exceed.
fn max_sample_rate() -> u64 {
    std::fs::read_to_string("/proc/sys/kernel/perf_event_max_sample_rate")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .filter(|&rate| rate > 0)
        .unwrap_or(DEFAULT_MAX_RATE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_are_checked() {
        let config = ProfileConfig::from_options(
            &ProbeOptions::new()
                .with_pid(7)
                .with("freq", "49")
                .with("event", "cpu-clock")
                .with("cgroup", "/sys/fs/cgroup/x")
                .with("user", "false")
                .with("unwind", "fp")
                .with("debug_info", "false")
                .with("python", "false"),
        )
        .unwrap();
        assert_eq!(config.unwind, UnwindMode::FramePointers);
        assert!(!config.debug_info);
        assert!(!config.python);
        assert_eq!(config.frequency, 49);
        assert_eq!(config.event, Some(PerfEventKind::CpuClock));
        assert_eq!(config.pid, Some(7));
        assert_eq!(config.cgroup, Some(PathBuf::from("/sys/fs/cgroup/x")));
        assert!(config.kernel_stacks && !config.user_stacks);
        assert_eq!(config.interval, None);
        let defaults = ProfileConfig::from_options(&ProbeOptions::new()).unwrap();
        assert_eq!(defaults.frequency, 99);
        assert!(defaults.debug_info);
        assert!(defaults.python);
        assert_eq!(defaults.event, None);
        assert_eq!(defaults.buffer_kb, None);
        assert_eq!(defaults.unwind, UnwindMode::Cfi);
    }

    #[test]
    fn bad_values_are_invalid_arguments() {
        for (key, value) in [
            ("freq", "0"),
            ("freq", "fast"),
            ("freq", "100000000"),
            ("event", "bogus"),
            ("event", "task-clock"),
            ("buffer_kb", "3"),
            ("buffer_kb", "24"),
            ("idle", "maybe"),
            ("unwind", "dwarf"),
            ("python", "yes"),
            ("nope", "1"),
        ] {
            let err =
                ProfileConfig::from_options(&ProbeOptions::new().with(key, value)).expect_err(key);
            assert_eq!(
                err.kind(),
                coolbpf_core::ErrorKind::InvalidArgument,
                "{key}={value}"
            );
        }
        let none = ProbeOptions::new()
            .with("kernel", "false")
            .with("user", "false");
        assert!(ProfileConfig::from_options(&none).is_err());
    }
}
