//! [`CudaState`]: what the `cuda` and `gpuhang` probes learn from the calls they see:
//! counts, kernel names, device memory, sync waits, launch stacks, recent launches.

use std::collections::{BTreeMap, HashMap, VecDeque};

use coolbpf_core::histogram::LOG2_SLOTS;

use super::call::{CudaCall, KernelRef, Launch};
use super::functions::Function;
use crate::calls::CallRecord;

/// Launches remembered per process for hang reports.
pub const RECENT_LAUNCHES: usize = 16;

/// A process, as records label it.
pub type Task = (u32, String);

/// A launch seen recently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentLaunch {
    /// When, kernel monotonic ns.
    pub ts_ns: u64,
    /// The launching thread.
    pub tid: u32,
    /// The kernel.
    pub kernel: KernelRef,
    /// The stream.
    pub stream: u64,
}

/// A launch stack: who launched which kernel from where.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LaunchStack {
    /// Process id.
    pub pid: u32,
    /// Task name.
    pub comm: String,
    /// The kernel.
    pub kernel: KernelRef,
    /// User stack, innermost first.
    pub stack: Vec<u64>,
}

/// Device memory of one process.
#[derive(Debug, Clone, Default)]
pub struct DeviceMemory {
    /// Live allocations: pointer to size.
    pub live: HashMap<u64, u64>,
    /// Bytes allocated and not freed.
    pub outstanding: u64,
}

/// Log2 slots of a wait time in microseconds, and their sum.
#[derive(Debug, Clone)]
pub struct WaitHistogram {
    /// Slot counts (slot i >= 1 holds [2^(i-1), 2^i - 1] us).
    pub slots: [u64; LOG2_SLOTS],
    /// Sum of the waits, us.
    pub sum_us: u64,
}

impl Default for WaitHistogram {
    fn default() -> Self {
        Self {
            slots: [0; LOG2_SLOTS],
            sum_us: 0,
        }
    }
}

impl WaitHistogram {
    fn add(&mut self, us: u64) {
        let slot = (64 - us.leading_zeros()) as usize;
        self.slots[slot.min(LOG2_SLOTS - 1)] += 1;
        self.sum_us = self.sum_us.saturating_add(us);
    }
}

/// Everything learnt so far (cumulative since the probe started).
#[derive(Debug, Default)]
pub struct CudaState {
    /// Calls per (process, function name).
    pub calls: BTreeMap<(Task, &'static str), u64>,
    /// Failed calls per (process, function name, error code).
    pub errors: BTreeMap<(Task, &'static str, i64), u64>,
    /// Launches per (process, kernel).
    pub launches: BTreeMap<(Task, KernelRef), u64>,
    /// Launches per launch stack.
    pub launch_stacks: BTreeMap<LaunchStack, u64>,
    /// Bytes copied per (process, direction).
    pub memcpy_bytes: BTreeMap<(Task, u64), u64>,
    /// Device memory per process.
    pub memory: BTreeMap<Task, DeviceMemory>,
    /// Time waited in sync calls, per function name.
    pub sync_waits: BTreeMap<&'static str, WaitHistogram>,
    /// Kernel names learnt from the process: (pid, host stub or driver handle) to the
    /// mangled name.
    pub names: HashMap<(u32, u64), String>,
    /// CUDA 13 kernel handles: (pid, handle) to host stub.
    pub handles: HashMap<(u32, u64), u64>,
    /// The last launches of each process, newest last.
    pub recent: HashMap<u32, VecDeque<RecentLaunch>>,
    /// Events recorded: (pid, event) to the stream and the launches on it before.
    pub recorded_events: HashMap<(u32, u64), RecordedEvent>,
    /// Events polled and not ready: (pid, event) to the first not-ready answer.
    pub not_ready: HashMap<(u32, u64), NotReady>,
}

/// A `cudaEventRecord(event, stream)`: what had been launched on the stream before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    /// The stream.
    pub stream: u64,
    /// When it was recorded.
    pub ts_ns: u64,
    /// The launches on that stream before it, newest last.
    pub before: Vec<RecentLaunch>,
}

/// An event whose queries keep answering `cudaErrorNotReady`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotReady {
    /// The first not-ready answer.
    pub since_ns: u64,
    /// The latest one.
    pub last_ns: u64,
    /// The polling thread and name.
    pub tid: u32,
    /// The polling task's name.
    pub comm: String,
}

/// `cudaErrorNotReady`.
pub const NOT_READY: i64 = 600;

impl CudaState {
    /// Adds one call of `function`.
    pub fn add(&mut self, function: &'static Function, record: &CallRecord) {
        let task: Task = (record.pid, record.comm.clone());
        *self.calls.entry((task.clone(), function.name)).or_default() += 1;
        let returned = record.return_ns.is_some();
        if returned && record.ret != 0 {
            *self
                .errors
                .entry((task.clone(), function.name, record.ret))
                .or_default() += 1;
        }
        let call = CudaCall::decode(function, record);
        match call {
            CudaCall::Launch(launch) => self.add_launch(task, record, launch),
            CudaCall::Malloc {
                bytes,
                ptr: Some(ptr),
            } => {
                let memory = self.memory.entry(task).or_default();
                if let Some(old) = memory.live.insert(ptr, bytes) {
                    memory.outstanding = memory.outstanding.saturating_sub(old);
                }
                memory.outstanding = memory.outstanding.saturating_add(bytes);
            }
            CudaCall::Free { ptr } if record.ret == 0 => {
                if let Some(memory) = self.memory.get_mut(&task) {
                    if let Some(bytes) = memory.live.remove(&ptr) {
                        memory.outstanding = memory.outstanding.saturating_sub(bytes);
                    }
                }
            }
            CudaCall::Memcpy { bytes, kind } if record.ret == 0 => {
                *self.memcpy_bytes.entry((task, kind)).or_default() += bytes;
            }
            CudaCall::Sync { .. } => {
                if let Some(ns) = record.duration_ns() {
                    self.sync_waits
                        .entry(function.name)
                        .or_default()
                        .add(ns / 1000);
                }
            }
            CudaCall::Register { host_stub, name } if !name.is_empty() => {
                self.names.insert((record.pid, host_stub), name);
            }
            CudaCall::GetKernel {
                host_stub,
                handle: Some(handle),
            } => {
                self.handles.insert((record.pid, handle), host_stub);
            }
            CudaCall::GetFunction {
                name,
                handle: Some(handle),
            } if !name.is_empty() => {
                self.names.insert((record.pid, handle), name);
            }
            CudaCall::EventRecord { event, stream } if record.ret == 0 => {
                let before = self
                    .recent
                    .get(&record.pid)
                    .map(|recent| {
                        recent
                            .iter()
                            .filter(|l| l.stream == stream)
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                let ts_ns = record.entry_ns;
                self.recorded_events.insert(
                    (record.pid, event),
                    RecordedEvent {
                        stream,
                        ts_ns,
                        before,
                    },
                );
                self.not_ready.remove(&(record.pid, event));
            }
            CudaCall::EventQuery { event } => {
                let key = (record.pid, event);
                if record.ret == NOT_READY {
                    let at = record.return_ns.unwrap_or(record.entry_ns);
                    let entry = self.not_ready.entry(key).or_insert_with(|| NotReady {
                        since_ns: at,
                        last_ns: at,
                        tid: record.tid,
                        comm: record.comm.clone(),
                    });
                    entry.last_ns = at;
                } else {
                    self.not_ready.remove(&key);
                }
            }
            _ => {}
        }
    }

    fn add_launch(&mut self, task: Task, record: &CallRecord, launch: Launch) {
        let kernel = self.canonical(record.pid, launch.kernel);
        *self.launches.entry((task.clone(), kernel)).or_default() += 1;
        if !record.stack.is_empty() {
            let key = LaunchStack {
                pid: task.0,
                comm: task.1,
                kernel,
                stack: record.stack.clone(),
            };
            *self.launch_stacks.entry(key).or_default() += 1;
        }
        let recent = self.recent.entry(record.pid).or_default();
        if recent.len() == RECENT_LAUNCHES {
            recent.pop_front();
        }
        recent.push_back(RecentLaunch {
            ts_ns: record.entry_ns,
            tid: record.tid,
            kernel,
            stream: launch.stream,
        });
    }

    /// A CUDA 13 kernel handle becomes the host stub it was made for, when known, so that both
    /// launch paths of one kernel count as one.
    fn canonical(&self, pid: u32, kernel: KernelRef) -> KernelRef {
        match kernel {
            KernelRef::HostStub(handle) => self
                .handles
                .get(&(pid, handle))
                .map_or(kernel, |stub| KernelRef::HostStub(*stub)),
            other => other,
        }
    }

    /// The (mangled) name process `pid` gave `kernel`, when it was seen.
    pub fn learnt_name(&self, pid: u32, kernel: KernelRef) -> Option<&str> {
        let address = match self.canonical(pid, kernel) {
            KernelRef::HostStub(a) | KernelRef::DriverFunction(a) => a,
            KernelRef::Graph(_) => return None,
        };
        self.names.get(&(pid, address)).map(String::as_str)
    }

    /// Processes seen, with their last task name.
    pub fn forget_process(&mut self, pid: u32) {
        self.recent.remove(&pid);
        self.recorded_events.retain(|(p, _), _| *p != pid);
        self.not_ready.retain(|(p, _), _| *p != pid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cuda::functions::FUNCTIONS;

    fn function(symbol: &str) -> &'static Function {
        FUNCTIONS.iter().find(|f| f.symbol == symbol).unwrap()
    }

    fn call(args: &[u64], ret: i64, deref: Option<u64>) -> CallRecord {
        let mut record = CallRecord {
            pid: 7,
            tid: 7,
            comm: "train".into(),
            entry_ns: 1_000,
            return_ns: Some(3_000_000),
            ret,
            deref,
            ..CallRecord::default()
        };
        record.args[..args.len()].copy_from_slice(args);
        record
    }

    #[test]
    fn memory_is_paired_by_pointer() {
        let mut state = CudaState::default();
        state.add(function("cudaMalloc"), &call(&[0, 4096], 0, Some(0xa0)));
        state.add(function("cudaMalloc"), &call(&[0, 100], 0, Some(0xb0)));
        state.add(function("cudaMalloc"), &call(&[0, 999], 2, Some(0xc0)));
        state.add(function("cudaFree"), &call(&[0xa0], 0, None));
        state.add(function("cudaFree"), &call(&[0xdead], 0, None));
        let memory = &state.memory[&(7, "train".to_owned())];
        assert_eq!(memory.outstanding, 100);
        assert_eq!(state.errors.values().sum::<u64>(), 1);
    }

    #[test]
    fn handles_and_stubs_count_as_one_kernel() {
        let mut state = CudaState::default();
        let mut register = call(&[0, 0x1000, 0, 0], 0, None);
        register.return_ns = None;
        register.name = Some("_Z5scalePf".into());
        state.add(function("__cudaRegisterFunction"), &register);
        state.add(
            function("__cudaGetKernel"),
            &call(&[0, 0x1000], 0, Some(0x77)),
        );
        let mut launch = call(&[0x77, 1, 1, 1, 1, 0, 0, 0], 0, None);
        launch.return_ns = None;
        state.add(function("cudaLaunchKernel"), &launch);
        launch.args[0] = 0x1000;
        state.add(function("cudaLaunchKernel"), &launch);
        let kernel = KernelRef::HostStub(0x1000);
        assert_eq!(state.launches[&((7, "train".into()), kernel)], 2);
        assert_eq!(
            state.learnt_name(7, KernelRef::HostStub(0x77)),
            Some("_Z5scalePf")
        );
    }

    #[test]
    fn sync_waits_go_to_log2_microseconds() {
        let mut state = CudaState::default();
        state.add(function("cudaDeviceSynchronize"), &call(&[], 0, None));
        let waits = &state.sync_waits["cudaDeviceSynchronize"];
        // 2.999 ms = 2999 us: slot 12 holds [2048, 4095].
        assert_eq!(waits.slots[12], 1);
        assert_eq!(waits.sum_us, 2999);
    }

    #[test]
    fn event_polls_not_ready_are_tracked_until_ready() {
        let mut state = CudaState::default();
        let mut launch = call(&[0x1000, 1, 1, 1, 1, 0, 0, 0x5], 0, None);
        launch.return_ns = None;
        state.add(function("cudaLaunchKernel"), &launch);
        state.add(function("cudaEventRecord"), &call(&[0xe, 0x5], 0, None));
        state.add(function("cudaEventQuery"), &call(&[0xe], NOT_READY, None));
        assert_eq!(state.recorded_events[&(7, 0xe)].before.len(), 1);
        assert!(state.not_ready.contains_key(&(7, 0xe)));
        state.add(function("cudaEventQuery"), &call(&[0xe], 0, None));
        assert!(!state.not_ready.contains_key(&(7, 0xe)));
    }
}
