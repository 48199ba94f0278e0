//! The GPU probes' registry entries, and [`CATALOGUE`]: every probe of coolbpf, CPU and
//! GPU side, which the faces (the `coolbpf` command, Python, C) offer.

use coolbpf_probes::registry::{host_ready, Catalogue, Category, ProbeInfo};

use crate::{driver, nccl, nvml, xid};

/// The uprobe hook kinds the library probes need.
const UPROBES: &[&str] = &["uprobe"];

/// Every probe: the CPU, IO, memory and network side ([`coolbpf_probes::CATALOGUE`]), then
/// the GPU side.
pub const CATALOGUE: Catalogue = coolbpf_probes::CATALOGUE.with(GPU_PROBES);

/// This crate's probes.
pub const GPU_PROBES: &[ProbeInfo] = &[
    ProbeInfo {
        name: crate::cuda::NAME,
        category: Category::Gpu,
        description:
            "CUDA runtime calls: launches by kernel name with CPU stacks, device memory, sync waits",
        hooks: &["uprobe:libcudart", "uretprobe:libcudart"],
        requires: &[UPROBES, &["ringbuf"], &["stack_trace_map"]],
        options: crate::cuda::OPTIONS,
        host: crate::cuda::host_check,
        factory: |options| {
            Ok(Box::new(crate::cuda::CudaPlugin::new(
                crate::cuda::CudaConfig::from_options(options)?,
            )))
        },
    },
    ProbeInfo {
        name: crate::hang::NAME,
        category: Category::Gpu,
        description: "CUDA calls blocked past threshold_ms and events polled not ready: \
                      the stuck call, its stack, the kernels launched before it",
        hooks: &["uprobe:libcudart", "uretprobe:libcudart"],
        requires: &[UPROBES, &["ringbuf"]],
        options: crate::hang::OPTIONS,
        host: crate::cuda::host_check,
        factory: |options| {
            Ok(Box::new(crate::hang::GpuHangPlugin::new(
                crate::hang::HangConfig::from_options(options)?,
            )))
        },
    },
    ProbeInfo {
        name: nccl::NAME,
        category: Category::Gpu,
        description: "NCCL collectives per communicator and rank (op, type, bytes, sequence), \
                      and the rank that stopped while the others went on",
        hooks: &["uprobe:libnccl", "uretprobe:libnccl"],
        requires: &[UPROBES, &["ringbuf"], &["stack_trace_map"]],
        options: nccl::OPTIONS,
        host: nccl::host_check,
        factory: |options| {
            Ok(Box::new(nccl::NcclPlugin::new(
                nccl::NcclConfig::from_options(options)?,
            )))
        },
    },
    ProbeInfo {
        name: driver::NAME,
        category: Category::Gpu,
        description:
            "GPU driver hangs: ioctls on /dev/nvidia* blocked past threshold_ms, \
                      device users' threads in D state, hung tasks; kernel stack and Xid 79/119/120",
        hooks: &[
            "raw_syscalls:sys_enter",
            "raw_syscalls:sys_exit",
            "sched:sched_process_hang",
        ],
        requires: &[&["tp_btf", "raw_tp", "tracepoint"], &["ringbuf"]],
        options: driver::OPTIONS,
        // It watches device files: a host without them has nothing to report, not an error.
        host: host_ready,
        factory: |options| {
            Ok(Box::new(driver::GpuDriverPlugin::new(
                driver::DriverConfig::from_options(options)?,
            )))
        },
    },
    ProbeInfo {
        name: xid::NAME,
        category: Category::Gpu,
        description:
            "NVIDIA driver Xid errors, with meaning, action, GPU and victim; past ones too",
        hooks: &["printk:console"],
        requires: &[&["tp_btf", "raw_tp", "tracepoint"], &["ringbuf"]],
        options: xid::OPTIONS,
        // Xid lines are kernel log lines: nothing to find on the host, GPU or not.
        host: host_ready,
        factory: |options| {
            Ok(Box::new(xid::XidPlugin::new(xid::XidConfig::from_options(
                options,
            )?)))
        },
    },
    ProbeInfo {
        name: nvml::NAME,
        category: Category::Gpu,
        description: "per-GPU utilization, memory, power, clocks, PCIe/NVLink, ECC, throttling \
                      and GPM profiling metrics, and GPU memory per process, from NVML",
        hooks: &["nvml"],
        requires: &[],
        options: nvml::OPTIONS,
        host: nvml::host_check,
        factory: |options| {
            Ok(Box::new(nvml::NvmlPlugin::new(
                nvml::NvmlConfig::from_options(options)?,
            )))
        },
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_unique_across_the_catalogue() {
        for probe in CATALOGUE.probes() {
            assert_eq!(
                CATALOGUE.probes().filter(|p| p.name == probe.name).count(),
                1,
                "{} twice",
                probe.name
            );
        }
        assert!(CATALOGUE.find("syscount").is_ok());
        assert!(CATALOGUE.find(crate::cuda::NAME).is_ok());
        assert!(CATALOGUE.find(nccl::NAME).is_ok());
    }
}
