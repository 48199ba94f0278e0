//! `syscount`: system calls counted per process and per syscall.
//!
//! Hook: `raw_syscalls:sys_enter`, as tp_btf where the kernel has BTF, else raw_tp, else
//! the classic tracepoint. Counts are kept in a kernel hash map keyed by (pid, syscall)
//! and read, never drained, so they are cumulative since start (Prometheus counters).

mod names;

use coolbpf_core::stream::KernelLosses;
use coolbpf_core::{
    labels, BpfObject, MapView, Metric, ObjectBuilder, PluginContext, Record, Result,
};

pub use names::{syscall_name, syscall_number};

use crate::options::{OptionSpec, ProbeOptions};
use crate::probe_plugin::{ProbePlugin, ProbeSource};

static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/syscount.bpf.o"));

/// The probe's name in the registry and in its records.
pub const NAME: &str = "syscount";

/// The entry points, most preferred first.
const PROGRAMS: [&str; 3] = ["sys_enter_btf", "sys_enter_raw", "sys_enter_tp"];

const ENTRIES: OptionSpec = OptionSpec {
    name: "entries",
    help: "capacity of the (pid, syscall) table; keys beyond it are counted as lost (a number)",
    default: "16384",
};

/// Options `syscount` accepts besides `--pid`.
pub const OPTIONS: &[OptionSpec] = &[ENTRIES];

/// How to run `syscount`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyscountConfig {
    /// Count only this process (tgid); `None` counts every process.
    pub pid: Option<u32>,
    /// Capacity of the kernel's (pid, syscall) table.
    pub entries: u32,
}

impl Default for SyscountConfig {
    fn default() -> Self {
        Self {
            pid: None,
            entries: 16384,
        }
    }
}

impl SyscountConfig {
    /// The config described by registry options.
    pub fn from_options(options: &ProbeOptions) -> Result<Self> {
        options.check(NAME, OPTIONS)?;
        Ok(Self {
            pid: options.pid,
            entries: options.get(&ENTRIES)?,
        })
    }
}

/// One (process, syscall) count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyscallCount {
    /// Process id (tgid).
    pub pid: u32,
    /// The process's name when it first made this syscall.
    pub comm: String,
    /// Syscall number.
    pub syscall: u32,
    /// Syscall name (`syscall_N` when unknown).
    pub name: String,
    /// Calls since the probe started.
    pub count: u64,
}

/// A running `syscount`: the loaded, attached program and its table.
#[derive(Debug)]
pub struct Syscount {
    object: BpfObject,
    counts: MapView,
    program: String,
}

impl Syscount {
    /// Loads and attaches the probe.
    pub fn start(config: &SyscountConfig) -> Result<Self> {
        let mut object = ObjectBuilder::from_bytes(OBJECT)
            .global("coolbpf_filter_tgid", &config.pid.unwrap_or(0))
            .max_entries("counts", config.entries)
            .alternatives(&PROGRAMS)
            .load()?;
        let program = object.attach_chosen(&PROGRAMS)?;
        let counts = object.map("counts")?;
        Ok(Self {
            object,
            counts,
            program,
        })
    }

    /// Which entry point the kernel got (`sys_enter_btf`, `sys_enter_raw` or `sys_enter_tp`).
    pub fn program(&self) -> &str {
        &self.program
    }

    /// Every count so far, largest first.
    pub fn counts(&self) -> Result<Vec<SyscallCount>> {
        let mut counts: Vec<SyscallCount> = self
            .counts
            .entries()?
            .into_iter()
            .filter_map(|(key, value)| decode_count(&key, &value))
            .collect();
        counts.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then(a.pid.cmp(&b.pid))
                .then(a.syscall.cmp(&b.syscall))
        });
        Ok(counts)
    }

    /// Kernel-side losses (a full table).
    pub fn losses(&self) -> Result<KernelLosses> {
        KernelLosses::read(&self.object)
    }
}

fn decode_count(key: &[u8], value: &[u8]) -> Option<SyscallCount> {
    let key = coolbpf_core::decode::Reader::new(key, 8, "syscount key").ok()?;
    let value = coolbpf_core::decode::Reader::new(value, 24, "syscount value").ok()?;
    let syscall = key.u32(4).ok()?;
    Some(SyscallCount {
        pid: key.u32(0).ok()?,
        comm: value.c_str(8, 16).ok()?,
        syscall,
        name: syscall_name(syscall).into_owned(),
        count: value.u64(0).ok()?,
    })
}

impl ProbeSource for Syscount {
    const NAME: &'static str = NAME;
    type Config = SyscountConfig;

    fn start(config: &SyscountConfig, _ctx: &PluginContext) -> Result<Self> {
        Self::start(config)
    }

    fn collect(&self, out: &mut Vec<Record>) -> Result<()> {
        for count in self.counts()? {
            let labels =
                labels! { "pid" => count.pid, "comm" => count.comm, "syscall" => count.name };
            out.push(Metric::counter(NAME, "syscalls_total", labels, count.count).into());
        }
        out.extend(self.losses()?.to_records(NAME));
        Ok(())
    }
}

/// `syscount` as a runtime plugin: one `syscalls_total` counter per (pid, syscall) every
/// interval, plus the loss counters.
pub type SyscountPlugin = ProbePlugin<Syscount>;
