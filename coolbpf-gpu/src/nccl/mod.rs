//! `nccl`: the NCCL calls of every rank on this host (or of one process), by uprobes on
//! libnccl, and the rank that stopped while the others went on.
//!
//! # Hooks
//!
//! Entry and return uprobes of the shared call tracer ([`crate::calls`]) on libnccl's
//! `ncclAllReduce`, `ncclAllGather`, `ncclReduceScatter`, `ncclBroadcast`, `ncclReduce`,
//! `ncclSend`, `ncclRecv`, `ncclGroupStart`, `ncclGroupEnd`, `ncclCommInitRank`,
//! `ncclCommInitRankConfig`, `ncclCommDestroy` and `ncclCommAbort` (see
//! [`functions::FUNCTIONS`]; the `pncclX` aliases share `ncclX`'s address and are not
//! attached again). Each call's user stack is taken at entry. Traced host-wide by
//! default: a uprobe is on the library file, so every rank process that maps it is seen,
//! those started later included.
//!
//! # Communicators and ranks
//!
//! A communicator is named by [`CommId`]: a hash of the `ncclUniqueId` its ranks were
//! given, read off the stack at `ncclCommInitRank` (the 128-byte id is passed by value).
//! Every rank of one communicator, on any host, gets the same `comm_id`, so one
//! communicator's metrics from several hosts line up. `ncclCommInitRank`'s rank and
//! nranks come with it, and `*comm` at its return (the handle made) maps the handle the
//! collectives pass to that communicator and rank. A handle whose init was not seen is
//! labelled `handle:0x...` with rank -1.
//!
//! # What is reported
//!
//! Every interval, cumulatively:
//! - `nccl_collectives_total{pid,comm_id,rank,nranks,op,redop,dtype}`: calls per
//!   operation (`AllReduce`, ..., `Send`, `Recv`), reduction (`sum`, ..., or `none`) and
//!   data type (`float32`, ...), named as `nccl.h` names them; a number `nccl.h` does not
//!   define is reported as the number;
//! - `nccl_bytes_total{...}`: `count` times the element size, as this rank passed it: for
//!   `AllGather` `count` is `sendcount`, what each rank contributes (the gathered buffer
//!   is `nranks` times that), for `ReduceScatter` `recvcount`, what each rank gets; calls
//!   of an unknown data type add no bytes;
//! - `nccl_last_seq{pid,comm_id,rank}`: the rank's sequence number, the collectives it
//!   entered (send and receive are point to point and not in it). Ranks of one
//!   communicator should agree, across hosts too: a rank behind shows here;
//! - `nccl_call_errors_total{pid,function,code,error}`: calls that returned an error;
//! - losses; and with `--opt events=true` one event per call (`event=nccl_call`).
//!
//! # The straggler detector
//!
//! For each communicator with several ranks on this host, at every collect: when some
//! ranks are at collective #N and one rank is at an older number and has not advanced
//! for `stall_ms`, one `event=nccl_straggler` names it: pid, rank, its number and the
//! others', how long it has been stuck, whether it is inside an NCCL call (which, for how
//! long) or not in NCCL at all, and the stack of the call it is in, else of its latest
//! NCCL call. Once per stall; a rank that moves on and sticks again is reported again.
//! Detection waits for a collect, so a report comes within `stall_ms` plus one interval
//! (see [`straggler`] for the exact bounds).

pub mod call;
pub mod comm;
pub mod functions;
pub mod probe;
pub mod records;
pub mod state;
pub mod straggler;
pub mod types;

use std::sync::Arc;

use coolbpf_core::{PluginContext, Record, Result};
use coolbpf_probes::options::{OptionSpec, ProbeOptions};
use coolbpf_probes::probe_plugin::{ProbePlugin, ProbeSource};
use coolbpf_probes::sched::monotonic_ns;

pub use call::{Data, NcclCall};
pub use comm::CommId;
pub use functions::{Function, Role, FUNCTIONS};
pub use probe::{Nccl, OnCall, TraceConfig};
pub use state::{CommRef, NcclState, RankKey};
pub use straggler::{Detector, Straggler};

/// The probe's name in the registry and in its records.
pub const NAME: &str = "nccl";

const LIB: OptionSpec = OptionSpec {
    name: "lib",
    help: "comma-separated files defining NCCL (libnccl.so, or a program or library with \
           NCCL linked in) to trace; default: those of --pid, else those found on the host",
    default: "",
};
const EVENTS: OptionSpec = OptionSpec {
    name: "events",
    help: "true: one event per NCCL call besides the counts",
    default: "false",
};
const STALL_MS: OptionSpec = OptionSpec {
    name: "stall_ms",
    help: "a rank behind the others of its communicator that has not advanced for this \
           long (ms) is reported as a straggler; checked every interval",
    default: "5000",
};

/// Options `nccl` accepts besides `--pid`.
pub const OPTIONS: &[OptionSpec] = &[LIB, crate::calls::BUFFER_KB, EVENTS, STALL_MS];

/// How to run `nccl`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NcclConfig {
    /// What to trace.
    pub trace: TraceConfig,
    /// Send one event per call.
    pub events: bool,
}

impl NcclConfig {
    /// The config described by registry options.
    pub fn from_options(options: &ProbeOptions) -> Result<Self> {
        options.check(NAME, OPTIONS)?;
        let libs: String = options.get(&LIB)?;
        let stall_ms: u64 = options.get(&STALL_MS)?;
        Ok(Self {
            trace: TraceConfig {
                pid: options.pid,
                libraries: crate::library::path_list(&libs),
                buffer_kb: crate::calls::buffer_kb(options)?,
                stall_ns: stall_ms.saturating_mul(1_000_000),
            },
            events: options.get(&EVENTS)?,
        })
    }
}

/// Whether this host has a libnccl to trace without being told where.
pub fn host_check() -> std::result::Result<(), String> {
    let nccl = [crate::library::LibraryKind::Nccl];
    if crate::library::found(None, &nccl)
        .unwrap_or_default()
        .is_empty()
    {
        Err(
            "no libnccl found on the library paths, /usr/local/cuda* or pip's nvidia/*/lib: \
             trace a process (--pid) or name the library (--opt lib=PATH)"
                .into(),
        )
    } else {
        Ok(())
    }
}

/// The running probe as a runtime plugin's source.
pub struct NcclProbe {
    nccl: Nccl,
}

impl NcclProbe {
    /// The metrics and losses of now.
    fn records(&self) -> Result<Vec<Record>> {
        let mut out = records::metrics(&self.nccl.state());
        out.extend(self.nccl.losses()?.to_records(NAME));
        Ok(out)
    }

    /// The straggler reports of now.
    fn stragglers(&self) -> Result<Vec<Record>> {
        let now = monotonic_ns();
        let found = self.nccl.stragglers(now)?;
        Ok(found
            .iter()
            .map(|s| {
                let rank = &s.rank;
                let last = self.nccl.state().last_call.get(&rank.key.pid).cloned();
                let call = rank
                    .in_call
                    .as_ref()
                    .map(|c| (c.function, &c.stack))
                    .or_else(|| last.as_ref().map(|l| (l.function, &l.stack)));
                let frames = call.map_or_else(Vec::new, |(function, stack)| {
                    self.nccl.frames(rank.key.pid, &rank.task, function, stack)
                });
                Record::Event(records::straggler_event(s, last.as_ref(), frames, now))
            })
            .collect())
    }
}

impl ProbeSource for NcclProbe {
    const NAME: &'static str = NAME;
    type Config = NcclConfig;

    fn start(config: &NcclConfig, ctx: &PluginContext) -> Result<Self> {
        let on_call: OnCall = if config.events {
            let emitter = Arc::new(ctx.emitter());
            Box::new(move |function, record, at| {
                emitter.emit(Record::Event(records::call_event(function, record, at)));
            })
        } else {
            Box::new(|_, _, _| {})
        };
        Ok(Self {
            nccl: Nccl::start(&config.trace, on_call)?,
        })
    }

    fn collect(&self, out: &mut Vec<Record>) -> Result<()> {
        out.extend(self.stragglers()?);
        out.extend(self.records()?);
        Ok(())
    }

    fn stop(&mut self) -> Result<()> {
        self.nccl.stop()
    }

    // Counts come from calls the ring buffer may still hold at the last collect.
    const COLLECT_AFTER_STOP: bool = true;
}

/// `nccl` as a runtime plugin.
pub type NcclPlugin = ProbePlugin<NcclProbe>;
