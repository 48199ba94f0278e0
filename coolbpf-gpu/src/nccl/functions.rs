//! The NCCL functions the `nccl` probe traces, and where their arguments are.
//!
//! Arguments follow the x86-64 System V calling convention: the first six integer
//! arguments in registers (`args[0..6]` of a [`CallRecord`](crate::calls::CallRecord)),
//! the rest on the stack above the return address (`args[6]` on). A struct of more than
//! 16 bytes passed by value takes no register: `ncclCommInitRank(comm, nranks,
//! ncclUniqueId commId, rank)` passes its 128-byte id on the stack and `rank` in the third
//! register.
//!
//! libnccl exports every function twice, `ncclX` as a weak alias of `pncclX` (the
//! profiling interface) at the same address. Only `ncclX` is traced: one uprobe per
//! address, so a call counts once whichever name the caller used.

use crate::calls::CallFlags;

/// What a traced function does, which says how to read its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A collective: every rank of the communicator calls it, in the same order. Each
    /// one advances the rank's sequence number.
    Collective(Transfer),
    /// `ncclSend` / `ncclRecv`: point to point, between two ranks only, so the ranks'
    /// numbers of them legitimately differ (a pipeline's first stage only sends). Counted,
    /// but not in the sequence.
    PointToPoint(Transfer),
    /// `ncclGroupStart()` / `ncclGroupEnd()`.
    Group,
    /// `ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId id, int rank)`, and
    /// `ncclCommInitRankConfig(..., rank, ncclConfig_t *config)`.
    Init,
    /// `ncclCommDestroy(comm)` / `ncclCommAbort(comm)`.
    Close,
}

/// Where a data-moving call keeps its arguments (indices into the argument words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    /// The element count.
    pub count: usize,
    /// The `ncclDataType_t`.
    pub dtype: usize,
    /// The `ncclRedOp_t`, for reductions.
    pub redop: Option<usize>,
    /// The root (`ncclBroadcast`, `ncclReduce`) or peer (`ncclSend`, `ncclRecv`) rank.
    pub peer: Option<usize>,
    /// The `ncclComm_t`.
    pub comm: usize,
}

/// One traced function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Function {
    /// The symbol in libnccl.
    pub symbol: &'static str,
    /// The operation as records name it: NCCL's own name (`AllReduce`), or the symbol
    /// for the calls that move no data.
    pub op: &'static str,
    /// How to read it.
    pub role: Role,
}

impl Function {
    /// What `calls.bpf.c` must capture: always the caller's stack (a straggler report
    /// shows where its rank last called NCCL); for init the handle made (`*comm` at
    /// return) and the start of the id passed by value.
    pub fn flags(&self) -> CallFlags {
        match self.role {
            Role::Init => CallFlags::STACK
                .with(CallFlags::DEREF_ARG0)
                .with(CallFlags::BLOB_STACK),
            _ => CallFlags::STACK,
        }
    }

    /// Whether it advances the sequence number.
    pub fn is_collective(&self) -> bool {
        matches!(self.role, Role::Collective(_))
    }
}

const fn transfer(
    count: usize,
    redop: Option<usize>,
    peer: Option<usize>,
    comm: usize,
) -> Transfer {
    Transfer {
        count,
        dtype: count + 1,
        redop,
        peer,
        comm,
    }
}

const fn collective(symbol: &'static str, op: &'static str, args: Transfer) -> Function {
    Function {
        symbol,
        op,
        role: Role::Collective(args),
    }
}

const fn other(symbol: &'static str, role: Role) -> Function {
    Function {
        symbol,
        op: symbol,
        role,
    }
}

/// Every function the probe traces; a function's id is its index here.
pub const FUNCTIONS: &[Function] = &[
    // (sendbuff, recvbuff, count, datatype, op, comm, stream)
    collective("ncclAllReduce", "AllReduce", transfer(2, Some(4), None, 5)),
    // (sendbuff, recvbuff, sendcount, datatype, comm, stream)
    collective("ncclAllGather", "AllGather", transfer(2, None, None, 4)),
    // (sendbuff, recvbuff, recvcount, datatype, op, comm, stream)
    collective(
        "ncclReduceScatter",
        "ReduceScatter",
        transfer(2, Some(4), None, 5),
    ),
    // (sendbuff, recvbuff, count, datatype, root, comm, stream)
    collective("ncclBroadcast", "Broadcast", transfer(2, None, Some(4), 5)),
    // (sendbuff, recvbuff, count, datatype, op, root, comm, stream): comm on the stack
    collective("ncclReduce", "Reduce", transfer(2, Some(4), Some(5), 6)),
    // (buff, count, datatype, peer, comm, stream)
    Function {
        symbol: "ncclSend",
        op: "Send",
        role: Role::PointToPoint(transfer(1, None, Some(3), 4)),
    },
    Function {
        symbol: "ncclRecv",
        op: "Recv",
        role: Role::PointToPoint(transfer(1, None, Some(3), 4)),
    },
    other("ncclGroupStart", Role::Group),
    other("ncclGroupEnd", Role::Group),
    other("ncclCommInitRank", Role::Init),
    other("ncclCommInitRankConfig", Role::Init),
    other("ncclCommDestroy", Role::Close),
    other("ncclCommAbort", Role::Close),
];

/// The function with id `id`.
pub fn by_id(id: u16) -> Option<&'static Function> {
    FUNCTIONS.get(usize::from(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_fit_the_cookie_and_symbols_are_unique() {
        assert!(FUNCTIONS.len() < 0x8000);
        for (i, f) in FUNCTIONS.iter().enumerate() {
            assert_eq!(FUNCTIONS.iter().filter(|g| g.symbol == f.symbol).count(), 1);
            assert_eq!(by_id(i as u16), Some(f));
            assert!(f.symbol.starts_with("nccl"), "never the pnccl aliases");
        }
    }

    #[test]
    fn arguments_stay_inside_the_captured_words() {
        for f in FUNCTIONS {
            if let Role::Collective(t) | Role::PointToPoint(t) = f.role {
                let max = [Some(t.count), Some(t.dtype), t.redop, t.peer, Some(t.comm)];
                assert!(max.iter().flatten().all(|&i| i < crate::calls::MAX_ARGS));
            }
        }
        let init = FUNCTIONS.iter().find(|f| f.role == Role::Init).unwrap();
        assert!(init
            .flags()
            .has(CallFlags::BLOB_STACK.with(CallFlags::DEREF_ARG0)));
    }
}
