//! The map layouts of `coolbpf/unwind.bpf.h`, written from Rust: a process's entry
//! (`struct coolbpf_unwind_process`) and the map names.

/// The rows array (`struct coolbpf_unwind_row`, 8 bytes each).
pub const ROWS_MAP: &str = "coolbpf_unwind_rows";
/// The per-process hash (tgid -> `struct coolbpf_unwind_process`).
pub const PROCESSES_MAP: &str = "coolbpf_unwind_processes";
/// The map of processes unwound before they were registered (tgid -> first seen).
pub const WANTED_MAP: &str = "coolbpf_unwind_wanted";
/// Executable mappings one process entry holds (`COOLBPF_UNWIND_MAX_MAPPINGS`).
pub const MAX_MAPPINGS: usize = 128;

/// Bytes of one `struct coolbpf_unwind_mapping`.
const MAPPING_BYTES: usize = 32;
/// Bytes of `struct coolbpf_unwind_process`: count, padding, the mappings.
pub(crate) const PROCESS_BYTES: usize = 8 + MAX_MAPPINGS * MAPPING_BYTES;

/// One mapping as the BPF side searches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MappingEntry {
    pub(crate) start: u64,
    pub(crate) end: u64,
    /// Runtime address minus row pc offset: the load bias plus the table's base.
    pub(crate) bias: u64,
    pub(crate) first_row: u32,
    pub(crate) row_count: u32,
}

/// The value of a process's entry: `mappings` (sorted by start, at most
/// [`MAX_MAPPINGS`]) in the C layout, under `generation` (which tells the BPF side's row
/// cache that the mappings changed).
pub(crate) fn process_value(mappings: &[MappingEntry], generation: u32) -> Vec<u8> {
    let mut value = vec![0; PROCESS_BYTES];
    let count = mappings.len().min(MAX_MAPPINGS);
    value[0..4].copy_from_slice(&(count as u32).to_ne_bytes());
    value[4..8].copy_from_slice(&generation.to_ne_bytes());
    for (i, m) in mappings.iter().take(count).enumerate() {
        let at = 8 + i * MAPPING_BYTES;
        value[at..at + 8].copy_from_slice(&m.start.to_ne_bytes());
        value[at + 8..at + 16].copy_from_slice(&m.end.to_ne_bytes());
        value[at + 16..at + 24].copy_from_slice(&m.bias.to_ne_bytes());
        value[at + 24..at + 28].copy_from_slice(&m.first_row.to_ne_bytes());
        value[at + 28..at + 32].copy_from_slice(&m.row_count.to_ne_bytes());
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_follow_the_c_layout() {
        let m = MappingEntry {
            start: 0x1000,
            end: 0x2000,
            bias: 0x10,
            first_row: 7,
            row_count: 9,
        };
        let value = process_value(&[m, m], 7);
        assert_eq!(value.len(), 4104);
        assert_eq!(&value[0..4], &2u32.to_ne_bytes());
        assert_eq!(&value[8..16], &0x1000u64.to_ne_bytes());
        assert_eq!(&value[40..48], &0x1000u64.to_ne_bytes());
        assert_eq!(&value[64..68], &7u32.to_ne_bytes());
        assert_eq!(&value[68..72], &9u32.to_ne_bytes());
    }
}
