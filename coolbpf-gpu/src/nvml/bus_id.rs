//! PCI bus ids in the several spellings GPU tools use, compared as numbers.
//!
//! NVML says `00000000:3B:00.0` (8-digit domain, upper case), sysfs and `nvidia-smi -q`
//! say `0000:3b:00.0`, the driver's Xid lines say `PCI:0000:3b:00` (no function) and
//! `lspci` says `3b:00.0` (no domain). Comparing strings would miss the same GPU written
//! two ways, so every form is parsed into [`PciBusId`] and compared field by field.

use std::fmt;
use std::str::FromStr;

use coolbpf_core::Error;

/// A PCI address: domain, bus, device and, when the text had one, function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PciBusId {
    /// PCI domain (segment); 0 when the text had none.
    pub domain: u32,
    /// Bus number.
    pub bus: u8,
    /// Device number on the bus (0..32).
    pub device: u8,
    /// Function number (0..8); `None` when the text had none (Xid lines).
    pub function: Option<u8>,
}

impl PciBusId {
    /// Whether `self` and `other` name the same device: domain, bus and device equal, and
    /// the functions too when both have one (so an Xid line's `0000:3b:00` matches NVML's
    /// `00000000:3B:00.0`).
    pub fn matches(&self, other: &PciBusId) -> bool {
        self.domain == other.domain
            && self.bus == other.bus
            && self.device == other.device
            && match (self.function, other.function) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

impl FromStr for PciBusId {
    type Err = Error;

    /// Parses `[PCI:][DOMAIN:]BUS:DEVICE[.FUNCTION]`, hexadecimal, any case.
    fn from_str(text: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::InvalidArgument(format!("PCI bus id {text:?}: {why}"));
        let trimmed = text.trim();
        let body = trimmed
            .get(..4)
            .filter(|prefix| prefix.eq_ignore_ascii_case("pci:"))
            .map_or(trimmed, |_| &trimmed[4..]);
        let parts: Vec<&str> = body.split(':').collect();
        let (domain, bus, slot) = match parts.as_slice() {
            [bus, slot] => ("0", *bus, *slot),
            [domain, bus, slot] => (*domain, *bus, *slot),
            _ => return Err(bad("expected [DOMAIN:]BUS:DEVICE[.FUNCTION]")),
        };
        let (device, function) = match slot.split_once('.') {
            Some((device, function)) => (device, Some(function)),
            None => (slot, None),
        };
        let hex = |field: &str, digits: usize| -> Result<u32, Error> {
            if field.is_empty() || field.len() > digits {
                return Err(bad(&format!("{field:?} is not 1 to {digits} hex digits")));
            }
            u32::from_str_radix(field, 16)
                .map_err(|_| bad(&format!("{field:?} is not hexadecimal")))
        };
        let device = hex(device, 2)?;
        if device >= 32 {
            return Err(bad("device number above 0x1f"));
        }
        let function = function.map(|f| hex(f, 1)).transpose()?;
        if function.is_some_and(|f| f >= 8) {
            return Err(bad("function number above 7"));
        }
        Ok(Self {
            domain: hex(domain, 8)?,
            bus: hex(bus, 2)? as u8,
            device: device as u8,
            function: function.map(|f| f as u8),
        })
    }
}

impl fmt::Display for PciBusId {
    /// The sysfs spelling, `0000:3b:00.0` (function 0 when unknown).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{}",
            self.domain,
            self.bus,
            self.device,
            self.function.unwrap_or(0)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> PciBusId {
        text.parse().unwrap()
    }

    #[test]
    fn every_spelling_of_one_gpu_is_the_same_device() {
        let nvml = id("00000000:3B:00.0");
        assert_eq!(
            nvml,
            PciBusId {
                domain: 0,
                bus: 0x3b,
                device: 0,
                function: Some(0)
            }
        );
        for other in [
            "0000:3b:00.0",
            "PCI:0000:3b:00",
            "0000:3b:00",
            "3b:00.0",
            " pci:3B:00 ",
        ] {
            assert!(nvml.matches(&id(other)), "{other}");
            assert!(id(other).matches(&nvml), "{other}");
        }
        assert_eq!(nvml.to_string(), "0000:3b:00.0");
        assert_eq!(id("0001:c1:1f.7").to_string(), "0001:c1:1f.7");
    }

    #[test]
    fn different_devices_do_not_match() {
        let gpu = id("0000:3b:00.0");
        assert!(!gpu.matches(&id("0000:3c:00.0")));
        assert!(!gpu.matches(&id("0001:3b:00.0")));
        assert!(!gpu.matches(&id("0000:3b:01")));
        assert!(!gpu.matches(&id("0000:3b:00.1")));
    }

    #[test]
    fn malformed_ids_are_clear_errors() {
        for bad in [
            "",
            "3b",
            "zz:00.0",
            "0000:3b:00.9",
            "0000:3b:20.0",
            "1:2:3:4",
            "0000:3b:00.",
            "123456789:00:00.0",
        ] {
            let err = bad.parse::<PciBusId>().unwrap_err();
            assert!(err.to_string().contains("PCI bus id"), "{bad}: {err}");
        }
    }
}
