//! `hardirqs`: time spent in hard interrupt handlers, per IRQ, as log2 histograms in
//! nanoseconds (each histogram's count is the number of handler runs, its sum the total
//! time).
//!
//! Hooks: `irq:irq_handler_entry` and `irq:irq_handler_exit` (tp_btf, else raw_tp, else
//! classic tracepoints). Interrupts that do not go through a registered handler (the
//! local APIC timer, IPIs) are not seen. Cumulative since start.

use coolbpf_core::decode::c_string;
use coolbpf_core::stream::KernelLosses;
use coolbpf_core::{
    labels, BpfObject, Error, Histogram, Layout, MapView, Metric, ObjectBuilder, PluginContext,
    Record, Result,
};

use crate::options::{OptionSpec, ProbeOptions};
use crate::probe_plugin::{ProbePlugin, ProbeSource};
use crate::sched::{HookKind, Roles, HOOK};

static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/hardirqs.bpf.o"));

/// The probe's name in the registry and in its records.
pub const NAME: &str = "hardirqs";

/// The histogram metric's name.
pub const METRIC: &str = "hardirq_time";

const ROLES: [&str; 2] = ["entry", "exit"];

/// Options `hardirqs` accepts (interrupts belong to no process: `--pid` is refused).
pub const OPTIONS: &[OptionSpec] = &[HOOK];

/// Size of `struct coolbpf_log2_hist`, after which `struct irq_value` has the name.
const HIST_BYTES: usize = 66 * 8;
const IRQ_NAME_LEN: usize = 32;

/// How to run `hardirqs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HardirqsConfig {
    /// Which kind of hook to attach with.
    pub hook: HookKind,
}

impl HardirqsConfig {
    /// The config described by registry options.
    pub fn from_options(options: &ProbeOptions) -> Result<Self> {
        options.check(NAME, OPTIONS)?;
        reject_pid(NAME, options)?;
        Ok(Self {
            hook: options.get(&HOOK)?,
        })
    }
}

/// Interrupt probes see interrupts, which no process owns.
pub(crate) fn reject_pid(probe: &str, options: &ProbeOptions) -> Result<()> {
    match options.pid {
        Some(pid) => Err(Error::InvalidArgument(format!(
            "probe {probe} cannot watch pid {pid}: interrupts belong to no process"
        ))),
        None => Ok(()),
    }
}

/// Time in one IRQ's handler.
#[derive(Debug, Clone, PartialEq)]
pub struct IrqTime {
    /// The IRQ number.
    pub irq: u32,
    /// Its handler's name (as in /proc/interrupts).
    pub name: String,
    /// Handler run times, ns.
    pub histogram: Histogram,
}

/// A running `hardirqs`.
#[derive(Debug)]
pub struct Hardirqs {
    object: BpfObject,
    hists: MapView,
    programs: Vec<String>,
}

impl Hardirqs {
    /// Loads and attaches the probe.
    pub fn start(config: &HardirqsConfig) -> Result<Self> {
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

    /// Every IRQ seen so far, by number.
    pub fn irqs(&self) -> Result<Vec<IrqTime>> {
        let mut out = Vec::new();
        for (key, value) in self.hists.entries()? {
            let Some(irq) = key
                .get(..4)
                .and_then(|k| k.try_into().ok())
                .map(u32::from_ne_bytes)
            else {
                continue;
            };
            out.push(IrqTime {
                irq,
                name: value
                    .get(HIST_BYTES..HIST_BYTES + IRQ_NAME_LEN)
                    .map(c_string)
                    .unwrap_or_default(),
                histogram: Histogram::from_raw(Layout::Log2, &value, "ns")?,
            });
        }
        out.sort_by_key(|irq| irq.irq);
        Ok(out)
    }

    /// Kernel-side losses (a full table).
    pub fn losses(&self) -> Result<KernelLosses> {
        KernelLosses::read(&self.object)
    }

    /// Detaches the programs; what was measured stays readable.
    pub fn stop(&mut self) {
        self.object.detach_all();
    }
}

impl ProbeSource for Hardirqs {
    const NAME: &'static str = NAME;
    type Config = HardirqsConfig;

    fn start(config: &HardirqsConfig, _ctx: &PluginContext) -> Result<Self> {
        Self::start(config)
    }

    fn collect(&self, out: &mut Vec<Record>) -> Result<()> {
        for irq in self.irqs()? {
            let labels = labels! { "irq" => irq.irq, "name" => irq.name };
            out.push(Metric::histogram(NAME, METRIC, labels, irq.histogram).into());
        }
        out.extend(self.losses()?.to_records(NAME));
        Ok(())
    }
}

/// `hardirqs` as a runtime plugin: every interval, one `hardirq_time` histogram per IRQ
/// (labels `irq` and `name`), and the loss counters.
pub type HardirqsPlugin = ProbePlugin<Hardirqs>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pid_is_refused() {
        let err = HardirqsConfig::from_options(&ProbeOptions::new().with_pid(1)).unwrap_err();
        assert!(err.to_string().contains("no process"), "{err}");
        assert!(HardirqsConfig::from_options(&ProbeOptions::new().with("hook", "raw_tp")).is_ok());
    }
}
