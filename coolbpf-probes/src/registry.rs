//! The probe registry: every probe's name, category, description, hooks, the kernel
//! features it needs and its options, and how to make its [`Plugin`].

use coolbpf_core::{Error, Features, Plugin, Result};
use serde::Serialize;

use crate::options::{OptionSpec, ProbeOptions};
use crate::{execsnoop, syscount};

/// What area a probe covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// System calls.
    Syscalls,
    /// Process lifecycle.
    Process,
    /// The scheduler.
    Sched,
    /// CPU usage and profiling.
    Cpu,
    /// Block IO.
    Io,
    /// Memory: page faults, reclaim, OOM kills, allocations.
    Memory,
    /// The network stack: TCP connections, retransmits, drops.
    Network,
    /// GPUs, their drivers and the libraries that drive them (CUDA, NCCL, NVML).
    Gpu,
}

/// One registry entry.
#[derive(Clone, Copy)]
pub struct ProbeInfo {
    /// The probe's name (`coolbpf run NAME`).
    pub name: &'static str,
    /// Its area.
    pub category: Category,
    /// One line saying what it shows.
    pub description: &'static str,
    /// The kernel hooks it uses.
    pub hooks: &'static [&'static str],
    /// Kernel features it needs: every group must have at least one available feature
    /// (a group lists interchangeable alternatives, most preferred first).
    pub requires: &'static [&'static [&'static str]],
    /// Options it accepts besides `--pid`.
    pub options: &'static [OptionSpec],
    /// What the host itself must have besides kernel features (a library, a device):
    /// `Err` says what is missing. [`host_ready`] for probes that need nothing more.
    pub host: fn() -> std::result::Result<(), String>,
    /// Makes its plugin from options; [`ProbeInfo::create`] checks and calls it.
    pub factory: fn(&ProbeOptions) -> Result<Box<dyn Plugin>>,
}

/// The [`ProbeInfo::host`] check of probes that need nothing from the host but kernel
/// features.
pub fn host_ready() -> std::result::Result<(), String> {
    Ok(())
}

impl std::fmt::Debug for ProbeInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeInfo")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Whether a probe can run on this kernel, and why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Availability {
    /// It can run.
    pub available: bool,
    /// What is missing, when it cannot.
    pub reason: Option<String>,
}

impl ProbeInfo {
    /// Makes the probe's plugin with `options` (checked against [`Self::options`]).
    pub fn create(&self, options: &ProbeOptions) -> Result<Box<dyn Plugin>> {
        (self.factory)(options)
    }

    /// Whether `features` and this host have what this probe needs.
    pub fn availability(&self, features: &Features) -> Availability {
        let mut missing: Vec<String> = self
            .requires
            .iter()
            .filter(|group| {
                !group
                    .iter()
                    .any(|feature| features.require(feature).is_ok())
            })
            .map(|group| {
                let reasons: Vec<String> = group
                    .iter()
                    .filter_map(|feature| features.require(feature).err().map(|e| e.to_string()))
                    .collect();
                reasons.join("; ")
            })
            .collect();
        if let Err(reason) = (self.host)() {
            missing.push(reason);
        }
        Availability {
            available: missing.is_empty(),
            reason: (!missing.is_empty()).then(|| missing.join("; ")),
        }
    }
}

const SYSCALL_HOOKS: &[&str] = &["tp_btf", "raw_tp", "tracepoint"];

/// The syscall, process, scheduler and CPU probes; [`AREAS`] adds the others.
pub const PROBES: &[ProbeInfo] = &[
    ProbeInfo {
        name: syscount::NAME,
        category: Category::Syscalls,
        description: "system calls counted per process and syscall",
        hooks: &["raw_syscalls:sys_enter"],
        requires: &[SYSCALL_HOOKS],
        options: syscount::OPTIONS,
        host: host_ready,
        factory: |options| {
            Ok(Box::new(syscount::SyscountPlugin::new(
                syscount::SyscountConfig::from_options(options)?,
            )))
        },
    },
    ProbeInfo {
        name: execsnoop::NAME,
        category: Category::Process,
        description: "every successful exec, with pid, ppid, comm, filename and args",
        hooks: &["sched:sched_process_exec"],
        requires: &[SYSCALL_HOOKS, &["ringbuf"]],
        options: execsnoop::OPTIONS,
        host: host_ready,
        factory: |options| {
            Ok(Box::new(execsnoop::ExecsnoopPlugin::new(
                execsnoop::ExecsnoopConfig::from_options(options)?,
            )))
        },
    },
    ProbeInfo {
        name: crate::runqlat::NAME,
        category: Category::Sched,
        description: "run-queue latency histograms (us): in all, per CPU or per process",
        hooks: &[
            "sched:sched_wakeup",
            "sched:sched_wakeup_new",
            "sched:sched_switch",
        ],
        requires: &[SYSCALL_HOOKS],
        options: crate::runqlat::OPTIONS,
        host: host_ready,
        factory: |options| {
            Ok(Box::new(crate::runqlat::RunqlatPlugin::new(
                crate::runqlat::RunqlatConfig::from_options(options)?,
            )))
        },
    },
    ProbeInfo {
        name: crate::cpudist::NAME,
        category: Category::Sched,
        description: "on-CPU time per scheduling, as histograms (us): in all or per process",
        hooks: &["sched:sched_switch"],
        requires: &[SYSCALL_HOOKS],
        options: crate::cpudist::OPTIONS,
        host: host_ready,
        factory: |options| {
            Ok(Box::new(crate::cpudist::CpudistPlugin::new(
                crate::cpudist::CpudistConfig::from_options(options)?,
            )))
        },
    },
    ProbeInfo {
        name: crate::runqslower::NAME,
        category: Category::Sched,
        description: "each run-queue wait above min_us, with the task that had the CPU",
        hooks: &[
            "sched:sched_wakeup",
            "sched:sched_wakeup_new",
            "sched:sched_switch",
        ],
        requires: &[SYSCALL_HOOKS, &["ringbuf"]],
        options: crate::runqslower::OPTIONS,
        host: host_ready,
        factory: |options| {
            Ok(Box::new(crate::runqslower::RunqslowerPlugin::new(
                crate::runqslower::RunqslowerConfig::from_options(options)?,
            )))
        },
    },
    ProbeInfo {
        name: crate::offcpu::NAME,
        category: Category::Cpu,
        description: "off-CPU time by kernel and user stack, symbolized",
        hooks: &["sched:sched_switch"],
        requires: &[SYSCALL_HOOKS, &["stack_trace_map"]],
        options: crate::offcpu::OPTIONS,
        host: host_ready,
        factory: |options| {
            Ok(Box::new(crate::offcpu::OffCpuPlugin::new(
                crate::offcpu::OffCpuConfig::from_options(options)?,
            )))
        },
    },
    ProbeInfo {
        name: crate::hardirqs::NAME,
        category: Category::Cpu,
        description: "time in hard interrupt handlers per IRQ, as histograms (ns)",
        hooks: &["irq:irq_handler_entry", "irq:irq_handler_exit"],
        requires: &[SYSCALL_HOOKS],
        options: crate::hardirqs::OPTIONS,
        host: host_ready,
        factory: |options| {
            Ok(Box::new(crate::hardirqs::HardirqsPlugin::new(
                crate::hardirqs::HardirqsConfig::from_options(options)?,
            )))
        },
    },
    ProbeInfo {
        name: crate::softirqs::NAME,
        category: Category::Cpu,
        description: "time in soft interrupt handlers per vector, as histograms (ns)",
        hooks: &["irq:softirq_entry", "irq:softirq_exit"],
        requires: &[SYSCALL_HOOKS],
        options: crate::softirqs::OPTIONS,
        host: host_ready,
        factory: |options| {
            Ok(Box::new(crate::softirqs::SoftirqsPlugin::new(
                crate::softirqs::SoftirqsConfig::from_options(options)?,
            )))
        },
    },
    ProbeInfo {
        name: crate::nosched::NAME,
        category: Category::Sched,
        description:
            "tasks in kernel mode without rescheduling beyond threshold_us, with their kernel stack",
        hooks: &[
            "perf_event:cpu-clock",
            "sched:sched_switch",
            "raw_syscalls:sys_exit",
        ],
        requires: &[
            SYSCALL_HOOKS,
            &["perf_event_software"],
            &["bpf_get_stack"],
            &["ringbuf"],
        ],
        options: crate::nosched::OPTIONS,
        host: host_ready,
        factory: |options| {
            Ok(Box::new(crate::nosched::NoschedPlugin::new(
                crate::nosched::NoschedConfig::from_options(options)?,
            )))
        },
    },
    ProbeInfo {
        name: crate::profile::NAME,
        category: Category::Cpu,
        description: "on-CPU stacks, kernel and user, sampled at a fixed rate and symbolized",
        hooks: &["perf_event:cpu-clock", "perf_event:cycles"],
        requires: &[&["perf_event_software"], &["bpf_get_stack"], &["ringbuf"]],
        options: crate::profile::OPTIONS,
        host: host_ready,
        factory: |options| {
            Ok(Box::new(crate::profile::ProfilePlugin::new(
                crate::profile::ProfileConfig::from_options(options)?,
            )))
        },
    },
];

/// A catalogue: the probes of one or more crates, searched in order. This crate's alone
/// is [`CATALOGUE`]; `coolbpf_gpu::CATALOGUE` is it [`with`](Self::with) the GPU probes,
/// and is the one the faces (the command, Python, C) offer.
#[derive(Debug, Clone, Copy)]
pub struct Catalogue {
    parts: &'static [&'static [ProbeInfo]],
    /// Another crate's probes, after `parts`.
    more: &'static [ProbeInfo],
}

/// Every probe of this crate, area by area: [`PROBES`] (syscalls, processes, the scheduler,
/// CPU), then [`io::PROBES`](crate::io::PROBES), [`mem::PROBES`](crate::mem::PROBES) and
/// [`net::PROBES`](crate::net::PROBES).
pub const AREAS: [&[ProbeInfo]; 4] = [
    PROBES,
    crate::io::PROBES,
    crate::mem::PROBES,
    crate::net::PROBES,
];

/// The probes of this crate, as a catalogue.
pub const CATALOGUE: Catalogue = Catalogue::new(&AREAS);

impl Catalogue {
    /// The probes of `parts`, in order; a name must not appear twice.
    pub const fn new(parts: &'static [&'static [ProbeInfo]]) -> Self {
        Self { parts, more: &[] }
    }

    /// This catalogue followed by `more`, the probes of a crate built on this one (the
    /// GPU probes); it replaces what an earlier `with` added.
    #[must_use]
    pub const fn with(self, more: &'static [ProbeInfo]) -> Self {
        Self {
            parts: self.parts,
            more,
        }
    }

    /// Every probe, in catalogue order.
    pub fn probes(&self) -> impl Iterator<Item = &'static ProbeInfo> {
        self.parts
            .iter()
            .flat_map(|part| part.iter())
            .chain(self.more)
    }

    /// The probe called `name`; the error lists the known names.
    pub fn find(&self, name: &str) -> Result<&'static ProbeInfo> {
        self.probes()
            .find(|p| p.name == name)
            .ok_or_else(|| Error::NotFound {
                what: "probe",
                name: name.to_owned(),
                known: self.probes().map(|p| p.name.to_owned()).collect(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_found() {
        for probe in CATALOGUE.probes() {
            assert_eq!(CATALOGUE.find(probe.name).unwrap().name, probe.name);
            assert_eq!(
                CATALOGUE.probes().filter(|p| p.name == probe.name).count(),
                1
            );
        }
        let err = CATALOGUE.find("nope").unwrap_err();
        assert!(
            err.to_string().contains("syscount") && err.to_string().contains("execsnoop"),
            "{err}"
        );
    }

    #[test]
    fn unknown_options_are_rejected_before_loading() {
        let err = CATALOGUE
            .find("syscount")
            .unwrap()
            .create(&ProbeOptions::new().with("bogus", "1"))
            .err()
            .unwrap();
        assert_eq!(err.kind(), coolbpf_core::ErrorKind::InvalidArgument);
        assert!(err.to_string().contains("entries"), "{err}");
    }
}
