//! One row of an unwind table: from a pc on, how to find the caller's frame.

use serde::Serialize;

/// How the canonical frame address (CFA: the caller's stack pointer just before the call
/// pushed the return address) is computed, on x86_64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum CfaRule {
    /// No FDE covers this pc: the table has nothing to say (a gap between functions, or
    /// past the last one). An unwinder falls back to frame pointers.
    NoInfo,
    /// CFA = rsp + offset.
    Rsp(i64),
    /// CFA = rbp + offset.
    Rbp(i64),
    /// The lazy-binding PLT's expression:
    /// CFA = rsp + 8 + ((rip & 15) >= 11 ? 8 : 0), i.e. whether the entry's `push` ran.
    Plt,
    /// The return address is undefined: this is the outermost frame (`_start`, a
    /// thread's start routine), and the walk ends here, successfully.
    Undefined,
    /// A rule this unwinder does not follow (a DWARF expression other than the PLT's,
    /// another base register, a return address not at CFA-8). An unwinder falls back to
    /// frame pointers.
    Unsupported,
}

/// Where the caller's rbp is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum RbpRule {
    /// rbp still holds the caller's value (not saved yet, restored already, or never
    /// touched).
    Unchanged,
    /// The caller's rbp is saved at CFA + offset.
    CfaOffset(i64),
    /// A rule this unwinder does not follow: the caller's rbp is unknown.
    Unsupported,
}

/// From `pc` up to the next row's pc, how to unwind one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct UnwindRow {
    /// The ELF virtual address (link-time, before any load bias) where the row starts.
    pub pc: u64,
    /// How the CFA is found; the return address is at CFA-8.
    pub cfa: CfaRule,
    /// Where the caller's rbp is.
    pub rbp: RbpRule,
}

impl UnwindRow {
    /// A row saying that nothing is known from `pc` on.
    pub const fn no_info(pc: u64) -> Self {
        Self {
            pc,
            cfa: CfaRule::NoInfo,
            rbp: RbpRule::Unchanged,
        }
    }

    /// Whether `other` unwinds the same way (its pc aside): consecutive rows that do can
    /// be merged into one.
    pub fn same_rules(&self, other: &Self) -> bool {
        self.cfa == other.cfa && self.rbp == other.rbp
    }
}
