//! [`CallTracer`]: `calls.bpf.c` loaded, attached to a list of functions, streaming
//! [`CallRecord`]s.

use std::path::PathBuf;

use coolbpf_core::stream::{Delivery, Losses};
use coolbpf_core::{AttachTarget, BpfObject, Error, ObjectBuilder, Result};
use coolbpf_probes::event_probe::EventProbe;
use coolbpf_probes::stacks::{ProcessStacks, StackStore, Walkers, PYTHON_STACKS};

use super::{CallFlags, CallRecord};

static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/calls.bpf.o"));

const ENTRY: &str = "call_entry";
/// The sleepable entry program of entry-only functions with a string argument.
const NAMED_ENTRY: &str = "named_entry";
const RETURN: &str = "call_return";
const INFLIGHT: &str = "inflight";
const LAUNCHES: &str = "launches";
const RECENT: &str = "recent";

/// Size of `struct launch_key` / `struct launch_value` / `struct recent_launches`.
const LAUNCH_KEY: usize = 32;
const LAUNCH_VALUE: usize = 24;
const RECENT_SLOTS: usize = 16;
const RECENT_SLOT: usize = 32;

/// Launches counted in the kernel: one (process, function, what was launched, call
/// site) and how many times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchCount {
    /// Process id.
    pub pid: u32,
    /// Task name at the first launch.
    pub comm: String,
    /// The launching function's id.
    pub function: u16,
    /// What was launched (the function's key argument).
    pub kernel: u64,
    /// The caller's user stack, innermost first (empty when not captured).
    pub stack: Vec<u64>,
    /// Launches.
    pub count: u64,
}

/// One of a process's recent launches, as the kernel kept it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecentLaunch {
    /// When, kernel monotonic ns.
    pub ts_ns: u64,
    /// What was launched.
    pub kernel: u64,
    /// On which stream.
    pub stream: u64,
    /// By which thread.
    pub tid: u32,
    /// Through which function.
    pub function: u16,
}

/// One function to trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracedFunction {
    /// The ELF file that defines it.
    pub binary: PathBuf,
    /// Its symbol.
    pub symbol: String,
    /// The id its records carry.
    pub id: u16,
    /// What to capture.
    pub flags: CallFlags,
}

/// A function that could not be traced, and why (a library version without the symbol,
/// most often).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingFunction {
    /// The file searched.
    pub binary: PathBuf,
    /// The symbol.
    pub symbol: String,
    /// What the kernel or libbpf said.
    pub reason: String,
}

/// The call-tracing object, attached; dropping it detaches every uprobe.
pub struct CallTracer {
    probe: EventProbe<CallRecord>,
    /// CFI tables of the processes whose stacks are taken (registered as the BPF side
    /// meets them).
    walkers: Option<ProcessStacks>,
    store: StackStore,
    traced: Vec<TracedFunction>,
    missing: Vec<MissingFunction>,
}

impl CallTracer {
    /// Loads the object and attaches it to each of `functions`, recording the calls of
    /// process `pid` only (or of every process mapping the file); records arrive by
    /// `delivery`; `keep_recent` keeps each process's last launches ([`recent`](Self::recent)). Functions that cannot be attached are listed in
    /// [`missing`](Self::missing); when none of several can, it is an error that says
    /// why. No function at all is allowed: a tracer that waits for libraries to come
    /// ([`attach`](Self::attach)).
    pub fn start(
        functions: &[TracedFunction],
        pid: Option<u32>,
        buffer_kb: u32,
        keep_recent: bool,
        delivery: Delivery<CallRecord>,
    ) -> Result<Self> {
        let object = ObjectBuilder::from_bytes(OBJECT)
            .global("coolbpf_filter_tgid", &pid.unwrap_or(0))
            // CFI finds the caller at a function's entry itself; the word at the stack
            // pointer is read only for the frame-pointer steps of older kernels.
            .global("launch_key_caller", &!kernel_adds_entry_caller())
            .global("unwind_cfi", &1u8)
            .global("keep_recent", &u8::from(keep_recent))
            .max_entries("events", buffer_kb * 1024)
            // Launch stacks are native only: no CPython stack store.
            .max_entries(PYTHON_STACKS, 1)
            .load()?;
        let walkers = Walkers {
            cfi: true,
            python: false,
        };
        let walkers = ProcessStacks::start(&object, walkers, pid)?;
        let store = StackStore::of(&object)?;
        // The stream runs before anything is attached, so that no call is missed.
        let probe = EventProbe::start(object, CallRecord::decode, delivery, |_| {
            Ok(vec![
                ENTRY.to_owned(),
                NAMED_ENTRY.to_owned(),
                RETURN.to_owned(),
            ])
        })?;
        let mut tracer = Self {
            probe,
            walkers,
            store,
            traced: Vec::new(),
            missing: Vec::new(),
        };
        if tracer.attach(functions) == 0 && !functions.is_empty() {
            let why: Vec<String> = tracer
                .missing
                .iter()
                .take(3)
                .map(|m| format!("{} in {}: {}", m.symbol, m.binary.display(), m.reason))
                .collect();
            return Err(Error::Unsupported {
                feature: "uprobes on the CUDA libraries".into(),
                reason: format!(
                    "none of {} functions attached ({})",
                    functions.len(),
                    why.join("; ")
                ),
            });
        }
        Ok(tracer)
    }

    /// Attaches to `functions` too; returns how many attached (the others are added to
    /// [`missing`](Self::missing)).
    pub fn attach(&mut self, functions: &[TracedFunction]) -> usize {
        let mut attached = 0;
        for function in functions {
            match attach(self.probe.object_mut(), function) {
                Ok(()) => {
                    self.traced.push(function.clone());
                    attached += 1;
                }
                Err(err) => self.missing.push(MissingFunction {
                    binary: function.binary.clone(),
                    symbol: function.symbol.clone(),
                    reason: err.to_string(),
                }),
            }
        }
        attached
    }

    /// The functions attached.
    pub fn traced(&self) -> &[TracedFunction] {
        &self.traced
    }

    /// The functions that could not be attached.
    pub fn missing(&self) -> &[MissingFunction] {
        &self.missing
    }

    /// Calls entered and not returned yet, as the kernel holds them now.
    pub fn in_flight(&self) -> Result<Vec<CallRecord>> {
        let map = self.probe.map(INFLIGHT)?;
        Ok(map
            .entries()?
            .into_iter()
            .filter_map(|(_, value)| CallRecord::decode(&value).ok())
            .collect())
    }

    /// What CFI unwinding of the traced processes registered and compiled.
    pub fn unwind_stats(&self) -> Option<coolbpf_probes::stacks::UnwindStats> {
        self.walkers.as_ref().and_then(ProcessStacks::unwind_stats)
    }

    /// The launches counted so far.
    pub fn launches(&self) -> Result<Vec<LaunchCount>> {
        use coolbpf_core::decode::Reader;
        let mut out = Vec::new();
        for (key, value) in self.probe.map(LAUNCHES)?.entries()? {
            let (Ok(k), Ok(v)) = (
                Reader::new(&key, LAUNCH_KEY, "launch key"),
                Reader::new(&value, LAUNCH_VALUE, "launch value"),
            ) else {
                continue;
            };
            // A stack the store evicted shows as none; the count stays.
            let walked = self.store.ips(k.u64(24)?)?.unwrap_or_default();
            out.push(LaunchCount {
                pid: k.u32(0)?,
                function: k.u32(4)? as u16,
                kernel: k.u64(8)?,
                stack: super::with_caller(walked, k.u64(16)?),
                count: v.u64(0)?,
                comm: v.c_str(8, 16)?,
            });
        }
        Ok(out)
    }

    /// The last launches of process `pid` the kernel kept, oldest first.
    pub fn recent(&self, pid: u32) -> Result<Vec<RecentLaunch>> {
        use coolbpf_core::decode::Reader;
        let Some(raw) = self.probe.map(RECENT)?.lookup(&pid.to_ne_bytes())? else {
            return Ok(Vec::new());
        };
        let r = Reader::new(&raw, 8 + RECENT_SLOTS * RECENT_SLOT, "recent launches")?;
        let mut out = Vec::new();
        for i in 0..RECENT_SLOTS {
            let at = 8 + i * RECENT_SLOT;
            let ts_ns = r.u64(at)?;
            if ts_ns != 0 {
                out.push(RecentLaunch {
                    ts_ns,
                    kernel: r.u64(at + 8)?,
                    stream: r.u64(at + 16)?,
                    tid: r.u32(at + 24)?,
                    function: r.u32(at + 28)? as u16,
                });
            }
        }
        out.sort_by_key(|l| l.ts_ns);
        Ok(out)
    }

    /// Records delivered and lost.
    pub fn losses(&self) -> Result<Losses> {
        self.probe.losses()
    }

    /// Detaches, then delivers what is still in the ring buffer.
    pub fn stop(&mut self) -> Result<()> {
        self.probe.stop()
    }
}

/// Attaches `function` for every process: the process filter is the object's
/// `coolbpf_filter_tgid`. A uprobe restricted to one pid shares the file's breakpoint with
/// every other tracer of that file, and the kernel re-filters the breakpoint when one of
/// them comes or goes; with two tracers on one libcudart (a pid-filtered and a host-wide
/// one) this lost 28 of 37 calls here. Filtering in the program loses none.
/// Whether this kernel's user stack walk at an entry uprobe already holds the immediate
/// caller (Linux 6.11 and later detect a uprobe at a function's first instruction and add
/// the return address at the stack pointer). Unknown releases count as older, which only
/// costs one read per launch.
fn kernel_adds_entry_caller() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut numbers = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().unwrap_or(0));
    let (major, minor) = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    (major, minor) >= (6, 11)
}

fn attach(object: &mut BpfObject, function: &TracedFunction) -> Result<()> {
    let target = |retprobe| AttachTarget::Uprobe {
        binary: function.binary.clone(),
        symbol: Some(function.symbol.clone()),
        offset: 0,
        pid: None,
        retprobe,
        cookie: function.flags.cookie(function.id),
    };
    let entry_only = function.flags.has(CallFlags::ENTRY_ONLY);
    let entry = if entry_only && function.flags.name_arg().is_some() {
        NAMED_ENTRY
    } else {
        ENTRY
    };
    object.attach(entry, &target(false))?;
    if !entry_only {
        object.attach(RETURN, &target(true))?;
    }
    Ok(())
}
