//! [`CudaState`]: what the `cuda` and `gpuhang` probes learn from the calls sent to them:
//! counts, kernel names, device memory, sync waits, recorded and polled events. Launches
//! are counted in the kernel instead ([`CallTracer::launches`](crate::calls::CallTracer::launches)).

use std::collections::{BTreeMap, HashMap};

use coolbpf_core::histogram::LOG2_SLOTS;

use super::call::{CudaCall, KernelRef};
use super::functions::Function;
use crate::calls::CallRecord;

/// A process, as records label it.
pub type Task = (u32, String);

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
    /// Events recorded: (pid, event) to the stream and when.
    pub recorded_events: HashMap<(u32, u64), RecordedEvent>,
    /// Events polled and not ready: (pid, event) to the first not-ready answer.
    pub not_ready: HashMap<(u32, u64), NotReady>,
}

/// A `cudaEventRecord(event, stream)`: it completes once the work launched on the
/// stream before `ts_ns` has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordedEvent {
    /// The stream.
    pub stream: u64,
    /// When it was recorded.
    pub ts_ns: u64,
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
    /// Adds one call of `function`; launches are left to the kernel's count.
    pub fn add(&mut self, function: &'static Function, record: &CallRecord) {
        if function.is_launch() {
            return;
        }
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
                let ts_ns = record.entry_ns;
                self.recorded_events
                    .insert((record.pid, event), RecordedEvent { stream, ts_ns });
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

    /// A CUDA 13 kernel handle becomes the host stub it was made for, when known, so that both
    /// launch paths of one kernel count as one.
    pub fn canonical(&self, pid: u32, kernel: KernelRef) -> KernelRef {
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

    /// Forgets what is kept per event of process `pid`.
    pub fn forget_process(&mut self, pid: u32) {
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
    fn handles_become_their_stubs() {
        let mut state = CudaState::default();
        let mut register = call(&[0, 0x1000, 0, 0], 0, None);
        register.return_ns = None;
        register.name = Some("_Z5scalePf".into());
        state.add(function("__cudaRegisterFunction"), &register);
        state.add(
            function("__cudaGetKernel"),
            &call(&[0, 0x1000], 0, Some(0x77)),
        );
        let kernel = KernelRef::HostStub(0x1000);
        assert_eq!(state.canonical(7, KernelRef::HostStub(0x77)), kernel);
        assert_eq!(
            state.canonical(8, KernelRef::HostStub(0x77)),
            KernelRef::HostStub(0x77)
        );
        // Launches are counted in the kernel, not here.
        let mut launch = call(&[0x77, 1, 1, 1, 1, 0, 0, 0], 0, None);
        launch.return_ns = None;
        state.add(function("cudaLaunchKernel"), &launch);
        assert!(state.calls.keys().all(|(_, f)| *f != "cudaLaunchKernel"));
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
        state.add(function("cudaEventRecord"), &call(&[0xe, 0x5], 0, None));
        state.add(function("cudaEventQuery"), &call(&[0xe], NOT_READY, None));
        assert_eq!(state.recorded_events[&(7, 0xe)].stream, 0x5);
        assert!(state.not_ready.contains_key(&(7, 0xe)));
        state.add(function("cudaEventQuery"), &call(&[0xe], 0, None));
        assert!(!state.not_ready.contains_key(&(7, 0xe)));
    }
}
