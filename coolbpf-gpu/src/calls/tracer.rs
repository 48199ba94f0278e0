//! [`CallTracer`]: `calls.bpf.c` loaded, attached to a list of functions, streaming
//! [`CallRecord`]s.

use std::path::PathBuf;

use coolbpf_core::stream::{Delivery, Losses};
use coolbpf_core::{AttachTarget, BpfObject, Error, ObjectBuilder, Result};
use coolbpf_probes::event_probe::EventProbe;

use super::{CallFlags, CallRecord};

static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/calls.bpf.o"));

const ENTRY: &str = "call_entry";
/// The sleepable entry program of entry-only functions with a string argument.
const NAMED_ENTRY: &str = "named_entry";
const RETURN: &str = "call_return";
const INFLIGHT: &str = "inflight";

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
    traced: Vec<TracedFunction>,
    missing: Vec<MissingFunction>,
}

impl CallTracer {
    /// Loads the object and attaches it to each of `functions`, recording the calls of
    /// process `pid` only (or of every process mapping the file); records arrive by
    /// `delivery`. Functions
    /// that cannot be attached are listed in [`missing`](Self::missing); none at all is
    /// an error that says why.
    pub fn start(
        functions: &[TracedFunction],
        pid: Option<u32>,
        buffer_kb: u32,
        delivery: Delivery<CallRecord>,
    ) -> Result<Self> {
        if functions.is_empty() {
            return Err(Error::InvalidArgument(
                "no function to trace was given".into(),
            ));
        }
        let object = ObjectBuilder::from_bytes(OBJECT)
            .global("coolbpf_filter_tgid", &pid.unwrap_or(0))
            .max_entries("events", buffer_kb * 1024)
            .load()?;
        let mut traced = Vec::new();
        let mut missing = Vec::new();
        let probe = EventProbe::start(object, CallRecord::decode, delivery, |object| {
            for function in functions {
                match attach(object, function) {
                    Ok(()) => traced.push(function.clone()),
                    Err(err) => missing.push(MissingFunction {
                        binary: function.binary.clone(),
                        symbol: function.symbol.clone(),
                        reason: err.to_string(),
                    }),
                }
            }
            Ok(vec![
                ENTRY.to_owned(),
                NAMED_ENTRY.to_owned(),
                RETURN.to_owned(),
            ])
        })?;
        if traced.is_empty() {
            let why: Vec<String> = missing
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
        Ok(Self {
            probe,
            traced,
            missing,
        })
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
