//! `runqlat`: how long runnable tasks wait for a CPU (run-queue latency), as log2
//! histograms in microseconds: in all, per CPU or per process.
//!
//! Two methods, chosen by the `method` option:
//!
//! - [`Method::SchedInfo`] reads the scheduler's own per-task accounting (with
//!   CONFIG_SCHED_INFO, what `/proc/PID/schedstat` shows: total wait and number of waits)
//!   at `sched:sched_switch` alone, as tp_btf: the change since a task's previous
//!   switch-out is the wait that preceded the run now ending. One program per switch and
//!   no clock read, about half the cost of the other method on a switch-heavy machine. A
//!   wait is accounted when the run after it ends; a task that existed before the probe
//!   started has its first wait taken as a baseline, not measured.
//! - [`Method::Wakeup`] timestamps a task at `sched:sched_wakeup` and
//!   `sched:sched_wakeup_new` (it becomes runnable) and at `sched:sched_switch` (a task
//!   still runnable when switched out is queued again), and measures at the switch that
//!   gives it a CPU: as tp_btf, else raw_tp, else classic tracepoints, on any kernel.
//!
//! `auto` (the default) takes the first where the kernel allows it. The histograms are
//! cumulative since start. The probe also counts every sched_switch it saw
//! (`sched_switch_total`), which the kernel's `ctxt` in /proc/stat can be checked
//! against.

use std::fmt;
use std::str::FromStr;

use coolbpf_core::{Error, ObjectBuilder, PluginContext, Record, Result};

use crate::options::{OptionSpec, ProbeOptions};
use crate::probe_plugin::{ProbePlugin, ProbeSource};
use crate::sched::{monotonic_ns, HookKind, Per, Roles, SchedHistogram, HOOK};

static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/runqlat.bpf.o"));

/// The probe's name in the registry and in its records.
pub const NAME: &str = "runqlat";

/// The histogram metric's name.
pub const METRIC: &str = "runq_latency";

/// The roles of the wakeup method's programs.
const WAKEUP_ROLES: [&str; 3] = ["wakeup", "wakeup_new", "switch"];

/// The sched_info method's one program.
const SCHEDINFO_PROGRAM: &str = "switch_schedinfo_btf";

const PER: OptionSpec = OptionSpec {
    name: "per",
    help: "one histogram in all (total), per CPU (cpu) or per process (pid)",
    default: "total",
};

const METHOD: OptionSpec = OptionSpec {
    name: "method",
    help: "how waits are measured: schedinfo (the scheduler's own accounting, read at \
           sched_switch; needs tp_btf and CONFIG_SCHED_INFO), wakeup (timestamps at \
           wakeup and switch, any hook kind) or auto (schedinfo where possible)",
    default: "auto",
};

/// Options `runqlat` accepts besides `--pid`.
pub const OPTIONS: &[OptionSpec] = &[PER, METHOD, HOOK];

/// How `runqlat` measures waits (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    /// [`SchedInfo`](Self::SchedInfo) where the kernel allows it, else
    /// [`Wakeup`](Self::Wakeup).
    #[default]
    Auto,
    /// The scheduler's per-task accounting, read at sched_switch (tp_btf only).
    SchedInfo,
    /// Timestamps at the wakeup and switch tracepoints.
    Wakeup,
}

impl FromStr for Method {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "auto" => Ok(Self::Auto),
            "schedinfo" => Ok(Self::SchedInfo),
            "wakeup" => Ok(Self::Wakeup),
            _ => Err(Error::InvalidArgument(format!(
                "method {text:?}: expected auto, schedinfo or wakeup"
            ))),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::SchedInfo => "schedinfo",
            Self::Wakeup => "wakeup",
        })
    }
}

/// How to run `runqlat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RunqlatConfig {
    /// Measure only this process's tasks (tgid); `None` measures every task.
    pub pid: Option<u32>,
    /// How histograms are split.
    pub per: Per,
    /// How waits are measured.
    pub method: Method,
    /// Which kind of hook to attach with.
    pub hook: HookKind,
}

impl RunqlatConfig {
    /// The config described by registry options.
    pub fn from_options(options: &ProbeOptions) -> Result<Self> {
        options.check(NAME, OPTIONS)?;
        Ok(Self {
            pid: options.pid,
            per: options.get(&PER)?,
            method: options.get(&METHOD)?,
            hook: options.get(&HOOK)?,
        })
    }
}

/// Whether the kernel keeps per-task run-queue accounting: `/proc/self/schedstat` exists
/// (CONFIG_SCHED_INFO) and counts this process's waits (before 5.13 the accounting could
/// be compiled in but off, and then reads zero).
fn sched_info_active() -> bool {
    std::fs::read_to_string("/proc/self/schedstat").is_ok_and(|text| {
        text.split_whitespace()
            .nth(2)
            .and_then(|waits| waits.parse::<u64>().ok())
            .is_some_and(|waits| waits > 0)
    })
}

/// A running `runqlat`: a [`SchedHistogram`] (its readers are reached through `Deref`).
#[derive(Debug)]
pub struct Runqlat {
    histogram: SchedHistogram,
    method: Method,
}

impl Runqlat {
    /// Loads and attaches the probe.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for [`Method::SchedInfo`] with a hook kind other than
    /// tp_btf; the kernel's refusal when no method it allows is left.
    pub fn start(config: &RunqlatConfig) -> Result<Self> {
        let schedinfo_hook = matches!(config.hook, HookKind::Auto | HookKind::TpBtf);
        match config.method {
            Method::SchedInfo if !schedinfo_hook => Err(Error::InvalidArgument(format!(
                "runqlat method schedinfo attaches with tp_btf only, not hook {}",
                config.hook
            ))),
            Method::SchedInfo => Self::start_schedinfo(config),
            Method::Auto if schedinfo_hook && sched_info_active() => {
                // A kernel without task storage or sched_info refuses the program: the
                // wakeup method works everywhere.
                Self::start_schedinfo(config).or_else(|_| Self::start_wakeup(config))
            }
            Method::Auto | Method::Wakeup => Self::start_wakeup(config),
        }
    }

    fn start_schedinfo(config: &RunqlatConfig) -> Result<Self> {
        let builder = Roles::new(&WAKEUP_ROLES, HookKind::Auto)
            .disable(ObjectBuilder::from_bytes(OBJECT))
            .global("schedinfo_since_ns", &monotonic_ns());
        let histogram = SchedHistogram::start(
            builder,
            &Roles::single(SCHEDINFO_PROGRAM),
            config.pid,
            config.per,
        )?;
        Ok(Self {
            histogram,
            method: Method::SchedInfo,
        })
    }

    fn start_wakeup(config: &RunqlatConfig) -> Result<Self> {
        let builder = Roles::single(SCHEDINFO_PROGRAM).disable(ObjectBuilder::from_bytes(OBJECT));
        let roles = Roles::new(&WAKEUP_ROLES, config.hook);
        let histogram = SchedHistogram::start(builder, &roles, config.pid, config.per)?;
        Ok(Self {
            histogram,
            method: Method::Wakeup,
        })
    }

    /// The method running: [`Method::SchedInfo`] or [`Method::Wakeup`].
    pub fn method(&self) -> Method {
        self.method
    }
}

impl std::ops::Deref for Runqlat {
    type Target = SchedHistogram;

    fn deref(&self) -> &SchedHistogram {
        &self.histogram
    }
}

impl std::ops::DerefMut for Runqlat {
    fn deref_mut(&mut self) -> &mut SchedHistogram {
        &mut self.histogram
    }
}

impl ProbeSource for Runqlat {
    const NAME: &'static str = NAME;
    type Config = RunqlatConfig;

    fn start(config: &RunqlatConfig, _ctx: &PluginContext) -> Result<Self> {
        Self::start(config)
    }

    fn collect(&self, out: &mut Vec<Record>) -> Result<()> {
        out.extend(self.records(NAME, METRIC)?);
        Ok(())
    }
}

/// `runqlat` as a runtime plugin: every interval, one `runq_latency` histogram per key,
/// the `sched_switch_total` counter and the loss counters.
pub type RunqlatPlugin = ProbePlugin<Runqlat>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        let config =
            RunqlatConfig::from_options(&ProbeOptions::new().with("per", "cpu").with_pid(3))
                .unwrap();
        assert_eq!((config.per, config.pid), (Per::Cpu, Some(3)));
        let err = RunqlatConfig::from_options(&ProbeOptions::new().with("unit", "ms")).unwrap_err();
        assert!(err.to_string().contains("per, method, hook"), "{err}");
        assert!(RunqlatConfig::from_options(&ProbeOptions::new().with("per", "tid")).is_err());
        let config =
            RunqlatConfig::from_options(&ProbeOptions::new().with("method", "wakeup")).unwrap();
        assert_eq!(config.method, Method::Wakeup);
        let err =
            RunqlatConfig::from_options(&ProbeOptions::new().with("method", "ktime")).unwrap_err();
        assert!(err.to_string().contains("schedinfo"), "{err}");
        for method in [Method::Auto, Method::SchedInfo, Method::Wakeup] {
            assert_eq!(method.to_string().parse::<Method>().unwrap(), method);
        }
    }

    #[test]
    fn schedinfo_needs_tp_btf() {
        let config = RunqlatConfig {
            method: Method::SchedInfo,
            hook: HookKind::RawTp,
            ..RunqlatConfig::default()
        };
        let err = Runqlat::start(&config).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
        assert!(err.to_string().contains("raw_tp"), "{err}");
    }
}
