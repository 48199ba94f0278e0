//! The rows as the BPF unwinder reads them: 8 bytes each, in one big array map.
//!
//! Layout (`struct coolbpf_unwind_row` in `coolbpf/unwind.bpf.h`, which must match):
//!
//! | bytes | field | why |
//! |---|---|---|
//! | 0..4 | `pc`: u32, offset from the table's base | a binary (libc, python) spans a few MiB of code; 4 GiB from the first FDE is far beyond any real one ([`UnwindError::TooLarge`] otherwise) |
//! | 4..6 | `cfa_offset`: u16 | CFA offsets from rsp or rbp are positive (the CFA is above the frame) and below 64 KiB except for functions with huge stack arrays, which become unsupported |
//! | 6 | `kinds`: CFA kind (low nibble) and rbp kind (high nibble) | two small enums in one byte |
//! | 7 | `rbp_offset`: i8, in 8-byte words | rbp is saved at CFA-16, -24, ... (pushes are 8 bytes): ±1 KiB in one byte |
//!
//! 8 bytes keep a million rows (python3.11 and libc together need a fraction of that) in
//! 8 MiB, and the row is naturally aligned for the BPF side's loads. A row whose offsets
//! do not fit becomes unsupported (the BPF side takes a frame-pointer step there) and is
//! counted in [`CompactTable::narrowed`].

use super::error::UnwindError;
use super::row::{CfaRule, RbpRule, UnwindRow};
use super::table::UnwindTable;

/// CFA kinds (`COOLBPF_UNWIND_CFA_*`).
pub mod cfa_kind {
    /// No FDE covers the pc.
    pub const NO_INFO: u8 = 0;
    /// CFA = rsp + offset.
    pub const RSP: u8 = 1;
    /// CFA = rbp + offset.
    pub const RBP: u8 = 2;
    /// The PLT expression.
    pub const PLT: u8 = 3;
    /// The outermost frame: the walk ends.
    pub const UNDEFINED: u8 = 4;
    /// Not followed: a frame-pointer step.
    pub const UNSUPPORTED: u8 = 5;
}

/// rbp kinds (`COOLBPF_UNWIND_RBP_*`).
pub mod rbp_kind {
    /// The caller's rbp is the current one.
    pub const UNCHANGED: u8 = 0;
    /// Saved at CFA + 8 * offset.
    pub const CFA_OFFSET: u8 = 1;
    /// Unknown.
    pub const UNSUPPORTED: u8 = 2;
}

/// One row as the BPF side reads it (see the module docs for the layout and why).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CompactRow {
    /// Offset of the row's first pc from [`CompactTable::base`].
    pub pc: u32,
    /// Added to rsp or rbp (CFA kinds RSP and RBP).
    pub cfa_offset: u16,
    /// CFA kind in the low nibble, rbp kind in the high one.
    pub kinds: u8,
    /// The caller's rbp is at CFA + 8 * this (rbp kind CFA_OFFSET).
    pub rbp_offset: i8,
}

/// Size of a [`CompactRow`] in bytes, what the BPF array's value size must be.
pub const COMPACT_ROW_BYTES: usize = size_of::<CompactRow>();

impl CompactRow {
    /// The CFA kind (one of [`cfa_kind`]).
    pub fn cfa_kind(&self) -> u8 {
        self.kinds & 0xf
    }

    /// The rbp kind (one of [`rbp_kind`]).
    pub fn rbp_kind(&self) -> u8 {
        self.kinds >> 4
    }

    /// The row's bytes in the layout the BPF side reads (native endianness: it is read
    /// on this machine).
    pub fn to_bytes(&self) -> [u8; COMPACT_ROW_BYTES] {
        let mut bytes = [0; COMPACT_ROW_BYTES];
        bytes[0..4].copy_from_slice(&self.pc.to_ne_bytes());
        bytes[4..6].copy_from_slice(&self.cfa_offset.to_ne_bytes());
        bytes[6] = self.kinds;
        bytes[7] = self.rbp_offset.to_ne_bytes()[0];
        bytes
    }

    /// The row this encodes, relative to `base`.
    pub fn decode(&self, base: u64) -> UnwindRow {
        let offset = i64::from(self.cfa_offset);
        let cfa = match self.cfa_kind() {
            cfa_kind::NO_INFO => CfaRule::NoInfo,
            cfa_kind::RSP => CfaRule::Rsp(offset),
            cfa_kind::RBP => CfaRule::Rbp(offset),
            cfa_kind::PLT => CfaRule::Plt,
            cfa_kind::UNDEFINED => CfaRule::Undefined,
            _ => CfaRule::Unsupported,
        };
        let rbp = match self.rbp_kind() {
            rbp_kind::UNCHANGED => RbpRule::Unchanged,
            rbp_kind::CFA_OFFSET => RbpRule::CfaOffset(8 * i64::from(self.rbp_offset)),
            _ => RbpRule::Unsupported,
        };
        UnwindRow {
            pc: base + u64::from(self.pc),
            cfa,
            rbp,
        }
    }

    /// Encodes `row` relative to `base`; `None` for the parts whose offsets do not fit
    /// (the caller makes them unsupported and counts them).
    fn encode(row: &UnwindRow, base: u64) -> Option<(Self, bool)> {
        let pc = u32::try_from(row.pc.checked_sub(base)?).ok()?;
        let mut narrowed = false;
        let (cfa_kind, cfa_offset) = match row.cfa {
            CfaRule::NoInfo => (cfa_kind::NO_INFO, 0),
            CfaRule::Rsp(offset) | CfaRule::Rbp(offset) => match u16::try_from(offset) {
                Ok(offset) if matches!(row.cfa, CfaRule::Rsp(_)) => (cfa_kind::RSP, offset),
                Ok(offset) => (cfa_kind::RBP, offset),
                Err(_) => {
                    narrowed = true;
                    (cfa_kind::UNSUPPORTED, 0)
                }
            },
            CfaRule::Plt => (cfa_kind::PLT, 0),
            CfaRule::Undefined => (cfa_kind::UNDEFINED, 0),
            CfaRule::Unsupported => (cfa_kind::UNSUPPORTED, 0),
        };
        let (rbp_kind, rbp_offset) = match row.rbp {
            RbpRule::Unchanged => (rbp_kind::UNCHANGED, 0),
            RbpRule::CfaOffset(offset) => match i8::try_from(offset / 8) {
                Ok(words) if offset % 8 == 0 => (rbp_kind::CFA_OFFSET, words),
                _ => {
                    narrowed = true;
                    (rbp_kind::UNSUPPORTED, 0)
                }
            },
            RbpRule::Unsupported => (rbp_kind::UNSUPPORTED, 0),
        };
        let compact = Self {
            pc,
            cfa_offset,
            kinds: cfa_kind | (rbp_kind << 4),
            rbp_offset,
        };
        Some((compact, narrowed))
    }
}

/// A table's rows in the compact layout, relative to its base.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactTable {
    /// The ELF virtual address row offsets are relative to (the first row's pc).
    pub base: u64,
    /// The rows, sorted by pc, consecutive equal ones merged.
    pub rows: Vec<CompactRow>,
    /// Rows whose offsets did not fit and became unsupported.
    pub narrowed: u64,
}

impl CompactTable {
    /// Bytes of map memory the rows take.
    pub fn bytes(&self) -> usize {
        self.rows.len() * COMPACT_ROW_BYTES
    }
}

impl UnwindTable {
    /// The rows in the compact BPF layout.
    pub fn compact(&self) -> Result<CompactTable, UnwindError> {
        let base = self.base().unwrap_or(0);
        let end = self.rows().last().map_or(base, |r| r.pc);
        let mut table = CompactTable {
            base,
            ..CompactTable::default()
        };
        for row in self.rows() {
            let (compact, narrowed) =
                CompactRow::encode(row, base).ok_or(UnwindError::TooLarge {
                    what: "table".to_owned(),
                    span: end - base,
                })?;
            table.narrowed += u64::from(narrowed);
            let same = table.rows.last().is_some_and(|last| {
                (last.kinds, last.cfa_offset, last.rbp_offset)
                    == (compact.kinds, compact.cfa_offset, compact.rbp_offset)
            });
            if !same {
                table.rows.push(compact);
            }
        }
        Ok(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_and_wide_offsets_narrow_to_unsupported() {
        let base = 0x1000;
        let rows = [
            UnwindRow {
                pc: 0x1000,
                cfa: CfaRule::Rsp(8),
                rbp: RbpRule::Unchanged,
            },
            UnwindRow {
                pc: 0x1004,
                cfa: CfaRule::Rbp(16),
                rbp: RbpRule::CfaOffset(-16),
            },
            UnwindRow {
                pc: 0x1008,
                cfa: CfaRule::Plt,
                rbp: RbpRule::Unchanged,
            },
            UnwindRow::no_info(0x2000),
        ];
        for row in &rows {
            let (compact, narrowed) = CompactRow::encode(row, base).unwrap();
            assert!(!narrowed);
            assert_eq!(compact.decode(base), *row);
        }
        let wide = UnwindRow {
            pc: 0x1010,
            cfa: CfaRule::Rsp(1 << 20),
            rbp: RbpRule::CfaOffset(-12),
        };
        let (compact, narrowed) = CompactRow::encode(&wide, base).unwrap();
        assert!(narrowed);
        assert_eq!(compact.cfa_kind(), cfa_kind::UNSUPPORTED);
        assert_eq!(compact.rbp_kind(), rbp_kind::UNSUPPORTED);
        assert!(CompactRow::encode(&UnwindRow::no_info(base + (1 << 33)), base).is_none());
        assert_eq!(COMPACT_ROW_BYTES, 8);
        let bytes = CompactRow {
            pc: 0x0102_0304,
            cfa_offset: 0x0506,
            kinds: 0x21,
            rbp_offset: -2,
        }
        .to_bytes();
        assert_eq!(bytes, [0x04, 0x03, 0x02, 0x01, 0x06, 0x05, 0x21, 0xfe]);
    }
}
