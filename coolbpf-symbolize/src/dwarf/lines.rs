//! A unit's line program run once and flattened into sorted arrays: a lookup is one
//! binary search over addresses. A row takes 12 bytes: a 4-byte address offset from
//! the unit's first address (8 bytes in the rare unit spanning more than 4 GiB), the
//! line, and 2-byte file index and column.

use gimli::{ColumnType, IncompleteLineProgram, LineProgramHeader};

use crate::dwarf::sections::Slice;

/// `file` value of the marker row that ends a sequence: addresses from there up to the
/// next sequence have no line.
const GAP: u16 = u16::MAX;

/// `file` value for a file index too large to keep (no unit has that many files).
const FILE_UNKNOWN: u16 = u16::MAX - 1;

/// Source position of one row. `line` and `column` are 0 when unknown (a column too
/// large to keep is unknown too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Row {
    pub(crate) line: u32,
    /// Index into the unit's file table (as the line program numbers files).
    pub(crate) file: u16,
    pub(crate) column: u16,
}

/// Sorted addresses, as offsets from the first when they fit in 32 bits.
#[derive(Debug)]
enum Addrs {
    Narrow { base: u64, offsets: Vec<u32> },
    Wide(Vec<u64>),
}

impl Default for Addrs {
    fn default() -> Self {
        Self::Narrow {
            base: 0,
            offsets: Vec::new(),
        }
    }
}

impl Addrs {
    fn new(addrs: Vec<u64>) -> Self {
        let base = addrs.first().copied().unwrap_or(0);
        let span = addrs.last().map_or(0, |last| last.saturating_sub(base));
        if u32::try_from(span).is_err() {
            return Self::Wide(addrs);
        }
        Self::Narrow {
            base,
            offsets: addrs.iter().map(|a| (a - base) as u32).collect(),
        }
    }

    /// How many addresses are at or before `addr`.
    fn count_up_to(&self, addr: u64) -> usize {
        match self {
            Self::Narrow { base, offsets } => match addr.checked_sub(*base) {
                None => 0,
                Some(off) => match u32::try_from(off) {
                    Ok(off) => offsets.partition_point(|&o| o <= off),
                    Err(_) => offsets.len(),
                },
            },
            Self::Wide(addrs) => addrs.partition_point(|&a| a <= addr),
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Self::Narrow { offsets, .. } => offsets.capacity() * 4,
            Self::Wide(addrs) => addrs.capacity() * 8,
        }
    }
}

/// Rows sorted by address; each covers addresses up to the next row's.
#[derive(Debug, Default)]
pub(crate) struct LineTable {
    addrs: Addrs,
    rows: Vec<Row>,
}

/// One sequence: a contiguous run of rows ending at `end`.
struct Sequence {
    start: u64,
    end: u64,
    /// Index range into the collected rows.
    first: usize,
    last: usize,
}

impl LineTable {
    /// Runs `program` and flattens its rows. Returns the table and the final header
    /// (whose file table the rows index). `skip_zero`: drop sequences starting at
    /// address 0, which in a linked file are functions the linker discarded.
    pub(crate) fn parse(
        program: IncompleteLineProgram<Slice<'_>>,
        skip_zero: bool,
    ) -> gimli::Result<(Self, LineProgramHeader<Slice<'_>>)> {
        let mut rows = program.rows();
        let mut raw: Vec<(u64, Row)> = Vec::new();
        let mut sequences = Vec::new();
        let mut first = 0;
        while let Some((_, row)) = rows.next_row()? {
            let address = row.address();
            if row.end_sequence() {
                let start = raw.get(first).map_or(address, |r| r.0);
                if first < raw.len() && start < address && !(skip_zero && start == 0) {
                    sequences.push(Sequence {
                        start,
                        end: address,
                        first,
                        last: raw.len(),
                    });
                } else {
                    raw.truncate(first);
                }
                first = raw.len();
                continue;
            }
            let entry = Row {
                line: row
                    .line()
                    .map_or(0, |l| u32::try_from(l.get()).unwrap_or(0)),
                file: u16::try_from(row.file_index())
                    .unwrap_or(FILE_UNKNOWN)
                    .min(FILE_UNKNOWN),
                column: match row.column() {
                    ColumnType::LeftEdge => 0,
                    ColumnType::Column(c) => u16::try_from(c.get()).unwrap_or(0),
                },
            };
            // Several rows at one address: the last one describes the instruction there
            // (the earlier ones are empty ranges), as llvm-symbolizer also decides.
            let in_sequence = raw.len() > first;
            match raw.last_mut() {
                Some(last) if in_sequence && last.0 == address => last.1 = entry,
                _ => raw.push((address, entry)),
            }
        }
        let header = rows.header().clone();
        Ok((Self::flatten(&raw, sequences), header))
    }

    /// Lays sequences out by address, with a gap marker where one ends before the next
    /// begins. A sequence overlapping an earlier one is dropped.
    fn flatten(raw: &[(u64, Row)], mut sequences: Vec<Sequence>) -> Self {
        sequences.sort_by_key(|s| s.start);
        let mut addrs = Vec::with_capacity(raw.len() + sequences.len());
        let mut rows = Vec::with_capacity(raw.len() + sequences.len());
        let mut push = |addr, row| {
            addrs.push(addr);
            rows.push(row);
        };
        let gap = Row {
            line: 0,
            file: GAP,
            column: 0,
        };
        let mut prev_end: Option<u64> = None;
        for seq in sequences {
            let Some(rows) = raw.get(seq.first..seq.last) else {
                continue;
            };
            match prev_end {
                Some(end) if seq.start < end => continue,
                Some(end) if seq.start > end => push(end, gap),
                _ => {}
            }
            let mut last_addr = None;
            for &(addr, row) in rows {
                // Rows must ascend within a sequence; anything else is malformed.
                if last_addr.is_some_and(|a| addr < a) || addr >= seq.end {
                    break;
                }
                last_addr = Some(addr);
                push(addr, row);
            }
            prev_end = Some(seq.end);
        }
        if let Some(end) = prev_end {
            push(end, gap);
        }
        rows.shrink_to_fit();
        Self {
            addrs: Addrs::new(addrs),
            rows,
        }
    }

    /// The row covering `addr`.
    pub(crate) fn find(&self, addr: u64) -> Option<Row> {
        let i = self.addrs.count_up_to(addr).checked_sub(1)?;
        self.rows.get(i).copied().filter(|row| row.file != GAP)
    }

    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.addrs.heap_bytes() + self.rows.capacity() * size_of::<Row>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(line: u32) -> Row {
        Row {
            line,
            file: 1,
            column: 0,
        }
    }

    #[test]
    fn sequences_are_sorted_and_gaps_have_no_line() {
        let raw = vec![
            (0x200, row(20)),
            (0x210, row(21)),
            (0x100, row(10)),
            (0x108, row(11)),
        ];
        let sequences = vec![
            Sequence {
                start: 0x200,
                end: 0x220,
                first: 0,
                last: 2,
            },
            Sequence {
                start: 0x100,
                end: 0x110,
                first: 2,
                last: 4,
            },
        ];
        let t = LineTable::flatten(&raw, sequences);
        assert_eq!(t.find(0xff), None);
        assert_eq!(t.find(0x100).map(|r| r.line), Some(10));
        assert_eq!(t.find(0x10f).map(|r| r.line), Some(11));
        assert_eq!(t.find(0x110), None);
        assert_eq!(t.find(0x1ff), None);
        assert_eq!(t.find(0x215).map(|r| r.line), Some(21));
        assert_eq!(t.find(0x220), None);
    }

    #[test]
    fn overlapping_and_descending_rows_do_not_confuse_lookups() {
        let raw = vec![
            (0x100, row(1)),
            (0x90, row(2)),
            (0x100, row(3)),
            (0x104, row(4)),
        ];
        let sequences = vec![
            Sequence {
                start: 0x100,
                end: 0x110,
                first: 0,
                last: 2,
            },
            Sequence {
                start: 0x100,
                end: 0x108,
                first: 2,
                last: 4,
            },
        ];
        let t = LineTable::flatten(&raw, sequences);
        assert_eq!(t.find(0x105).map(|r| r.line), Some(1));
        assert_eq!(t.find(0x110), None);
    }

    #[test]
    fn units_spanning_more_than_4_gib_keep_full_addresses() {
        let far = 0x1_0000_0100;
        let raw = vec![(0x100, row(1)), (far, row(2))];
        let sequences = vec![
            Sequence {
                start: 0x100,
                end: 0x110,
                first: 0,
                last: 1,
            },
            Sequence {
                start: far,
                end: far + 0x10,
                first: 1,
                last: 2,
            },
        ];
        let t = LineTable::flatten(&raw, sequences);
        assert!(matches!(t.addrs, Addrs::Wide(_)));
        assert_eq!(t.find(0x105).map(|r| r.line), Some(1));
        assert_eq!(t.find(far + 5).map(|r| r.line), Some(2));
        assert_eq!(t.find(far - 5), None);
    }
}
