//! `gpudriver`'s options and config.

use coolbpf_core::{Error, Result};
use coolbpf_probes::options::{OptionSpec, ProbeOptions};

use super::NAME;

const THRESHOLD_MS: OptionSpec = OptionSpec {
    name: "threshold_ms",
    help: "an ioctl in flight, or a thread in D state, this long is a hang, ms (> 0)",
    default: "5000",
};
const DEVICES: OptionSpec = OptionSpec {
    name: "devices",
    help: "the device files to watch: comma-separated path prefixes, each starting with '/'",
    default: "/dev/nvidia",
};
const XID_MINUTES: OptionSpec = OptionSpec {
    name: "xid_minutes",
    help: "Xid 79/119/120 lines logged this many minutes before a hang are joined to it \
           (0: no join, /dev/kmsg is not read)",
    default: "10",
};
const MAX_FDS: OptionSpec = OptionSpec {
    name: "max_fds",
    help: "capacity of the watched (process, fd) table; fds beyond it are counted, not watched",
    default: "4096",
};

/// Options `gpudriver` accepts besides `--pid`.
pub const OPTIONS: &[OptionSpec] = &[THRESHOLD_MS, DEVICES, XID_MINUTES, MAX_FDS];

/// How to run `gpudriver`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverConfig {
    /// Watch only this process (tgid); `None` watches every process with a device open.
    pub pid: Option<u32>,
    /// An ioctl in flight (or a thread in D state) this long is a hang, ns.
    pub threshold_ns: u64,
    /// Path prefixes of the device files whose ioctls are watched.
    pub devices: Vec<String>,
    /// How far back Xid lines are joined to a hang, µs; 0 turns the join off.
    pub xid_window_us: u64,
    /// Capacity of the kernel's watched-fd table.
    pub max_fds: u32,
}

impl Default for DriverConfig {
    fn default() -> Self {
        Self {
            pid: None,
            threshold_ns: 5_000_000_000,
            devices: vec!["/dev/nvidia".into()],
            xid_window_us: 10 * 60 * 1_000_000,
            max_fds: 4096,
        }
    }
}

fn invalid(spec: &OptionSpec, value: &str) -> Error {
    Error::InvalidArgument(format!("option {}={value:?}: {}", spec.name, spec.help))
}

impl DriverConfig {
    /// The config described by registry options.
    pub fn from_options(options: &ProbeOptions) -> Result<Self> {
        options.check(NAME, OPTIONS)?;
        let threshold_ms: u64 = options.get(&THRESHOLD_MS)?;
        if threshold_ms == 0 {
            return Err(invalid(&THRESHOLD_MS, "0"));
        }
        let devices: String = options.get(&DEVICES)?;
        let prefixes: Vec<String> = devices
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect();
        // A relative or empty prefix would match every fd, or none, silently.
        if prefixes.is_empty() || prefixes.iter().any(|p| !p.starts_with('/') || p == "/") {
            return Err(invalid(&DEVICES, &devices));
        }
        let xid_minutes: u64 = options.get(&XID_MINUTES)?;
        let max_fds: u32 = options.get(&MAX_FDS)?;
        if max_fds == 0 {
            return Err(invalid(&MAX_FDS, "0"));
        }
        Ok(Self {
            pid: options.pid,
            threshold_ns: threshold_ms.saturating_mul(1_000_000),
            devices: prefixes,
            xid_window_us: xid_minutes.saturating_mul(60_000_000),
            max_fds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_options() {
        let config = DriverConfig::from_options(&ProbeOptions::new()).unwrap();
        assert_eq!(config, DriverConfig::default());
        let config = DriverConfig::from_options(
            &ProbeOptions::new()
                .with_pid(7)
                .with("threshold_ms", "800")
                .with("devices", "/dev/pts/, /dev/nvidia")
                .with("xid_minutes", "0"),
        )
        .unwrap();
        assert_eq!(config.pid, Some(7));
        assert_eq!(config.threshold_ns, 800_000_000);
        assert_eq!(config.devices, ["/dev/pts/", "/dev/nvidia"]);
        assert_eq!(config.xid_window_us, 0);
    }

    #[test]
    fn bad_options_are_invalid_arguments() {
        for (key, value) in [
            ("threshold_ms", "0"),
            ("threshold_ms", "-1"),
            ("threshold_ms", "soon"),
            ("devices", ""),
            ("devices", " , "),
            ("devices", "dev/nvidia"),
            ("devices", "/dev/nvidia,nvidia"),
            ("devices", "/"),
            ("xid_minutes", "x"),
            ("max_fds", "0"),
            ("nope", "1"),
        ] {
            let err = DriverConfig::from_options(&ProbeOptions::new().with(key, value))
                .expect_err(&format!("{key}={value:?}"));
            assert_eq!(
                err.kind(),
                coolbpf_core::ErrorKind::InvalidArgument,
                "{key}={value:?}: {err}"
            );
        }
    }
}
