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
    create: fn(&ProbeOptions) -> Result<Box<dyn Plugin>>,
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
        (self.create)(options)
    }

    /// Whether `features` has what this probe needs.
    pub fn availability(&self, features: &Features) -> Availability {
        let missing: Vec<String> = self
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
        Availability {
            available: missing.is_empty(),
            reason: (!missing.is_empty()).then(|| missing.join("; ")),
        }
    }
}

const SYSCALL_HOOKS: &[&str] = &["tp_btf", "raw_tp", "tracepoint"];

static REGISTRY: &[ProbeInfo] = &[
    ProbeInfo {
        name: syscount::NAME,
        category: Category::Syscalls,
        description: "system calls counted per process and syscall",
        hooks: &["raw_syscalls:sys_enter"],
        requires: &[SYSCALL_HOOKS],
        options: syscount::OPTIONS,
        create: |options| {
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
        create: |options| {
            Ok(Box::new(execsnoop::ExecsnoopPlugin::new(
                execsnoop::ExecsnoopConfig::from_options(options)?,
            )))
        },
    },
];

/// Every probe in the catalogue.
pub fn probes() -> &'static [ProbeInfo] {
    REGISTRY
}

/// The probe called `name`; the error lists the known names.
pub fn find(name: &str) -> Result<&'static ProbeInfo> {
    REGISTRY
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| Error::NotFound {
            what: "probe",
            name: name.to_owned(),
            known: REGISTRY.iter().map(|p| p.name.to_owned()).collect(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_found() {
        for probe in probes() {
            assert_eq!(find(probe.name).unwrap().name, probe.name);
            assert_eq!(probes().iter().filter(|p| p.name == probe.name).count(), 1);
        }
        let err = find("nope").unwrap_err();
        assert!(
            err.to_string().contains("syscount") && err.to_string().contains("execsnoop"),
            "{err}"
        );
    }

    #[test]
    fn unknown_options_are_rejected_before_loading() {
        let err = find("syscount")
            .unwrap()
            .create(&ProbeOptions::new().with("bogus", "1"))
            .err()
            .unwrap();
        assert_eq!(err.kind(), coolbpf_core::ErrorKind::InvalidArgument);
        assert!(err.to_string().contains("entries"), "{err}");
    }
}
