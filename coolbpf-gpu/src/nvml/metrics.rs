//! A [`GpuSnapshot`] as records: the metric names, units and labels of the `nvml` probe.
//!
//! Names follow Prometheus conventions (base units in the name, `_ratio` for 0..1,
//! `_total` for counters); docs/nvml-metrics.md maps each to its dcgm-exporter field.

use coolbpf_core::{labels, Labels, Metric, Record};

use super::clock_events::CLOCK_EVENT_REASONS;
use super::snapshot::GpuSnapshot;
use super::NAME;

/// The labels of every device-wide metric of a GPU: `gpu`, `uuid`, `model`, `pci_bus_id`.
pub fn device_labels(snapshot: &GpuSnapshot) -> Labels {
    let id = &snapshot.identity;
    labels! {
        "gpu" => id.index,
        "uuid" => id.uuid.as_str(),
        "model" => id.model.as_str(),
        "pci_bus_id" => id.bus_id.to_string(),
    }
}

/// Appends the records of one GPU's snapshot to `out`.
pub fn snapshot_records(snapshot: &GpuSnapshot, out: &mut Vec<Record>) {
    let labels = device_labels(snapshot);
    for (name, value) in gauges(snapshot) {
        out.push(Metric::gauge(NAME, name, labels.clone(), value).into());
    }
    if let Some(mask) = snapshot.clock_event_reasons {
        for (bit, reason) in CLOCK_EVENT_REASONS {
            let mut labels = labels.clone();
            labels.insert("reason".into(), (*reason).into());
            let active = if mask & bit == 0 { 0.0 } else { 1.0 };
            out.push(Metric::gauge(NAME, "gpu_clock_event_reason_active", labels, active).into());
        }
    }
    for (name, value) in counters(snapshot) {
        out.push(Metric::counter(NAME, name, labels.clone(), value).into());
    }
    for (field, count) in &snapshot.field_errors {
        let mut labels = labels.clone();
        labels.insert("field".into(), (*field).into());
        out.push(Metric::counter(NAME, "gpu_nvml_field_errors_total", labels, *count).into());
    }
    for process in &snapshot.processes {
        let labels = labels! {
            "gpu" => snapshot.identity.index,
            "uuid" => snapshot.identity.uuid.as_str(),
            "pid" => process.pid,
            "type" => process.kind.label(),
        };
        let bytes = process.used_bytes as f64;
        out.push(Metric::gauge(NAME, "gpu_process_memory_used_bytes", labels, bytes).into());
    }
}

/// The device-wide gauges the snapshot has a value for, in base units.
fn gauges(s: &GpuSnapshot) -> Vec<(&'static str, f64)> {
    let percent = |p: u32| f64::from(p) / 100.0;
    let mhz = |mhz: u32| f64::from(mhz) * 1e6;
    let kib = |kib: u32| f64::from(kib) * 1024.0;
    let candidates = [
        (
            "gpu_utilization_ratio",
            s.utilization.map(|u| percent(u.gpu_percent)),
        ),
        (
            "gpu_memory_utilization_ratio",
            s.utilization.map(|u| percent(u.memory_percent)),
        ),
        ("gpu_memory_used_bytes", s.memory.map(|m| m.used as f64)),
        ("gpu_memory_free_bytes", s.memory.map(|m| m.free as f64)),
        ("gpu_memory_total_bytes", s.memory.map(|m| m.total as f64)),
        (
            "gpu_temperature_celsius",
            s.temperature_celsius.map(f64::from),
        ),
        (
            "gpu_power_usage_watts",
            s.power_milliwatts.map(|mw| f64::from(mw) / 1000.0),
        ),
        ("gpu_sm_clock_hertz", s.sm_clock_mhz.map(mhz)),
        ("gpu_memory_clock_hertz", s.memory_clock_mhz.map(mhz)),
        (
            "gpu_pcie_tx_bytes_per_second",
            s.pcie_tx_kib_per_second.map(kib),
        ),
        (
            "gpu_pcie_rx_bytes_per_second",
            s.pcie_rx_kib_per_second.map(kib),
        ),
        (
            "gpu_clock_event_reasons",
            s.clock_event_reasons.map(|mask| mask as f64),
        ),
    ];
    let mut gauges: Vec<(&'static str, f64)> = candidates
        .into_iter()
        .filter_map(|(name, value)| value.map(|value| (name, value)))
        .collect();
    gauges.extend(s.gpm.iter().copied());
    gauges.push(("gpu_nvml_unsupported_fields", s.unsupported.len() as f64));
    gauges
}

/// The device-wide counters the snapshot has a value for.
fn counters(s: &GpuSnapshot) -> Vec<(&'static str, u64)> {
    [
        (
            "gpu_ecc_volatile_corrected_errors_total",
            s.ecc.volatile_corrected,
        ),
        (
            "gpu_ecc_volatile_uncorrected_errors_total",
            s.ecc.volatile_uncorrected,
        ),
        (
            "gpu_ecc_aggregate_corrected_errors_total",
            s.ecc.aggregate_corrected,
        ),
        (
            "gpu_ecc_aggregate_uncorrected_errors_total",
            s.ecc.aggregate_uncorrected,
        ),
        ("gpu_energy_millijoules_total", s.energy_millijoules),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.map(|value| (name, value)))
    .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use coolbpf_core::{LabelValue, MetricValue};

    use super::*;
    use crate::nvml::snapshot::{
        EccCounts, GpuIdentity, MemoryUsage, ProcessKind, ProcessMemory, Utilization,
    };

    fn identity() -> GpuIdentity {
        GpuIdentity {
            index: 1,
            uuid: "GPU-0b1c".into(),
            model: "NVIDIA H200".into(),
            bus_id: "00000000:3B:00.0".parse().unwrap(),
        }
    }

    fn full() -> GpuSnapshot {
        GpuSnapshot {
            utilization: Some(Utilization {
                gpu_percent: 75,
                memory_percent: 20,
            }),
            memory: Some(MemoryUsage {
                used: 3 << 30,
                free: 1 << 30,
                total: 4 << 30,
            }),
            temperature_celsius: Some(61),
            power_milliwatts: Some(312_500),
            energy_millijoules: Some(9_000),
            sm_clock_mhz: Some(1980),
            memory_clock_mhz: Some(2619),
            pcie_tx_kib_per_second: Some(2),
            pcie_rx_kib_per_second: Some(4),
            ecc: EccCounts {
                volatile_corrected: Some(3),
                volatile_uncorrected: Some(0),
                aggregate_corrected: Some(5),
                aggregate_uncorrected: Some(1),
            },
            clock_event_reasons: Some(0x1 | 0x4),
            processes: vec![ProcessMemory {
                pid: 4242,
                kind: ProcessKind::Compute,
                used_bytes: 1 << 20,
            }],
            gpm: vec![("gpu_sm_active_ratio", 0.5)],
            unsupported: vec!["energy"],
            field_errors: BTreeMap::from([("temperature", 2)]),
            ..GpuSnapshot::empty(identity())
        }
    }

    fn metrics(snapshot: &GpuSnapshot) -> Vec<Metric> {
        let mut out = Vec::new();
        snapshot_records(snapshot, &mut out);
        out.into_iter()
            .map(|record| match record {
                Record::Metric(metric) => metric,
                other => panic!("not a metric: {other:?}"),
            })
            .collect()
    }

    fn value(metrics: &[Metric], name: &str) -> MetricValue {
        metrics
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no {name}"))
            .value
            .clone()
    }

    #[test]
    fn values_are_converted_to_base_units() {
        let m = metrics(&full());
        let gauges = [
            ("gpu_utilization_ratio", 0.75),
            ("gpu_memory_utilization_ratio", 0.2),
            ("gpu_memory_used_bytes", 3.0 * 1024.0 * 1024.0 * 1024.0),
            ("gpu_memory_total_bytes", 4.0 * 1024.0 * 1024.0 * 1024.0),
            ("gpu_temperature_celsius", 61.0),
            ("gpu_power_usage_watts", 312.5),
            ("gpu_sm_clock_hertz", 1.98e9),
            ("gpu_memory_clock_hertz", 2.619e9),
            ("gpu_pcie_tx_bytes_per_second", 2048.0),
            ("gpu_pcie_rx_bytes_per_second", 4096.0),
            ("gpu_clock_event_reasons", 5.0),
            ("gpu_sm_active_ratio", 0.5),
            ("gpu_nvml_unsupported_fields", 1.0),
        ];
        for (name, expected) in gauges {
            assert_eq!(value(&m, name), MetricValue::Gauge(expected), "{name}");
        }
        let counters = [
            ("gpu_ecc_volatile_corrected_errors_total", 3),
            ("gpu_ecc_volatile_uncorrected_errors_total", 0),
            ("gpu_ecc_aggregate_corrected_errors_total", 5),
            ("gpu_ecc_aggregate_uncorrected_errors_total", 1),
            ("gpu_energy_millijoules_total", 9000),
            ("gpu_nvml_field_errors_total", 2),
        ];
        for (name, expected) in counters {
            assert_eq!(value(&m, name), MetricValue::Counter(expected), "{name}");
        }
    }

    #[test]
    fn labels_name_the_gpu_and_the_process() {
        let m = metrics(&full());
        let util = m
            .iter()
            .find(|m| m.name == "gpu_utilization_ratio")
            .unwrap();
        assert_eq!(util.label("gpu"), Some(&LabelValue::Int(1)));
        assert_eq!(util.label("uuid"), Some(&LabelValue::from("GPU-0b1c")));
        assert_eq!(util.label("model"), Some(&LabelValue::from("NVIDIA H200")));
        assert_eq!(
            util.label("pci_bus_id"),
            Some(&LabelValue::from("0000:3b:00.0"))
        );
        let process = m
            .iter()
            .find(|m| m.name == "gpu_process_memory_used_bytes")
            .unwrap();
        assert_eq!(process.label("pid"), Some(&LabelValue::Int(4242)));
        assert_eq!(process.label("type"), Some(&LabelValue::from("compute")));
        assert_eq!(process.value, MetricValue::Gauge(1_048_576.0));
        let errors = m
            .iter()
            .find(|m| m.name == "gpu_nvml_field_errors_total")
            .unwrap();
        assert_eq!(
            errors.label("field"),
            Some(&LabelValue::from("temperature"))
        );
        assert!(m.iter().all(|m| m.probe == "nvml"));
    }

    #[test]
    fn each_clock_event_reason_is_a_zero_or_one_gauge() {
        let m = metrics(&full());
        let active: Vec<(String, f64)> = m
            .iter()
            .filter(|m| m.name == "gpu_clock_event_reason_active")
            .map(|m| {
                let MetricValue::Gauge(v) = m.value else {
                    panic!("not a gauge")
                };
                (m.label("reason").unwrap().to_string(), v)
            })
            .collect();
        assert_eq!(active.len(), CLOCK_EVENT_REASONS.len());
        for (reason, v) in active {
            let set = reason == "gpu_idle" || reason == "sw_power_cap";
            assert_eq!(v > 0.5, set, "{reason}: {v}");
        }
    }

    #[test]
    fn unreported_fields_make_no_metrics() {
        let m = metrics(&GpuSnapshot::empty(identity()));
        let names: Vec<&str> = m.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["gpu_nvml_unsupported_fields"]);
    }

    #[test]
    fn names_carry_their_unit() {
        const UNITS: &[&str] = &[
            "_ratio",
            "_bytes",
            "_celsius",
            "_watts",
            "_hertz",
            "_bytes_per_second",
            "_total",
            "_reasons",
            "_active",
            "_fields",
        ];
        for metric in metrics(&full()) {
            assert!(metric.name.starts_with("gpu_"), "{}", metric.name);
            assert!(
                UNITS.iter().any(|unit| metric.name.ends_with(unit)),
                "{} has no unit suffix",
                metric.name
            );
            let counter = matches!(metric.value, MetricValue::Counter(_));
            assert_eq!(counter, metric.name.ends_with("_total"), "{}", metric.name);
        }
    }
}
