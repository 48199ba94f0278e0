//! Each file's rows, compiled once and appended once to the rows map: libc mapped by a
//! hundred processes takes its rows once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use coolbpf_core::map::MapView;
use coolbpf_core::Result;
use coolbpf_symbolize::elf::ElfFile;
use coolbpf_symbolize::unwind::{CompactRow, UnwindTable, COMPACT_ROW_BYTES};
use libbpf_rs::{MapCore, MapFlags};

/// A file, as the kernel names the inode a mapping maps: (device major, minor, inode).
pub(crate) type FileKey = (u32, u32, u64);

/// Where a file's rows sit in the rows map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RowSlice {
    pub(crate) first: u32,
    pub(crate) count: u32,
    /// The ELF virtual address row pcs are relative to.
    pub(crate) base: u64,
}

/// What became of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FileRows {
    /// Its rows are in the map.
    Loaded(RowSlice),
    /// It has no usable CFI (or compiling it failed): frame pointers there.
    Without(String),
}

/// Rows written per batch update.
const BATCH_ROWS: usize = 4096;

/// The rows map and what is in it.
#[derive(Debug)]
pub(crate) struct RowStore {
    map: MapView,
    capacity: u32,
    used: u32,
    files: HashMap<FileKey, FileRows>,
    pub(crate) compile_time: Duration,
    pub(crate) narrowed_rows: u64,
}

impl RowStore {
    pub(crate) fn new(map: MapView, capacity: u32) -> Self {
        Self {
            map,
            capacity,
            used: 0,
            files: HashMap::new(),
            compile_time: Duration::ZERO,
            narrowed_rows: 0,
        }
    }

    pub(crate) fn capacity(&self) -> u32 {
        self.capacity
    }

    pub(crate) fn used(&self) -> u32 {
        self.used
    }

    pub(crate) fn files(&self) -> usize {
        self.files.len()
    }

    /// The rows of `elf` (the file `key` names), compiled and written on first sight.
    /// A file whose rows do not fit in what is left is not remembered: a later process
    /// asks again (and is refused again while the map is full).
    pub(crate) fn rows_of(&mut self, key: FileKey, elf: &ElfFile) -> Result<FileRows> {
        if let Some(known) = self.files.get(&key) {
            return Ok(known.clone());
        }
        let started = Instant::now();
        let compiled = UnwindTable::from_elf(elf).and_then(|table| table.compact());
        self.compile_time += started.elapsed();
        let table = match compiled {
            Ok(table) if !table.rows.is_empty() => table,
            Ok(_) => return Ok(self.remember(key, FileRows::Without("no CFI".into()))),
            Err(err) => return Ok(self.remember(key, FileRows::Without(err.to_string()))),
        };
        let count = table.rows.len() as u32;
        if self.capacity - self.used < count {
            return Ok(FileRows::Without(format!(
                "{count} rows do not fit ({} of {} used)",
                self.used, self.capacity
            )));
        }
        self.write(self.used, &table.rows)?;
        self.narrowed_rows += table.narrowed;
        let slice = RowSlice {
            first: self.used,
            count,
            base: table.base,
        };
        self.used += count;
        Ok(self.remember(key, FileRows::Loaded(slice)))
    }

    fn remember(&mut self, key: FileKey, rows: FileRows) -> FileRows {
        self.files.insert(key, rows.clone());
        rows
    }

    /// Writes `rows` at indexes `first..`, in batches where the kernel has batch updates
    /// for arrays (5.6+), one by one otherwise.
    fn write(&self, first: u32, rows: &[CompactRow]) -> Result<()> {
        for (n, chunk) in rows.chunks(BATCH_ROWS).enumerate() {
            let start = first + (n * BATCH_ROWS) as u32;
            let keys: Vec<u8> = (start..start + chunk.len() as u32)
                .flat_map(u32::to_ne_bytes)
                .collect();
            let values: Vec<u8> = chunk.iter().flat_map(CompactRow::to_bytes).collect();
            let batched = self.map.handle().update_batch(
                &keys,
                &values,
                chunk.len() as u32,
                MapFlags::ANY,
                MapFlags::ANY,
            );
            if batched.is_err() {
                for (key, value) in keys.chunks(4).zip(values.chunks(COMPACT_ROW_BYTES)) {
                    self.map.update(key, value)?;
                }
            }
        }
        Ok(())
    }
}
