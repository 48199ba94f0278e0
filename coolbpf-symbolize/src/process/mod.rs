//! A running process as a source: its address space from `/proc/PID/maps`, its files read
//! through `/proc/PID/map_files` (so containers and deleted files work), its vdso copied
//! out of its memory, and its JIT code named by its perf map.

mod files;
pub mod maps;
mod perf_map;
mod vdso;

use std::cell::OnceCell;
use std::collections::BTreeMap;

use crate::elf::ElfFile;
use crate::error::{Error, Result};
use crate::frame::{Symbolized, Unknown};
use crate::normalize::distinct::Distinct;
use crate::normalize::offsets::symbolize_offsets;
use crate::source::Process;
use crate::symbolizer::Symbolizer;

pub(crate) use files::open_mapped;
pub(crate) use vdso::dump as dump_vdso;

use maps::{parse_maps, MapsEntry, Pathname};
use perf_map::PerfMap;

/// ESRCH: a process that exited while its /proc directory was being read.
const ESRCH: i32 = 3;

/// The mappings of process `pid`, sorted by start.
pub(crate) fn read_maps(pid: u32) -> Result<Vec<MapsEntry>> {
    let path = format!("/proc/{pid}/maps");
    match std::fs::read(&path) {
        // Paths are bytes; a lossy one still names its map_files entry, which is what
        // opening goes through first.
        Ok(bytes) => {
            parse_maps(&String::from_utf8_lossy(&bytes)).map_err(|e| Error::malformed(&path, e))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(ESRCH) => {
            Err(Error::NoSuchProcess { pid })
        }
        Err(e) => Err(Error::io(path, e)),
    }
}

/// The mapping that contains `addr`.
pub(crate) fn find(entries: &[MapsEntry], addr: u64) -> Option<&MapsEntry> {
    let after = entries.partition_point(|e| e.start <= addr);
    entries[..after].last().filter(|e| e.contains(addr))
}

/// The addresses that fall into one file, wherever it is mapped.
struct FileGroup<'a> {
    /// The first mapping of the file met: the one opened.
    entry: &'a MapsEntry,
    /// (index into the distinct addresses, file offset).
    members: Vec<(usize, u64)>,
}

/// Symbolizes virtual addresses of a running process (see
/// [`Source::Process`](crate::Source::Process)).
pub(crate) fn symbolize(
    symbolizer: &Symbolizer,
    process: &Process,
    addrs: &[u64],
) -> Result<Vec<Symbolized>> {
    let pid = process.pid;
    let entries = read_maps(pid)?;
    let distinct = Distinct::new(addrs);
    let mut results = vec![Symbolized::Unknown(Unknown::Unmapped); distinct.addrs().len()];
    // Keyed by file identity: one file mapped as several segments is opened once.
    let mut files: BTreeMap<(u32, u32, u64, &str), FileGroup<'_>> = BTreeMap::new();
    let mut vdso: Option<FileGroup<'_>> = None;
    let mut other = Vec::new();
    for (index, &addr) in distinct.addrs().iter().enumerate() {
        let Some(entry) = find(&entries, addr) else {
            continue;
        };
        let member = (index, entry.file_offset(addr));
        match &entry.pathname {
            Pathname::File { path, .. } => {
                let key = (entry.dev.0, entry.dev.1, entry.inode, path.as_str());
                let group = files.entry(key).or_insert(FileGroup {
                    entry,
                    members: Vec::new(),
                });
                group.members.push(member);
            }
            Pathname::Vdso => vdso
                .get_or_insert(FileGroup {
                    entry,
                    members: Vec::new(),
                })
                .members
                .push(member),
            _ => other.push((index, addr, entry)),
        }
    }

    // Read only when some address needs it: most processes have no perf map.
    let perf_map = OnceCell::new();
    let jit = |addr: u64| -> Option<Symbolized> {
        if !process.perf_map {
            return None;
        }
        let frame = perf_map.get_or_init(|| PerfMap::read(pid)).lookup(addr)?;
        Some(Symbolized::Frames(vec![frame]))
    };

    for group in files.values() {
        match open_mapped(pid, group.entry) {
            Ok(elf) => resolve(symbolizer, &elf, group, &mut results),
            // Not an ELF file, or not readable: JIT code double-mapped from a memfd is
            // still named by the perf map.
            Err(why) => {
                for &(index, _) in &group.members {
                    let addr = distinct.addrs()[index];
                    results[index] = jit(addr)
                        .unwrap_or_else(|| Symbolized::Unknown(Unknown::Unreadable(why.clone())));
                }
            }
        }
    }
    if let Some(group) = &vdso {
        let opened = dump_vdso(pid, group.entry).and_then(|temp| {
            ElfFile::open(temp.path())
                .map(|elf| (temp, elf))
                .map_err(|e| e.to_string())
        });
        match opened {
            // `_temp` lives until the vdso's addresses are resolved.
            Ok((_temp, elf)) => resolve(symbolizer, &elf, group, &mut results),
            Err(why) => {
                for &(index, _) in &group.members {
                    results[index] = Symbolized::Unknown(Unknown::Unreadable(why.clone()));
                }
            }
        }
    }
    for (index, addr, entry) in other {
        results[index] =
            jit(addr).unwrap_or(Symbolized::Unknown(if entry.pathname.is_anonymous() {
                Unknown::Anonymous
            } else {
                // [vvar], [vsyscall], anon_inode mappings: kernel memory with no symbols.
                Unknown::NoSymbol
            }));
    }
    Ok(distinct.spread(addrs, &results))
}

/// Resolves a group's file offsets in `elf` into `results`.
fn resolve(
    symbolizer: &Symbolizer,
    elf: &ElfFile,
    group: &FileGroup<'_>,
    results: &mut [Symbolized],
) {
    let offsets: Vec<u64> = group.members.iter().map(|&(_, offset)| offset).collect();
    let resolved = symbolize_offsets(symbolizer, elf, &offsets);
    for (&(index, _), symbolized) in group.members.iter().zip(resolved) {
        results[index] = symbolized;
    }
}
