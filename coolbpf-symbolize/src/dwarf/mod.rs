//! DWARF: which unit covers an address, and each unit's lines and inline chains, parsed
//! lazily one unit at a time so that opening a file with gigabytes of DWARF costs little.
//! A unit's DIEs may be elsewhere: in a dwz supplementary file, or (split DWARF) in a
//! `.dwo` file or `.dwp` package, opened when the unit is first parsed.

mod functions;
mod index;
mod lines;
mod ranges;
mod root;
mod sections;
mod split;
mod unit;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use gimli::{constants, DebugInfoOffset, Unit, UnitOffset};
use object::Object;

use crate::elf::ElfFile;
use crate::error::Result;

pub(crate) use functions::Func;
use functions::{Context, NameNode, IN_SUP};
pub(crate) use lines::Row;
use ranges::RangeMap;
use sections::{DwarfSections, Flavor, MAIN_FILE, SUP_FILE};
pub(crate) use sections::{Slice, StrRef};
use split::SplitFiles;
pub(crate) use unit::{PathKey, UnitData, UnitHit};

/// The DWARF of one file and the indexes built over it on demand.
#[derive(Debug)]
pub(crate) struct DwarfInfo {
    sections: DwarfSections,
    /// The dwz supplementary file (`.gnu_debugaltlink`), when there is one.
    sup: Option<DwarfSections>,
    /// Split DWARF files, found when a skeleton unit is parsed.
    split: SplitFiles,
    /// Whether ranges starting at 0 are discarded code (true in linked files).
    skip_zero: bool,
    aranges: OnceLock<RangeMap<u64>>,
    unit_ranges: OnceLock<RangeMap<u64>>,
    unit_starts: OnceLock<Vec<u64>>,
    sup_unit_starts: OnceLock<Vec<u64>>,
    /// Bytes of units parsed since the mapping's pages were last released.
    parsed: AtomicU64,
    /// Lookups announced so far: the first few scan `.debug_aranges` instead of sorting.
    lookups: AtomicU64,
}

/// Where the DWARF of a binary is.
#[derive(Debug)]
pub(crate) struct DwarfFiles {
    /// The file with `.debug_info`: the binary or its separate debug file.
    pub(crate) debug: Arc<ElfFile>,
    /// Its dwz supplementary file.
    pub(crate) sup: Option<Arc<ElfFile>>,
    /// Paths of the binary (as given, resolved) and of its debug file: split DWARF
    /// files are looked for next to them.
    pub(crate) binaries: Vec<PathBuf>,
}

/// Lookups answered by scanning `.debug_aranges` before it is sorted.
const SCANS_BEFORE_SORTING: u64 = 16;

impl DwarfInfo {
    /// The DWARF of `files`; `None` when the debug file has none. A supplementary file
    /// that cannot be read is left out: only the names it holds are lost.
    pub(crate) fn load(files: DwarfFiles) -> Result<Option<Self>> {
        let relocatable = files.debug.object()?.kind() == object::ObjectKind::Relocatable;
        let sup = files.sup.and_then(|sup| {
            DwarfSections::load(sup, Flavor::Linked, SUP_FILE)
                .ok()
                .flatten()
        });
        Ok(
            DwarfSections::load(files.debug, Flavor::Linked, MAIN_FILE)?.map(|sections| Self {
                sections,
                sup,
                split: SplitFiles::new(files.binaries),
                skip_zero: !relocatable,
                aranges: OnceLock::new(),
                unit_ranges: OnceLock::new(),
                unit_starts: OnceLock::new(),
                sup_unit_starts: OnceLock::new(),
                parsed: AtomicU64::new(0),
                lookups: AtomicU64::new(0),
            }),
        )
    }

    /// A gimli view of the sections, for one batch of lookups.
    pub(crate) fn gimli(&self) -> gimli::Dwarf<Slice<'_>> {
        let mut dwarf = self.sections.dwarf();
        if let Some(sup) = &self.sup {
            // Unit::new reads names and compilation directories through it.
            dwarf.set_sup(sup.dwarf());
        }
        dwarf
    }

    /// Says that `lookups` lookups are coming: enough of them, now or in total, and
    /// `.debug_aranges` is sorted for binary search.
    pub(crate) fn prepare(&self, dwarf: &gimli::Dwarf<Slice<'_>>, lookups: usize) {
        let lookups = lookups as u64;
        let before = self.lookups.fetch_add(lookups, Ordering::Relaxed);
        if before.saturating_add(lookups) > SCANS_BEFORE_SORTING {
            self.aranges
                .get_or_init(|| index::from_aranges(dwarf, self.skip_zero));
        }
    }

    /// The `.debug_info` offset of the unit covering `addr`.
    pub(crate) fn unit_for(&self, dwarf: &gimli::Dwarf<Slice<'_>>, addr: u64) -> Option<u64> {
        let found = match self.aranges.get() {
            Some(aranges) => aranges.find(addr).map(|(_, &unit)| unit),
            None => index::scan_aranges(dwarf, addr, self.skip_zero),
        };
        if found.is_some() {
            return found;
        }
        // No aranges (clang, rustc), or they miss this unit: index the units themselves.
        let units = self
            .unit_ranges
            .get_or_init(|| index::from_units(dwarf, self.skip_zero));
        units.find(addr).map(|(_, &unit)| unit)
    }

    /// Parses the unit at `.debug_info` offset `offset`.
    pub(crate) fn parse_unit<'a>(
        &'a self,
        dwarf: &gimli::Dwarf<Slice<'a>>,
        offset: u64,
    ) -> std::result::Result<UnitData, String> {
        let describe = |e: gimli::Error| format!("DWARF unit at .debug_info+{offset:#x}: {e}");
        let start = usize::try_from(offset)
            .map_err(|_| describe(gimli::Error::OffsetOutOfBounds(offset)))?;
        let header = dwarf
            .debug_info
            .header_from_offset(DebugInfoOffset(start))
            .map_err(describe)?;
        let size = header.length_including_self() as u64;
        self.parsed
            .fetch_add(size.saturating_mul(2), Ordering::Relaxed);
        let unit = dwarf.unit(header).map_err(describe)?;
        let cx = self.context(dwarf, &unit, &self.sections);
        let split = unit.dwo_id.and_then(|_| {
            let starts = self.unit_starts(dwarf);
            let slot = starts.binary_search(&offset).ok()?;
            self.split.find(dwarf, &unit, slot, starts.len())
        });
        let Some(split) = split else {
            let mut last = None;
            let mut foreign = |target| self.foreign_node(dwarf, None, target, &mut last);
            return UnitData::parse(&cx, &cx, &mut foreign).map_err(describe);
        };
        // The split unit has the functions; the skeleton, the line table they refer to.
        let split_cx = self.context(&split.dwarf, &split.unit, split.sections);
        // References across units of a split file are rare: its units are listed on
        // the first one.
        let mut split_starts = None;
        let mut last = None;
        let mut foreign = |target| {
            let starts = split_starts.get_or_insert_with(|| index::unit_starts(&split.dwarf));
            let here = Some((&split.dwarf, split.sections, &starts[..]));
            self.foreign_node(dwarf, here, target, &mut last)
        };
        UnitData::parse(&cx, &split_cx, &mut foreign).map_err(describe)
    }

    /// Releases the mapped pages (see [`ElfFile::release_pages`]) once units of at
    /// least `min_parsed` bytes (with their line programs, roughly) were parsed since
    /// the last release. Returns whether it did.
    pub(crate) fn release_pages(&self, min_parsed: u64) -> bool {
        let parsed = self.parsed.load(Ordering::Relaxed);
        if parsed == 0 || parsed < min_parsed {
            return false;
        }
        self.parsed.store(0, Ordering::Relaxed);
        self.sections.release_pages();
        if let Some(sup) = &self.sup {
            sup.release_pages();
        }
        self.split.release_pages();
        true
    }

    /// The bytes of a string (empty when its file is not loaded).
    pub(crate) fn string(&self, s: StrRef) -> &[u8] {
        let sections = match s.file() {
            MAIN_FILE => Some(&self.sections),
            SUP_FILE => self.sup.as_ref(),
            file => self.split.sections(file),
        };
        sections.map_or(&[], |sections| sections.string(s))
    }

    /// Heap bytes held: decompressed sections and the indexes built so far.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.sections.heap_bytes()
            + self.sup.as_ref().map_or(0, DwarfSections::heap_bytes)
            + self.split.heap_bytes()
            + self.aranges.get().map_or(0, RangeMap::heap_bytes)
            + self.unit_ranges.get().map_or(0, RangeMap::heap_bytes)
            + self.unit_starts.get().map_or(0, |v| v.capacity() * 8)
            + self.sup_unit_starts.get().map_or(0, |v| v.capacity() * 8)
    }

    fn unit_starts(&self, dwarf: &gimli::Dwarf<Slice<'_>>) -> &[u64] {
        self.unit_starts.get_or_init(|| index::unit_starts(dwarf))
    }

    fn context<'a, 'b>(
        &'a self,
        dwarf: &'b gimli::Dwarf<Slice<'a>>,
        unit: &'b Unit<Slice<'a>>,
        sections: &'a DwarfSections,
    ) -> Context<'a, 'b> {
        Context {
            dwarf,
            unit,
            sections,
            sup: self.sup.as_ref(),
            skip_zero: self.skip_zero,
        }
    }

    /// The naming attributes of the DIE at `.debug_info` offset `target` of the main file
    /// (or, with [`IN_SUP`], of the supplementary file), wherever it is. `split` is the
    /// split file being parsed, whose own offsets then mean its `.debug_info.dwo`, with
    /// its unit starts. `last` keeps the unit of the previous call: references tend to go
    /// to one place.
    fn foreign_node<'a>(
        &'a self,
        main: &gimli::Dwarf<Slice<'a>>,
        split: Option<(&gimli::Dwarf<Slice<'a>>, &'a DwarfSections, &[u64])>,
        target: u64,
        last: &mut Option<(u64, Unit<Slice<'a>>)>,
    ) -> Option<NameNode> {
        let in_sup = target & IN_SUP != 0;
        let (dwarf, sections, starts) = match split {
            _ if in_sup => {
                let sup = main.sup()?;
                let starts = self.sup_unit_starts.get_or_init(|| index::unit_starts(sup));
                (sup, self.sup.as_ref()?, &starts[..])
            }
            Some(split) => split,
            None => (main, &self.sections, self.unit_starts(main)),
        };
        let target = target & !IN_SUP;
        let start = *starts.get(starts.partition_point(|&s| s <= target).checked_sub(1)?)?;
        let key = start | if in_sup { IN_SUP } else { 0 };
        if last.as_ref().is_none_or(|(k, _)| *k != key) {
            let header = dwarf
                .debug_info
                .header_from_offset(DebugInfoOffset(usize::try_from(start).ok()?))
                .ok()?;
            *last = Some((key, dwarf.unit(header).ok()?));
        }
        let (_, unit) = last.as_ref()?;
        let entry = unit
            .entry(UnitOffset(usize::try_from(target - start).ok()?))
            .ok()?;
        let mut cx = self.context(dwarf, unit, sections);
        if in_sup {
            // The supplementary file's own strings are in its own sections.
            cx.sup = None;
        }
        let mut node = NameNode::default();
        for attr in entry.attrs() {
            match attr.name() {
                constants::DW_AT_name => node.name = cx.string(attr.value()),
                constants::DW_AT_linkage_name | constants::DW_AT_MIPS_linkage_name => {
                    node.linkage = cx.string(attr.value());
                }
                constants::DW_AT_abstract_origin | constants::DW_AT_specification => {
                    node.origin =
                        node.origin
                            .or(functions::reference(&attr.value(), start, in_sup));
                }
                _ => {}
            }
        }
        Some(node)
    }
}
