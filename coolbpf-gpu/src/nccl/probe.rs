//! [`Nccl`]: the call tracer attached to libnccl, feeding an [`NcclState`], and the
//! detector run over it with what is in flight.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use coolbpf_core::stream::{Delivery, Losses};
use coolbpf_core::{Error, Result};
use coolbpf_probes::profile::{symbolizer, StackResolver};
use coolbpf_symbolize::{Profile, Sample};

use super::call::NcclCall;
use super::comm::CommId;
use super::functions::{self, Function};
use super::state::{note_reached, CommRef, NcclState, Position};
use super::straggler::{CommView, Detector, InCall, RankView, Straggler};
use crate::calls::{CallRecord, CallTracer, MissingFunction, TracedFunction};
use crate::library::{self, Library, LibraryKind};
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
    resolver: Mutex<StackResolver>,
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
        let calls = CallTracer::start(&traced, config.pid, config.buffer_kb, delivery)?;
        Ok(Self {
            calls,
            state,
            detector: Mutex::new(Detector::new(config.stall_ns)),
            resolver: Mutex::new(StackResolver::new(symbolizer(false))),
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
        if stack.is_empty() {
            return Vec::new();
        }
        let mut profile = Profile::new();
        profile.add(Sample {
            pid,
            tid: 0,
            comm: comm.to_owned(),
            kernel_ips: Vec::new(),
            user_ips: stack.to_vec(),
            weight: 1,
        });
        let mut resolver = lock(&self.resolver);
        resolver.resolve_user(&profile);
        let mut frames = resolver
            .stacks(&profile)
            .first()
            .map(coolbpf_symbolize::profile::SymbolizedStack::frame_names)
            .unwrap_or_default();
        if let Some(leaf) = frames.last_mut() {
            function.symbol.clone_into(leaf);
        }
        frames
    }
}

/// The communicators being checked, by id.
type Comms = BTreeMap<CommId, CommView>;

/// Adds one call in flight to the views: its process is inside NCCL (the oldest call
/// shows), and a collective in flight was entered, so it counts in its rank's number.
fn add_in_flight(
    state: &NcclState,
    comms: &mut Comms,
    function: &'static Function,
    record: &CallRecord,
) {
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
    let found: Vec<Library> = match config.pid {
        Some(pid) => library::in_process(pid)?,
        None => library::on_host(),
    }
    .into_iter()
    .filter(|lib| lib.kind == LibraryKind::Nccl)
    .collect();
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
