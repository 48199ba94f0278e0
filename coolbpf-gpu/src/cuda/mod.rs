//! `cuda`: the CUDA calls of a process (or of every process on the host), by uprobes on
//! libcudart and libcuda.
//!
//! Traced: the runtime's launches (`cudaLaunchKernel`, `cudaLaunchKernelExC`,
//! `cudaLaunchCooperativeKernel`, `cudaGraphLaunch`),
//! allocations, copies and syncs, and the driver's (`cuLaunchKernel[Ex]`, `cuMemAlloc`,
//! `cuMemFree`, `cuStreamSynchronize`, `cuCtxSynchronize`), which also see the launches
//! of NCCL, Triton and cuBLAS that bypass the runtime. See [`functions::FUNCTIONS`].
//!
//! Kernels are named as the process itself named them: `__cudaRegisterFunction(handle,
//! hostFun, deviceFun, deviceName, ...)` runs for every kernel at start-up and pairs the
//! host stub a launch passes with the device function's mangled name, which is there even
//! in stripped binaries; `__cudaGetKernel` maps CUDA 13's kernel handles to their stubs;
//! `cuModuleGetFunction`/`cuLibraryGetKernel` name driver handles. A process that
//! registered its kernels before the probe started gets its stubs named by the
//! symbolizer instead.
//!
//! Every interval it reports, cumulatively:
//! - `cuda_calls_total{pid,comm,function}` and `cuda_call_errors_total{...,error,code}`;
//! - `cuda_launches_total{pid,comm,kernel}`;
//! - the launch flame graph: `stacks` records, the CPU stack of each launch site with
//!   the kernel as the leaf frame (`[cuda] demo::scale<float>(float*, float, int)`);
//! - `cuda_device_memory_bytes{pid,comm}`: allocated and not freed (pointers paired);
//! - `cuda_memcpy_bytes_total{pid,comm,kind}`;
//! - `cuda_sync_wait{function}`: a log2 histogram (us) of time spent in sync calls;
//! - `cuda_libraries_traced{library,path}`: the files the probe is attached to;
//! - losses; and with `--opt events=true` one event per call.
//!
//! Host-wide (no `--pid`, no `lib=`), it attaches to the libraries found on the host and
//! follows the ones opened later (`libwatch`: open and openat of `libcudart.so*`,
//! `libcuda.so*`, `/dev/nvidia*`), attaching to a new file as soon as a process opens it.
//! Kernels a process registers in the moment between its open and the attach are named
//! by the symbolizer instead of `__cudaRegisterFunction`.
//!
//! Stacks are user stacks taken at the function's entry. The kernel stack at a uprobe is
//! only the breakpoint trap's, so it is not taken.

pub mod call;
pub mod functions;
pub mod state;
pub mod tracer;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use coolbpf_core::histogram::{Histogram, Layout};
use coolbpf_core::{labels, Event, FieldValue, Metric, PluginContext, Record, Result};
use coolbpf_probes::options::{OptionSpec, ProbeOptions};
use coolbpf_probes::probe_plugin::{ProbePlugin, ProbeSource};
use coolbpf_probes::sched::monotonic_ns;

pub use call::{CudaCall, KernelRef, Launch};
pub use functions::{Function, Role, FUNCTIONS};
pub use state::CudaState;
pub use tracer::{function_name, CudaTracer, Launched, OnCall, TraceConfig, WATCH_BASE};

use crate::calls::CallRecord;

/// The probe's name in the registry and in its records.
pub const NAME: &str = "cuda";

/// `--opt lib=`.
pub const LIB: OptionSpec = OptionSpec {
    name: "lib",
    help: "comma-separated CUDA libraries (or programs linking the runtime statically) to \
           trace; default: those of --pid, else those found on the host",
    default: "",
};
/// `--opt buffer_kb=`.
pub use crate::calls::BUFFER_KB;
const EVENTS: OptionSpec = OptionSpec {
    name: "events",
    help: "true: one event per call besides the counts (a busy trainer makes 10^4-10^5 a second)",
    default: "false",
};

/// Options `cuda` accepts besides `--pid`.
pub const OPTIONS: &[OptionSpec] = &[LIB, BUFFER_KB, EVENTS];

/// How to run `cuda`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CudaConfig {
    /// What to trace.
    pub trace: TraceConfig,
    /// Send one event per call.
    pub events: bool,
}

impl CudaConfig {
    /// The config described by registry options.
    pub fn from_options(options: &ProbeOptions) -> Result<Self> {
        options.check(NAME, OPTIONS)?;
        let events = options.get(&EVENTS)?;
        Ok(Self {
            trace: TraceConfig {
                launch_events: events,
                // Only the hang watchdog reads them.
                recent_launches: false,
                ..trace_config(options, Vec::new())?
            },
            events,
        })
    }
}

/// The [`TraceConfig`] of `--pid`, `lib=` and `buffer_kb=`, watching `watch` too.
pub fn trace_config(options: &ProbeOptions, watch: Vec<(PathBuf, String)>) -> Result<TraceConfig> {
    let buffer_kb = crate::calls::buffer_kb(options)?;
    let libs: String = options.get(&LIB)?;
    Ok(TraceConfig {
        pid: options.pid,
        libraries: crate::library::path_list(&libs),
        watch,
        buffer_kb,
        launch_events: false,
        recent_launches: true,
    })
}

/// Whether this host has a CUDA library to trace without being told where.
pub fn host_check() -> std::result::Result<(), String> {
    if crate::library::found(None, tracer::CUDA_LIBRARIES)
        .unwrap_or_default()
        .is_empty()
    {
        Err("no CUDA library (libcudart, libcuda) found on the library paths, \
             /usr/local/cuda* or pip's nvidia/*/lib: trace a process (--pid) or name one (--opt lib=PATH)"
            .into())
    } else {
        Ok(())
    }
}

/// A running `cuda` probe.
pub struct Cuda {
    tracer: CudaTracer,
}

impl Cuda {
    /// Starts tracing with `config`; `on_call` sees each call as it arrives.
    pub fn start(config: &CudaConfig, on_call: OnCall) -> Result<Self> {
        Ok(Self {
            tracer: CudaTracer::start(&config.trace, on_call)?,
        })
    }

    /// The tracer, its state and the names it learnt.
    pub fn tracer(&self) -> &CudaTracer {
        &self.tracer
    }

    /// This interval's records (cumulative values).
    pub fn records(&self) -> Result<Vec<Record>> {
        let launched = self.tracer.launches()?;
        let mut out: Vec<Record> = self
            .tracer
            .launch_stacks(NAME, monotonic_ns(), &launched)
            .into_iter()
            .map(Record::Stack)
            .collect();
        let state = self.tracer.state();
        // Calls: those sent, and the launches counted in the kernel.
        let mut calls = state.calls.clone();
        let mut per_kernel: BTreeMap<(u32, &str, KernelRef), u64> = BTreeMap::new();
        for l in &launched {
            *calls
                .entry(((l.pid, l.comm.clone()), l.function.name))
                .or_default() += l.count;
            *per_kernel.entry((l.pid, &l.comm, l.kernel)).or_default() += l.count;
        }
        for (((pid, comm), function), count) in &calls {
            let labels = labels! {"pid" => *pid, "comm" => comm.as_str(), "function" => *function};
            out.push(Metric::counter(NAME, "cuda_calls_total", labels, *count).into());
        }
        for (((pid, comm), function, code), count) in &state.errors {
            let error = functions::error_name(*code).unwrap_or("unknown");
            let labels = labels! {
                "pid" => *pid, "comm" => comm.as_str(), "function" => *function,
                "code" => *code, "error" => error,
            };
            out.push(Metric::counter(NAME, "cuda_call_errors_total", labels, *count).into());
        }
        for ((pid, comm, kernel), count) in &per_kernel {
            let name = self.tracer.kernel_name(&state, *pid, *kernel);
            let labels = labels! {"pid" => *pid, "comm" => *comm, "kernel" => name};
            out.push(Metric::counter(NAME, "cuda_launches_total", labels, *count).into());
        }
        for ((pid, comm), memory) in &state.memory {
            let labels = labels! {"pid" => *pid, "comm" => comm.as_str()};
            let bytes = memory.outstanding as f64;
            out.push(Metric::gauge(NAME, "cuda_device_memory_bytes", labels, bytes).into());
        }
        for (((pid, comm), kind), bytes) in &state.memcpy_bytes {
            let labels =
                labels! {"pid" => *pid, "comm" => comm.as_str(), "direction" => memcpy_kind(*kind)};
            out.push(Metric::counter(NAME, "cuda_memcpy_bytes_total", labels, *bytes).into());
        }
        for (function, waits) in &state.sync_waits {
            let histogram = Histogram::from_slots(Layout::Log2, &waits.slots, waits.sum_us, "us");
            let labels = labels! {"function" => *function};
            out.push(Metric::histogram(NAME, "cuda_sync_wait", labels, histogram).into());
        }
        drop(state);
        for lib in self.tracer.libraries() {
            let labels = labels! {
                "library" => lib.kind.name(), "path" => lib.path.display().to_string(),
            };
            out.push(Metric::gauge(NAME, "cuda_libraries_traced", labels, 1.0).into());
        }
        out.extend(self.tracer.losses()?.to_records(NAME));
        Ok(out)
    }
}

/// `cudaMemcpyKind` as a label.
fn memcpy_kind(kind: u64) -> String {
    match kind {
        0 => "host_to_host".into(),
        1 => "host_to_device".into(),
        2 => "device_to_host".into(),
        3 => "device_to_device".into(),
        4 => "default".into(),
        other => other.to_string(),
    }
}

/// One call as an event: the function, who called it, how long it took, what it
/// returned, and its decoded arguments.
pub fn call_event(
    probe: &str,
    name: &str,
    function: Option<&Function>,
    record: &CallRecord,
) -> Event {
    let event = record.event(probe, name);
    let Some(function) = function else {
        return event;
    };
    let hex = |v: u64| FieldValue::Str(format!("{v:#x}"));
    let dims = |d: [u32; 3]| FieldValue::Str(format!("{}x{}x{}", d[0], d[1], d[2]));
    match CudaCall::decode(function, record) {
        CudaCall::Launch(launch) => {
            let kernel = match launch.kernel {
                KernelRef::HostStub(a) | KernelRef::DriverFunction(a) | KernelRef::Graph(a) => a,
            };
            event
                .with("kernel_ref", hex(kernel))
                .with("grid", dims(launch.grid))
                .with("block", dims(launch.block))
                .with("shared_mem", FieldValue::UInt(launch.shared_mem))
                .with("stream", hex(launch.stream))
        }
        CudaCall::Malloc { bytes, ptr } => {
            let event = event.with("bytes", FieldValue::UInt(bytes));
            match ptr {
                Some(ptr) => event.with("ptr", hex(ptr)),
                None => event,
            }
        }
        CudaCall::Free { ptr } => event.with("ptr", hex(ptr)),
        CudaCall::Memcpy { bytes, kind } => event
            .with("bytes", FieldValue::UInt(bytes))
            .with("direction", FieldValue::Str(memcpy_kind(kind))),
        CudaCall::Sync { on } => event.with("on", hex(on)),
        CudaCall::EventRecord { event: e, stream } => {
            event.with("event", hex(e)).with("stream", hex(stream))
        }
        CudaCall::EventQuery { event: e } => event.with("event", hex(e)),
        CudaCall::Register { host_stub, name }
        | CudaCall::GetFunction {
            handle: Some(host_stub),
            name,
        } => event.with("kernel_ref", hex(host_stub)).with(
            "kernel",
            FieldValue::Str(coolbpf_symbolize::demangle(&name).into_owned()),
        ),
        CudaCall::GetKernel { host_stub, handle } => {
            let event = event.with("kernel_ref", hex(host_stub));
            match handle {
                Some(h) => event.with("handle", hex(h)),
                None => event,
            }
        }
        CudaCall::GetFunction { handle: None, .. } => event,
    }
}

impl ProbeSource for Cuda {
    const NAME: &'static str = NAME;
    type Config = CudaConfig;

    fn start(config: &CudaConfig, ctx: &PluginContext) -> Result<Self> {
        let on_call: OnCall = if config.events {
            let emitter = Arc::new(ctx.emitter());
            Box::new(move |function, record| {
                let name = function.map_or("?", |f| f.name);
                emitter.emit(Record::Event(call_event(NAME, name, function, record)));
            })
        } else {
            Box::new(|_, _| {})
        };
        Self::start(config, on_call)
    }

    fn collect(&self, out: &mut Vec<Record>) -> Result<()> {
        out.extend(self.records()?);
        Ok(())
    }

    fn stop(&mut self) -> Result<()> {
        self.tracer.stop()
    }

    // Counts come from calls the ring buffer may still hold at the last collect.
    const COLLECT_AFTER_STOP: bool = true;
}

/// `cuda` as a runtime plugin.
pub type CudaPlugin = ProbePlugin<Cuda>;
