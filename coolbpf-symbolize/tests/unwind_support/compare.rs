//! Our compiled table against readelf's, row by row.

use std::collections::BTreeMap;
use std::path::Path;

use coolbpf_symbolize::unwind::{CfaRule, UnwindTable};
use object::{Object, ObjectSection};

use super::readelf::{frames, RefRow};

/// What a comparison found.
#[derive(Debug, Default)]
pub struct Comparison {
    /// readelf rows checked (start and last byte looked up).
    pub rows: usize,
    /// Rows of FDEs that overlap an earlier one (which wins, in ours as in a lookup).
    pub overlapped: usize,
    /// Rows whose rules differ, with what we found: empty when all are equal.
    pub mismatches: Vec<String>,
    /// Our row starts that no readelf row, FDE end or PLT section explains.
    pub stray_rows: Vec<u64>,
}

/// Address ranges claimed by FDEs so far, by start.
#[derive(Default)]
struct Claimed(BTreeMap<u64, u64>);

impl Claimed {
    fn overlaps(&self, start: u64, end: u64) -> bool {
        self.0
            .range(..end)
            .next_back()
            .is_some_and(|(_, e)| *e > start)
    }
}

fn section_range(object: &object::File<'_>, name: &str) -> Option<(u64, u64)> {
    let s = object.section_by_name(name)?;
    Some((s.address(), s.address() + s.size()))
}

/// Compares `table` (compiled from `binary`) with readelf's reading of `binary`.
pub fn compare(binary: &Path, table: &UnwindTable) -> Comparison {
    let data = std::fs::read(binary).unwrap();
    let object = object::File::parse(&*data).unwrap();
    let plt = section_range(&object, ".plt");
    let in_plt = |pc: u64| plt.is_some_and(|(s, e)| pc >= s && pc < e);
    let reference = frames(binary);
    let mut result = Comparison::default();
    let mut claimed = Claimed::default();
    let mut starts = std::collections::BTreeSet::new();
    for section in [&reference.eh_frame, &reference.debug_frame] {
        let mut this_section = Vec::new();
        for (start, end, rows) in &section.fdes {
            starts.insert(*end);
            if claimed.overlaps(*start, *end) {
                result.overlapped += rows.len();
                continue;
            }
            this_section.push((*start, *end));
            for row in rows {
                starts.insert(row.start);
                check_row(table, row, in_plt(row.start), &mut result);
            }
        }
        claimed.0.extend(this_section);
    }
    for name in [".plt", ".plt.sec", ".plt.got"] {
        if let Some((start, end)) = section_range(&object, name) {
            starts.extend([start, end]);
        }
    }
    result.stray_rows = table
        .rows()
        .iter()
        .map(|r| r.pc)
        .filter(|pc| !starts.contains(pc))
        .collect();
    result
}

fn check_row(table: &UnwindTable, row: &RefRow, in_plt: bool, result: &mut Comparison) {
    result.rows += 1;
    let mut expected = (row.cfa, row.rbp);
    if row.cfa_text == "exp" && in_plt {
        expected.0 = CfaRule::Plt;
    }
    for pc in [row.start, row.end - 1] {
        let ours = table.lookup(pc).map(|r| (r.cfa, r.rbp));
        if ours != Some(expected) {
            result.mismatches.push(format!(
                "{pc:#x} (readelf row {:#x}..{:#x} `{}`): expected {expected:?}, ours {ours:?}",
                row.start, row.end, row.cfa_text
            ));
        }
    }
}
