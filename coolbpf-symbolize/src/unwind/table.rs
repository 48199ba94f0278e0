//! [`UnwindTable`]: a file's CFI as sorted rows, and looking a pc up in them.

use std::path::Path;

use serde::Serialize;

use super::compile::compile;
use super::error::UnwindError;
use super::row::{CfaRule, UnwindRow};
use crate::elf::ElfFile;

/// What compiling a file's CFI met on the way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CompileStats {
    /// FDEs whose rows were compiled.
    pub fdes: u64,
    /// FDEs skipped because they did not parse (a bad CIE pointer, a truncated entry
    /// inside a well-formed length) or their instructions did not evaluate.
    pub skipped_fdes: u64,
    /// Rows (before merging) with a CFA or rbp rule this unwinder does not follow.
    pub unsupported_rows: u64,
    /// `.plt`-like sections that no FDE covered (fully), given their known rule.
    pub plt_sections_without_fde: u64,
    /// Bytes that an FDE claimed and an earlier one (or `.eh_frame`, for `.debug_frame`)
    /// covered already: the earlier rule was kept.
    pub overlapped_bytes: u64,
}

/// Every FDE's rows of one ELF file, sorted by pc, with explicit no-info rows where no
/// FDE covers the code and consecutive identical rows merged.
///
/// The row at index `i` covers `[rows[i].pc, rows[i + 1].pc)`; the last row is always a
/// no-info row (the end of the last FDE).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UnwindTable {
    rows: Vec<UnwindRow>,
    stats: CompileStats,
}

impl UnwindTable {
    /// Compiles the CFI of an ELF image in memory.
    pub fn from_bytes(data: &[u8]) -> Result<Self, UnwindError> {
        let object = object::File::parse(data).map_err(|e| UnwindError::NotElf {
            what: "<bytes>".to_owned(),
            reason: e.to_string(),
        })?;
        Self::from_object(&object, "<bytes>")
    }

    /// Compiles the CFI of the ELF file at `path`.
    pub fn from_file(path: &Path) -> Result<Self, UnwindError> {
        let elf = ElfFile::open(path).map_err(|source| UnwindError::Open {
            path: path.to_owned(),
            source,
        })?;
        Self::from_elf(&elf)
    }

    /// Compiles the CFI of an opened ELF file.
    pub fn from_elf(elf: &ElfFile) -> Result<Self, UnwindError> {
        let what = elf.path().display().to_string();
        let object = elf.object().map_err(|e| UnwindError::NotElf {
            what: what.clone(),
            reason: e.to_string(),
        })?;
        Self::from_object(&object, &what)
    }

    fn from_object(object: &object::File<'_>, what: &str) -> Result<Self, UnwindError> {
        let (mut coverage, mut stats) = compile(object, what)?;
        stats.overlapped_bytes = coverage.overlapped_bytes();
        Ok(Self {
            rows: coverage.into_rows(),
            stats,
        })
    }

    /// The rows, sorted by pc (see the type's docs).
    pub fn rows(&self) -> &[UnwindRow] {
        &self.rows
    }

    /// What compiling met.
    pub fn stats(&self) -> CompileStats {
        self.stats
    }

    /// The lowest pc any row covers; `None` for a file without CFI.
    pub fn base(&self) -> Option<u64> {
        self.rows.first().map(|r| r.pc)
    }

    /// The row that covers the ELF virtual address `vaddr`, `None` when no FDE covers it
    /// (before the first row, past the last FDE, or in a gap between FDEs).
    pub fn lookup(&self, vaddr: u64) -> Option<&UnwindRow> {
        let after = self.rows.partition_point(|r| r.pc <= vaddr);
        let row = self.rows[..after].last()?;
        (row.cfa != CfaRule::NoInfo).then_some(row)
    }
}
