//! The `nvml` probe from outside: its registry entry, its host check, and starting it.
//!
//! These run on any host. Without an NVIDIA driver (the development machines) they check
//! that NVML's absence is reported, not hit: the host check names the library, starting
//! the probe is an `Unsupported` error. With a driver they read the real GPUs instead,
//! and `COOLBPF_REQUIRE_NVML=1` makes a missing NVML a failure (for the GPU machine).

use coolbpf_core::{ErrorKind, MetricValue, Record, Runtime};
use coolbpf_gpu::nvml::{self, Gpus, NvmlConfig, NvmlPlugin, NvmlProbe};
use coolbpf_gpu::CATALOGUE;
use coolbpf_probes::registry::Category;
use coolbpf_probes::ProbeOptions;

/// Whether NVML is here; when it must be and is not, the test fails.
fn nvml_present() -> bool {
    let present = nvml::host_check().is_ok();
    let required = std::env::var("COOLBPF_REQUIRE_NVML").as_deref() == Ok("1");
    assert!(
        present || !required,
        "COOLBPF_REQUIRE_NVML=1 but {:?}",
        nvml::host_check()
    );
    present
}

#[test]
fn the_catalogue_has_nvml_as_a_gpu_probe_without_kernel_needs() {
    let probe = CATALOGUE.find("nvml").unwrap();
    assert_eq!(probe.category, Category::Gpu);
    assert!(probe.requires.is_empty());
    assert_eq!(probe.hooks, ["nvml"]);
    assert_eq!(
        (probe.host)().is_ok(),
        nvml::host_check().is_ok(),
        "the entry's host check is nvml::host_check"
    );
}

#[test]
fn the_host_check_says_why_nvml_is_missing() {
    if nvml_present() {
        eprintln!("NVML is loadable here: nothing missing to report");
        return;
    }
    let reason = (CATALOGUE.find("nvml").unwrap().host)().unwrap_err();
    assert!(
        reason.contains("NVML") && reason.contains(nvml::LIBRARY),
        "{reason}"
    );
    // Cached: the second answer is the same, and immediate.
    assert_eq!(nvml::host_check().unwrap_err(), reason);
}

#[test]
fn starting_without_nvml_is_an_unsupported_error_not_a_panic() {
    if nvml_present() {
        eprintln!("NVML is loadable here: see reads_every_gpu instead");
        return;
    }
    let err = NvmlProbe::open(NvmlConfig::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(err.to_string().contains(nvml::LIBRARY), "{err}");
    let err = Gpus::open().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);

    // The way the faces start it: through the registry and a runtime.
    let plugin = CATALOGUE
        .find("nvml")
        .unwrap()
        .create(&ProbeOptions::new())
        .unwrap();
    let mut runtime = Runtime::builder().build().unwrap();
    let id = runtime.add(plugin).unwrap();
    let err = runtime.start_plugin(id).unwrap_err();
    assert!(err.to_string().contains(nvml::LIBRARY), "{err}");
    runtime.shutdown().unwrap();
}

#[test]
fn options_are_checked_before_nvml_is_touched() {
    let probe = CATALOGUE.find("nvml").unwrap();
    let err = probe
        .create(&ProbeOptions::new().with("gpn", "false"))
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("gpm"), "{err}");
    let err = probe
        .create(&ProbeOptions::new().with("gpm", "maybe"))
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let config = NvmlConfig::from_options(
        &ProbeOptions::new()
            .with_pid(42)
            .with("processes", "false")
            .with("gpm", "false"),
    )
    .unwrap();
    assert_eq!(
        config,
        NvmlConfig {
            processes: false,
            pid: Some(42),
            gpm: false
        }
    );
    drop(NvmlPlugin::new(config));
}

/// Only with a driver: every GPU answers, is found again by its own bus id, and gets the
/// core metrics with values in range.
#[test]
fn reads_every_gpu() {
    if !nvml_present() {
        eprintln!("skipped: {}", nvml::host_check().unwrap_err());
        return;
    }
    let probe = NvmlProbe::open(NvmlConfig::default()).unwrap();
    let gpus = probe.gpus();
    for gpu in gpus.gpus() {
        let found = gpus.by_bus_id(&gpu.bus_id.to_string()).unwrap().unwrap();
        assert_eq!(found.uuid, gpu.uuid);
        assert!(gpu.uuid.starts_with("GPU-"), "{}", gpu.uuid);
        let busy = gpus.utilization(gpu.index).unwrap();
        assert!(busy.gpu_percent <= 100);
    }
    let mut out = Vec::new();
    coolbpf_probes::probe_plugin::ProbeSource::collect(&probe, &mut out).unwrap();
    for gpu in gpus.gpus() {
        let total = out.iter().find_map(|record| match record {
            Record::Metric(m)
                if m.name == "gpu_memory_total_bytes"
                    && m.label("uuid").map(ToString::to_string).as_deref()
                        == Some(gpu.uuid.as_str()) =>
            {
                Some(m.value.clone())
            }
            _ => None,
        });
        assert!(
            matches!(total, Some(MetricValue::Gauge(bytes)) if bytes > 0.0),
            "{}: {total:?}",
            gpu.uuid
        );
    }
    for record in &out {
        println!("{}", record.to_json());
    }
}
