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
pub(crate) struct GpuState {
    unsupported: BTreeSet<&'static str>,
    errors: BTreeMap<&'static str, u64>,
    /// The last GPM sample, which the next interval's is compared with.
    pub(crate) gpm_previous: Option<GpmSample<'static>>,
}

impl GpuState {
    /// Whether `field` was found unsupported before.
    pub(crate) fn is_unsupported(&self, field: &str) -> bool {
        self.unsupported.contains(field)
    }

    /// The value of `result`, or `None` after noting why there is none.
    pub(crate) fn record<T>(
        &mut self,
        field: &'static str,
        result: Result<T, NvmlError>,
    ) -> Option<T> {
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
    pub(crate) fn errors(&self) -> &BTreeMap<&'static str, u64> {
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
pub(crate) struct ReadOptions {
    /// Per-process memory.
    pub(crate) processes: bool,
    /// Only this process's memory, when set.
    pub(crate) pid: Option<u32>,
    /// GPM profiling metrics (Hopper and later).
    pub(crate) gpm: bool,
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
pub(crate) fn process_memory(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn info(pid: u32, used: UsedGpuMemory) -> ProcessInfo {
        ProcessInfo {
            pid,
            used_gpu_memory: used,
            gpu_instance_id: None,
            compute_instance_id: None,
        }
    }

    #[test]
    fn processes_of_both_lists_with_known_memory() {
        let compute = vec![
            info(10, UsedGpuMemory::Used(100)),
            info(11, UsedGpuMemory::Unavailable),
        ];
        let graphics = vec![info(10, UsedGpuMemory::Used(7))];
        let all = process_memory(Some(compute.clone()), Some(graphics.clone()), None);
        assert_eq!(
            all,
            [
                ProcessMemory {
                    pid: 10,
                    kind: ProcessKind::Compute,
                    used_bytes: 100
                },
                ProcessMemory {
                    pid: 10,
                    kind: ProcessKind::Graphics,
                    used_bytes: 7
                },
            ]
        );
        assert!(process_memory(Some(compute), None, Some(12)).is_empty());
        assert_eq!(process_memory(None, Some(graphics), Some(10)).len(), 1);
    }

    #[test]
    fn unsupported_is_remembered_and_errors_are_counted() {
        let mut state = GpuState::default();
        let mut calls = 0;
        for _ in 0..3 {
            let value: Option<u32> = state.read("power", || {
                calls += 1;
                Err(NvmlError::NotSupported)
            });
            assert_eq!(value, None);
        }
        assert_eq!(calls, 1, "an unsupported field is asked once");
        assert!(state.is_unsupported("power"));
        for _ in 0..2 {
            assert_eq!(
                state.record::<u32>("temperature", Err(NvmlError::GpuLost)),
                None
            );
        }
        assert_eq!(state.errors().get("temperature"), Some(&2));
        assert!(!state.is_unsupported("temperature"));
        assert_eq!(state.record("memory", Ok(5)), Some(5));
    }
}
