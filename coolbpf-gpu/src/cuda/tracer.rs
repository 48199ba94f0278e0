//! [`CudaTracer`]: the call tracer attached to the CUDA libraries of a process or of the
//! host, feeding a [`CudaState`]; and naming what it saw (kernels, launch stacks).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::stacks::UserStacks;
use coolbpf_core::stream::{Delivery, Losses};
use coolbpf_core::{Error, Result, StackSample};
use coolbpf_symbolize::{demangle, Source, Symbolizer};

use super::call::KernelRef;
use super::functions::{self, Function};
use super::state::CudaState;
use crate::calls::{
    CallFlags, CallRecord, CallTracer, MissingFunction, RecentLaunch, TracedFunction,
};
use crate::library::{self, Library, LibraryKind};
use crate::libwatch::LibraryWatch;
use crate::sync::lock;

/// The libraries this tracer attaches to.
pub const CUDA_LIBRARIES: &[LibraryKind] = &[LibraryKind::Cudart, LibraryKind::Cuda];

/// Ids from here on are the user's watched functions (`watch=`), not CUDA's.
pub const WATCH_BASE: u16 = 0x4000;

/// What to trace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceConfig {
    /// Only this process; `None`: every process that maps the libraries found.
    pub pid: Option<u32>,
    /// Libraries (or programs with the runtime linked in) to trace instead of searching.
    pub libraries: Vec<PathBuf>,
    /// More functions to trace as calls that may block (`BINARY:SYMBOL`).
    pub watch: Vec<(PathBuf, String)>,
    /// Ring buffer size, KiB.
    pub buffer_kb: u32,
    /// Send every launch to userspace too, not only count it in the kernel.
    pub launch_events: bool,
    /// Keep each process's last launches in the kernel, for the hang watchdog to name
    /// the kernels on a stuck stream ([`CudaTracer::recent_launches`]); off, a launch
    /// costs a map lookup and five stores less.
    pub recent_launches: bool,
}

/// What is done with each call as it arrives, besides adding it to the state.
pub type OnCall = Box<dyn FnMut(Option<&'static Function>, &CallRecord) + Send>;

/// The CUDA libraries, traced.
pub struct CudaTracer {
    // Field order is drop order: the open watch stops first (it attaches to `calls`),
    // then the uprobes, then the state they feed.
    watch: Option<LibraryWatch>,
    calls: Arc<Mutex<CallTracer>>,
    state: Arc<Mutex<CudaState>>,
    libraries: Arc<Mutex<Vec<Library>>>,
    watched: Vec<(PathBuf, String)>,
    stacks: UserStacks,
    stubs: Mutex<StubNames>,
}

/// Host stubs' symbols by (pid, address), looked up once (`None`: not found).
type StubNames = (Symbolizer, HashMap<(u32, u64), Option<String>>);

/// The CUDA functions `lib` defines, to trace.
fn functions_of(lib: &Library, launch_events: bool) -> Vec<TracedFunction> {
    functions::of_library(lib.kind)
        .map(|(id, function)| TracedFunction {
            binary: lib.path.clone(),
            symbol: function.symbol.to_owned(),
            id,
            flags: function.flags(launch_events),
        })
        .collect()
}

/// The file a library path names (device and inode), which is what a uprobe is on.
fn file_id(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

impl CudaTracer {
    /// Finds the libraries `config` asks for, attaches to every CUDA function they
    /// define, and adds each call to the state (then hands it to `on_call`). Host-wide
    /// without named libraries, it also watches for libraries opened later (a new
    /// environment's wheels, a container's CUDA) and attaches to them as they come.
    pub fn start(config: &TraceConfig, mut on_call: OnCall) -> Result<Self> {
        let libraries = find_libraries(config)?;
        let mut traced: Vec<TracedFunction> = libraries
            .iter()
            .flat_map(|lib| functions_of(lib, config.launch_events))
            .collect();
        for (i, (binary, symbol)) in config.watch.iter().enumerate() {
            traced.push(TracedFunction {
                binary: binary.clone(),
                symbol: symbol.clone(),
                id: WATCH_BASE + i as u16,
                flags: CallFlags::STACK,
            });
        }
        let state = Arc::new(Mutex::new(CudaState::default()));
        let shared = Arc::clone(&state);
        let delivery = Delivery::callback(move |record: CallRecord| {
            let function = functions::by_id(record.function);
            if let Some(function) = function {
                lock(&shared).add(function, &record);
            }
            on_call(function, &record);
        });
        let calls = Arc::new(Mutex::new(CallTracer::start(
            &traced,
            config.pid,
            config.buffer_kb,
            config.recent_launches,
            delivery,
        )?));
        let mut seen: std::collections::HashSet<(u64, u64)> =
            libraries.iter().filter_map(|l| file_id(&l.path)).collect();
        let libraries = Arc::new(Mutex::new(libraries));
        let host_wide = config.pid.is_none() && config.libraries.is_empty();
        let watch = if host_wide {
            let (calls, found, launch_events) = (
                Arc::clone(&calls),
                Arc::clone(&libraries),
                config.launch_events,
            );
            Some(LibraryWatch::start(move |lib: Library| {
                if !CUDA_LIBRARIES.contains(&lib.kind)
                    || !file_id(&lib.path).is_some_and(|id| seen.insert(id))
                {
                    return;
                }
                if lock(&calls).attach(&functions_of(&lib, launch_events)) > 0 {
                    lock(&found).push(lib);
                }
            })?)
        } else {
            None
        };
        Ok(Self {
            watch,
            calls,
            state,
            libraries,
            watched: config.watch.clone(),
            stacks: UserStacks::default(),
            stubs: Mutex::new((Symbolizer::builder().dwarf(false).build(), HashMap::new())),
        })
    }

    /// The libraries traced (those found later included).
    pub fn libraries(&self) -> Vec<Library> {
        lock(&self.libraries).clone()
    }

    /// Functions the libraries lack (a version without them) or that failed to attach.
    pub fn missing(&self) -> Vec<MissingFunction> {
        lock(&self.calls).missing().to_vec()
    }

    /// The functions attached.
    pub fn traced(&self) -> Vec<TracedFunction> {
        lock(&self.calls).traced().to_vec()
    }

    /// The state, locked.
    pub fn state(&self) -> MutexGuard<'_, CudaState> {
        lock(&self.state)
    }

    /// Calls entered and not returned.
    pub fn in_flight(&self) -> Result<Vec<CallRecord>> {
        lock(&self.calls).in_flight()
    }

    /// The name of function `id`.
    pub fn function_name(&self, id: u16) -> String {
        function_name(&self.watched, id)
    }

    /// Records delivered and lost (the open watch's losses included).
    pub fn losses(&self) -> Result<Losses> {
        let mut losses = lock(&self.calls).losses()?;
        if let Some(watch) = &self.watch {
            losses.add(&watch.losses()?);
        }
        Ok(losses)
    }

    /// Stops following new libraries, detaches and delivers what is still in flight in
    /// the ring buffer.
    pub fn stop(&mut self) -> Result<()> {
        if let Some(watch) = &mut self.watch {
            watch.stop()?;
        }
        lock(&self.calls).stop()
    }

    /// The demangled name of `kernel` in process `pid`: as the process registered it,
    /// else its host stub's symbol, else what kind of handle it is and its value.
    pub fn kernel_name(&self, state: &CudaState, pid: u32, kernel: KernelRef) -> String {
        if let Some(name) = state.learnt_name(pid, kernel) {
            return demangle(name).into_owned();
        }
        match kernel {
            KernelRef::HostStub(address) => self
                .stub_symbol(pid, address)
                .unwrap_or_else(|| format!("kernel@{address:#x}")),
            KernelRef::DriverFunction(f) => format!("CUfunction@{f:#x}"),
            KernelRef::Graph(g) => format!("cudaGraphExec@{g:#x}"),
        }
    }

    fn stub_symbol(&self, pid: u32, address: u64) -> Option<String> {
        let mut stubs = lock(&self.stubs);
        let (symbolizer, cache) = &mut *stubs;
        cache
            .entry((pid, address))
            .or_insert_with(|| {
                symbolizer
                    .symbolize(&Source::process(pid), &[address])
                    .ok()?
                    .first()?
                    .function()
                    .map(str::to_owned)
            })
            .clone()
    }

    /// The frames of user stack `stack` of process `pid`, root first, symbolized now
    /// (the process must still be alive for its addresses to resolve).
    pub fn frames(&self, pid: u32, comm: &str, stack: &[u64]) -> Vec<String> {
        self.stacks.frames(pid, comm, stack)
    }

    /// The launches counted so far, each with its launching function and what it
    /// launched (CUDA 13 kernel handles as their host stubs).
    pub fn launches(&self) -> Result<Vec<Launched>> {
        let counts = lock(&self.calls).launches()?;
        let state = self.state();
        Ok(counts
            .into_iter()
            .filter_map(|c| {
                let function = functions::by_id(c.function)?;
                Some(Launched {
                    kernel: state.canonical(c.pid, function.kernel_ref(c.kernel)),
                    pid: c.pid,
                    comm: c.comm,
                    function,
                    stack: c.stack,
                    count: c.count,
                })
            })
            .collect())
    }

    /// The last launches of process `pid`, oldest first, with what each launched.
    pub fn recent_launches(&self, pid: u32) -> Result<Vec<(RecentLaunch, KernelRef)>> {
        let recent = lock(&self.calls).recent(pid)?;
        let state = self.state();
        Ok(recent
            .into_iter()
            .filter_map(|l| {
                let function = functions::by_id(l.function)?;
                Some((l, state.canonical(pid, function.kernel_ref(l.kernel))))
            })
            .collect())
    }

    /// `launches` as stack records: the CPU stack of each launch site, root first,
    /// ending with the kernel it launched (`[cuda] NAME`), weighted by launches.
    pub fn launch_stacks(
        &self,
        probe: &str,
        ts_ns: u64,
        launches: &[Launched],
    ) -> Vec<StackSample> {
        let mut sites: BTreeMap<(u32, &str, KernelRef, &[u64]), u64> = BTreeMap::new();
        for l in launches.iter().filter(|l| !l.stack.is_empty()) {
            *sites
                .entry((l.pid, &l.comm, l.kernel, &l.stack))
                .or_default() += l.count;
        }
        let state = self.state();
        let named: Vec<_> = sites
            .into_iter()
            .map(|((pid, comm, kernel, stack), count)| {
                let leaf = format!("[cuda] {}", self.kernel_name(&state, pid, kernel));
                (pid, comm, stack, count, leaf)
            })
            .collect();
        drop(state);
        self.stacks.records(probe, ts_ns, named)
    }
}

/// Launches of one (process, function, kernel, call site), counted in the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launched {
    /// Process id.
    pub pid: u32,
    /// Task name.
    pub comm: String,
    /// The launching function.
    pub function: &'static Function,
    /// What it launched.
    pub kernel: KernelRef,
    /// The caller's user stack, innermost first.
    pub stack: Vec<u64>,
    /// How many times.
    pub count: u64,
}

/// The name of function `id`: a CUDA function's, or the symbol of watched function `id`
/// of `watched`.
pub fn function_name(watched: &[(PathBuf, String)], id: u16) -> String {
    if id >= WATCH_BASE {
        watched
            .get(usize::from(id - WATCH_BASE))
            .map_or_else(|| format!("function {id}"), |(_, symbol)| symbol.clone())
    } else {
        functions::by_id(id).map_or_else(|| format!("function {id}"), |f| f.name.to_owned())
    }
}

fn find_libraries(config: &TraceConfig) -> Result<Vec<Library>> {
    if !config.libraries.is_empty() {
        return library::given(&config.libraries);
    }
    let found = library::found(config.pid, CUDA_LIBRARIES)?;
    // Host-wide, the tracer also waits for libraries opened later: none now is fine.
    if let (Some(pid), true) = (config.pid, found.is_empty() && config.watch.is_empty()) {
        return Err(Error::Unsupported {
            feature: "CUDA tracing".into(),
            reason: format!(
                "no CUDA library (libcudart, libcuda) found in process {pid}: is it a CUDA \
                 program? Name the library with --opt lib=PATH"
            ),
        });
    }
    Ok(found)
}
