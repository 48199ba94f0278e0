//! The GPU probes' registry entries, and [`CATALOGUE`]: every probe of coolbpf, CPU and
//! GPU side, which the faces (the `coolbpf` command, Python, C) offer.

use coolbpf_probes::registry::{Catalogue, ProbeInfo, PROBES};

/// Every probe: the CPU side ([`coolbpf_probes::registry::PROBES`]), then the GPU side.
pub const CATALOGUE: Catalogue = Catalogue::new(&[PROBES, GPU_PROBES]);

/// This crate's probes.
pub const GPU_PROBES: &[ProbeInfo] = &[];

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
