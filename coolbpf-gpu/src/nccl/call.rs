//! [`NcclCall`]: a [`CallRecord`] of an NCCL function, read per its signature.

use super::comm::CommId;
use super::functions::{Function, Role, Transfer};
use super::types;
use crate::calls::CallRecord;

/// The data a collective or point-to-point call moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Data {
    /// The `count` argument: elements per rank for `AllGather` (`sendcount`) and
    /// `ReduceScatter` (`recvcount`), of the whole buffer for the others.
    pub count: u64,
    /// The `ncclDataType_t` number.
    pub dtype: u32,
    /// The `ncclRedOp_t` number, for reductions.
    pub redop: Option<u32>,
    /// Root or peer rank.
    pub peer: Option<i32>,
    /// The communicator handle.
    pub comm: u64,
}

impl Data {
    /// `count` times the element size: what this rank passes (see [`count`](Self::count));
    /// `None` for a data type `nccl.h` does not define.
    pub fn bytes(&self) -> Option<u64> {
        types::dtype_size(self.dtype).map(|size| size.saturating_mul(self.count))
    }

    /// The data type as a label.
    pub fn dtype_name(&self) -> String {
        types::dtype_name(self.dtype)
    }

    /// The reduction as a label; `none` for calls that reduce nothing.
    pub fn redop_name(&self) -> String {
        self.redop
            .map_or_else(|| "none".to_owned(), types::redop_name)
    }
}

/// One NCCL call, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NcclCall {
    /// A collective (advances the sequence) or a send/receive (does not).
    Data {
        /// Whether it is a collective.
        collective: bool,
        /// Its arguments.
        data: Data,
    },
    /// A communicator made (or not: `result` says).
    Init {
        /// Ranks in the communicator.
        nranks: i32,
        /// This one's rank.
        rank: i32,
        /// The communicator, from its `ncclUniqueId`; `None` when the id could not be read.
        id: Option<CommId>,
        /// `*comm` at return: the new handle (or what the caller left there when init
        /// failed); `None` when not readable or not returned yet.
        handle: Option<u64>,
    },
    /// `ncclCommDestroy` / `ncclCommAbort` of a handle.
    Close {
        /// The handle.
        comm: u64,
    },
    /// `ncclGroupStart` / `ncclGroupEnd`.
    Group,
}

/// An `int` argument: the low half of its register (the high half is not defined).
fn int(record: &CallRecord, arg: usize) -> i32 {
    record.arg_u32(arg, false) as i32
}

fn data(record: &CallRecord, t: Transfer) -> Data {
    Data {
        count: record.args[t.count],
        dtype: record.arg_u32(t.dtype, false),
        redop: t.redop.map(|i| record.arg_u32(i, false)),
        peer: t.peer.map(|i| int(record, i)),
        comm: record.args[t.comm],
    }
}

impl NcclCall {
    /// Reads `record` as a call of `function`.
    pub fn decode(function: &Function, record: &CallRecord) -> Self {
        match function.role {
            Role::Collective(t) => Self::Data {
                collective: true,
                data: data(record, t),
            },
            Role::PointToPoint(t) => Self::Data {
                collective: false,
                data: data(record, t),
            },
            Role::Init => Self::Init {
                nranks: int(record, 1),
                rank: int(record, 2),
                id: record.blob.as_ref().map(|words| CommId::from_words(words)),
                handle: record.deref,
            },
            Role::Close => Self::Close {
                comm: record.args[0],
            },
            Role::Group => Self::Group,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nccl::functions::FUNCTIONS;

    fn function(symbol: &str) -> &'static Function {
        FUNCTIONS.iter().find(|f| f.symbol == symbol).unwrap()
    }

    #[test]
    fn a_reduce_reads_its_comm_from_the_stack() {
        let mut record = CallRecord::default();
        // sendbuff, recvbuff, count, float64, max, root 1, comm, stream; the high halves
        // of int registers are garbage.
        record.args[..8].copy_from_slice(&[1, 2, 100, 0xdead_0000_0008, 2, 1, 0xc0, 0x57]);
        let NcclCall::Data { collective, data } = NcclCall::decode(function("ncclReduce"), &record)
        else {
            panic!("not data");
        };
        assert!(collective);
        assert_eq!((data.count, data.dtype, data.redop), (100, 8, Some(2)));
        assert_eq!((data.peer, data.comm), (Some(1), 0xc0));
        assert_eq!(data.bytes(), Some(800));
        assert_eq!(
            (data.dtype_name(), data.redop_name()),
            ("float64".into(), "max".into())
        );
    }

    #[test]
    fn unknown_types_and_ops_are_numbers_without_bytes() {
        let mut record = CallRecord::default();
        record.args[..7].copy_from_slice(&[0, 0, 10, 99, 42, 0xc0, 0]);
        let NcclCall::Data { data, .. } = NcclCall::decode(function("ncclAllReduce"), &record)
        else {
            panic!("not data");
        };
        assert_eq!(data.bytes(), None);
        assert_eq!(
            (data.dtype_name(), data.redop_name()),
            ("99".into(), "42".into())
        );
        let NcclCall::Data { data, .. } = NcclCall::decode(function("ncclAllGather"), &record)
        else {
            panic!("not data");
        };
        assert_eq!(data.redop_name(), "none");
    }

    #[test]
    fn init_reads_rank_from_the_third_register_and_the_id_from_the_stack() {
        let record = CallRecord {
            args: [0x7ff0, 3, 2, 0, 0, 0, 0, 0, 0, 0, 0],
            blob: Some([7, 0, 0, 0, 0, 0]),
            deref: Some(0x5e),
            ..CallRecord::default()
        };
        let call = NcclCall::decode(function("ncclCommInitRank"), &record);
        let id = CommId::from_words(&[7, 0, 0, 0, 0, 0]);
        assert_eq!(
            call,
            NcclCall::Init {
                nranks: 3,
                rank: 2,
                id: Some(id),
                handle: Some(0x5e)
            }
        );
    }
}
