//! DWARF: which unit covers an address, and each unit's lines and inline chains, parsed
//! lazily one unit at a time so that opening a file with gigabytes of DWARF costs little.

mod functions;
mod index;
mod lines;
mod ranges;
mod root;
mod sections;
mod unit;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use gimli::{constants, AttributeValue, DebugInfoOffset, Unit, UnitOffset};
use object::Object;

use crate::elf::ElfFile;
use crate::error::Result;

pub(crate) use functions::Func;
use functions::{Context, NameNode};
pub(crate) use lines::Row;
use ranges::RangeMap;
use sections::DwarfSections;
pub(crate) use sections::{Slice, StrRef};
pub(crate) use unit::{PathKey, UnitData, UnitHit};

/// The DWARF of one file and the indexes built over it on demand.
#[derive(Debug)]
pub(crate) struct DwarfInfo {
    sections: DwarfSections,
    /// Whether ranges starting at 0 are discarded code (true in linked files).
    skip_zero: bool,
    aranges: OnceLock<RangeMap<u64>>,
    unit_ranges: OnceLock<RangeMap<u64>>,
    unit_starts: OnceLock<Vec<u64>>,
    /// Bytes of units parsed since the mapping's pages were last released.
    parsed: AtomicU64,
    /// Lookups announced so far: the first few scan `.debug_aranges` instead of sorting.
    lookups: AtomicU64,
}

/// Lookups answered by scanning `.debug_aranges` before it is sorted.
const SCANS_BEFORE_SORTING: u64 = 16;

impl DwarfInfo {
    /// The DWARF of `file`; `None` when it has none.
    pub(crate) fn load(file: Arc<ElfFile>) -> Result<Option<Self>> {
        let relocatable = file.object()?.kind() == object::ObjectKind::Relocatable;
        Ok(DwarfSections::load(file)?.map(|sections| Self {
            sections,
            skip_zero: !relocatable,
            aranges: OnceLock::new(),
            unit_ranges: OnceLock::new(),
            unit_starts: OnceLock::new(),
            parsed: AtomicU64::new(0),
            lookups: AtomicU64::new(0),
        }))
    }

    /// A gimli view of the sections, for one batch of lookups.
    pub(crate) fn gimli(&self) -> gimli::Dwarf<Slice<'_>> {
        self.sections.dwarf()
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
        let cx = Context {
            dwarf,
            unit: &unit,
            sections: &self.sections,
            skip_zero: self.skip_zero,
        };
        let mut last_unit = None;
        let mut foreign = |target| self.foreign_node(dwarf, target, &mut last_unit);
        UnitData::parse(&cx, &mut foreign).map_err(describe)
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
        true
    }

    /// The bytes of a string.
    pub(crate) fn string(&self, s: StrRef) -> &[u8] {
        self.sections.string(s)
    }

    /// Heap bytes held: decompressed sections and the indexes built so far.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.sections.heap_bytes()
            + self.aranges.get().map_or(0, RangeMap::heap_bytes)
            + self.unit_ranges.get().map_or(0, RangeMap::heap_bytes)
            + self.unit_starts.get().map_or(0, |v| v.capacity() * 8)
    }

    /// The naming attributes of the DIE at `.debug_info` offset `target`, wherever it is.
    /// `last` keeps the unit of the previous call: references tend to go to one place.
    fn foreign_node<'a>(
        &'a self,
        dwarf: &gimli::Dwarf<Slice<'a>>,
        target: u64,
        last: &mut Option<(u64, Unit<Slice<'a>>)>,
    ) -> Option<NameNode> {
        let starts = self.unit_starts.get_or_init(|| index::unit_starts(dwarf));
        let start = *starts.get(starts.partition_point(|&s| s <= target).checked_sub(1)?)?;
        if last.as_ref().is_none_or(|(s, _)| *s != start) {
            let header = dwarf
                .debug_info
                .header_from_offset(DebugInfoOffset(usize::try_from(start).ok()?))
                .ok()?;
            *last = Some((start, dwarf.unit(header).ok()?));
        }
        let (_, unit) = last.as_ref()?;
        let entry = unit
            .entry(UnitOffset(usize::try_from(target - start).ok()?))
            .ok()?;
        let string = |value| self.sections.attr_str_ref(dwarf, unit, value);
        let mut node = NameNode::default();
        for attr in entry.attrs() {
            match attr.name() {
                constants::DW_AT_name => node.name = string(attr.value()),
                constants::DW_AT_linkage_name | constants::DW_AT_MIPS_linkage_name => {
                    node.linkage = string(attr.value());
                }
                constants::DW_AT_abstract_origin | constants::DW_AT_specification => {
                    node.origin = node.origin.or(match attr.value() {
                        AttributeValue::UnitRef(o) => start.checked_add(o.0 as u64),
                        AttributeValue::DebugInfoRef(o) => Some(o.0 as u64),
                        _ => None,
                    });
                }
                _ => {}
            }
        }
        Some(node)
    }
}
