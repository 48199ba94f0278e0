//! `cpudist`: how long tasks run each time they get a CPU (switch-in to switch-out), as
//! log2 histograms in microseconds: in all or per process.
//!
//! Hook: `sched:sched_switch` (tp_btf, else raw_tp, else the classic tracepoint), which
//! ends one task's time on the CPU and starts the next one's. CPUs' idle tasks are left
//! out. The histograms are cumulative since start; `sched_switch_total` counts every
//! switch seen.

use coolbpf_core::{Error, ObjectBuilder, PluginContext, Record, Result};

use crate::options::{OptionSpec, ProbeOptions};
use crate::probe_plugin::{ProbePlugin, ProbeSource};
use crate::sched::{HookKind, Per, Roles, SchedHistogram, HOOK};

static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/cpudist.bpf.o"));

/// The probe's name in the registry and in its records.
pub const NAME: &str = "cpudist";

/// The histogram metric's name.
pub const METRIC: &str = "on_cpu_time";

const ROLES: [&str; 1] = ["switch"];

const PER: OptionSpec = OptionSpec {
    name: "per",
    help: "one histogram in all (total) or per process (pid)",
    default: "total",
};

/// Options `cpudist` accepts besides `--pid`.
pub const OPTIONS: &[OptionSpec] = &[PER, HOOK];

/// How to run `cpudist`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpudistConfig {
    /// Measure only this process's tasks (tgid); `None` measures every task.
    pub pid: Option<u32>,
    /// How histograms are split: [`Per::Total`] or [`Per::Pid`].
    pub per: Per,
    /// Which kind of hook to attach with.
    pub hook: HookKind,
}

impl CpudistConfig {
    /// The config described by registry options.
    pub fn from_options(options: &ProbeOptions) -> Result<Self> {
        options.check(NAME, OPTIONS)?;
        let config = Self {
            pid: options.pid,
            per: options.get(&PER)?,
            hook: options.get(&HOOK)?,
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        if self.per == Per::Cpu {
            return Err(Error::InvalidArgument(format!(
                "option per=cpu: {}",
                PER.help
            )));
        }
        Ok(())
    }
}

/// A running `cpudist`: a [`SchedHistogram`] (its readers are reached through `Deref`).
#[derive(Debug)]
pub struct Cpudist(SchedHistogram);

impl Cpudist {
    /// Loads and attaches the probe.
    pub fn start(config: &CpudistConfig) -> Result<Self> {
        config.validate()?;
        SchedHistogram::start(
            ObjectBuilder::from_bytes(OBJECT),
            &Roles::new(&ROLES, config.hook),
            config.pid,
            config.per,
        )
        .map(Self)
    }
}

impl std::ops::Deref for Cpudist {
    type Target = SchedHistogram;

    fn deref(&self) -> &SchedHistogram {
        &self.0
    }
}

impl std::ops::DerefMut for Cpudist {
    fn deref_mut(&mut self) -> &mut SchedHistogram {
        &mut self.0
    }
}

impl ProbeSource for Cpudist {
    const NAME: &'static str = NAME;
    type Config = CpudistConfig;

    fn start(config: &CpudistConfig, _ctx: &PluginContext) -> Result<Self> {
        Self::start(config)
    }

    fn collect(&self, out: &mut Vec<Record>) -> Result<()> {
        out.extend(self.records(NAME, METRIC)?);
        Ok(())
    }
}

/// `cpudist` as a runtime plugin: every interval, one `on_cpu_time` histogram per key,
/// the `sched_switch_total` counter and the loss counters.
pub type CpudistPlugin = ProbePlugin<Cpudist>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_cpu_is_not_an_option_here() {
        let err = CpudistConfig::from_options(&ProbeOptions::new().with("per", "cpu")).unwrap_err();
        assert!(err.to_string().contains("total"), "{err}");
        let config = CpudistConfig::from_options(&ProbeOptions::new().with("per", "pid")).unwrap();
        assert_eq!(config.per, Per::Pid);
    }
}
