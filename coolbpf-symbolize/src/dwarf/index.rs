//! Which compilation unit covers an address: from `.debug_aranges` when the producer
//! wrote it (GCC does), else from the ranges on each unit's root DIE, read once.

use crate::dwarf::ranges::RangeMap;
use crate::dwarf::root;
use crate::dwarf::sections::Slice;

/// Address ranges to `.debug_info` unit offsets, from `.debug_aranges`.
pub(crate) fn from_aranges(dwarf: &gimli::Dwarf<Slice<'_>>, skip_zero: bool) -> RangeMap<u64> {
    let mut out = Vec::new();
    let mut headers = dwarf.debug_aranges.headers();
    while let Ok(Some(header)) = headers.next() {
        let unit = header.debug_info_offset().0 as u64;
        let mut entries = header.entries();
        while let Ok(Some(entry)) = entries.next() {
            let range = entry.range();
            if !(skip_zero && range.begin == 0) {
                out.push((range.begin, range.end, unit));
            }
        }
    }
    RangeMap::new(out)
}

/// The unit `.debug_aranges` says covers `addr`, by one pass over it: cheaper than
/// sorting it for the first few lookups.
pub(crate) fn scan_aranges(
    dwarf: &gimli::Dwarf<Slice<'_>>,
    addr: u64,
    skip_zero: bool,
) -> Option<u64> {
    let mut headers = dwarf.debug_aranges.headers();
    while let Ok(Some(header)) = headers.next() {
        let mut entries = header.entries();
        while let Ok(Some(entry)) = entries.next() {
            let range = entry.range();
            if range.begin <= addr && addr < range.end && !(skip_zero && range.begin == 0) {
                return Some(header.debug_info_offset().0 as u64);
            }
        }
    }
    None
}

/// Address ranges to unit offsets, from every unit's root DIE. Reads only the unit
/// headers, the root DIEs and their abbreviations: no other DIE, no line program.
pub(crate) fn from_units(dwarf: &gimli::Dwarf<Slice<'_>>, skip_zero: bool) -> RangeMap<u64> {
    let mut out = Vec::new();
    let mut headers = dwarf.units();
    while let Ok(Some(header)) = headers.next() {
        root::unit_ranges(dwarf, header, skip_zero, &mut out);
    }
    RangeMap::new(out)
}

/// The start offsets of all units, sorted: to find the unit a cross-unit reference
/// points into.
pub(crate) fn unit_starts(dwarf: &gimli::Dwarf<Slice<'_>>) -> Vec<u64> {
    let mut starts = Vec::new();
    let mut headers = dwarf.units();
    while let Ok(Some(header)) = headers.next() {
        starts.push(header.offset().0 as u64);
    }
    starts
}
