//! Reading offcpu's maps: (process, thread, stacks) -> time off CPU, the kernel's stack
//! trace map the kernel stack ids point into, and the stack store the user and CPython
//! stack ids point into.

use std::collections::HashMap;

use coolbpf_core::decode::Reader;
use coolbpf_core::{MapView, Result};
use coolbpf_symbolize::{PythonFrame, Sample};

use crate::stacks::StackStore;

/// Size of `struct offcpu_key` and `struct offcpu_value` (offcpu.bpf.c).
const KEY_SIZE: usize = 32;
const VALUE_SIZE: usize = 32;
const COMM: usize = 16;
const COMM_LEN: usize = 16;

/// Time off CPU of one thread, by the kernel and user stacks it left the CPU with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffCpuStack {
    /// Process id (tgid).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Task name when it first left the CPU with these stacks.
    pub comm: String,
    /// Kernel instruction pointers, innermost first (empty when not captured).
    pub kernel_ips: Vec<u64>,
    /// User instruction pointers, innermost first (empty for kernel threads, or when not
    /// captured).
    pub user_ips: Vec<u64>,
    /// CPython frames, innermost first (empty when the thread runs no Python).
    pub python: Vec<PythonFrame>,
    /// Total time off CPU, ns.
    pub total_ns: u64,
    /// How many times it left the CPU this way.
    pub count: u64,
}

impl OffCpuStack {
    /// As a profile sample weighing `weight_us`.
    pub(crate) fn sample(&self, weight_us: u64) -> Sample {
        Sample {
            pid: self.pid,
            tid: self.tid,
            comm: self.comm.clone(),
            kernel_ips: self.kernel_ips.clone(),
            user_ips: self.user_ips.clone(),
            python: self.python.clone(),
            weight: weight_us,
        }
    }
}

/// What [`read`] found.
#[derive(Debug, Default)]
pub(crate) struct Read {
    /// The entries, longest off-CPU time first.
    pub(crate) stacks: Vec<OffCpuStack>,
    /// Entries whose user or Python stack the store had evicted (shown without it).
    pub(crate) evicted: u64,
}

/// Reads every (key, value) of the `offcpu` map, resolving kernel stack ids through
/// `kernel` and user and Python stack ids through `store`. Entries of unexpected size
/// are skipped; a stack id that no longer resolves gives an empty stack (counted as
/// evicted for the store's).
pub(crate) fn read(counts: &MapView, kernel: &MapView, store: &StackStore) -> Result<Read> {
    let mut kernel_stacks: HashMap<i32, Vec<u64>> = HashMap::new();
    let mut out = Read::default();
    for (key, value) in counts.entries()? {
        let (Ok(key), Ok(value)) = (
            Reader::new(&key, KEY_SIZE, "offcpu key"),
            Reader::new(&value, VALUE_SIZE, "offcpu value"),
        ) else {
            continue;
        };
        let id = key.i32(8)?;
        let kernel_ips = if id < 0 {
            Vec::new()
        } else if let Some(ips) = kernel_stacks.get(&id) {
            ips.clone()
        } else {
            let ips = kernel
                .lookup(&id.to_ne_bytes())?
                .map(|raw| instruction_pointers(&raw))
                .unwrap_or_default();
            kernel_stacks.insert(id, ips.clone());
            ips
        };
        let user_ips = store.ips(key.u64(16)?)?;
        let python = store.python(key.u64(24)?)?;
        if user_ips.is_none() || python.is_none() {
            out.evicted += 1;
        }
        out.stacks.push(OffCpuStack {
            kernel_ips,
            user_ips: user_ips.unwrap_or_default(),
            python: python.unwrap_or_default(),
            pid: key.u32(0)?,
            tid: key.u32(4)?,
            comm: value.c_str(COMM, COMM_LEN)?,
            total_ns: value.u64(0)?,
            count: value.u64(8)?,
        });
    }
    out.stacks
        .sort_by(|a, b| b.total_ns.cmp(&a.total_ns).then(a.tid.cmp(&b.tid)));
    Ok(out)
}

/// A stack trace map value: u64 instruction pointers, zero after the last.
fn instruction_pointers(raw: &[u8]) -> Vec<u64> {
    raw.chunks_exact(8)
        .map(|word| u64::from_ne_bytes(word.try_into().unwrap_or_default()))
        .take_while(|&ip| ip != 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_values_end_at_the_first_zero() {
        let raw: Vec<u8> = [0xffff_ffff_8100_0010u64, 0x4010, 0, 0x99]
            .iter()
            .flat_map(|w| w.to_ne_bytes())
            .collect();
        assert_eq!(
            instruction_pointers(&raw),
            vec![0xffff_ffff_8100_0010, 0x4010]
        );
        assert!(instruction_pointers(&[1, 2, 3]).is_empty());
    }
}
