//! A unit's functions and inlined calls, read in one pass over its DIEs and kept as one
//! sorted range array per inlining depth: depth 0 holds the out-of-line functions, depth
//! `d` the calls inlined `d` deep. Ranges at one depth do not overlap, so the inline chain
//! of an address is one binary search per depth.

use std::collections::HashMap;

use gimli::{constants, AttributeSpecification, AttributeValue, EntriesRaw, Unit};

use crate::dwarf::ranges::RangeMap;
use crate::dwarf::sections::{DwarfSections, Slice, StrRef};

/// How many `DW_AT_abstract_origin`/`DW_AT_specification` links a name lookup follows:
/// real chains are two or three long, and a bound stops cycles in malformed DWARF.
const MAX_ORIGIN_HOPS: usize = 16;

/// Marks a [`NameNode::origin`] in the dwz supplementary file's `.debug_info` rather than
/// the unit's own file's (no `.debug_info` is 2^63 bytes long).
pub(crate) const IN_SUP: u64 = 1 << 63;

/// A function (depth 0) or an inlined call (deeper), in 16 bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Func {
    /// Linkage name if there is one anywhere along the origin chain, else the name.
    pub(crate) name: Option<StrRef>,
    /// Where the call was inlined: line, file index of the unit's line table, and
    /// column (0 when unknown, or too large to keep). Unused at depth 0.
    pub(crate) call_line: u32,
    pub(crate) call_file: u16,
    pub(crate) call_column: u16,
}

/// The naming attributes of a DIE: what a name lookup follows.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NameNode {
    pub(crate) name: Option<StrRef>,
    pub(crate) linkage: Option<StrRef>,
    /// `.debug_info` offset of the DIE named by `DW_AT_abstract_origin` or
    /// `DW_AT_specification`, with [`IN_SUP`] set when it is in the supplementary file.
    pub(crate) origin: Option<u64>,
}

/// One unit's functions and inlined calls.
#[derive(Debug, Default)]
pub(crate) struct Functions {
    funcs: Vec<Func>,
    levels: Vec<RangeMap<u32>>,
}

/// The attributes of a subprogram or inlined subroutine DIE that matter here.
#[derive(Default)]
struct DieAttrs<'a> {
    low_pc: Option<u64>,
    high_pc: Option<HighPc>,
    ranges: Option<AttributeValue<Slice<'a>>>,
    node: NameNode,
    call_line: u32,
    call_file: u16,
    call_column: u16,
}

#[derive(Clone, Copy)]
enum HighPc {
    Addr(u64),
    Offset(u64),
}

/// What one parse needs besides the unit.
pub(crate) struct Context<'a, 'b> {
    pub(crate) dwarf: &'b gimli::Dwarf<Slice<'a>>,
    pub(crate) unit: &'b Unit<Slice<'a>>,
    /// The sections of the unit's file.
    pub(crate) sections: &'a DwarfSections,
    /// The dwz supplementary file's, when there is one.
    pub(crate) sup: Option<&'a DwarfSections>,
    /// Drop ranges starting at 0: in a linked file those are discarded functions.
    pub(crate) skip_zero: bool,
}

impl Context<'_, '_> {
    /// The [`StrRef`] of a string attribute of the unit, wherever the string is; `None`
    /// for one in a supplementary file that was not found.
    pub(crate) fn string(&self, value: AttributeValue<Slice<'_>>) -> Option<StrRef> {
        match value {
            AttributeValue::DebugStrRefSup(offset) => self.sup?.strp(offset.0 as u64),
            value => self.sections.attr_str_ref(self.dwarf, self.unit, value),
        }
    }

    /// The [`StrRef`] of a string gimli read (from this file or the supplementary one).
    pub(crate) fn slice(&self, s: Slice<'_>) -> Option<StrRef> {
        self.sections.str_ref(s).or_else(|| self.sup?.str_ref(s))
    }
}

/// The `.debug_info` offset a reference attribute names (see [`NameNode::origin`]), in a
/// unit starting at `unit_start` of the main file (`in_sup` false) or the supplementary
/// one.
pub(crate) fn reference(
    value: &AttributeValue<Slice<'_>>,
    unit_start: u64,
    in_sup: bool,
) -> Option<u64> {
    let here = if in_sup { IN_SUP } else { 0 };
    let offset = match *value {
        AttributeValue::UnitRef(o) => unit_start.checked_add(o.0 as u64)? | here,
        AttributeValue::DebugInfoRef(o) => o.0 as u64 | here,
        AttributeValue::DebugInfoRefSup(o) => o.0 as u64 | IN_SUP,
        _ => return None,
    };
    Some(offset)
}

impl Functions {
    /// Reads the unit's DIEs. `foreign` names DIEs of other units (LTO builds refer
    /// across units).
    pub(crate) fn parse(
        cx: &Context<'_, '_>,
        foreign: &mut dyn FnMut(u64) -> Option<NameNode>,
    ) -> gimli::Result<Self> {
        let unit_start = cx.unit.header.offset().0 as u64;
        let mut entries = cx.unit.entries_raw(None)?;
        // Open DIEs with children: their tree depth, and the inlining depth their
        // children get (None outside a function with code).
        let mut scopes: Vec<(isize, Option<usize>)> = Vec::new();
        let mut nodes: HashMap<u64, NameNode> = HashMap::new();
        let mut pending: Vec<NameNode> = Vec::new();
        let mut levels: Vec<Vec<(u64, u64, u32)>> = Vec::new();
        let mut funcs = Vec::new();
        let mut ranges = Vec::new();
        while !entries.is_empty() {
            let depth = entries.next_depth();
            let offset = entries.next_offset().0 as u64;
            let Some(abbrev) = entries.read_abbreviation()? else {
                continue;
            };
            while scopes.last().is_some_and(|s| s.0 >= depth) {
                scopes.pop();
            }
            let parent = scopes.last().and_then(|s| s.1);
            let tag = abbrev.tag();
            let is_subprogram = tag == constants::DW_TAG_subprogram;
            let children = if is_subprogram || tag == constants::DW_TAG_inlined_subroutine {
                let attrs = read_attrs(&mut entries, abbrev.attributes(), cx, unit_start)?;
                if is_subprogram {
                    nodes.insert(unit_start.saturating_add(offset), attrs.node);
                }
                let level = if is_subprogram { Some(0) } else { parent };
                ranges.clear();
                if level.is_some() {
                    die_ranges(&attrs, cx, &mut ranges);
                }
                match (level, u32::try_from(funcs.len())) {
                    (Some(level), Ok(index)) if !ranges.is_empty() => {
                        funcs.push(Func {
                            name: None,
                            call_line: attrs.call_line,
                            call_file: attrs.call_file,
                            call_column: attrs.call_column,
                        });
                        pending.push(attrs.node);
                        if levels.len() <= level {
                            levels.resize_with(level + 1, Vec::new);
                        }
                        if let Some(at) = levels.get_mut(level) {
                            at.extend(ranges.iter().map(|&(b, e)| (b, e, index)));
                        }
                        Some(level + 1)
                    }
                    _ => None,
                }
            } else {
                entries.skip_attributes(abbrev.attributes())?;
                parent
            };
            if abbrev.has_children() {
                scopes.push((depth, children));
            }
        }
        for (func, node) in funcs.iter_mut().zip(pending) {
            func.name = resolve_name(node, &nodes, foreign);
        }
        funcs.shrink_to_fit();
        Ok(Self {
            funcs,
            levels: levels.into_iter().map(RangeMap::new).collect(),
        })
    }

    /// The inline chain at `addr`, outermost first, as `(function, range start)`.
    pub(crate) fn chain(&self, addr: u64, out: &mut Vec<(Func, u64)>) {
        out.clear();
        for level in &self.levels {
            let Some((begin, &index)) = level.find(addr) else {
                break;
            };
            let Some(func) = self.funcs.get(index as usize) else {
                break;
            };
            out.push((*func, begin));
        }
    }

    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.funcs.capacity() * size_of::<Func>()
            + self.levels.iter().map(RangeMap::heap_bytes).sum::<usize>()
    }
}

/// Reads the attributes of one DIE, keeping those [`DieAttrs`] has. Values of an
/// unexpected form are ignored rather than failing the unit.
fn read_attrs<'a>(
    entries: &mut EntriesRaw<'_, Slice<'a>>,
    specs: &[AttributeSpecification],
    cx: &Context<'a, '_>,
    unit_start: u64,
) -> gimli::Result<DieAttrs<'a>> {
    let mut a = DieAttrs::default();
    let string = |value| cx.string(value);
    let small = |value: Option<u64>| value.map_or(0, |v| u32::try_from(v).unwrap_or(0));
    let smaller = |value: Option<u64>| value.map_or(0, |v| u16::try_from(v).unwrap_or(0));
    for spec in specs {
        let attr = entries.read_attribute_inline(*spec)?;
        match attr.name() {
            constants::DW_AT_low_pc => {
                a.low_pc = cx.dwarf.attr_address(cx.unit, attr.value()).ok().flatten();
            }
            constants::DW_AT_high_pc => {
                a.high_pc = match attr.value() {
                    AttributeValue::Addr(x) => Some(HighPc::Addr(x)),
                    AttributeValue::DebugAddrIndex(i) => {
                        cx.dwarf.address(cx.unit, i).ok().map(HighPc::Addr)
                    }
                    other => other.udata_value().map(HighPc::Offset),
                };
            }
            constants::DW_AT_ranges => a.ranges = Some(attr.value()),
            constants::DW_AT_name => a.node.name = string(attr.value()),
            constants::DW_AT_linkage_name | constants::DW_AT_MIPS_linkage_name => {
                a.node.linkage = string(attr.value());
            }
            constants::DW_AT_abstract_origin | constants::DW_AT_specification => {
                a.node.origin = a
                    .node
                    .origin
                    .or(reference(&attr.value(), unit_start, false));
            }
            constants::DW_AT_call_file => a.call_file = smaller(attr.udata_value()),
            constants::DW_AT_call_line => a.call_line = small(attr.udata_value()),
            constants::DW_AT_call_column => a.call_column = smaller(attr.udata_value()),
            _ => {}
        }
    }
    Ok(a)
}

/// The address ranges of a DIE, from `DW_AT_low_pc`/`DW_AT_high_pc` or `DW_AT_ranges`.
fn die_ranges(a: &DieAttrs<'_>, cx: &Context<'_, '_>, out: &mut Vec<(u64, u64)>) {
    let mut push = |begin: u64, end: u64| {
        if begin < end && !(cx.skip_zero && begin == 0) {
            out.push((begin, end));
        }
    };
    if let (Some(low), Some(high)) = (a.low_pc, a.high_pc) {
        let end = match high {
            HighPc::Addr(h) => h,
            HighPc::Offset(n) => low.saturating_add(n),
        };
        push(low, end);
    } else if let Some(value) = a.ranges {
        if let Ok(Some(mut list)) = cx.dwarf.attr_ranges(cx.unit, value) {
            while let Ok(Some(range)) = list.next() {
                push(range.begin, range.end);
            }
        }
    }
}

/// The name of a function: the linkage name found first along its origin chain, or
/// else the plain name found first (what llvm-symbolizer reports too).
fn resolve_name(
    start: NameNode,
    nodes: &HashMap<u64, NameNode>,
    foreign: &mut dyn FnMut(u64) -> Option<NameNode>,
) -> Option<StrRef> {
    let (mut linkage, mut name, mut next) = (start.linkage, start.name, start.origin);
    for _ in 0..MAX_ORIGIN_HOPS {
        if linkage.is_some() {
            break;
        }
        let Some(offset) = next else { break };
        let Some(node) = nodes.get(&offset).copied().or_else(|| foreign(offset)) else {
            break;
        };
        linkage = node.linkage;
        name = name.or(node.name);
        next = node.origin;
    }
    linkage.or(name)
}
