//! Reading a [`GpuSnapshot`] from a device, one NVML call per field.
//!
//! A field the GPU does not support (`NotSupported`, or a symbol this driver's NVML lacks)
//! is remembered in [`GpuState`] and never asked again, so it costs one call and shows up
//! as `gpu_nvml_unsupported_fields`; any other failure skips the field for this interval
//! and counts in `gpu_nvml_field_errors_total`. Neither fails the probe.

use std::collections::{BTreeMap, BTreeSet};

use nvml_wrapper::enum_wrappers::device::{
    Clock, EccCounter, MemoryError, PcieUtilCounter, TemperatureSensor,
};
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::struct_wrappers::device::ProcessInfo;
use nvml_wrapper::{Device, GpmSample, Nvml};

use super::gpm;
use super::snapshot::{
    EccCounts, GpuIdentity, GpuSnapshot, MemoryUsage, ProcessKind, ProcessMemory, Utilization,
};

/// What the probe keeps about one GPU between intervals.
#[derive(Debug, Default)]
pub struct GpuState {
    unsupported: BTreeSet<&'static str>,
    errors: BTreeMap<&'static str, u64>,
    /// The last GPM sample, which the next interval's is compared with.
    pub(crate) gpm_previous: Option<GpmSample<'static>>,
}

impl GpuState {
    /// Whether `field` was found unsupported before.
    pub fn is_unsupported(&self, field: &str) -> bool {
        self.unsupported.contains(field)
    }

    /// The value of `result`, or `None` after noting why there is none.
    pub fn record<T>(&mut self, field: &'static str, result: Result<T, NvmlError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(NvmlError::NotSupported | NvmlError::FailedToLoadSymbol(_)) => {
                self.unsupported.insert(field);
                None
            }
            Err(_) => {
                *self.errors.entry(field).or_default() += 1;
                None
            }
        }
    }

    /// Failed reads per field so far.
    pub fn errors(&self) -> &BTreeMap<&'static str, u64> {
        &self.errors
    }

    /// Calls `read` unless `field` is known to be unsupported.
    fn read<T>(
        &mut self,
        field: &'static str,
        read: impl FnOnce() -> Result<T, NvmlError>,
    ) -> Option<T> {
        if self.is_unsupported(field) {
            return None;
        }
        let result = read();
        self.record(field, result)
    }
}

/// What to read besides the device-wide fields.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadOptions {
    /// Per-process memory.
    pub processes: bool,
    /// Only this process's memory, when set.
    pub pid: Option<u32>,
    /// GPM profiling metrics (Hopper and later).
    pub gpm: bool,
}

/// Reads every field of `device` into a snapshot.
pub(crate) fn read_snapshot(
    nvml: &'static Nvml,
    device: &Device<'static>,
    identity: &GpuIdentity,
    state: &mut GpuState,
    options: ReadOptions,
) -> GpuSnapshot {
    let mut s = GpuSnapshot::empty(identity.clone());
    s.utilization = state.read("utilization", || {
        device.utilization_rates().map(|u| Utilization {
            gpu_percent: u.gpu,
            memory_percent: u.memory,
        })
    });
    s.memory = state.read("memory", || {
        device.memory_info().map(|m| MemoryUsage {
            used: m.used,
            free: m.free,
            total: m.total,
        })
    });
    s.temperature_celsius =
        state.read("temperature", || device.temperature(TemperatureSensor::Gpu));
    s.power_milliwatts = state.read("power", || device.power_usage());
    s.energy_millijoules = state.read("energy", || device.total_energy_consumption());
    s.sm_clock_mhz = state.read("sm_clock", || device.clock_info(Clock::SM));
    s.memory_clock_mhz = state.read("memory_clock", || device.clock_info(Clock::Memory));
    s.pcie_tx_kib_per_second =
        state.read("pcie_tx", || device.pcie_throughput(PcieUtilCounter::Send));
    s.pcie_rx_kib_per_second = state.read("pcie_rx", || {
        device.pcie_throughput(PcieUtilCounter::Receive)
    });
    s.ecc = EccCounts {
        volatile_corrected: state.read("ecc_volatile_corrected", || {
            device.total_ecc_errors(MemoryError::Corrected, EccCounter::Volatile)
        }),
        volatile_uncorrected: state.read("ecc_volatile_uncorrected", || {
            device.total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile)
        }),
        aggregate_corrected: state.read("ecc_aggregate_corrected", || {
            device.total_ecc_errors(MemoryError::Corrected, EccCounter::Aggregate)
        }),
        aggregate_uncorrected: state.read("ecc_aggregate_uncorrected", || {
            device.total_ecc_errors(MemoryError::Uncorrected, EccCounter::Aggregate)
        }),
    };
    s.clock_event_reasons = state.read("clock_event_reasons", || {
        device
            .current_throttle_reasons()
            .map(|reasons| reasons.bits())
    });
    if options.processes {
        let compute = state.read("compute_processes", || device.running_compute_processes());
        let graphics = state.read("graphics_processes", || device.running_graphics_processes());
        s.processes = process_memory(compute, graphics, options.pid);
    }
    if options.gpm && !state.is_unsupported(gpm::GPM_FIELD) {
        let result = gpm::read(nvml, device, state);
        s.gpm = state.record(gpm::GPM_FIELD, result).unwrap_or_default();
    }
    s.unsupported = state.unsupported.iter().copied().collect();
    s.field_errors.clone_from(&state.errors);
    s
}

/// The processes of both lists with a known memory use, `pid` only when set.
pub fn process_memory(
    compute: Option<Vec<ProcessInfo>>,
    graphics: Option<Vec<ProcessInfo>>,
    pid: Option<u32>,
) -> Vec<ProcessMemory> {
    let lists = [
        (ProcessKind::Compute, compute.unwrap_or_default()),
        (ProcessKind::Graphics, graphics.unwrap_or_default()),
    ];
    lists
        .into_iter()
        .flat_map(|(kind, list)| {
            list.into_iter()
                .filter_map(move |info| match info.used_gpu_memory {
                    UsedGpuMemory::Used(used_bytes) => Some(ProcessMemory {
                        pid: info.pid,
                        kind,
                        used_bytes,
                    }),
                    UsedGpuMemory::Unavailable => None,
                })
        })
        .filter(|process| pid.is_none_or(|pid| process.pid == pid))
        .collect()
}
