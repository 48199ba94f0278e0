//! The address ranges of a unit read from its root DIE alone. Indexing a binary without
//! `.debug_aranges` reads every unit's root DIE; parsing each unit's whole abbreviation
//! table and line program header for that (as `gimli::Unit::new` does) would cost more
//! than everything else a cold lookup does, so only the root's abbreviation is decoded.

use std::sync::Arc;

use gimli::{
    constants, Abbreviations, AttributeSpecification, AttributeValue, DebugAddrBase,
    DebugLocListsBase, DebugRngListsBase, DebugStrOffsetsBase, EntriesRaw, Reader, Section, Unit,
    UnitHeader,
};

use crate::dwarf::sections::Slice;

/// Appends `(begin, end, unit offset)` for each address range of the unit `header`
/// heads. A unit whose root DIE cannot be read adds nothing.
pub(crate) fn unit_ranges(
    dwarf: &gimli::Dwarf<Slice<'_>>,
    header: UnitHeader<Slice<'_>>,
    skip_zero: bool,
    out: &mut Vec<(u64, u64, u64)>,
) -> Option<()> {
    let offset = header.offset().0 as u64;
    let root = header.root_offset();
    let mut input = header.range_from(root..).ok()?;
    let code = input.read_uleb128().ok()?;
    let specs = abbreviation(dwarf, &header, code)?;
    let empty = Abbreviations::default();
    let mut entries = EntriesRaw::new(input, header.encoding(), &empty, root);
    let (mut low, mut high, mut ranges) = (None, None, None);
    let mut unit = bare_unit(header);
    for spec in specs {
        let attr = entries.read_attribute(spec).ok()?;
        match (attr.name(), attr.value()) {
            (constants::DW_AT_low_pc, value) => low = Some(value),
            (constants::DW_AT_high_pc, value) => high = Some(value),
            (constants::DW_AT_ranges, value) => ranges = Some(value),
            (constants::DW_AT_addr_base | constants::DW_AT_GNU_addr_base, value) => {
                if let AttributeValue::DebugAddrBase(base) = value {
                    unit.addr_base = base;
                }
            }
            (constants::DW_AT_rnglists_base | constants::DW_AT_GNU_ranges_base, value) => {
                if let AttributeValue::DebugRngListsBase(base) = value {
                    unit.rnglists_base = base;
                }
            }
            _ => {}
        }
    }
    let mut push = |begin: u64, end: u64| {
        if begin < end && !(skip_zero && begin == 0) {
            out.push((begin, end, offset));
        }
    };
    if let Some(low) = low.and_then(|v| dwarf.attr_address(&unit, v).ok().flatten()) {
        // The base address of the unit's range lists (before DWARF 5).
        unit.low_pc = low;
        match high {
            Some(AttributeValue::Addr(end)) => push(low, end),
            Some(AttributeValue::DebugAddrIndex(i)) => push(low, dwarf.address(&unit, i).ok()?),
            Some(other) => push(low, low.saturating_add(other.udata_value()?)),
            None => {}
        }
    }
    if let Some(mut list) = ranges.and_then(|v| dwarf.attr_ranges(&unit, v).ok().flatten()) {
        while let Ok(Some(range)) = list.next() {
            push(range.begin, range.end);
        }
    }
    Some(())
}

/// The attribute specifications of abbreviation `code` in the unit's table, found by
/// decoding the table only up to it (the root's is normally the first).
fn abbreviation(
    dwarf: &gimli::Dwarf<Slice<'_>>,
    header: &UnitHeader<Slice<'_>>,
    code: u64,
) -> Option<Vec<AttributeSpecification>> {
    let mut table = *dwarf.debug_abbrev.reader();
    table.skip(header.debug_abbrev_offset().0).ok()?;
    let mut specs = Vec::new();
    loop {
        let this = table.read_uleb128().ok()?;
        if this == 0 {
            return None;
        }
        let _tag = table.read_uleb128().ok()?;
        let _children = table.read_u8().ok()?;
        specs.clear();
        loop {
            let name = table.read_uleb128_u16().ok()?;
            let form = table.read_uleb128_u16().ok()?;
            if name == 0 && form == 0 {
                break;
            }
            let form = constants::DwForm(form);
            let implicit = if form == constants::DW_FORM_implicit_const {
                Some(table.read_sleb128().ok()?)
            } else {
                None
            };
            specs.push(AttributeSpecification::new(
                constants::DwAt(name),
                form,
                implicit,
            ));
        }
        if this == code {
            return Some(specs);
        }
    }
}

/// A unit without its root DIE parsed: enough for address and range list lookups once
/// the bases are filled in.
fn bare_unit(header: UnitHeader<Slice<'_>>) -> Unit<Slice<'_>> {
    Unit {
        header,
        abbreviations: Arc::new(Abbreviations::default()),
        name: None,
        comp_dir: None,
        low_pc: 0,
        str_offsets_base: DebugStrOffsetsBase(0),
        addr_base: DebugAddrBase(0),
        loclists_base: DebugLocListsBase(0),
        rnglists_base: DebugRngListsBase(0),
        line_program: None,
        dwo_id: None,
    }
}
