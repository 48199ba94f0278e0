//! `runqlat`: how long runnable tasks wait for a CPU (run-queue latency), as log2
//! histograms in microseconds: in all, per CPU or per process.
//!
//! Hooks: `sched:sched_wakeup` and `sched:sched_wakeup_new` (a task becomes runnable) and
//! `sched:sched_switch` (a task still runnable when switched out is queued again; the task
//! switched in leaves the queue), as tp_btf, else raw_tp, else classic tracepoints. The
//! histograms are cumulative since start. The probe also counts every sched_switch it saw
//! (`sched_switch_total`), which the kernel's `ctxt` in /proc/stat can be checked against.

use coolbpf_core::{Plugin, PluginContext, Record, Result};

use crate::options::{OptionSpec, ProbeOptions};
use crate::sched::{HookKind, Per, SchedHistogram, HOOK};

static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/runqlat.bpf.o"));

/// The probe's name in the registry and in its records.
pub const NAME: &str = "runqlat";

/// The histogram metric's name.
pub const METRIC: &str = "runq_latency";

const ROLES: [&str; 3] = ["wakeup", "wakeup_new", "switch"];

const PER: OptionSpec = OptionSpec {
    name: "per",
    help: "one histogram in all (total), per CPU (cpu) or per process (pid)",
    default: "total",
};

/// Options `runqlat` accepts besides `--pid`.
pub const OPTIONS: &[OptionSpec] = &[PER, HOOK];

/// How to run `runqlat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RunqlatConfig {
    /// Measure only this process's tasks (tgid); `None` measures every task.
    pub pid: Option<u32>,
    /// How histograms are split.
    pub per: Per,
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
            hook: options.get(&HOOK)?,
        })
    }
}

/// A running `runqlat`: a [`SchedHistogram`] (its readers are reached through `Deref`).
#[derive(Debug)]
pub struct Runqlat(SchedHistogram);

impl Runqlat {
    /// Loads and attaches the probe.
    pub fn start(config: &RunqlatConfig) -> Result<Self> {
        SchedHistogram::start(OBJECT, &ROLES, config.hook, config.pid, config.per).map(Self)
    }
}

impl std::ops::Deref for Runqlat {
    type Target = SchedHistogram;

    fn deref(&self) -> &SchedHistogram {
        &self.0
    }
}

impl std::ops::DerefMut for Runqlat {
    fn deref_mut(&mut self) -> &mut SchedHistogram {
        &mut self.0
    }
}

/// `runqlat` as a runtime plugin: every interval, one `runq_latency` histogram per key,
/// the `sched_switch_total` counter and the loss counters.
#[derive(Debug, Default)]
pub struct RunqlatPlugin {
    config: RunqlatConfig,
    running: Option<Runqlat>,
}

impl RunqlatPlugin {
    /// A plugin that will run with `config`.
    pub fn new(config: RunqlatConfig) -> Self {
        Self {
            config,
            running: None,
        }
    }
}

impl Plugin for RunqlatPlugin {
    fn name(&self) -> &str {
        NAME
    }

    fn start(&mut self, _ctx: &PluginContext) -> Result<()> {
        self.running = Some(Runqlat::start(&self.config)?);
        Ok(())
    }

    fn collect(&mut self, out: &mut Vec<Record>) -> Result<()> {
        if let Some(running) = &self.running {
            out.extend(running.records(NAME, METRIC)?);
        }
        Ok(())
    }

    fn stop(&mut self) -> Result<()> {
        self.running = None;
        Ok(())
    }
}

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
        assert!(err.to_string().contains("per, hook"), "{err}");
        assert!(RunqlatConfig::from_options(&ProbeOptions::new().with("per", "tid")).is_err());
    }
}
