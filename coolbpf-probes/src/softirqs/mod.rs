//! `softirqs`: time spent in soft interrupt handlers, per vector (`TIMER`, `NET_RX`,
//! `RCU`...), as log2 histograms in nanoseconds (count: handler runs, sum: total time).
//!
//! Hooks: `irq:softirq_entry` and `irq:softirq_exit` (tp_btf, else raw_tp, else classic
//! tracepoints). The kernel counts the same runs per vector in /proc/softirqs.
//! Cumulative since start.
//!
//! Not every run reaches BPF. On this machine's 6.18 kernel, a few percent of the `SCHED`
//! and `RCU` runs of an idle CPU fire neither `softirq_entry` nor `softirq_exit` for any
//! BPF program (a bare tp_btf counter sees 131 `SCHED` entries and 131 exits where
//! /proc/softirqs counts 136; bpftrace's tracepoints miss them too). Those runs cannot be
//! timed, but they are not hidden: [`SoftirqTime::unseen_runs`] is how many more runs
//! /proc/softirqs counted since the probe started than the histogram holds.

use std::collections::BTreeMap;

use coolbpf_core::stream::KernelLosses;
use coolbpf_core::{
    labels, BpfObject, Error, Histogram, Layout, MapView, Metric, ObjectBuilder, PluginContext,
    Record, Result,
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

/// The counter of runs the kernel counted but did not show the probe.
pub const UNSEEN_METRIC: &str = "softirq_unseen_runs_total";

/// Where the kernel counts runs per vector and CPU.
const PROC_SOFTIRQS: &str = "/proc/softirqs";

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

/// /proc/softirqs: runs per vector name, summed over CPUs.
fn kernel_runs() -> Result<BTreeMap<String, u64>> {
    let text = std::fs::read_to_string(PROC_SOFTIRQS)
        .map_err(|e| Error::io(format!("cannot read {PROC_SOFTIRQS}"), e))?;
    Ok(parse_proc_softirqs(&text))
}

/// Parses /proc/softirqs' text (a header of CPU names, then `NAME: count count...`).
fn parse_proc_softirqs(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let (name, counts) = line.split_once(':')?;
            let runs = counts
                .split_whitespace()
                .filter_map(|n| n.parse::<u64>().ok())
                .sum();
            Some((name.trim().to_owned(), runs))
        })
        .collect()
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
    /// Runs /proc/softirqs counted since the probe started that no program saw (the
    /// kernel did not deliver their tracepoints), so are missing from the histogram. A
    /// run in progress while this is read can add one.
    pub unseen_runs: u64,
}

/// A running `softirqs`.
#[derive(Debug)]
pub struct Softirqs {
    object: BpfObject,
    hists: MapView,
    programs: Vec<String>,
    /// /proc/softirqs' runs per vector just after attaching.
    kernel_runs_at_start: BTreeMap<String, u64>,
}

impl Softirqs {
    /// Loads and attaches the probe.
    pub fn start(config: &SoftirqsConfig) -> Result<Self> {
        let roles = Roles::new(&ROLES, config.hook);
        let mut object = roles.configure(ObjectBuilder::from_bytes(OBJECT)).load()?;
        let programs = roles.attach(&mut object)?;
        let kernel_runs_at_start = kernel_runs()?;
        Ok(Self {
            hists: object.map("hists")?,
            object,
            programs,
            kernel_runs_at_start,
        })
    }

    /// The programs attached (`entry_btf` and `exit_btf`, say).
    pub fn programs(&self) -> &[String] {
        &self.programs
    }

    /// Every vector that ran so far (per-CPU histograms summed), with the runs the
    /// kernel counted but did not show the probe.
    pub fn vectors(&self) -> Result<Vec<SoftirqTime>> {
        let kernel_now = kernel_runs()?;
        let mut out = Vec::new();
        for vector in 0..SLOTS {
            let name = vector_name(vector);
            let histogram = self
                .hists
                .histogram(&vector.to_ne_bytes(), Layout::Log2, "ns")?;
            let kernel = kernel_now
                .get(&name)
                .copied()
                .unwrap_or(0)
                .saturating_sub(self.kernel_runs_at_start.get(&name).copied().unwrap_or(0));
            let unseen_runs = kernel.saturating_sub(histogram.count);
            if histogram.count > 0 || unseen_runs > 0 {
                out.push(SoftirqTime {
                    vector,
                    name,
                    histogram,
                    unseen_runs,
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
            out.push(
                Metric::counter(NAME, UNSEEN_METRIC, labels.clone(), vector.unseen_runs).into(),
            );
            out.push(Metric::histogram(NAME, METRIC, labels, vector.histogram).into());
        }
        out.extend(self.losses()?.to_records(NAME));
        Ok(())
    }
}

/// `softirqs` as a runtime plugin: every interval, per vector that ran (label `vector`),
/// the `softirq_time` histogram and the `softirq_unseen_runs_total` counter; and the loss
/// counters.
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

    #[test]
    fn proc_softirqs_rows_sum_over_cpus() {
        let text = "                    CPU0       CPU1\n\
                    \x20         HI:          0          2\n\
                    \x20      TIMER:     608009     638950\n\
                    \x20        RCU:          7          0\n";
        let runs = parse_proc_softirqs(text);
        assert_eq!(runs["HI"], 2);
        assert_eq!(runs["TIMER"], 608_009 + 638_950);
        assert_eq!(runs["RCU"], 7);
        assert_eq!(runs.len(), 3);
    }
}
