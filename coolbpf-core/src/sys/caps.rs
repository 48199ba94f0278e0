//! The process's effective capabilities, as `/proc/self/status` reports them.

use std::io;

/// A Linux capability that matters to coolbpf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Capability {
    /// `CAP_NET_ADMIN`: some networking program types.
    NetAdmin,
    /// `CAP_SYS_ADMIN`: everything BPF on kernels before 5.8, and mounting filesystems.
    SysAdmin,
    /// `CAP_SYS_RESOURCE`: raising `RLIMIT_MEMLOCK` above the hard limit.
    SysResource,
    /// `CAP_PERFMON` (5.8+): tracing programs and `perf_event_open`.
    Perfmon,
    /// `CAP_BPF` (5.8+): loading programs and creating maps.
    Bpf,
}

impl Capability {
    /// Every capability this module knows, in bit order.
    pub const ALL: [Self; 5] = [
        Self::NetAdmin,
        Self::SysAdmin,
        Self::SysResource,
        Self::Perfmon,
        Self::Bpf,
    ];

    /// The capability's bit number (see `linux/capability.h`).
    pub fn bit(self) -> u32 {
        match self {
            Self::NetAdmin => 12,
            Self::SysAdmin => 21,
            Self::SysResource => 24,
            Self::Perfmon => 38,
            Self::Bpf => 39,
        }
    }

    /// The name as `capabilities(7)` spells it, e.g. `CAP_BPF`.
    pub fn name(self) -> &'static str {
        match self {
            Self::NetAdmin => "CAP_NET_ADMIN",
            Self::SysAdmin => "CAP_SYS_ADMIN",
            Self::SysResource => "CAP_SYS_RESOURCE",
            Self::Perfmon => "CAP_PERFMON",
            Self::Bpf => "CAP_BPF",
        }
    }
}

/// A capability set: the kernel's 64-bit mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CapSet(pub u64);

impl CapSet {
    /// Whether `capability` is in the set.
    pub fn contains(self, capability: Capability) -> bool {
        self.0 & (1 << capability.bit()) != 0
    }

    /// The known capabilities in the set, by name.
    pub fn names(self) -> Vec<&'static str> {
        Capability::ALL
            .into_iter()
            .filter(|&capability| self.contains(capability))
            .map(Capability::name)
            .collect()
    }
}

/// Extracts the effective set (the `CapEff:` line) from the text of `/proc/PID/status`.
pub fn parse_effective(status: &str) -> Option<CapSet> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .map(CapSet)
}

/// The calling process's effective capabilities.
pub fn effective() -> io::Result<CapSet> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    parse_effective(&status).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "no CapEff line in /proc/self/status",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The status of root on the development VM: everything but `CAP_SYS_RESOURCE`.
    const STATUS: &str = "Name:\tcat\nCapInh:\t0000000000000000\nCapPrm:\t000001fffeffffff\n\
                          CapEff:\t000001fffeffffff\nCapBnd:\t000001fffeffffff\n";

    #[test]
    fn parses_the_effective_set() {
        let set = parse_effective(STATUS).unwrap();
        assert_eq!(set, CapSet(0x01ff_feff_ffff));
        assert!(set.contains(Capability::Bpf));
        assert!(set.contains(Capability::Perfmon));
        assert!(set.contains(Capability::SysAdmin));
        assert!(!set.contains(Capability::SysResource));
        assert_eq!(
            set.names(),
            ["CAP_NET_ADMIN", "CAP_SYS_ADMIN", "CAP_PERFMON", "CAP_BPF"]
        );
    }

    #[test]
    fn missing_or_malformed_line_is_none() {
        assert_eq!(parse_effective("Name:\tcat\n"), None);
        assert_eq!(parse_effective("CapEff:\tzz\n"), None);
        assert_eq!(
            parse_effective("CapEff:\t0000000000000000\n"),
            Some(CapSet(0))
        );
    }
}
