//! GPM (GPU Performance Monitoring, Hopper and later): the profiling metrics DCGM reports
//! as `DCGM_FI_PROF_*`, read from NVML without DCGM.
//!
//! A GPM metric is the difference of two samples, so each interval takes one sample and
//! compares it with the previous interval's: the first interval has no GPM values.
//! Percentages become ratios and MiB/s become bytes/s, like the other metrics.

use nvml_wrapper::enums::gpm::GpmMetricId;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::gpm::gpm_metrics_get;
use nvml_wrapper::{Device, GpmSample, Nvml};

use super::read::GpuState;

/// One GPM metric the probe reports.
#[derive(Debug, Clone, Copy)]
pub struct GpmMetric {
    /// NVML's id.
    pub id: GpmMetricId,
    /// The metric name it gets.
    pub name: &'static str,
    /// What NVML's value is multiplied by (percent to ratio, MiB/s to bytes/s).
    pub scale: f64,
    /// The dcgm-exporter field it stands in for.
    pub dcgm: &'static str,
}

const PERCENT: f64 = 0.01;
const MIB_PER_SECOND: f64 = 1024.0 * 1024.0;

/// The GPM metrics reported, each also a field name for "unsupported" and errors.
pub const GPM_METRICS: &[GpmMetric] = &[
    GpmMetric {
        id: GpmMetricId::GraphicsUtil,
        name: "gpu_graphics_engine_active_ratio",
        scale: PERCENT,
        dcgm: "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
    },
    GpmMetric {
        id: GpmMetricId::SmUtil,
        name: "gpu_sm_active_ratio",
        scale: PERCENT,
        dcgm: "DCGM_FI_PROF_SM_ACTIVE",
    },
    GpmMetric {
        id: GpmMetricId::SmOccupancy,
        name: "gpu_sm_occupancy_ratio",
        scale: PERCENT,
        dcgm: "DCGM_FI_PROF_SM_OCCUPANCY",
    },
    GpmMetric {
        id: GpmMetricId::AnyTensorUtil,
        name: "gpu_tensor_active_ratio",
        scale: PERCENT,
        dcgm: "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
    },
    GpmMetric {
        id: GpmMetricId::DramBwUtil,
        name: "gpu_dram_active_ratio",
        scale: PERCENT,
        dcgm: "DCGM_FI_PROF_DRAM_ACTIVE",
    },
    GpmMetric {
        id: GpmMetricId::Fp64Util,
        name: "gpu_fp64_active_ratio",
        scale: PERCENT,
        dcgm: "DCGM_FI_PROF_PIPE_FP64_ACTIVE",
    },
    GpmMetric {
        id: GpmMetricId::Fp32Util,
        name: "gpu_fp32_active_ratio",
        scale: PERCENT,
        dcgm: "DCGM_FI_PROF_PIPE_FP32_ACTIVE",
    },
    GpmMetric {
        id: GpmMetricId::Fp16Util,
        name: "gpu_fp16_active_ratio",
        scale: PERCENT,
        dcgm: "DCGM_FI_PROF_PIPE_FP16_ACTIVE",
    },
    GpmMetric {
        id: GpmMetricId::NvlinkTotalTxPerSec,
        name: "gpu_nvlink_tx_bytes_per_second",
        scale: MIB_PER_SECOND,
        dcgm: "DCGM_FI_PROF_NVLINK_TX_BYTES",
    },
    GpmMetric {
        id: GpmMetricId::NvlinkTotalRxPerSec,
        name: "gpu_nvlink_rx_bytes_per_second",
        scale: MIB_PER_SECOND,
        dcgm: "DCGM_FI_PROF_NVLINK_RX_BYTES",
    },
];

/// The field name under which GPM as a whole is marked unsupported (pre-Hopper GPUs).
pub const GPM_FIELD: &str = "gpm";

/// Takes this interval's GPM sample of `device` and returns the metrics since the last
/// one (none on the first call). `NotSupported` means the GPU has no GPM.
pub(crate) fn read(
    nvml: &'static Nvml,
    device: &Device<'static>,
    state: &mut GpuState,
) -> Result<Vec<(&'static str, f64)>, NvmlError> {
    if state.gpm_previous.is_none() && !device.gpm_support()? {
        return Err(NvmlError::NotSupported);
    }
    let current = device.gpm_sample()?;
    let values = match state.gpm_previous.take() {
        Some(previous) => between(nvml, &previous, &current, state)?,
        None => Vec::new(),
    };
    state.gpm_previous = Some(current);
    Ok(values)
}

/// The metrics between two samples; one a GPU does not support is marked so and skipped.
fn between(
    nvml: &'static Nvml,
    previous: &GpmSample<'static>,
    current: &GpmSample<'static>,
    state: &mut GpuState,
) -> Result<Vec<(&'static str, f64)>, NvmlError> {
    let wanted: Vec<&GpmMetric> = GPM_METRICS
        .iter()
        .filter(|metric| !state.is_unsupported(metric.name))
        .collect();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<GpmMetricId> = wanted.iter().map(|metric| metric.id).collect();
    let results = gpm_metrics_get(nvml, previous, current, &ids)?;
    Ok(wanted
        .into_iter()
        .zip(results)
        .filter_map(|(metric, result)| {
            state
                .record(metric.name, result)
                .map(|result| (metric.name, result.value * metric.scale))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_carry_units() {
        for metric in GPM_METRICS {
            assert_eq!(
                GPM_METRICS.iter().filter(|m| m.name == metric.name).count(),
                1
            );
            assert!(metric.name.starts_with("gpu_"), "{}", metric.name);
            let ratio = metric.name.ends_with("_ratio") && metric.scale == PERCENT;
            let rate = metric.name.ends_with("_bytes_per_second") && metric.scale == MIB_PER_SECOND;
            assert!(ratio || rate, "{}", metric.name);
            assert!(metric.dcgm.starts_with("DCGM_FI_PROF_"), "{}", metric.dcgm);
        }
        // One request must stay under NVML's limit of 98 metrics.
        assert!(GPM_METRICS.len() < 98);
    }
}
