//! [`NcclState`]: what the `nccl` probe learns from the calls it sees: which handle is
//! which communicator and rank, counts and bytes, and each rank's sequence number.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use super::call::{Data, NcclCall};
use super::comm::CommId;
use super::functions::Function;
use crate::calls::CallRecord;

/// First-reached times kept per communicator at most (see [`NcclState::reached`]).
pub const REACHED_CAP: usize = 4096;

/// A communicator as records name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CommRef {
    /// Known from its init: the same name in every rank, on every host.
    Id(CommId),
    /// A handle whose init was not seen (made before the probe started, or by a
    /// function not traced such as `ncclCommSplit`): known in its process only.
    Handle(u64),
}

impl fmt::Display for CommRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => id.fmt(f),
            Self::Handle(handle) => write!(f, "handle:{handle:#x}"),
        }
    }
}

/// A rank of a communicator, in one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RankKey {
    /// The communicator (first, so that a communicator's ranks sort together).
    pub comm: CommRef,
    /// The rank's process.
    pub pid: u32,
    /// The rank; -1 when the init was not seen.
    pub rank: i32,
}

/// What is known of one rank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankState {
    /// Ranks in its communicator; -1 when the init was not seen.
    pub nranks: i32,
    /// Its process's task name.
    pub task: String,
    /// Collectives it entered (and that returned): its sequence number.
    pub seq: u64,
    /// When it entered its latest collective (or its init), kernel monotonic ns.
    pub advanced_ns: u64,
    /// Its communicator was destroyed or aborted.
    pub closed: bool,
}

/// Counts of one kind of data call, per rank.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CountKey {
    /// The rank.
    pub rank: RankKey,
    /// Ranks in the communicator, -1 when not known.
    pub nranks: i32,
    /// The operation (`AllReduce`, `Send`, ...).
    pub op: &'static str,
    /// The reduction (`sum`), `none`, or a number.
    pub redop: String,
    /// The data type (`float32`), or a number.
    pub dtype: String,
}

/// Calls and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Calls.
    pub calls: u64,
    /// Bytes ([`Data::bytes`]); calls of an unknown data type add none.
    pub bytes: u64,
}

/// A process's latest NCCL call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastCall {
    /// The function.
    pub function: &'static Function,
    /// When it was entered.
    pub entry_ns: u64,
    /// The calling thread.
    pub tid: u32,
    /// Its user stack, innermost first.
    pub stack: Vec<u64>,
}

/// A handle's communicator and rank, from its init.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// The communicator.
    pub id: CommId,
    /// This rank.
    pub rank: i32,
    /// Ranks in it.
    pub nranks: i32,
}

/// Where a call stands: its communicator, rank and, for a collective, its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The rank.
    pub rank: RankKey,
    /// Ranks in the communicator, -1 when not known.
    pub nranks: i32,
    /// The collective's sequence number in its rank (1 for the first).
    pub seq: Option<u64>,
}

/// Everything learnt so far (cumulative since the probe started).
#[derive(Debug, Default)]
pub struct NcclState {
    /// (pid, handle) to the communicator and rank its init made.
    pub members: HashMap<(u32, u64), Member>,
    /// Data calls per rank and kind.
    pub counts: BTreeMap<CountKey, Counts>,
    /// Every rank seen.
    pub ranks: BTreeMap<RankKey, RankState>,
    /// Per communicator: collective number to when the first rank entered it. What a
    /// rank behind is compared with: it is late since the others got ahead, not since
    /// its own last collective (ranks in step that compute for a minute between
    /// collectives are not late). Numbers every rank has passed are dropped, and at most
    /// [`REACHED_CAP`] are kept.
    pub reached: HashMap<CommId, BTreeMap<u64, u64>>,
    /// Each process's latest call.
    pub last_call: HashMap<u32, LastCall>,
    /// Failed calls per (pid, function, `ncclResult_t`).
    pub errors: BTreeMap<(u32, &'static str, i64), u64>,
}

impl NcclState {
    /// Adds one returned call of `function`; says where it stands when it is a data
    /// call or an init.
    pub fn add(&mut self, function: &'static Function, record: &CallRecord) -> Option<Position> {
        self.last_call.insert(
            record.pid,
            LastCall {
                function,
                entry_ns: record.entry_ns,
                tid: record.tid,
                stack: record.stack.clone(),
            },
        );
        if record.return_ns.is_some() && record.ret != 0 {
            *self
                .errors
                .entry((record.pid, function.symbol, record.ret))
                .or_default() += 1;
        }
        match NcclCall::decode(function, record) {
            NcclCall::Data { collective, data } => {
                Some(self.add_data(function, record, collective, &data))
            }
            NcclCall::Init {
                nranks,
                rank,
                id: Some(id),
                handle: Some(handle),
            } => {
                let member = Member { id, rank, nranks };
                self.members.insert((record.pid, handle), member);
                let key = RankKey {
                    comm: CommRef::Id(id),
                    pid: record.pid,
                    rank,
                };
                self.ranks.entry(key).or_insert_with(|| RankState {
                    nranks,
                    task: record.comm.clone(),
                    seq: 0,
                    advanced_ns: record.entry_ns,
                    closed: false,
                });
                Some(Position {
                    rank: key,
                    nranks,
                    seq: None,
                })
            }
            NcclCall::Close { comm } => {
                if let Some(member) = self.members.remove(&(record.pid, comm)) {
                    let key = RankKey {
                        comm: CommRef::Id(member.id),
                        pid: record.pid,
                        rank: member.rank,
                    };
                    if let Some(rank) = self.ranks.get_mut(&key) {
                        rank.closed = true;
                    }
                }
                None
            }
            NcclCall::Init { .. } | NcclCall::Group => None,
        }
    }

    /// The rank a call on `handle` in process `pid` belongs to, and its communicator's size.
    pub fn rank_of(&self, pid: u32, handle: u64) -> (RankKey, i32) {
        match self.members.get(&(pid, handle)) {
            Some(m) => (
                RankKey {
                    comm: CommRef::Id(m.id),
                    pid,
                    rank: m.rank,
                },
                m.nranks,
            ),
            None => (
                RankKey {
                    comm: CommRef::Handle(handle),
                    pid,
                    rank: -1,
                },
                -1,
            ),
        }
    }

    fn add_data(
        &mut self,
        function: &'static Function,
        record: &CallRecord,
        collective: bool,
        data: &Data,
    ) -> Position {
        let (rank, nranks) = self.rank_of(record.pid, data.comm);
        let key = CountKey {
            rank,
            nranks,
            op: function.op,
            redop: data.redop_name(),
            dtype: data.dtype_name(),
        };
        let counts = self.counts.entry(key).or_default();
        counts.calls += 1;
        counts.bytes = counts.bytes.saturating_add(data.bytes().unwrap_or(0));
        if !collective {
            return Position {
                rank,
                nranks,
                seq: None,
            };
        }
        let state = self.ranks.entry(rank).or_insert_with(|| RankState {
            nranks,
            task: record.comm.clone(),
            seq: 0,
            advanced_ns: record.entry_ns,
            closed: false,
        });
        state.seq += 1;
        state.advanced_ns = state.advanced_ns.max(record.entry_ns);
        let seq = state.seq;
        if let CommRef::Id(id) = rank.comm {
            let min_seq = self.ranks_of(id).map(|(_, r)| r.seq).min().unwrap_or(0);
            let reached = self.reached.entry(id).or_default();
            note_reached(reached, seq, record.entry_ns);
            // Kept: what a rank at the lowest number still needs (the next one) onward.
            while reached
                .first_key_value()
                .is_some_and(|(&n, _)| n <= min_seq)
            {
                reached.pop_first();
            }
        }
        Position {
            rank,
            nranks,
            seq: Some(seq),
        }
    }

    /// The ranks of communicator `id`.
    pub fn ranks_of(&self, id: CommId) -> impl Iterator<Item = (&RankKey, &RankState)> {
        let first = RankKey {
            comm: CommRef::Id(id),
            pid: 0,
            rank: i32::MIN,
        };
        let last = RankKey {
            comm: CommRef::Id(id),
            pid: u32::MAX,
            rank: i32::MAX,
        };
        self.ranks.range(first..=last)
    }
}

/// Notes that some rank entered collective `seq` at `ns` (records come in return order,
/// not entry order: the earliest entry wins), keeping at most [`REACHED_CAP`] numbers. A
/// number dropped for the cap makes a rank that needs it look late since the next one
/// kept, later than it really was: detection is delayed, never early.
pub fn note_reached(reached: &mut BTreeMap<u64, u64>, seq: u64, ns: u64) {
    reached
        .entry(seq)
        .and_modify(|first| *first = (*first).min(ns))
        .or_insert(ns);
    while reached.len() > REACHED_CAP {
        reached.pop_first();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nccl::functions::FUNCTIONS;

    fn function(symbol: &str) -> &'static Function {
        FUNCTIONS.iter().find(|f| f.symbol == symbol).unwrap()
    }

    fn init(pid: u32, rank: i32, id_word: u64, handle: u64) -> CallRecord {
        CallRecord {
            pid,
            comm: "train".into(),
            entry_ns: 10,
            return_ns: Some(20),
            ret: 1,
            args: [0x7ff0, 2, rank as u64, 0, 0, 0, 0, 0, 0, 0, 0],
            blob: Some([id_word, 0, 0, 0, 0, 0]),
            deref: Some(handle),
            ..CallRecord::default()
        }
    }

    fn all_reduce(pid: u32, handle: u64, at: u64) -> CallRecord {
        CallRecord {
            pid,
            entry_ns: at,
            return_ns: Some(at + 1),
            args: [1, 2, 1024, 7, 0, handle, 0, 0, 0, 0, 0],
            ..CallRecord::default()
        }
    }

    #[test]
    fn ranks_share_the_id_and_count_their_collectives() {
        let mut state = NcclState::default();
        state.add(function("ncclCommInitRank"), &init(1, 0, 42, 0xa));
        state.add(function("ncclCommInitRank"), &init(2, 1, 42, 0xb));
        let p = state
            .add(function("ncclAllReduce"), &all_reduce(1, 0xa, 100))
            .unwrap();
        assert_eq!((p.rank.rank, p.nranks, p.seq), (0, 2, Some(1)));
        state.add(function("ncclAllReduce"), &all_reduce(1, 0xa, 200));
        state.add(function("ncclAllReduce"), &all_reduce(2, 0xb, 150));
        let id = CommId::from_words(&[42, 0, 0, 0, 0, 0]);
        let seqs: Vec<u64> = state.ranks_of(id).map(|(_, r)| r.seq).collect();
        assert_eq!(seqs, [2, 1]);
        // Rank 1 passed number 1: only number 2 is still needed.
        assert_eq!(state.reached[&id].keys().copied().collect::<Vec<_>>(), [2]);
        let counts: Vec<_> = state
            .counts
            .iter()
            .map(|(k, c)| (k.rank.rank, *c))
            .collect();
        assert_eq!(
            counts[0],
            (
                0,
                Counts {
                    calls: 2,
                    bytes: 8192
                }
            )
        );
        assert_eq!(state.errors[&(1, "ncclCommInitRank", 1)], 1);
    }

    #[test]
    fn unknown_handles_are_named_by_handle_and_close_ends_a_rank() {
        let mut state = NcclState::default();
        let p = state
            .add(function("ncclAllReduce"), &all_reduce(1, 0xc, 5))
            .unwrap();
        assert_eq!(p.rank.comm, CommRef::Handle(0xc));
        assert_eq!(p.rank.comm.to_string(), "handle:0xc");
        state.add(function("ncclCommInitRank"), &init(1, 0, 42, 0xa));
        let close = CallRecord {
            pid: 1,
            args: [0xa, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            return_ns: Some(1),
            ..CallRecord::default()
        };
        state.add(function("ncclCommDestroy"), &close);
        assert!(state.members.is_empty());
        assert!(state.ranks.values().any(|r| r.closed));
    }

    #[test]
    fn reached_keeps_the_earliest_entry_and_a_cap() {
        let mut reached = BTreeMap::new();
        note_reached(&mut reached, 1, 50);
        note_reached(&mut reached, 1, 40);
        assert_eq!(reached[&1], 40);
        for n in 0..(REACHED_CAP as u64 + 10) {
            note_reached(&mut reached, n + 2, n);
        }
        assert_eq!(reached.len(), REACHED_CAP);
    }
}
