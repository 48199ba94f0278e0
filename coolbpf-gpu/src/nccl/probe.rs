//! [`Nccl`]: the call tracer attached to libnccl, feeding an [`NcclState`], and the
//! detector run over it with what is in flight.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use coolbpf_core::stream::{Delivery, Losses};
use coolbpf_core::{Error, Result};

use super::call::NcclCall;
use super::comm::CommId;
use super::functions::{self, Function};
use super::state::{note_reached, CommRef, NcclState, Position};
use super::straggler::{CommView, Detector, InCall, RankView, Straggler};
use crate::calls::{CallRecord, CallTracer, MissingFunction, TracedFunction};
use crate::library::{self, Library, LibraryKind};
use crate::stacks::UserStacks;
use crate::sync::lock;

/// What to trace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceConfig {
    /// Only this process; `None`: every process that maps the libraries found.
    pub pid: Option<u32>,
    /// Files that define NCCL's functions (libnccl, or a program or library that links
    /// NCCL statically) to trace instead of searching.
    pub libraries: Vec<PathBuf>,
    /// Ring buffer size, KiB.
    pub buffer_kb: u32,
    /// How long a rank behind the others must not advance to be a straggler, ns.
    pub stall_ns: u64,
}

/// What is done with each call as it arrives, besides adding it to the state: the
/// function, the call, and where it stands (for data calls and inits).
pub type OnCall = Box<dyn FnMut(&'static Function, &CallRecord, Option<Position>) + Send>;

/// libnccl, traced.
pub struct Nccl {
    // Field order is drop order: the uprobes go before the state they feed.
    calls: CallTracer,
    state: Arc<Mutex<NcclState>>,
    detector: Mutex<Detector>,
    stacks: UserStacks,
    libraries: Vec<Library>,
}

impl Nccl {
    /// Finds the libraries `config` asks for and attaches to every NCCL function they
    /// define.
    pub fn start(config: &TraceConfig, mut on_call: OnCall) -> Result<Self> {
        let libraries = find_libraries(config)?;
        let mut traced = Vec::new();
        for lib in &libraries {
            for (id, function) in functions::FUNCTIONS.iter().enumerate() {
                traced.push(TracedFunction {
                    binary: lib.path.clone(),
                    symbol: function.symbol.to_owned(),
                    id: id as u16,
                    flags: function.flags(),
                });
            }
        }
        let state = Arc::new(Mutex::new(NcclState::default()));
        let shared = Arc::clone(&state);
        let delivery = Delivery::callback(move |record: CallRecord| {
            let Some(function) = functions::by_id(record.function) else {
                return;
            };
            let position = lock(&shared).add(function, &record);
            on_call(function, &record, position);
        });
        let calls = CallTracer::start(&traced, config.pid, config.buffer_kb, false, delivery)?;
        Ok(Self {
            calls,
            state,
            detector: Mutex::new(Detector::new(config.stall_ns)),
            stacks: UserStacks::default(),
            libraries,
        })
    }

    /// The libraries traced.
    pub fn libraries(&self) -> &[Library] {
        &self.libraries
    }

    /// The functions attached.
    pub fn traced(&self) -> &[TracedFunction] {
        self.calls.traced()
    }

    /// Functions the libraries lack or that failed to attach.
    pub fn missing(&self) -> &[MissingFunction] {
        self.calls.missing()
    }

    /// The state, locked.
    pub fn state(&self) -> MutexGuard<'_, NcclState> {
        lock(&self.state)
    }

    /// Records delivered and lost.
    pub fn losses(&self) -> Result<Losses> {
        self.calls.losses()
    }

    /// Detaches and delivers what is still in the ring buffer.
    pub fn stop(&mut self) -> Result<()> {
        self.calls.stop()
    }

    /// Runs the detector at `now_ns` over every communicator with a known id: the
    /// returned calls plus those in flight. Stragglers not reported before come back.
    pub fn stragglers(&self, now_ns: u64) -> Result<Vec<Straggler>> {
        // In flight is read under the state's lock, so that no call can be both in the
        // state and in flight (a call that returned meanwhile is still in the ring
        // buffer, and the detector's second look covers it).
        let state = self.state();
        let in_flight = self.calls.in_flight()?;
        let mut comms = views(&state);
        for record in &in_flight {
            if let Some(function) = functions::by_id(record.function) {
                add_in_flight(&state, &mut comms, function, record);
            }
        }
        drop(state);
        Ok(lock(&self.detector).check(comms.into_values().collect(), now_ns))
    }

    /// The stack `function` was entered with in process `pid`, as frame names, root
    /// first (resolved now, while the process is alive). The leaf is the function's
    /// first instruction, which the symbolizer names by libnccl's strong symbol
    /// (`pncclAllReduce`): it is named as traced instead.
    pub fn frames(&self, pid: u32, comm: &str, function: &Function, stack: &[u64]) -> Vec<String> {
        let mut frames = self.stacks.frames(pid, comm, stack);
        if let Some(leaf) = frames.last_mut() {
            function.symbol.clone_into(leaf);
        }
        frames
    }
}

/// The communicators being checked, by id.
type Comms = BTreeMap<CommId, CommView>;

/// Every communicator with a known id, and its ranks, from the calls that returned.
fn views(state: &NcclState) -> Comms {
    let mut comms: Comms = BTreeMap::new();
    for (key, rank) in &state.ranks {
        let CommRef::Id(id) = key.comm else {
            continue;
        };
        let comm = comms.entry(id).or_insert_with(|| CommView {
            id,
            nranks: rank.nranks,
            ranks: Vec::new(),
            reached: state.reached.get(&id).cloned().unwrap_or_default(),
        });
        comm.ranks.push(RankView {
            key: *key,
            task: rank.task.clone(),
            seq: rank.seq,
            advanced_ns: rank.advanced_ns,
            active: !rank.closed && Path::new(&format!("/proc/{}", key.pid)).exists(),
            in_call: None,
        });
    }
    comms
}

/// Adds one call in flight to the views: its process is inside NCCL (the oldest call
/// shows), and a collective in flight was entered, so it counts in its rank's number.
fn add_in_flight(
    state: &NcclState,
    comms: &mut Comms,
    function: &'static Function,
    record: &CallRecord,
) {
    // Returned already (the return probe sends the record before it deletes the entry).
    let returned = state.last_call.get(&record.pid).is_some_and(|last| {
        last.tid == record.tid
            && last.entry_ns == record.entry_ns
            && last.function.symbol == function.symbol
    });
    if returned {
        return;
    }
    let in_call = InCall {
        function,
        since_ns: record.entry_ns,
        tid: record.tid,
        stack: record.stack.clone(),
    };
    for view in comms.values_mut().flat_map(|c| c.ranks.iter_mut()) {
        if view.key.pid == record.pid
            && view
                .in_call
                .as_ref()
                .is_none_or(|c| c.since_ns > record.entry_ns)
        {
            view.in_call = Some(in_call.clone());
        }
    }
    let NcclCall::Data {
        collective: true,
        data,
    } = NcclCall::decode(function, record)
    else {
        return;
    };
    let (key, _) = state.rank_of(record.pid, data.comm);
    let CommRef::Id(id) = key.comm else {
        return;
    };
    let Some(comm) = comms.get_mut(&id) else {
        return;
    };
    let Some(view) = comm.ranks.iter_mut().find(|v| v.key == key) else {
        return;
    };
    // Entered after every collective of the rank that returned: not counted yet.
    if record.entry_ns > view.advanced_ns {
        view.seq += 1;
        view.advanced_ns = record.entry_ns;
        note_reached(&mut comm.reached, view.seq, record.entry_ns);
    }
}

fn find_libraries(config: &TraceConfig) -> Result<Vec<Library>> {
    if !config.libraries.is_empty() {
        // Whatever its name: NCCL linked statically into a program or a library
        // (libtorch_cuda.so in some builds) is traced the same way.
        return Ok(library::given(&config.libraries)?
            .into_iter()
            .map(|lib| Library {
                kind: LibraryKind::Nccl,
                ..lib
            })
            .collect());
    }
    let found = library::found(config.pid, &[LibraryKind::Nccl])?;
    if found.is_empty() {
        let whom = config.pid.map_or_else(
            || "on this host".to_owned(),
            |pid| format!("in process {pid}"),
        );
        return Err(Error::Unsupported {
            feature: "NCCL tracing".into(),
            reason: format!(
                "no NCCL library (libnccl.so) found {whom}: does it use NCCL? A program \
                 with NCCL linked in statically is named with --opt lib=PATH"
            ),
        });
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn function(symbol: &str) -> &'static Function {
        functions::FUNCTIONS
            .iter()
            .find(|f| f.symbol == symbol)
            .unwrap()
    }

    fn call(pid: u32, args: &[u64], entry_ns: u64) -> CallRecord {
        let mut record = CallRecord {
            pid,
            tid: pid,
            entry_ns,
            return_ns: Some(entry_ns + 1),
            ..CallRecord::default()
        };
        record.args[..args.len()].copy_from_slice(args);
        record
    }

    fn state() -> NcclState {
        let mut state = NcclState::default();
        for (pid, rank, handle) in [(1, 0, 0xa), (2, 1, 0xb)] {
            let mut init = call(pid, &[0x7ff0, 2, rank], 10);
            init.blob = Some([42, 0, 0, 0, 0, 0]);
            init.deref = Some(handle);
            state.add(function("ncclCommInitRank"), &init);
        }
        let all_reduce = function("ncclAllReduce");
        state.add(all_reduce, &call(1, &[0, 0, 8, 7, 0, 0xa], 100));
        state.add(all_reduce, &call(1, &[0, 0, 8, 7, 0, 0xa], 200));
        state.add(all_reduce, &call(2, &[0, 0, 8, 7, 0, 0xb], 150));
        state
    }

    fn rank(comms: &Comms, pid: u32) -> &RankView {
        let comm = comms.values().next().unwrap();
        comm.ranks.iter().find(|r| r.key.pid == pid).unwrap()
    }

    #[test]
    fn a_collective_in_flight_was_entered_and_counts() {
        let state = state();
        let mut comms = views(&state);
        assert_eq!((rank(&comms, 1).seq, rank(&comms, 2).seq), (2, 1));
        let mut stuck = call(2, &[0, 0, 8, 7, 0, 0xb], 300);
        stuck.return_ns = None;
        add_in_flight(&state, &mut comms, function("ncclAllReduce"), &stuck);
        let view = rank(&comms, 2);
        assert_eq!((view.seq, view.advanced_ns), (2, 300));
        let in_call = view.in_call.as_ref().unwrap();
        assert_eq!(
            (in_call.function.symbol, in_call.since_ns),
            ("ncclAllReduce", 300)
        );
        let comm = comms.values().next().unwrap();
        assert_eq!(comm.reached[&2], 200, "rank 0 got to number 2 first");
        assert!(rank(&comms, 1).in_call.is_none());
    }

    #[test]
    fn calls_in_flight_show_the_oldest_and_returned_ones_are_not_counted_twice() {
        let state = state();
        let mut comms = views(&state);
        // Returned already (its record is in the state), still in the map an instant.
        let returned = call(1, &[0, 0, 8, 7, 0, 0xa], 200);
        add_in_flight(&state, &mut comms, function("ncclAllReduce"), &returned);
        assert_eq!(rank(&comms, 1).seq, 2);
        let group = call(1, &[], 500);
        add_in_flight(&state, &mut comms, function("ncclGroupEnd"), &group);
        let older = call(1, &[], 400);
        add_in_flight(&state, &mut comms, function("ncclCommDestroy"), &older);
        let in_call = rank(&comms, 1).in_call.as_ref().unwrap();
        assert_eq!(in_call.function.symbol, "ncclCommDestroy");
        // A collective on a handle whose init was not seen is in no communicator.
        let unknown = call(2, &[0, 0, 8, 7, 0, 0xdead], 600);
        add_in_flight(&state, &mut comms, function("ncclAllReduce"), &unknown);
        assert_eq!(rank(&comms, 2).seq, 1);
    }
}
