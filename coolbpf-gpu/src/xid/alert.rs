//! [`XidAlert`]: one Xid line with everything the probe adds to it (what the code means,
//! the GPU behind the bus id, the victim's cgroup), and its form as an [`Event`].

use std::sync::Arc;

use coolbpf_core::{Event, FieldValue};

use super::codes::{self, XidCode};
use super::parse::{parse, XidLine};
use crate::nvml::GpuIdentity;

/// NVML knows every GPU's bus id.
impl GpuLookup for crate::nvml::Gpus {
    fn lookup(&self, bus_id: &str) -> Option<GpuIdentity> {
        self.by_bus_id(bus_id).ok().flatten().cloned()
    }
}

/// Finds the GPU at a bus id. Kept as a trait so that the Xid probe works without NVML
/// (no GPU, no driver) and whoever has NVML plugs it in through
/// [`XidConfig::gpus`](super::XidConfig::gpus).
pub trait GpuLookup: Send + Sync {
    /// The GPU at `bus_id` (as [`normalize_bus_id`](super::parse::normalize_bus_id)
    /// writes it), if known.
    fn lookup(&self, bus_id: &str) -> Option<GpuIdentity>;
}

/// One Xid line, reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XidAlert {
    /// When it was logged: live lines, the monotonic clock when printk handled them;
    /// past lines, the kernel log's time stamp (ns since boot by the kernel's
    /// `local_clock`, which runs alongside the monotonic clock).
    pub ts_ns: u64,
    /// Whether it was logged before the probe started (read from the kernel log's
    /// history).
    pub past: bool,
    /// The kernel log's sequence number, for past lines.
    pub seq: Option<u64>,
    /// Its fields, when it parsed.
    pub line: Option<XidLine>,
    /// Why it did not parse, when it did not.
    pub error: Option<String>,
    /// The GPU at its bus id, when a [`GpuLookup`] knows it.
    pub gpu: Option<GpuIdentity>,
    /// The victim's cgroup, when the victim still runs (see [`victim_cgroup`]).
    pub cgroup: Option<String>,
    /// The line as logged (trailing white space removed).
    pub raw: String,
    /// Whether the line was longer than the probe copies.
    pub truncated: bool,
}

impl XidAlert {
    /// Builds the alert for `raw`, looking the GPU up in `gpus` and the victim in /proc.
    pub fn new(
        raw: &str,
        ts_ns: u64,
        past: bool,
        seq: Option<u64>,
        gpus: Option<&Arc<dyn GpuLookup>>,
    ) -> Self {
        let raw = raw.trim_end();
        let (line, error) = match parse(raw) {
            Ok(line) => (Some(line), None),
            Err(err) => (None, Some(err.to_string())),
        };
        let gpu = line
            .as_ref()
            .and_then(|l| l.bus_id.as_deref())
            .and_then(|bus| gpus.and_then(|g| g.lookup(bus)));
        let cgroup = line.as_ref().and_then(|l| {
            l.pid
                .and_then(|pid| victim_cgroup(pid, l.name.as_deref(), past))
        });
        Self {
            ts_ns,
            past,
            seq,
            line,
            error,
            gpu,
            cgroup,
            raw: raw.to_owned(),
            truncated: false,
        }
    }

    /// The table's entry for its code, when it parsed.
    pub fn code(&self) -> Option<XidCode> {
        self.line.as_ref().map(|l| codes::lookup(l.code))
    }

    /// The `gpu` label of its counter: the GPU's index when known, else its bus id, else
    /// `unknown`.
    pub fn gpu_label(&self) -> String {
        match (
            &self.gpu,
            self.line.as_ref().and_then(|l| l.bus_id.as_ref()),
        ) {
            (Some(gpu), _) => gpu.index.to_string(),
            (None, Some(bus)) => bus.clone(),
            (None, None) => "unknown".to_owned(),
        }
    }

    /// The alert in the common data model. Fields that are unknown are left out.
    pub fn to_event(&self) -> Event {
        let flag = |b: bool| FieldValue::UInt(b.into());
        let text = |s: &str| FieldValue::Str(s.to_owned());
        let mut event = Event::new(super::NAME, self.ts_ns)
            .with("past", flag(self.past))
            .with("parsed", flag(self.line.is_some()));
        if let (Some(line), Some(code)) = (&self.line, self.code()) {
            event = event
                .with("xid", FieldValue::UInt(line.code.into()))
                .with("meaning", text(code.meaning))
                .with("action", text(code.action));
            let optional = [
                ("bus_id", line.bus_id.clone().map(FieldValue::Str)),
                (
                    "gpu_instance",
                    line.gpu_instance.map(|v| FieldValue::UInt(v.into())),
                ),
                (
                    "compute_instance",
                    line.compute_instance.map(|v| FieldValue::UInt(v.into())),
                ),
                (
                    "gpu_index",
                    self.gpu.as_ref().map(|g| FieldValue::UInt(g.index.into())),
                ),
                ("uuid", self.gpu.as_ref().map(|g| text(&g.uuid))),
                ("pid", line.pid.map(|v| FieldValue::UInt(v.into()))),
                ("name", line.name.as_deref().map(text)),
                ("cgroup", self.cgroup.as_deref().map(text)),
            ];
            for (name, value) in optional {
                if let Some(value) = value {
                    event = event.with(name, value);
                }
            }
            event = event.with("text", text(&line.text));
        }
        if let Some(error) = &self.error {
            event = event.with("error", text(error));
        }
        if let Some(seq) = self.seq {
            event = event.with("seq", FieldValue::UInt(seq));
        }
        event
            .with("truncated", flag(self.truncated))
            .with("raw", text(&self.raw))
    }
}

/// The cgroup of victim `pid` named `name`: its cgroup v2 path when it has one, else
/// its `/proc/PID/cgroup` lines joined by `;`.
///
/// `None` when the process is gone, or when it is not the victim: its comm differs from
/// `name` (pids are reused), or the line is from the past and names no one to check.
pub fn victim_cgroup(pid: u32, name: Option<&str>, past: bool) -> Option<String> {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    let comm = comm.trim_end_matches('\n');
    match name {
        // The kernel keeps 15 bytes of a comm; the driver may print more.
        Some(name) if !(name == comm || (comm.len() == 15 && name.starts_with(comm))) => {
            return None
        }
        None if past => return None,
        _ => {}
    }
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let unified = cgroups
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .map(str::to_owned);
    unified.or_else(|| {
        let all: Vec<&str> = cgroups.lines().filter(|l| !l.is_empty()).collect();
        (!all.is_empty()).then(|| all.join(";"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct OneGpu;

    impl GpuLookup for OneGpu {
        fn lookup(&self, bus_id: &str) -> Option<GpuIdentity> {
            (bus_id == "0000:3b:00").then(|| GpuIdentity {
                index: 3,
                uuid: "GPU-0f0e".into(),
                model: "NVIDIA H200".into(),
                bus_id: "0000:3b:00".parse().unwrap(),
            })
        }
    }

    fn own_comm() -> String {
        std::fs::read_to_string("/proc/self/comm")
            .unwrap()
            .trim_end()
            .to_owned()
    }

    #[test]
    fn a_parsed_line_carries_meaning_gpu_and_victim() {
        let pid = std::process::id();
        let raw = format!(
            "NVRM: Xid (PCI:0000:3b:00): 79, pid={pid}, name={}, GPU has fallen off the bus.\n",
            own_comm()
        );
        let gpus: Arc<dyn GpuLookup> = Arc::new(OneGpu);
        let alert = XidAlert::new(&raw, 5, false, None, Some(&gpus));
        let event = alert.to_event();
        assert_eq!(event.field("xid").and_then(FieldValue::as_u64), Some(79));
        assert_eq!(event.field("parsed").and_then(FieldValue::as_u64), Some(1));
        assert_eq!(
            event.field("gpu_index").and_then(FieldValue::as_u64),
            Some(3)
        );
        assert_eq!(
            event.field("uuid").and_then(FieldValue::as_str),
            Some("GPU-0f0e")
        );
        assert_eq!(
            event.field("pid").and_then(FieldValue::as_u64),
            Some(pid.into())
        );
        assert!(event
            .field("meaning")
            .and_then(FieldValue::as_str)
            .is_some_and(|m| m.contains("fallen off the bus")));
        assert_eq!(alert.gpu_label(), "3");
        assert_eq!(alert.raw, raw.trim_end());
        if std::path::Path::new("/proc/self/cgroup").exists() {
            assert!(alert.cgroup.is_some(), "a live victim's cgroup");
        }
    }

    #[test]
    fn an_unparsed_line_keeps_its_text_and_reason() {
        let alert = XidAlert::new("NVRM: Xid (PCI:0000:3b:00): oops", 1, true, Some(9), None);
        let event = alert.to_event();
        assert_eq!(event.field("parsed").and_then(FieldValue::as_u64), Some(0));
        assert_eq!(event.field("past").and_then(FieldValue::as_u64), Some(1));
        assert_eq!(event.field("seq").and_then(FieldValue::as_u64), Some(9));
        assert!(event.field("xid").is_none());
        assert!(event.field("error").is_some());
        assert_eq!(
            event.field("raw").and_then(FieldValue::as_str),
            Some("NVRM: Xid (PCI:0000:3b:00): oops")
        );
        assert_eq!(alert.gpu_label(), "unknown");
    }

    #[test]
    fn victims_that_are_gone_or_someone_else_have_no_cgroup() {
        let pid = std::process::id();
        assert_eq!(victim_cgroup(pid, Some("surely-not-us"), false), None);
        assert_eq!(
            victim_cgroup(pid, None, true),
            None,
            "a past line's pid is unchecked"
        );
        assert_eq!(victim_cgroup(u32::MAX, None, false), None);
        let unnamed = XidAlert::new("NVRM: Xid (0000:03:00): 13, 0001", 0, false, None, None);
        assert_eq!(unnamed.cgroup, None);
        assert_eq!(unnamed.gpu_label(), "0000:03:00");
    }
}
