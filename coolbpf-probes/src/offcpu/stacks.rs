//! Reading offcpu's maps: (process, thread, stacks) -> time off CPU, and the stack trace
//! map the stack ids point into.

use std::collections::HashMap;

use coolbpf_core::decode::Reader;
use coolbpf_core::{MapView, Result};
use coolbpf_symbolize::Sample;

/// Size of `struct offcpu_key` and `struct offcpu_value` (offcpu.bpf.c).
const KEY_SIZE: usize = 16;
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
            python: Vec::new(),
            weight: weight_us,
        }
    }
}

/// Reads every (key, value) of the `offcpu` map, resolving stack ids through `stacks`.
/// Entries of unexpected size are skipped; a stack id that no longer resolves gives an
/// empty stack.
pub(crate) fn read(counts: &MapView, stacks: &MapView) -> Result<Vec<OffCpuStack>> {
    let mut resolved: HashMap<i32, Vec<u64>> = HashMap::new();
    let mut out = Vec::new();
    for (key, value) in counts.entries()? {
        let (Ok(key), Ok(value)) = (
            Reader::new(&key, KEY_SIZE, "offcpu key"),
            Reader::new(&value, VALUE_SIZE, "offcpu value"),
        ) else {
            continue;
        };
        let mut stack = |offset: usize| -> Result<Vec<u64>> {
            let id = key.i32(offset)?;
            if id < 0 {
                return Ok(Vec::new());
            }
            if let Some(ips) = resolved.get(&id) {
                return Ok(ips.clone());
            }
            let ips = stacks
                .lookup(&id.to_ne_bytes())?
                .map(|raw| instruction_pointers(&raw))
                .unwrap_or_default();
            resolved.insert(id, ips.clone());
            Ok(ips)
        };
        out.push(OffCpuStack {
            kernel_ips: stack(8)?,
            user_ips: stack(12)?,
            pid: key.u32(0)?,
            tid: key.u32(4)?,
            comm: value.c_str(COMM, COMM_LEN)?,
            total_ns: value.u64(0)?,
            count: value.u64(8)?,
        });
    }
    out.sort_by(|a, b| b.total_ns.cmp(&a.total_ns).then(a.tid.cmp(&b.tid)));
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
