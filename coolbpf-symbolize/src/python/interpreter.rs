//! Finding the CPython interpreter of a running process: the mapped file that defines
//! `_PyRuntime` (the executable itself when CPython is linked statically, as Debian's
//! `/usr/bin/python3.11`; `libpython3.X.so` otherwise, also when embedded), its version,
//! and where `_PyRuntime` lives in the process.

use object::{Object, ObjectSymbol};

use crate::elf::ElfFile;
use crate::process::maps::{MapsEntry, Pathname};
use crate::process::{open_mapped, read_maps};

use super::debug_offsets::{DebugOffsets, WORDS};
use super::error::PythonError;
use super::memory::Memory;
use super::offsets::Offsets;
use super::version::{self, Version};

/// The symbol of the interpreter's global state.
const RUNTIME_SYMBOL: &str = "_PyRuntime";
/// `const unsigned long Py_Version = PY_VERSION_HEX;` (3.11 and later).
const VERSION_SYMBOL: &str = "Py_Version";

/// The CPython interpreter of one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpreter {
    /// The process.
    pub pid: u32,
    /// The file that holds the interpreter, as the process names it.
    pub path: String,
    /// Its version.
    pub version: Version,
    /// The address of `_PyRuntime` in the process.
    pub runtime: u64,
    /// The structure offsets to read it with (3.13: as its `_Py_DebugOffsets` say).
    pub offsets: Offsets,
}

impl Interpreter {
    /// The interpreter of `pid`: `Ok(None)` when no mapped file defines `_PyRuntime` (the
    /// process runs no CPython), an error when the process cannot be read or its CPython
    /// is a version whose layout is not known.
    pub fn find(pid: u32) -> Result<Option<Self>, PythonError> {
        let entries = read_maps(pid)?;
        let mut seen = Vec::new();
        for entry in &entries {
            let Pathname::File { path, .. } = &entry.pathname else {
                continue;
            };
            // Opening every library of a large process costs; CPython's files have
            // "python" in their name (python3.X, libpython3.X.so). An interpreter
            // renamed to something else is not found.
            let name = path.rsplit('/').next().unwrap_or(path);
            let key = (entry.dev, entry.inode);
            if !name.contains("python") || seen.contains(&key) {
                continue;
            }
            seen.push(key);
            let Ok(elf) = open_mapped(pid, entry) else {
                continue;
            };
            let Some(runtime_vaddr) = symbol(&elf, RUNTIME_SYMBOL) else {
                continue;
            };
            let version = file_version(&elf, name, path)?;
            let same_file: Vec<&MapsEntry> = entries
                .iter()
                .filter(|e| (e.dev, e.inode) == key && e.pathname == entry.pathname)
                .collect();
            let runtime = runtime_address(&elf, &same_file, runtime_vaddr).ok_or_else(|| {
                PythonError::NotAnInterpreter {
                    path: path.clone(),
                    reason: format!("{RUNTIME_SYMBOL} at {runtime_vaddr:#x} is not mapped"),
                }
            })?;
            let mut interpreter = Self {
                pid,
                path: path.clone(),
                version,
                runtime,
                offsets: *Offsets::of(version),
            };
            if version == Version::V3_13 {
                interpreter.offsets = interpreter.debug_offsets()?;
            }
            return Ok(Some(interpreter));
        }
        Ok(None)
    }

    /// 3.13: the table's offsets as the running interpreter's `_Py_DebugOffsets`
    /// correct them; a free-threaded build is unsupported.
    fn debug_offsets(&self) -> Result<Offsets, PythonError> {
        let memory = Memory::open(self.pid)?;
        let debug = DebugOffsets::parse(&memory.bytes(self.runtime, WORDS * 8)?)?;
        let (major, minor) = version::from_hex(debug.version);
        if (major, minor) != (3, 13) || debug.free_threaded {
            let build = if debug.free_threaded {
                " free-threaded"
            } else {
                ""
            };
            return Err(PythonError::Unsupported {
                path: self.path.clone(),
                version: format!("{major}.{minor}{build}"),
            });
        }
        debug.apply(Offsets::of(Version::V3_13))
    }
}

/// The link-time address of `name` in the file's symbol table or dynamic symbols.
pub(crate) fn symbol(elf: &ElfFile, name: &str) -> Option<u64> {
    let object = elf.object().ok()?;
    object
        .symbols()
        .chain(object.dynamic_symbols())
        .find(|s| s.name() == Ok(name) && s.address() != 0)
        .map(|s| s.address())
}

/// The version of the interpreter in `elf`: `Py_Version` where it exists (3.11+), the
/// file name otherwise (3.10's `libpython3.10.so`, `python3.10`).
fn file_version(elf: &ElfFile, name: &str, path: &str) -> Result<Version, PythonError> {
    let from_symbol = symbol(elf, VERSION_SYMBOL).and_then(|vaddr| {
        let offset = usize::try_from(elf.vaddr_to_file_offset(vaddr)?).ok()?;
        let bytes = elf.data().get(offset..offset.checked_add(8)?)?;
        Some(version::from_hex(u64::from_le_bytes(
            bytes.try_into().ok()?,
        )))
    });
    let Some((major, minor)) = from_symbol.or_else(|| version::from_file_name(name)) else {
        return Err(PythonError::NotAnInterpreter {
            path: path.to_owned(),
            reason: "defines _PyRuntime but neither Py_Version nor its name tells the version"
                .into(),
        });
    };
    match (major, Version::from_minor(minor)) {
        (3, Some(version)) => Ok(version),
        _ => Err(PythonError::Unsupported {
            path: path.to_owned(),
            version: format!("{major}.{minor}"),
        }),
    }
}

/// Where link-time address `vaddr` of `elf` is in the process, given the mappings of
/// that file: through its file offset, as the process source resolves addresses,
/// falling back to the load bias of the lowest mapping (for data past the file's end,
/// `.bss`).
fn runtime_address(elf: &ElfFile, mappings: &[&MapsEntry], vaddr: u64) -> Option<u64> {
    if let Some(offset) = elf.vaddr_to_file_offset(vaddr) {
        let hit = mappings
            .iter()
            .find(|e| offset >= e.offset && offset - e.offset < e.end - e.start);
        if let Some(entry) = hit {
            return Some(entry.start + (offset - entry.offset));
        }
    }
    let lowest = mappings.iter().min_by_key(|e| e.offset)?;
    let bias = lowest
        .start
        .checked_sub(elf.file_offset_to_vaddr(lowest.offset)?)?;
    vaddr.checked_add(bias)
}
