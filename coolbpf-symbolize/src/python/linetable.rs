//! Bytecode offset -> line number, from a code object's `co_linetable`. Two formats:
//!
//! - 3.10 (PEP 626, Objects/lnotab_notes.txt of 3.10): pairs of bytes `(start delta,
//!   line delta)`; the first unsigned, the range's length in bytes; the second signed,
//!   added to the line, except -128, which means "no line" for that range. The line
//!   starts at `co_firstlineno`.
//! - 3.11 and later (Objects/locations.md): entries whose first byte has bit 7 set, a
//!   4-bit code in bits 3-6 and the entry's length in code units minus one in bits 0-2.
//!   Code 15: no location; 14: long form (signed varint line delta, then end line delta,
//!   start and end column as varints); 13: no column (signed varint line delta); 10-12:
//!   one-line form (line delta `code - 10`, then two column bytes); 0-9: short form
//!   (same line, one column byte). Varints are little-endian groups of 6 bits with bit 6
//!   as "more follows"; a signed varint keeps its sign in bit 0.

/// One code unit (`_Py_CODEUNIT`) is two bytes.
const CODE_UNIT: u32 = 2;

/// Which format a line table is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// 3.10's `(start delta, line delta)` pairs.
    Pep626,
    /// 3.11+'s location entries.
    Locations,
}

/// The line of the instruction at byte offset `offset` of a code object whose first line
/// is `first_line` and line table `table`; `None` when the table gives it no line or does
/// not reach it. Malformed tables end the search (no panic).
pub fn line_of(format: Format, table: &[u8], first_line: i32, offset: u32) -> Option<u32> {
    let line = match format {
        Format::Pep626 => pep626(table, first_line, offset),
        Format::Locations => locations(table, first_line, offset),
    }?;
    u32::try_from(line).ok().filter(|&l| l > 0)
}

fn pep626(table: &[u8], first_line: i32, offset: u32) -> Option<i32> {
    let mut line = first_line;
    let mut end: u32 = 0;
    for pair in table.chunks_exact(2) {
        let start = end;
        end = end.saturating_add(u32::from(pair[0]));
        let delta = pair[1] as i8;
        let this = if delta == -128 {
            None
        } else {
            line = line.saturating_add(i32::from(delta));
            Some(line)
        };
        if (start..end).contains(&offset) {
            return this;
        }
    }
    None
}

/// A cursor over a location table.
struct Reader<'a> {
    table: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.table.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    fn varint(&mut self) -> Option<u32> {
        let mut value: u32 = 0;
        let mut shift = 0;
        loop {
            let b = self.byte()?;
            value |= u32::from(b & 0x3f).checked_shl(shift)?;
            if b & 0x40 == 0 {
                return Some(value);
            }
            shift += 6;
            if shift > 30 {
                return None;
            }
        }
    }

    fn signed_varint(&mut self) -> Option<i32> {
        let raw = self.varint()?;
        let magnitude = (raw >> 1) as i32;
        Some(if raw & 1 != 0 { -magnitude } else { magnitude })
    }
}

fn locations(table: &[u8], first_line: i32, offset: u32) -> Option<i32> {
    let mut reader = Reader { table, at: 0 };
    let mut line = first_line;
    let mut end: u32 = 0;
    while let Some(head) = reader.byte() {
        if head & 0x80 == 0 {
            // Not an entry's first byte: the table is malformed.
            return None;
        }
        let code = (head >> 3) & 0x0f;
        let start = end;
        end = end.saturating_add((u32::from(head & 0x07) + 1) * CODE_UNIT);
        let this = match code {
            15 => None,
            14 => {
                line = line.saturating_add(reader.signed_varint()?);
                reader.varint()?;
                reader.varint()?;
                reader.varint()?;
                Some(line)
            }
            13 => {
                line = line.saturating_add(reader.signed_varint()?);
                Some(line)
            }
            10..=12 => {
                line = line.saturating_add(i32::from(code) - 10);
                reader.byte()?;
                reader.byte()?;
                Some(line)
            }
            _ => {
                reader.byte()?;
                Some(line)
            }
        };
        if (start..end).contains(&offset) {
            return this;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pep626_pairs() {
        // 0..6: line 11; 6..10: no line; 10..14: 11 - 2 = 9.
        let table = [6, 1, 4, 0x80, 4, 0xfe];
        assert_eq!(line_of(Format::Pep626, &table, 10, 0), Some(11));
        assert_eq!(line_of(Format::Pep626, &table, 10, 5), Some(11));
        assert_eq!(line_of(Format::Pep626, &table, 10, 6), None);
        assert_eq!(line_of(Format::Pep626, &table, 10, 12), Some(9));
        assert_eq!(line_of(Format::Pep626, &table, 10, 14), None);
    }

    #[test]
    fn location_entries() {
        let table = [
            // code 13 (no column), 1 unit: line delta +2 (varint 4).
            0x80 | (13 << 3),
            4,
            // code 11 (one line, +1), 2 units, two column bytes.
            0x80 | (11 << 3) | 1,
            1,
            5,
            // short form code 3, 3 units, one column byte: same line.
            0x80 | (3 << 3) | 2,
            0x11,
            // code 15, no location, 1 unit.
            0x80 | (15 << 3),
            // code 14 long form, 1 unit: line delta -3 (varint 7), then 3 varints, one
            // of them two bytes long.
            0x80 | (14 << 3),
            7,
            0,
            0x41,
            1,
            2,
        ];
        let line = |offset| line_of(Format::Locations, &table, 100, offset);
        assert_eq!(line(0), Some(102));
        assert_eq!(line(2), Some(103));
        assert_eq!(line(4), Some(103));
        assert_eq!(line(6), Some(103));
        assert_eq!(line(10), Some(103));
        assert_eq!(line(12), None);
        assert_eq!(line(14), Some(100));
        assert_eq!(line(16), None);
    }

    #[test]
    fn malformed_tables_end_quietly() {
        assert_eq!(line_of(Format::Locations, &[0x05, 0x80], 1, 0), None);
        assert_eq!(
            line_of(Format::Locations, &[0x80 | (14 << 3), 0x7f], 1, 0),
            None
        );
        assert_eq!(line_of(Format::Pep626, &[1], 1, 0), None);
    }
}
