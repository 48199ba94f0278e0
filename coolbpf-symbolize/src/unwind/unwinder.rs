//! A reference unwinder over the rows, in Rust: the same steps the BPF side takes (CFI
//! where a table covers the pc, one frame-pointer step where not), for tests, core-like
//! snapshots, and anyone who has registers and a way to read the stack.

use super::row::{CfaRule, RbpRule, UnwindRow};
use super::table::UnwindTable;

/// The registers unwinding needs, of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registers {
    /// The instruction pointer: the frame's pc (the innermost frame) or return address.
    pub ip: u64,
    /// The stack pointer.
    pub sp: u64,
    /// The frame pointer, when known (`None` after a frame whose rbp rule is unsupported,
    /// or when a snapshot does not give it, as `/proc/PID/syscall` does not).
    pub bp: Option<u64>,
}

/// How a step found the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// From the CFI row covering the pc.
    Cfi,
    /// From the frame-pointer chain: no row covers the pc, or its rule is unsupported.
    FramePointer,
}

/// What one step found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The caller's registers.
    Caller {
        /// The caller's frame.
        registers: Registers,
        /// How it was found.
        via: StepKind,
    },
    /// This was the outermost frame: its return address is undefined in CFI, it holds a
    /// null frame pointer, or its return address is 0.
    Outermost,
}

/// Why a step could not find the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// Reading the stack at this address failed.
    #[error("cannot read the stack at {0:#x}")]
    Read(u64),
    /// A frame-pointer step (or an rbp-based CFA) needed rbp, which is unknown.
    #[error("the frame pointer is unknown")]
    NoFramePointer,
    /// The caller's stack pointer is not above this frame's: the walk would loop.
    #[error("the stack pointer does not advance ({from:#x} -> {to:#x})")]
    NotAdvancing {
        /// This frame's sp.
        from: u64,
        /// The sp the step computed.
        to: u64,
    },
}

/// Finds the caller of the frame `registers` describes, given the row covering its pc
/// (`None`: no table covers it) and a way to read 8 bytes of the stack.
pub fn step(
    row: Option<&UnwindRow>,
    registers: &Registers,
    read: &mut impl FnMut(u64) -> Option<u64>,
) -> Result<Step, StepError> {
    let mut read_at = |addr: u64| read(addr).ok_or(StepError::Read(addr));
    let cfa = match row.map(|r| r.cfa) {
        Some(CfaRule::Undefined) => return Ok(Step::Outermost),
        Some(CfaRule::Rsp(offset)) => Some(registers.sp.wrapping_add_signed(offset)),
        Some(CfaRule::Rbp(offset)) => match registers.bp {
            Some(bp) => Some(bp.wrapping_add_signed(offset)),
            None => return Err(StepError::NoFramePointer),
        },
        Some(CfaRule::Plt) => {
            let pushed = if registers.ip & 15 >= 11 { 8 } else { 0 };
            Some(registers.sp.wrapping_add(8 + pushed))
        }
        Some(CfaRule::NoInfo | CfaRule::Unsupported) | None => None,
    };
    let (caller, via) = if let Some(cfa) = cfa {
        let ip = read_at(cfa.wrapping_sub(8))?;
        let bp = match row.map_or(RbpRule::Unsupported, |r| r.rbp) {
            RbpRule::Unchanged => registers.bp,
            RbpRule::CfaOffset(offset) => Some(read_at(cfa.wrapping_add_signed(offset))?),
            RbpRule::Unsupported => None,
        };
        (Registers { ip, sp: cfa, bp }, StepKind::Cfi)
    } else {
        let bp = registers.bp.ok_or(StepError::NoFramePointer)?;
        if bp == 0 {
            return Ok(Step::Outermost);
        }
        let ip = read_at(bp.wrapping_add(8))?;
        let caller_bp = read_at(bp)?;
        let caller = Registers {
            ip,
            sp: bp.wrapping_add(16),
            bp: Some(caller_bp),
        };
        (caller, StepKind::FramePointer)
    };
    if caller.ip == 0 {
        return Ok(Step::Outermost);
    }
    if caller.sp <= registers.sp {
        return Err(StepError::NotAdvancing {
            from: registers.sp,
            to: caller.sp,
        });
    }
    Ok(Step::Caller {
        registers: caller,
        via,
    })
}

/// A table mapped into an address space: `[start, end)` holds code whose ELF virtual
/// addresses are the runtime addresses minus `bias`.
#[derive(Debug, Clone, Copy)]
pub struct Module<'a> {
    /// First runtime address of the executable mapping.
    pub start: u64,
    /// One past its last.
    pub end: u64,
    /// Runtime address minus ELF virtual address.
    pub bias: u64,
    /// The file's rows.
    pub table: &'a UnwindTable,
}

/// How a walk ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalkEnd {
    /// At the outermost frame: the whole stack is there.
    Outermost,
    /// At the frame limit.
    Truncated,
    /// A step failed; the frames before it are there.
    Failed(StepError),
}

/// The frames of one walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Walk {
    /// Instruction pointers, innermost first: the pc, then return addresses.
    pub ips: Vec<u64>,
    /// How the walk ended.
    pub end: WalkEnd,
    /// Steps taken by frame pointers.
    pub frame_pointer_steps: usize,
}

/// Unwinds whole stacks across the modules of one address space.
#[derive(Debug, Clone, Default)]
pub struct Unwinder<'a> {
    modules: Vec<Module<'a>>,
}

impl<'a> Unwinder<'a> {
    /// An unwinder over `modules` (in any order; overlapping ones are a caller's bug and
    /// resolve to one of them).
    pub fn new(mut modules: Vec<Module<'a>>) -> Self {
        modules.sort_by_key(|m| m.start);
        Self { modules }
    }

    /// The row covering runtime address `addr`, if a module's table has one.
    pub fn row(&self, addr: u64) -> Option<&'a UnwindRow> {
        let after = self.modules.partition_point(|m| m.start <= addr);
        let module = self.modules[..after].last().filter(|m| addr < m.end)?;
        module.table.lookup(addr.wrapping_sub(module.bias))
    }

    /// Walks from `registers` (the innermost frame) for at most `max_frames` frames,
    /// reading the stack through `read` (8 bytes at an address, `None` on a fault).
    ///
    /// Callers' rows are looked up at their return address minus one: the call may be
    /// the last instruction of its function, and the return address then already lies
    /// in the next one.
    pub fn walk(
        &self,
        registers: Registers,
        max_frames: usize,
        mut read: impl FnMut(u64) -> Option<u64>,
    ) -> Walk {
        let mut walk = Walk {
            ips: Vec::new(),
            end: WalkEnd::Truncated,
            frame_pointer_steps: 0,
        };
        let mut current = registers;
        while walk.ips.len() < max_frames {
            let innermost = walk.ips.is_empty();
            walk.ips.push(current.ip);
            let lookup = if innermost {
                current.ip
            } else {
                current.ip.wrapping_sub(1)
            };
            match step(self.row(lookup), &current, &mut read) {
                Ok(Step::Caller { registers, via }) => {
                    if via == StepKind::FramePointer {
                        walk.frame_pointer_steps += 1;
                    }
                    current = registers;
                }
                Ok(Step::Outermost) => {
                    walk.end = WalkEnd::Outermost;
                    return walk;
                }
                Err(err) => {
                    walk.end = WalkEnd::Failed(err);
                    return walk;
                }
            }
        }
        walk
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cfa: CfaRule, rbp: RbpRule) -> UnwindRow {
        UnwindRow { pc: 0, cfa, rbp }
    }

    #[test]
    fn cfi_steps_read_the_return_address_at_cfa_minus_8() {
        let stack = |addr: u64| match addr {
            0x1008 => Some(0xdead),
            0x1000 => Some(0x2000),
            _ => None,
        };
        let regs = Registers {
            ip: 0x10,
            sp: 0x0ff0,
            bp: Some(7),
        };
        let rule = row(CfaRule::Rsp(0x20), RbpRule::CfaOffset(-16));
        let expected = Registers {
            ip: 0xdead,
            sp: 0x1010,
            bp: Some(0x2000),
        };
        assert_eq!(
            step(Some(&rule), &regs, &mut { stack }),
            Ok(Step::Caller {
                registers: expected,
                via: StepKind::Cfi
            })
        );
        let undefined = row(CfaRule::Undefined, RbpRule::Unchanged);
        assert_eq!(
            step(Some(&undefined), &regs, &mut { stack }),
            Ok(Step::Outermost)
        );
        let far = row(CfaRule::Rsp(0x100), RbpRule::Unchanged);
        assert_eq!(
            step(Some(&far), &regs, &mut { stack }),
            Err(StepError::Read(0x10e8))
        );
    }

    #[test]
    fn without_a_row_one_frame_pointer_step() {
        let stack = |addr: u64| match addr {
            0x1008 => Some(0xbeef),
            0x1000 => Some(0x1100),
            _ => None,
        };
        let regs = Registers {
            ip: 0x10,
            sp: 0x0f00,
            bp: Some(0x1000),
        };
        let expected = Registers {
            ip: 0xbeef,
            sp: 0x1010,
            bp: Some(0x1100),
        };
        assert_eq!(
            step(None, &regs, &mut { stack }),
            Ok(Step::Caller {
                registers: expected,
                via: StepKind::FramePointer
            })
        );
        let unknown = Registers { bp: None, ..regs };
        assert_eq!(
            step(None, &unknown, &mut { stack }),
            Err(StepError::NoFramePointer)
        );
        let end = Registers {
            bp: Some(0),
            ..regs
        };
        assert_eq!(step(None, &end, &mut { stack }), Ok(Step::Outermost));
        // A frame pointer below the stack pointer would walk down, into a loop.
        let low = Registers { sp: 0x2000, ..regs };
        assert!(matches!(
            step(None, &low, &mut { stack }),
            Err(StepError::NotAdvancing { .. })
        ));
    }

    #[test]
    fn plt_rule_depends_on_the_entry_offset() {
        let stack = |addr: u64| Some(addr + 1);
        let rule = row(CfaRule::Plt, RbpRule::Unchanged);
        let at = |ip| {
            step(
                Some(&rule),
                &Registers {
                    ip,
                    sp: 0x100,
                    bp: None,
                },
                &mut { stack },
            )
        };
        let caller_sp = |s: Result<Step, StepError>| match s {
            Ok(Step::Caller { registers, .. }) => registers.sp,
            other => panic!("{other:?}"),
        };
        assert_eq!(caller_sp(at(0x1000)), 0x108);
        assert_eq!(caller_sp(at(0x100b)), 0x110);
    }
}
