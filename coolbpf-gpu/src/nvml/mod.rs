//! `nvml`: each GPU's own counters, read through NVML every interval, with no kernel hook
//! and no DCGM.
//!
//! libnvidia-ml.so.1 comes with the NVIDIA driver and is dlopened at run time (by
//! `nvml-wrapper`), never linked: without a driver the probe is listed as unavailable
//! with the reason ([`host_check`]) and starting it is a
//! [`coolbpf_core::Error::Unsupported`].
//!
//! Every interval, for each GPU, gauges labelled `gpu` (NVML index), `uuid`, `model` and
//! `pci_bus_id`:
//! - `gpu_utilization_ratio`, `gpu_memory_utilization_ratio` (0..1);
//! - `gpu_memory_used_bytes`, `gpu_memory_free_bytes`, `gpu_memory_total_bytes`;
//! - `gpu_temperature_celsius`, `gpu_power_usage_watts`;
//! - `gpu_sm_clock_hertz`, `gpu_memory_clock_hertz`;
//! - `gpu_pcie_tx_bytes_per_second`, `gpu_pcie_rx_bytes_per_second`;
//! - `gpu_clock_event_reasons` (NVML's bitmask) and `gpu_clock_event_reason_active`
//!   (0 or 1, one per `reason`, [`CLOCK_EVENT_REASONS`]);
//! - on Hopper and later, GPM's profiling metrics ([`GPM_METRICS`]): SM active and
//!   occupancy, tensor, DRAM and FP pipes as ratios, NVLink tx/rx bytes per second;
//! - `gpu_nvml_unsupported_fields`: how many of these this GPU does not report;
//!
//! counters `gpu_ecc_{volatile,aggregate}_{corrected,uncorrected}_errors_total`,
//! `gpu_energy_millijoules_total` and `gpu_nvml_field_errors_total{field}` (reads that
//! failed other than by being unsupported); and `gpu_process_memory_used_bytes` labelled
//! `gpu`, `uuid`, `pid` and `type` (compute or graphics). docs/nvml-metrics.md maps them
//! to dcgm-exporter's fields.
//!
//! [`Gpus`] is the same access for other modules: find a GPU by bus id, ask how busy it
//! or one process on it is.

mod bus_id;
mod clock_events;
mod gpm;
mod gpus;
mod library;
mod metrics;
mod read;
mod snapshot;

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::sync::lock;
use coolbpf_core::{labels, Metric, PluginContext, Record, Result};
use coolbpf_probes::options::{OptionSpec, ProbeOptions};
use coolbpf_probes::probe_plugin::{ProbePlugin, ProbeSource};
use nvml_wrapper::error::NvmlError;
use read::{GpuState, ReadOptions};

pub use bus_id::PciBusId;
pub use clock_events::{decode_clock_event_reasons, CLOCK_EVENT_REASONS};
pub use gpm::{GpmMetric, GPM_METRICS};
pub use gpus::{Gpus, ProcessUtilization};
pub use library::{host_check, LIBRARY};
pub use metrics::{device_labels, snapshot_records};
pub use snapshot::{
    EccCounts, GpuIdentity, GpuSnapshot, MemoryUsage, ProcessKind, ProcessMemory, Utilization,
};

/// The probe's name in the registry and in its records.
pub const NAME: &str = "nvml";

const PROCESSES: OptionSpec = OptionSpec {
    name: "processes",
    help: "report GPU memory per process (true or false)",
    default: "true",
};

const GPM: OptionSpec = OptionSpec {
    name: "gpm",
    help: "report GPM profiling metrics on Hopper and later GPUs (true or false)",
    default: "true",
};

/// Options `nvml` accepts besides `--pid` (which limits the per-process metrics).
pub const OPTIONS: &[OptionSpec] = &[PROCESSES, GPM];

/// How to run `nvml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NvmlConfig {
    /// Per-process memory, of every process or only `pid`.
    pub processes: bool,
    /// Only this process in the per-process metrics.
    pub pid: Option<u32>,
    /// GPM profiling metrics.
    pub gpm: bool,
}

impl Default for NvmlConfig {
    fn default() -> Self {
        Self {
            processes: true,
            pid: None,
            gpm: true,
        }
    }
}

impl NvmlConfig {
    /// The config described by registry options.
    pub fn from_options(options: &ProbeOptions) -> Result<Self> {
        options.check(NAME, OPTIONS)?;
        Ok(Self {
            processes: options.get(&PROCESSES)?,
            pid: options.pid,
            gpm: options.get(&GPM)?,
        })
    }

    fn read_options(self) -> ReadOptions {
        ReadOptions {
            processes: self.processes,
            pid: self.pid,
            gpm: self.gpm,
        }
    }
}

/// A running `nvml` probe: the GPUs and what it keeps about each between intervals.
#[derive(Debug)]
pub struct NvmlProbe {
    gpus: Gpus,
    config: NvmlConfig,
    states: Mutex<BTreeMap<u32, GpuState>>,
}

impl NvmlProbe {
    /// Opens NVML and its GPUs; [`coolbpf_core::Error::Unsupported`] with the reason without NVML.
    pub fn open(config: NvmlConfig) -> Result<Self> {
        Ok(Self {
            gpus: Gpus::open()?,
            config,
            states: Mutex::new(BTreeMap::new()),
        })
    }

    /// The GPUs it reads.
    pub fn gpus(&self) -> &Gpus {
        &self.gpus
    }

    /// One snapshot per GPU, read now. A GPU that stopped answering since [`Self::open`]
    /// gets a snapshot with only its identity and a `device` field error.
    pub fn snapshots(&self) -> Vec<GpuSnapshot> {
        let mut states = lock(&self.states);
        self.gpus
            .gpus()
            .iter()
            .map(|identity| {
                let state = states.entry(identity.index).or_default();
                let Ok(device) = self.gpus.device(identity.index) else {
                    state.record::<()>("device", Err(NvmlError::GpuLost));
                    let mut snapshot = GpuSnapshot::empty(identity.clone());
                    snapshot.field_errors.clone_from(state.errors());
                    return snapshot;
                };
                read::read_snapshot(
                    self.gpus.nvml(),
                    &device,
                    identity,
                    state,
                    self.config.read_options(),
                )
            })
            .collect()
    }
}

impl ProbeSource for NvmlProbe {
    const NAME: &'static str = NAME;
    type Config = NvmlConfig;

    fn start(config: &NvmlConfig, _ctx: &PluginContext) -> Result<Self> {
        Self::open(*config)
    }

    fn collect(&self, out: &mut Vec<Record>) -> Result<()> {
        let gpus = self.gpus.gpus().len() + self.gpus.unreachable().len();
        out.push(Metric::gauge(NAME, "gpu_nvml_devices", labels! {}, gpus as f64).into());
        for (index, _) in self.gpus.unreachable() {
            let labels = labels! { "gpu" => *index };
            out.push(Metric::gauge(NAME, "gpu_nvml_unreachable", labels, 1.0).into());
        }
        for snapshot in self.snapshots() {
            snapshot_records(&snapshot, out);
        }
        Ok(())
    }
}

/// `nvml` as a runtime plugin.
pub type NvmlPlugin = ProbePlugin<NvmlProbe>;
