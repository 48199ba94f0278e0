//! What the scheduler probes ([`runqlat`](crate::runqlat), [`cpudist`](crate::cpudist),
//! [`runqslower`](crate::runqslower), [`offcpu`](crate::offcpu),
//! [`nosched`](crate::nosched)) share: the choice of kernel hook (which the interrupt
//! probes use too), histogram keys, and the counters every one of them keeps
//! (`sched_counters` in `bpf/sched.bpf.h`).

use std::fmt;
use std::str::FromStr;

use coolbpf_core::decode::c_string;
use coolbpf_core::stream::KernelLosses;
use coolbpf_core::{
    labels, BpfObject, Error, Histogram, Labels, Layout, MapView, Metric, ObjectBuilder, Record,
    Result,
};

use crate::options::OptionSpec;

/// Which kind of kernel hook a scheduler probe attaches with.
///
/// `Auto` takes the best the kernel has: tp_btf, else raw_tp, else the classic
/// tracepoint. Forcing one is for comparing them, or for working around a kernel that
/// advertises a kind it then mishandles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HookKind {
    /// The best available, in the order tp_btf, raw_tp, tracepoint.
    #[default]
    Auto,
    /// BTF-typed raw tracepoints only.
    TpBtf,
    /// Raw tracepoints only.
    RawTp,
    /// Classic tracepoints only. Their context carries thread ids only, so a task's
    /// process id is learnt when it first switches out; a new thread's first wait is
    /// attributed to its thread id.
    Tracepoint,
}

impl HookKind {
    /// The program-name suffixes to try, most preferred first.
    fn suffixes(self) -> &'static [&'static str] {
        match self {
            Self::Auto => &["btf", "raw", "tp"],
            Self::TpBtf => &["btf"],
            Self::RawTp => &["raw"],
            Self::Tracepoint => &["tp"],
        }
    }
}

impl FromStr for HookKind {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "auto" => Ok(Self::Auto),
            "tp_btf" => Ok(Self::TpBtf),
            "raw_tp" => Ok(Self::RawTp),
            "tracepoint" => Ok(Self::Tracepoint),
            _ => Err(Error::InvalidArgument(format!(
                "hook {text:?}: expected auto, tp_btf, raw_tp or tracepoint"
            ))),
        }
    }
}

impl fmt::Display for HookKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::TpBtf => "tp_btf",
            Self::RawTp => "raw_tp",
            Self::Tracepoint => "tracepoint",
        })
    }
}

/// The `hook` option every scheduler probe accepts.
pub(crate) const HOOK: OptionSpec = OptionSpec {
    name: "hook",
    help: "kernel hook kind: auto, tp_btf, raw_tp or tracepoint",
    default: "auto",
};

/// The programs of each role (`wakeup`, `switch`...) that may be loaded for `hook`.
///
/// Each BPF object names its entry points `ROLE_btf`, `ROLE_raw` and `ROLE_tp`.
#[derive(Debug, Clone)]
pub(crate) struct Roles {
    /// Per role: every program the object has for it, and those that may fill it, most
    /// preferred first.
    roles: Vec<Role>,
}

#[derive(Debug, Clone)]
struct Role {
    all: Vec<String>,
    choices: Vec<String>,
}

impl Roles {
    /// The choices for `roles` under `hook`.
    pub(crate) fn new(roles: &[&str], hook: HookKind) -> Self {
        let programs = |role: &str, kind: HookKind| -> Vec<String> {
            kind.suffixes()
                .iter()
                .map(|suffix| format!("{role}_{suffix}"))
                .collect()
        };
        let roles = roles
            .iter()
            .map(|role| Role {
                all: programs(role, HookKind::Auto),
                choices: programs(role, hook),
            })
            .collect();
        Self { roles }
    }

    /// One role that only `program` fills (an entry point with no alternatives).
    pub(crate) fn single(program: &str) -> Self {
        Self {
            roles: vec![Role {
                all: vec![program.to_owned()],
                choices: vec![program.to_owned()],
            }],
        }
    }

    /// Declares each role's alternatives to `builder` and disables the programs `hook`
    /// excludes, so that exactly one program per role is loaded.
    pub(crate) fn configure(&self, mut builder: ObjectBuilder) -> ObjectBuilder {
        for role in &self.roles {
            for program in &role.all {
                if !role.choices.contains(program) {
                    builder = builder.disable_program(program);
                }
            }
            builder = builder.alternatives(&role.choices);
        }
        builder
    }

    /// Disables every program of every role: for an object that holds other ways to do
    /// the same job, which are not loaded.
    pub(crate) fn disable(&self, mut builder: ObjectBuilder) -> ObjectBuilder {
        for program in self.roles.iter().flat_map(|role| &role.all) {
            builder = builder.disable_program(program);
        }
        builder
    }

    /// Attaches the program loaded for each role; returns their names.
    pub(crate) fn attach(&self, object: &mut BpfObject) -> Result<Vec<String>> {
        self.roles
            .iter()
            .map(|role| object.attach_chosen(&role.choices))
            .collect()
    }
}

/// How a histogram probe splits its histograms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Per {
    /// One histogram for everything.
    #[default]
    Total,
    /// One per CPU.
    Cpu,
    /// One per process (tgid).
    Pid,
}

impl Per {
    /// The value of the BPF global `per_mode`.
    pub(crate) fn mode(self) -> u32 {
        match self {
            Self::Total => 0,
            Self::Cpu => 1,
            Self::Pid => 2,
        }
    }
}

impl FromStr for Per {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "total" => Ok(Self::Total),
            "cpu" => Ok(Self::Cpu),
            "pid" => Ok(Self::Pid),
            _ => Err(Error::InvalidArgument(format!(
                "per {text:?}: expected total, cpu or pid"
            ))),
        }
    }
}

/// Which tasks one histogram covers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum HistKey {
    /// All of them.
    Total,
    /// Those on this CPU.
    Cpu(u32),
    /// One process.
    Pid {
        /// Process id (tgid).
        pid: u32,
        /// Its name when first seen.
        comm: String,
    },
}

impl HistKey {
    /// The key as metric labels: `{}`, `{"cpu":N}` or `{"pid":N,"comm":"..."}`.
    pub fn labels(&self) -> Labels {
        match self {
            Self::Total => labels! {},
            Self::Cpu(cpu) => labels! { "cpu" => *cpu },
            Self::Pid { pid, comm } => labels! { "pid" => *pid, "comm" => comm.as_str() },
        }
    }
}

/// Size in bytes of `struct coolbpf_log2_hist` (65 slots and the sum).
const LOG2_HIST_BYTES: usize = 66 * 8;
const COMM_LEN: usize = 16;

/// Reads the histograms of mode `per`: from the per-CPU `sched_cpu_hists` (one log2
/// histogram in microseconds per CPU; summed for the total, CPUs that saw nothing left
/// out per CPU) or from the per-process `hists` map (values are `struct hist_value`, a
/// histogram followed by a comm, keyed by tgid).
pub(crate) fn read_histograms(
    cpu_hists: &MapView,
    process_hists: &MapView,
    per: Per,
) -> Result<Vec<(HistKey, Histogram)>> {
    let mut out = Vec::new();
    match per {
        Per::Total | Per::Cpu => {
            let per_cpu = cpu_hists
                .lookup_per_cpu(&0u32.to_ne_bytes())?
                .unwrap_or_default();
            if per == Per::Total {
                let sum = coolbpf_core::map::sum_words(&per_cpu);
                out.push((
                    HistKey::Total,
                    Histogram::from_raw(Layout::Log2, &sum, "us")?,
                ));
            } else {
                for (cpu, value) in per_cpu.iter().enumerate() {
                    let histogram = Histogram::from_raw(Layout::Log2, value, "us")?;
                    if histogram.count > 0 {
                        out.push((HistKey::Cpu(cpu as u32), histogram));
                    }
                }
            }
        }
        Per::Pid => {
            for (key, value) in process_hists.entries()? {
                let Some(pid) = key
                    .get(..4)
                    .and_then(|k| k.try_into().ok())
                    .map(u32::from_ne_bytes)
                else {
                    continue;
                };
                let comm = value
                    .get(LOG2_HIST_BYTES..LOG2_HIST_BYTES + COMM_LEN)
                    .map(c_string)
                    .unwrap_or_default();
                let histogram = Histogram::from_raw(Layout::Log2, &value, "us")?;
                out.push((HistKey::Pid { pid, comm }, histogram));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// All histograms merged into one (empty, in microseconds, when there are none).
pub(crate) fn merged(histograms: &[(HistKey, Histogram)]) -> Histogram {
    let mut total = Histogram {
        unit: "us".to_owned(),
        ..Histogram::default()
    };
    for (_, histogram) in histograms {
        total.merge(histogram);
    }
    total
}

/// What a scheduler probe counted, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedCounters {
    /// Every sched_switch seen (the kernel's own count is `ctxt` in /proc/stat).
    pub switches: u64,
    /// Values that passed the probe's filters: histogram entries, events, off-CPU spans.
    pub measured: u64,
}

impl SchedCounters {
    /// Reads `sched_counters` from `map`.
    pub(crate) fn read(map: &MapView) -> Result<Self> {
        let slots = map.array_counters()?;
        let slot = |i: usize| slots.get(i).copied().unwrap_or(0);
        Ok(Self {
            switches: slot(0),
            measured: slot(1),
        })
    }

    /// The `sched_switch_total` counter of `probe`.
    pub fn to_metric(&self, probe: &str) -> Metric {
        Metric::counter(probe, "sched_switch_total", labels! {}, self.switches)
    }
}

/// A loaded, attached scheduler histogram probe ([`runqlat`](crate::runqlat),
/// [`cpudist`](crate::cpudist)): its object, the `hists` and `sched_counters` maps, and
/// how its histograms are keyed.
#[derive(Debug)]
pub struct SchedHistogram {
    object: BpfObject,
    cpu_hists: MapView,
    hists: MapView,
    counters: MapView,
    per: Per,
    programs: Vec<String>,
}

impl SchedHistogram {
    /// Loads the object `builder` describes with one program per role of `roles`,
    /// filtered to `pid`'s tasks and keyed by `per`, and attaches it.
    pub(crate) fn start(
        builder: ObjectBuilder,
        roles: &Roles,
        pid: Option<u32>,
        per: Per,
    ) -> Result<Self> {
        let builder = builder
            .global("coolbpf_filter_tgid", &pid.unwrap_or(0))
            .global("per_mode", &per.mode());
        let mut object = roles.configure(builder).load()?;
        let programs = roles.attach(&mut object)?;
        Ok(Self {
            cpu_hists: object.map("sched_cpu_hists")?,
            hists: object.map("hists")?,
            counters: object.map("sched_counters")?,
            object,
            per,
            programs,
        })
    }

    /// The programs attached, one per hook (e.g. `wakeup_btf`, `switch_btf`).
    pub fn programs(&self) -> &[String] {
        &self.programs
    }

    /// Every histogram so far, by key (cumulative since start).
    pub fn histograms(&self) -> Result<Vec<(HistKey, Histogram)>> {
        read_histograms(&self.cpu_hists, &self.hists, self.per)
    }

    /// All histograms merged into one.
    pub fn total(&self) -> Result<Histogram> {
        Ok(merged(&self.histograms()?))
    }

    /// Switches seen and values measured.
    pub fn counters(&self) -> Result<SchedCounters> {
        SchedCounters::read(&self.counters)
    }

    /// Kernel-side losses (a full table).
    pub fn losses(&self) -> Result<KernelLosses> {
        KernelLosses::read(&self.object)
    }

    /// Detaches the programs; what was measured stays readable.
    pub fn stop(&mut self) {
        self.object.detach_all();
    }

    /// The records of one collect: each histogram as metric `metric` of `probe`, the
    /// switch counter, and the loss counters.
    pub(crate) fn records(&self, probe: &str, metric: &str) -> Result<Vec<Record>> {
        let mut out: Vec<Record> = self
            .histograms()?
            .into_iter()
            .map(|(key, histogram)| {
                Metric::histogram(probe, metric, key.labels(), histogram).into()
            })
            .collect();
        out.push(self.counters()?.to_metric(probe).into());
        out.extend(self.losses()?.to_records(probe));
        Ok(out)
    }
}

/// The kernel's monotonic clock (what `bpf_ktime_get_ns` reads), ns. Public for the
/// probes of other crates that compare their own time with an event's.
pub fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec; CLOCK_MONOTONIC is always supported.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut now) };
    (now.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(now.tv_nsec as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_reject() {
        assert_eq!("raw_tp".parse::<HookKind>().unwrap(), HookKind::RawTp);
        assert!("kprobe".parse::<HookKind>().is_err());
        assert_eq!("cpu".parse::<Per>().unwrap(), Per::Cpu);
        let err = "thread".parse::<Per>().unwrap_err();
        assert!(err.to_string().contains("total, cpu or pid"), "{err}");
        for hook in [
            HookKind::Auto,
            HookKind::TpBtf,
            HookKind::RawTp,
            HookKind::Tracepoint,
        ] {
            assert_eq!(hook.to_string().parse::<HookKind>().unwrap(), hook);
        }
    }

    #[test]
    fn roles_expand_per_hook() {
        let roles = Roles::new(&["wakeup", "switch"], HookKind::Auto);
        assert_eq!(
            roles.roles[1].choices,
            vec!["switch_btf", "switch_raw", "switch_tp"]
        );
        let roles = Roles::new(&["switch"], HookKind::Tracepoint);
        assert_eq!(roles.roles[0].choices, vec!["switch_tp".to_owned()]);
        assert_eq!(roles.roles[0].all.len(), 3);
        let roles = Roles::single("switch_schedinfo_btf");
        assert_eq!(roles.roles[0].all, roles.roles[0].choices);
    }

    #[test]
    fn keys_become_labels() {
        assert!(HistKey::Total.labels().is_empty());
        let labels = HistKey::Pid {
            pid: 7,
            comm: "sh".into(),
        }
        .labels();
        assert_eq!(labels.len(), 2);
        assert_eq!(labels["pid"], coolbpf_core::LabelValue::Int(7));
    }
}
