//! `softirqs`: time spent in soft interrupt handlers, per vector (`TIMER`, `NET_RX`,
//! `RCU`...), as log2 histograms in nanoseconds (count: handler runs, sum: total time).
//!
//! Hooks: `irq:softirq_entry` and `irq:softirq_exit` (tp_btf, else raw_tp, else classic
//! tracepoints). The kernel counts the same runs per vector in /proc/softirqs.
//! Cumulative since start.

use coolbpf_core::stream::KernelLosses;
use coolbpf_core::{
    labels, BpfObject, Histogram, Layout, MapView, Metric, ObjectBuilder, PluginContext, Record,
    Result,
};

use crate::hardirqs::reject_pid;
use crate::options::{OptionSpec, ProbeOptions};
use crate::probe_plugin::{ProbePlugin, ProbeSource};
use crate::sched::{HookKind, Roles, HOOK};

static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/softirqs.bpf.o"));

/// The probe's name in the registry and in its records.
pub const NAME: &str = "softirqs";

/// The histogram metric's name.
pub const METRIC: &str = "softirq_time";

const ROLES: [&str; 2] = ["entry", "exit"];

/// The vectors' names, as the kernel writes them (/proc/softirqs, the tracepoints).
const VECTORS: [&str; 10] = [
    "HI", "TIMER", "NET_TX", "NET_RX", "BLOCK", "IRQ_POLL", "TASKLET", "SCHED", "HRTIMER", "RCU",
];

/// Slots of the `hists` map (MAX_VECTORS in softirqs.bpf.c).
const SLOTS: u32 = 16;

/// Options `softirqs` accepts (softirqs belong to no process: `--pid` is refused).
pub const OPTIONS: &[OptionSpec] = &[HOOK];

/// How to run `softirqs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SoftirqsConfig {
    /// Which kind of hook to attach with.
    pub hook: HookKind,
}

impl SoftirqsConfig {
    /// The config described by registry options.
    pub fn from_options(options: &ProbeOptions) -> Result<Self> {
        options.check(NAME, OPTIONS)?;
        reject_pid(NAME, options)?;
        Ok(Self {
            hook: options.get(&HOOK)?,
        })
    }
}

/// The kernel's name of softirq vector `vector` (`vec_N` for one it does not have yet).
pub fn vector_name(vector: u32) -> String {
    VECTORS
        .get(vector as usize)
        .map_or_else(|| format!("vec_{vector}"), |name| (*name).to_owned())
}

/// Time in one vector's handlers.
#[derive(Debug, Clone, PartialEq)]
pub struct SoftirqTime {
    /// The vector number.
    pub vector: u32,
    /// Its name (`TIMER`, `NET_RX`...).
    pub name: String,
    /// Handler run times, ns.
    pub histogram: Histogram,
}

/// A running `softirqs`.
#[derive(Debug)]
pub struct Softirqs {
    object: BpfObject,
    hists: MapView,
    programs: Vec<String>,
}

impl Softirqs {
    /// Loads and attaches the probe.
    pub fn start(config: &SoftirqsConfig) -> Result<Self> {
        let roles = Roles::new(&ROLES, config.hook);
        let mut object = roles.configure(ObjectBuilder::from_bytes(OBJECT)).load()?;
        let programs = roles.attach(&mut object)?;
        Ok(Self {
            hists: object.map("hists")?,
            object,
            programs,
        })
    }

    /// The programs attached (`entry_btf` and `exit_btf`, say).
    pub fn programs(&self) -> &[String] {
        &self.programs
    }

    /// Every vector that ran so far (per-CPU histograms summed).
    pub fn vectors(&self) -> Result<Vec<SoftirqTime>> {
        let mut out = Vec::new();
        for vector in 0..SLOTS {
            let histogram = self
                .hists
                .histogram(&vector.to_ne_bytes(), Layout::Log2, "ns")?;
            if histogram.count > 0 {
                out.push(SoftirqTime {
                    vector,
                    name: vector_name(vector),
                    histogram,
                });
            }
        }
        Ok(out)
    }

    /// Kernel-side losses.
    pub fn losses(&self) -> Result<KernelLosses> {
        KernelLosses::read(&self.object)
    }

    /// Detaches the programs; what was measured stays readable.
    pub fn stop(&mut self) {
        self.object.detach_all();
    }
}

impl ProbeSource for Softirqs {
    const NAME: &'static str = NAME;
    type Config = SoftirqsConfig;

    fn start(config: &SoftirqsConfig, _ctx: &PluginContext) -> Result<Self> {
        Self::start(config)
    }

    fn collect(&self, out: &mut Vec<Record>) -> Result<()> {
        for vector in self.vectors()? {
            let labels = labels! { "vector" => vector.name };
            out.push(Metric::histogram(NAME, METRIC, labels, vector.histogram).into());
        }
        out.extend(self.losses()?.to_records(NAME));
        Ok(())
    }
}

/// `softirqs` as a runtime plugin: every interval, one `softirq_time` histogram per
/// vector that ran (label `vector`), and the loss counters.
pub type SoftirqsPlugin = ProbePlugin<Softirqs>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_have_the_kernels_names() {
        assert_eq!(vector_name(1), "TIMER");
        assert_eq!(vector_name(9), "RCU");
        assert_eq!(vector_name(12), "vec_12");
    }
}
