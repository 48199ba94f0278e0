//! The executable file mappings of a running process, opened the way the symbolizer
//! opens them (through `/proc/PID/map_files`, so containers and deleted files work),
//! with the load bias that turns their runtime addresses into ELF virtual addresses.

use crate::elf::ElfFile;
use crate::error::Result;
use crate::process::maps::{MapsEntry, Pathname};
use crate::process::{open_mapped, read_maps};

/// Page size assumed when aligning segment offsets (x86_64's).
const PAGE: u64 = 4096;

/// An executable mapping of a file in a process, opened.
#[derive(Debug)]
pub struct MappedObject {
    /// The mapping, as `/proc/PID/maps` lists it.
    pub entry: MapsEntry,
    /// Runtime address minus ELF virtual address, for addresses in this mapping.
    pub bias: u64,
    /// The file, opened through the first path that reached the mapped inode.
    pub elf: ElfFile,
}

/// An executable mapping that could not be opened, and why.
#[derive(Debug, Clone)]
pub struct UnopenedMapping {
    /// The mapping.
    pub entry: MapsEntry,
    /// Every path tried, with its error (or why the file is no usable ELF).
    pub reason: String,
}

/// The executable file-backed mappings of `pid` (the vdso and anonymous memory are not
/// files and are left out), opened, with the ones that could not be.
///
/// A process that does not exist (or exits while its maps are read) is
/// [`Error::NoSuchProcess`](crate::Error::NoSuchProcess).
pub fn executable_mappings(pid: u32) -> Result<(Vec<MappedObject>, Vec<UnopenedMapping>)> {
    let mut opened = Vec::new();
    let mut failed = Vec::new();
    for entry in read_maps(pid)? {
        if !entry.perms.execute || !matches!(entry.pathname, Pathname::File { .. }) {
            continue;
        }
        let result = open_mapped(pid, &entry).and_then(|elf| match load_bias(&elf, &entry) {
            Some(bias) => Ok((elf, bias)),
            None => Err(format!(
                "{}: no loadable segment holds file offset {:#x}",
                elf.path().display(),
                entry.offset
            )),
        });
        match result {
            Ok((elf, bias)) => opened.push(MappedObject { entry, bias, elf }),
            Err(reason) => failed.push(UnopenedMapping { entry, reason }),
        }
    }
    Ok((opened, failed))
}

/// The bias of a mapping: the segment holding the mapping's file offset (segments start
/// on a page boundary in memory even when their file offset does not) says which virtual
/// address the mapping's first byte has.
pub fn load_bias(elf: &ElfFile, entry: &MapsEntry) -> Option<u64> {
    // The kernel maps each segment from its page-aligned offset, so the segment a
    // mapping was made for starts on the mapping's offset; two segments can share a
    // page (the end of a read-only one, the start of the text), so containment alone
    // could pick the wrong one. Containment is the fallback for merged mappings.
    let first_page = |s: &&crate::elf::Segment| s.file_offset & !(PAGE - 1);
    let segments = elf.segments();
    let segment = segments
        .iter()
        .find(|s| first_page(s) == entry.offset)
        .or_else(|| {
            segments.iter().find(|s| {
                entry.offset >= first_page(s)
                    && entry.offset < s.file_offset.saturating_add(s.file_size)
            })
        })?;
    // vaddr(start) = segment.vaddr - (segment.file_offset - entry.offset)
    let start_vaddr = segment
        .vaddr
        .wrapping_sub(segment.file_offset.wrapping_sub(entry.offset));
    Some(entry.start.wrapping_sub(start_vaddr))
}
