//! The GPU probes' registry entries, and [`CATALOGUE`]: every probe of coolbpf, CPU and
//! GPU side, which the faces (the `coolbpf` command, Python, C) offer.

use coolbpf_probes::registry::{host_ready, Catalogue, Category, ProbeInfo, PROBES};

use crate::xid;

/// Every probe: the CPU side ([`coolbpf_probes::registry::PROBES`]), then the GPU side.
pub const CATALOGUE: Catalogue = Catalogue::new(&[PROBES, GPU_PROBES]);

/// This crate's probes.
pub const GPU_PROBES: &[ProbeInfo] = &[ProbeInfo {
    name: xid::NAME,
    category: Category::Gpu,
    description: "NVIDIA driver Xid errors, with meaning, action, GPU and victim; past ones too",
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
}];

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
    }
}
