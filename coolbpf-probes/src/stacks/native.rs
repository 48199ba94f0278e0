//! [`NativeUnwinder`]: registers processes with the CFI unwinder of any BPF object that
//! includes `coolbpf/unwind.bpf.h`.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use coolbpf_core::map::MapView;
use coolbpf_core::{BpfObject, Error, Result};
use coolbpf_symbolize::unwind::{executable_mappings, MappedObject};
use libbpf_rs::MapCore;
use serde::Serialize;

use super::files::{FileKey, FileRows, RowStore};
use super::layout::{process_value, MappingEntry, MAX_MAPPINGS, PROCESSES_MAP, ROWS_MAP};

/// What registering one process did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Registration {
    /// The process.
    pub pid: u32,
    /// Its executable file mappings.
    pub mappings: usize,
    /// Mappings the BPF side unwinds by CFI (the rest: frame pointers).
    pub with_rows: usize,
    /// Mappings left to frame pointers, with why: no CFI, a file that could not be
    /// opened, rows that did not fit, more than [`MAX_MAPPINGS`] mappings.
    pub without_rows: Vec<(String, String)>,
}

/// Totals since the unwinder was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct UnwindStats {
    /// Processes registered now.
    pub processes: usize,
    /// Distinct files whose CFI was compiled (or found unusable).
    pub files: usize,
    /// Rows in the rows map.
    pub rows_used: u32,
    /// Rows the map holds at most.
    pub rows_capacity: u32,
    /// Mappings left to frame pointers over all registrations.
    pub mappings_without_rows: u64,
    /// Registrations that failed (a process that exited meanwhile, a map update refused).
    pub failed_registrations: u64,
    /// Rows whose offsets did not fit the compact layout (unsupported in BPF).
    pub narrowed_rows: u64,
    /// Time spent compiling CFI.
    pub compile_time: Duration,
}

/// The userspace half of `coolbpf/unwind.bpf.h`: for each registered process, its
/// executable mappings and their files' rows, in the object's maps.
///
/// Any BPF object that includes the header has the maps ([`ROWS_MAP`],
/// [`PROCESSES_MAP`]); size the rows map before load with
/// `ObjectBuilder::max_entries(ROWS_MAP, n)` (8 bytes a row: libc takes about 28k,
/// python3.11 65k). Rows are appended and never reclaimed: a file's rows stay for the
/// object's life, shared by every process that maps it, so the capacity is the budget
/// for distinct files, and what does not fit is left to frame pointers, counted.
///
/// ```no_run
/// use coolbpf_core::ObjectBuilder;
/// use coolbpf_probes::stacks::{NativeUnwinder, ROWS_MAP};
///
/// # fn main() -> coolbpf_core::Result<()> {
/// # let bytes: &'static [u8] = &[];
/// let object = ObjectBuilder::from_bytes(bytes).max_entries(ROWS_MAP, 1 << 18).load()?;
/// let mut unwinder = NativeUnwinder::new(&object)?;
/// let registration = unwinder.register(4242)?;
/// println!("{} of {} mappings by CFI", registration.with_rows, registration.mappings);
/// unwinder.forget_exited();
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct NativeUnwinder {
    rows: RowStore,
    processes: MapView,
    registered: BTreeSet<u32>,
    /// The mappings written for each registered process, and their generation: a
    /// registration that finds them unchanged writes nothing, so the BPF side's row cache
    /// stays valid.
    written: HashMap<u32, (Vec<MappingEntry>, u32)>,
    next_generation: u32,
    mappings_without_rows: u64,
    failed_registrations: u64,
}

impl NativeUnwinder {
    /// Finds the header's maps in `object` (loaded).
    pub fn new(object: &BpfObject) -> Result<Self> {
        let rows = object.map(ROWS_MAP)?;
        let capacity = rows.handle().max_entries();
        Ok(Self {
            rows: RowStore::new(rows, capacity),
            processes: object.map(PROCESSES_MAP)?,
            registered: BTreeSet::new(),
            written: HashMap::new(),
            next_generation: 1,
            mappings_without_rows: 0,
            failed_registrations: 0,
        })
    }

    /// Registers `pid` (again, when it is already: its mappings are read afresh, so a
    /// process that loaded a library since is covered): reads its maps, compiles the
    /// files not seen before, and writes its entry. A process that does not exist or
    /// exits meanwhile is an error for it alone.
    pub fn register(&mut self, pid: u32) -> Result<Registration> {
        let result = self.try_register(pid);
        if result.is_err() {
            self.failed_registrations += 1;
        }
        result
    }

    fn try_register(&mut self, pid: u32) -> Result<Registration> {
        let (mapped, unopened) = executable_mappings(pid).map_err(|err| match err {
            coolbpf_symbolize::Error::NoSuchProcess { pid } => no_process(pid),
            other => Error::Decode(format!("process {pid}: {other}")),
        })?;
        let mut registration = Registration {
            pid,
            mappings: mapped.len() + unopened.len(),
            ..Registration::default()
        };
        for failed in unopened {
            registration
                .without_rows
                .push((failed.entry.map_files_name(), failed.reason));
        }
        let mut entries = Vec::new();
        for object in &mapped {
            match self.rows_of(object)? {
                FileRows::Loaded(slice) if entries.len() < MAX_MAPPINGS => {
                    entries.push(MappingEntry {
                        start: object.entry.start,
                        end: object.entry.end,
                        bias: object.bias.wrapping_add(slice.base),
                        first_row: slice.first,
                        row_count: slice.count,
                    });
                }
                FileRows::Loaded(_) => registration.without_rows.push((
                    object.elf.path().display().to_string(),
                    format!("more than {MAX_MAPPINGS} mappings with CFI"),
                )),
                FileRows::Without(reason) => registration
                    .without_rows
                    .push((object.elf.path().display().to_string(), reason)),
            }
        }
        entries.sort_by_key(|e| e.start);
        registration.with_rows = entries.len();
        self.mappings_without_rows += registration.without_rows.len() as u64;
        // The process may have exited while its files were compiled: an entry for a
        // dead pid is harmless (pids are reused only after a wrap) and forgotten later.
        if self
            .written
            .get(&pid)
            .is_none_or(|(known, _)| *known != entries)
        {
            let generation = self.next_generation;
            self.next_generation = self.next_generation.wrapping_add(1).max(1);
            self.processes
                .update(&pid.to_ne_bytes(), &process_value(&entries, generation))?;
            self.written.insert(pid, (entries, generation));
        }
        self.registered.insert(pid);
        Ok(registration)
    }

    fn rows_of(&mut self, object: &MappedObject) -> Result<FileRows> {
        let (major, minor) = object.entry.dev;
        let key: FileKey = (major, minor, object.entry.inode);
        self.rows.rows_of(key, &object.elf)
    }

    /// Whether `pid` has an entry.
    pub fn is_registered(&self, pid: u32) -> bool {
        self.registered.contains(&pid)
    }

    /// Removes `pid`'s entry (its files' rows stay, for other processes).
    pub fn forget(&mut self, pid: u32) {
        if self.registered.remove(&pid) {
            self.written.remove(&pid);
            // Already gone from the map is as good as removed.
            let _ = self.processes.handle().delete(&pid.to_ne_bytes());
        }
    }

    /// Forgets every registered process that has exited; returns how many.
    pub fn forget_exited(&mut self) -> usize {
        let exited: Vec<u32> = self
            .registered
            .iter()
            .copied()
            .filter(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
            .collect();
        for &pid in &exited {
            self.forget(pid);
        }
        exited.len()
    }

    /// Totals so far.
    pub fn stats(&self) -> UnwindStats {
        UnwindStats {
            processes: self.registered.len(),
            files: self.rows.files(),
            rows_used: self.rows.used(),
            rows_capacity: self.rows.capacity(),
            mappings_without_rows: self.mappings_without_rows,
            failed_registrations: self.failed_registrations,
            narrowed_rows: self.rows.narrowed_rows,
            compile_time: self.rows.compile_time,
        }
    }
}

fn no_process(pid: u32) -> Error {
    Error::NotFound {
        what: "process",
        name: pid.to_string(),
        known: Vec::new(),
    }
}
