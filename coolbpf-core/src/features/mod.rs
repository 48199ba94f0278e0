//! What this kernel really can do, found by loading and attaching tiny programs.
//!
//! A symbol in `/proc/kallsyms` or a config option says little: kprobe symbols are listed
//! on kernels built without kprobes, and fentry programs can be refused at load time by
//! lockdown or by the hypervisor. So every hook here is probed end to end: its program
//! (from `bpf/features.bpf.c`) is loaded, attached, its hook triggered, and it counts as
//! available only if the program really ran. Map types and helpers are probed by
//! creating the map or loading a program that calls the helper. Everything created
//! while probing is released before detection returns.

mod hooks;
mod libbpf_log;
mod support;
mod uprobe;
mod usdt;

use std::fmt;
use std::sync::OnceLock;

use libbpf_rs::libbpf_sys::{BPF_FUNC_get_stack, BPF_FUNC_loop};
use libbpf_rs::{MapType, ProgramType};
use serde::{Deserialize, Serialize};

use crate::environment::Environment;
use crate::error::{Error, Result};

/// Whether one feature works here, and why not when it does not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feature {
    /// Whether it works.
    pub available: bool,
    /// Why it does not (the failing step and its errno), when unavailable.
    pub reason: Option<String>,
}

impl Feature {
    /// A feature that works.
    pub fn available() -> Self {
        Self {
            available: true,
            reason: None,
        }
    }

    /// A feature that does not work, and why.
    pub fn unavailable(reason: impl Into<String>) -> Self {
        Self {
            available: false,
            reason: Some(reason.into()),
        }
    }

    /// `available()` for `Ok`, `unavailable(reason)` for `Err(reason)`.
    fn from_outcome(outcome: std::result::Result<(), String>) -> Self {
        outcome.map_or_else(Self::unavailable, |()| Self::available())
    }
}

/// The kernel features coolbpf chooses between, as detected on this machine.
///
/// Serializes to JSON with one object per feature (`{"available": .., "reason": ..}`)
/// under the names that [`Features::get`] and [`Features::require`] take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Features {
    /// The kernel release the detection ran on.
    pub kernel_release: String,
    /// Kernel BTF (`/sys/kernel/btf/vmlinux`) is present and parses: CO-RE and tp_btf need it.
    pub btf: Feature,
    /// Classic tracepoints (`SEC("tracepoint/...")`), attached through tracefs.
    pub tracepoint: Feature,
    /// Raw tracepoints (`SEC("raw_tp/...")`).
    pub raw_tp: Feature,
    /// BTF-typed raw tracepoints (`SEC("tp_btf/...")`).
    pub tp_btf: Feature,
    /// `perf_event` programs on a software clock (the profiler's sampling source here).
    pub perf_event_software: Feature,
    /// `perf_event` programs on hardware cycles (needs a PMU).
    pub perf_event_hardware: Feature,
    /// kprobes (needs `CONFIG_KPROBES`).
    pub kprobe: Feature,
    /// kretprobes.
    pub kretprobe: Feature,
    /// fentry/fexit trampolines (BPF_PROG_TYPE_TRACING).
    pub fentry: Feature,
    /// uprobes on a function of this process.
    pub uprobe: Feature,
    /// uretprobes on a function of this process.
    pub uretprobe: Feature,
    /// USDT probes: a stapsdt note of this process, fired, its argument read back.
    pub usdt: Feature,
    /// `BPF_MAP_TYPE_RINGBUF` (5.8+): the preferred event transport.
    pub ringbuf: Feature,
    /// `BPF_MAP_TYPE_PERF_EVENT_ARRAY`: the fallback event transport.
    pub perf_event_array: Feature,
    /// `BPF_MAP_TYPE_STACK_TRACE`, for `bpf_get_stackid`.
    pub stack_trace_map: Feature,
    /// The `bpf_get_stack` helper in `perf_event` programs.
    pub bpf_get_stack: Feature,
    /// The `bpf_loop` helper (5.17+) in tracepoint programs.
    pub bpf_loop: Feature,
    /// `BPF_MAP_LOOKUP_BATCH` on hash maps (5.6+), for draining maps cheaply.
    pub batch_map_ops: Feature,
}

/// Reads one feature out of [`Features`].
type Field = fn(&Features) -> &Feature;

/// Every feature by name, in the order detection and the table show them.
const ENTRIES: &[(&str, Field)] = &[
    ("btf", |f| &f.btf),
    ("tracepoint", |f| &f.tracepoint),
    ("raw_tp", |f| &f.raw_tp),
    ("tp_btf", |f| &f.tp_btf),
    ("perf_event_software", |f| &f.perf_event_software),
    ("perf_event_hardware", |f| &f.perf_event_hardware),
    ("kprobe", |f| &f.kprobe),
    ("kretprobe", |f| &f.kretprobe),
    ("fentry", |f| &f.fentry),
    ("uprobe", |f| &f.uprobe),
    ("uretprobe", |f| &f.uretprobe),
    ("usdt", |f| &f.usdt),
    ("ringbuf", |f| &f.ringbuf),
    ("perf_event_array", |f| &f.perf_event_array),
    ("stack_trace_map", |f| &f.stack_trace_map),
    ("bpf_get_stack", |f| &f.bpf_get_stack),
    ("bpf_loop", |f| &f.bpf_loop),
    ("batch_map_ops", |f| &f.batch_map_ops),
];

impl Features {
    /// Detects the features once per process and returns the cached result afterwards.
    ///
    /// Runs [`Environment::prepare`] first, whose errors (missing capabilities) it returns;
    /// a feature that does not work is not an error but an unavailable [`Feature`].
    pub fn detect() -> Result<&'static Features> {
        static DETECTED: OnceLock<Features> = OnceLock::new();
        if let Some(features) = DETECTED.get() {
            return Ok(features);
        }
        // Two threads racing here both detect, and one result wins: detection has no
        // side effects that outlive it, so that only costs time.
        let features = Self::detect_uncached()?;
        Ok(DETECTED.get_or_init(|| features))
    }

    /// Detects the features now, without the cache (e.g. after loading a kernel module).
    pub fn detect_uncached() -> Result<Features> {
        let environment = Environment::prepare()?;
        let _quiet = libbpf_log::Quiet::start();
        let tracefs_missing = environment.tracefs.error.as_deref();
        Ok(Features {
            kernel_release: environment.kernel_release.clone(),
            btf: support::btf(),
            tracepoint: hooks::tracepoint(tracefs_missing),
            raw_tp: hooks::raw_tp(),
            tp_btf: hooks::tp_btf(),
            perf_event_software: hooks::perf_event_software(),
            perf_event_hardware: hooks::perf_event_hardware(),
            kprobe: hooks::kprobe(false),
            kretprobe: hooks::kprobe(true),
            fentry: hooks::fentry(),
            uprobe: hooks::uprobe(false),
            uretprobe: hooks::uprobe(true),
            usdt: hooks::usdt(),
            ringbuf: support::map_type(MapType::RingBuf, "BPF_MAP_TYPE_RINGBUF"),
            perf_event_array: support::map_type(
                MapType::PerfEventArray,
                "BPF_MAP_TYPE_PERF_EVENT_ARRAY",
            ),
            stack_trace_map: support::map_type(MapType::StackTrace, "BPF_MAP_TYPE_STACK_TRACE"),
            bpf_get_stack: support::helper(
                ProgramType::PerfEvent,
                BPF_FUNC_get_stack,
                "bpf_get_stack",
            ),
            bpf_loop: support::helper(ProgramType::Tracepoint, BPF_FUNC_loop, "bpf_loop"),
            batch_map_ops: support::batch_map_ops(),
        })
    }

    /// The feature called `name` (the JSON field name, e.g. `tp_btf`).
    pub fn get(&self, name: &str) -> Option<&Feature> {
        ENTRIES
            .iter()
            .find(|(entry, _)| *entry == name)
            .map(|(_, field)| field(self))
    }

    /// Every feature with its name, in a stable order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Feature)> + '_ {
        ENTRIES
            .iter()
            .map(move |(name, field)| (*name, field(self)))
    }

    /// `Ok` when `name` is available; otherwise [`Error::Unsupported`] with the detected
    /// reason, or [`Error::NotFound`] for a name that is not a feature.
    pub fn require(&self, name: &str) -> Result<()> {
        let feature = self.get(name).ok_or_else(|| Error::NotFound {
            what: "feature",
            name: name.to_owned(),
            known: ENTRIES.iter().map(|(name, _)| (*name).to_owned()).collect(),
        })?;
        if feature.available {
            return Ok(());
        }
        Err(Error::Unsupported {
            feature: name.to_owned(),
            reason: feature
                .reason
                .clone()
                .unwrap_or_else(|| "not detected".to_owned()),
        })
    }
}

/// A table for people: one line per feature with `yes`/`no` and the reason.
impl fmt::Display for Features {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "kernel {}", self.kernel_release)?;
        writeln!(f, "{:<20} {:<9} REASON", "FEATURE", "AVAILABLE")?;
        for (name, feature) in self.iter() {
            let available = if feature.available { "yes" } else { "no" };
            let line = format!(
                "{name:<20} {available:<9} {}",
                feature.reason.as_deref().unwrap_or("")
            );
            writeln!(f, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Features {
        let yes = Feature::available;
        let no = || Feature::unavailable("attach failed: Operation not supported (os error 95)");
        Features {
            kernel_release: "6.18.44".into(),
            btf: yes(),
            tracepoint: yes(),
            raw_tp: yes(),
            tp_btf: yes(),
            perf_event_software: yes(),
            perf_event_hardware: no(),
            kprobe: no(),
            kretprobe: no(),
            fentry: no(),
            uprobe: yes(),
            uretprobe: yes(),
            usdt: yes(),
            ringbuf: yes(),
            perf_event_array: yes(),
            stack_trace_map: yes(),
            bpf_get_stack: yes(),
            bpf_loop: yes(),
            batch_map_ops: yes(),
        }
    }

    #[test]
    fn every_field_has_an_entry_under_its_json_name() {
        let json = serde_json::to_value(sample()).unwrap();
        let object = json.as_object().unwrap();
        assert_eq!(
            object.len(),
            ENTRIES.len() + 1,
            "kernel_release plus one per feature"
        );
        for (name, feature) in sample().iter() {
            assert_eq!(object[name]["available"], feature.available, "{name}");
        }
    }

    #[test]
    fn require_explains_unavailable_and_unknown_features() {
        let features = sample();
        assert!(features.require("tp_btf").is_ok());
        let error = features.require("kprobe").unwrap_err();
        assert!(matches!(&error, Error::Unsupported { feature, .. } if feature == "kprobe"));
        assert!(error.to_string().contains("os error 95"), "{error}");
        let error = features.require("kprobes").unwrap_err();
        assert!(
            matches!(
                &error,
                Error::NotFound {
                    what: "feature",
                    ..
                }
            ),
            "{error}"
        );
        assert!(error.to_string().contains("kprobe, kretprobe"), "{error}");
    }

    #[test]
    fn table_has_a_line_per_feature() {
        let table = sample().to_string();
        assert_eq!(table.lines().count(), ENTRIES.len() + 2);
        assert!(
            table.lines().any(|line| line == "tp_btf               yes"),
            "{table}"
        );
        assert!(
            table.contains("kprobe               no        attach failed"),
            "{table}"
        );
    }

    #[test]
    fn json_round_trips() {
        let json = serde_json::to_string(&sample()).unwrap();
        assert_eq!(serde_json::from_str::<Features>(&json).unwrap(), sample());
    }
}
