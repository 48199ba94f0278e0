//! What one GPU said in one interval, as plain data: no NVML types, so the conversion to
//! records ([`super::metrics`]) is tested without a device.

use std::collections::BTreeMap;

use super::bus_id::PciBusId;

/// Which GPU: what every metric of it is labelled with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuIdentity {
    /// NVML's index (the `gpu` label; the same numbering as `nvidia-smi`, which can
    /// differ from CUDA's unless `CUDA_DEVICE_ORDER=PCI_BUS_ID`).
    pub index: u32,
    /// `GPU-…` UUID: stable across reboots and renumbering.
    pub uuid: String,
    /// The product name, e.g. `NVIDIA H200`.
    pub model: String,
    /// Where it sits on the PCI bus.
    pub bus_id: PciBusId,
}

/// Device-wide utilization over NVML's last sample period (1/6 s to 1 s by product).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utilization {
    /// Percent of the period in which one or more kernels ran.
    pub gpu_percent: u32,
    /// Percent of the period in which device memory was read or written.
    pub memory_percent: u32,
}

/// Frame-buffer memory, bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryUsage {
    /// Allocated.
    pub used: u64,
    /// Not allocated.
    pub free: u64,
    /// Installed (less what the driver reserves).
    pub total: u64,
}

/// ECC error counts; each is `None` when unsupported (ECC off, or a GPU without it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EccCounts {
    /// Corrected (single-bit) since the driver loaded.
    pub volatile_corrected: Option<u64>,
    /// Uncorrected (double-bit) since the driver loaded.
    pub volatile_uncorrected: Option<u64>,
    /// Corrected over the GPU's life.
    pub aggregate_corrected: Option<u64>,
    /// Uncorrected over the GPU's life.
    pub aggregate_uncorrected: Option<u64>,
}

/// How a process uses a GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessKind {
    /// A CUDA (or other compute) context.
    Compute,
    /// A graphics context.
    Graphics,
}

impl ProcessKind {
    /// The `type` label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Compute => "compute",
            Self::Graphics => "graphics",
        }
    }
}

/// One process's GPU memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessMemory {
    /// Its pid, in the namespace NVML runs in (the host's, for an agent there).
    pub pid: u32,
    /// Compute or graphics.
    pub kind: ProcessKind,
    /// Bytes of device memory it holds.
    pub used_bytes: u64,
}

/// Everything read from one GPU in one interval. `None` is a field the GPU did not
/// report (unsupported or failed, see [`Self::unsupported`] and [`Self::field_errors`]).
#[derive(Debug, Clone, PartialEq)]
pub struct GpuSnapshot {
    /// Which GPU.
    pub identity: GpuIdentity,
    /// Busy percentages.
    pub utilization: Option<Utilization>,
    /// Frame buffer use.
    pub memory: Option<MemoryUsage>,
    /// GPU core temperature, °C.
    pub temperature_celsius: Option<u32>,
    /// Board power draw, mW.
    pub power_milliwatts: Option<u32>,
    /// Energy since the driver loaded, mJ.
    pub energy_millijoules: Option<u64>,
    /// SM clock, MHz.
    pub sm_clock_mhz: Option<u32>,
    /// Memory clock, MHz.
    pub memory_clock_mhz: Option<u32>,
    /// PCIe bytes sent by the GPU, KiB/s (NVML samples 20 ms).
    pub pcie_tx_kib_per_second: Option<u32>,
    /// PCIe bytes received by the GPU, KiB/s.
    pub pcie_rx_kib_per_second: Option<u32>,
    /// ECC counts.
    pub ecc: EccCounts,
    /// Clock event (throttle) reasons: NVML's bitmask
    /// ([`super::decode_clock_event_reasons`] names its bits).
    pub clock_event_reasons: Option<u64>,
    /// Processes holding device memory.
    pub processes: Vec<ProcessMemory>,
    /// GPM values of the last interval (Hopper and later), by metric name, already in
    /// the metric's unit ([`super::GPM_METRICS`]).
    pub gpm: Vec<(&'static str, f64)>,
    /// Fields this GPU does not support, found once and not asked again.
    pub unsupported: Vec<&'static str>,
    /// Failed reads per field since the probe started (not NotSupported: real errors).
    pub field_errors: BTreeMap<&'static str, u64>,
}

impl GpuSnapshot {
    /// A snapshot of `identity` with nothing read yet.
    pub fn empty(identity: GpuIdentity) -> Self {
        Self {
            identity,
            utilization: None,
            memory: None,
            temperature_celsius: None,
            power_milliwatts: None,
            energy_millijoules: None,
            sm_clock_mhz: None,
            memory_clock_mhz: None,
            pcie_tx_kib_per_second: None,
            pcie_rx_kib_per_second: None,
            ecc: EccCounts::default(),
            clock_event_reasons: None,
            processes: Vec::new(),
            gpm: Vec::new(),
            unsupported: Vec::new(),
            field_errors: BTreeMap::new(),
        }
    }
}
