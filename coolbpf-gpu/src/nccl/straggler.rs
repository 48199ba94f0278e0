//! The divergence detector: in a communicator whose ranks run on this host, the rank
//! that stopped while the others went on.
//!
//! Every rank of a communicator calls the same collectives in the same order, so their
//! sequence numbers (collectives entered) move together. When the others are at
//! collective #N and one rank is still at an older number, and has been for `stall_ms`,
//! that rank is reported as a straggler, once for that number: the others are waiting for
//! it (in a real run they block inside collective #N, or in the stream sync after it).
//!
//! "For `stall_ms`" is measured from the later of two kernel timestamps: when the rank
//! entered its own latest collective, and when the first other rank entered the next one
//! ([`NcclState::reached`](super::state::NcclState::reached)). A rank that is simply a
//! little behind ranks in step, computing between collectives, is late only since the
//! first of them moved on. A rank is reported only when it was also behind, at the same
//! number, at the previous check: a collective that returned an instant ago may still be
//! in the ring buffer, and must not look like a stall.
//!
//! The check runs at every collect, so the interval bounds how late a report comes:
//! within `stall_ms` plus one interval of the stall when `stall_ms` is at least the
//! interval (the previous check already saw the rank behind), within two intervals more
//! when it is shorter.

use std::collections::{BTreeMap, HashMap};

use super::comm::CommId;
use super::functions::Function;
use super::state::RankKey;

/// An NCCL call a rank is inside of, not returned yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InCall {
    /// The function.
    pub function: &'static Function,
    /// When it was entered, kernel monotonic ns.
    pub since_ns: u64,
    /// The calling thread.
    pub tid: u32,
    /// Its user stack at entry, innermost first.
    pub stack: Vec<u64>,
}

/// One rank as the detector sees it now: what has returned, plus what is in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankView {
    /// The rank.
    pub key: RankKey,
    /// Its process's task name.
    pub task: String,
    /// Its sequence number (a collective in flight counts: it was entered).
    pub seq: u64,
    /// When it entered collective `seq` (or its init), kernel monotonic ns.
    pub advanced_ns: u64,
    /// Alive, with its communicator open: it can be a straggler. A rank that exited or
    /// destroyed its communicator still shows how far the others got.
    pub active: bool,
    /// The NCCL call it is inside of, if any.
    pub in_call: Option<InCall>,
}

/// One communicator's ranks on this host, as they are now.
#[derive(Debug, Clone)]
pub struct CommView {
    /// The communicator.
    pub id: CommId,
    /// Its size.
    pub nranks: i32,
    /// Its ranks here.
    pub ranks: Vec<RankView>,
    /// Collective number to when the first rank entered it.
    pub reached: BTreeMap<u64, u64>,
}

/// A rank found stuck behind the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Straggler {
    /// The communicator.
    pub comm: CommId,
    /// Its size.
    pub nranks: i32,
    /// The straggler.
    pub rank: RankView,
    /// The highest number of its other ranks.
    pub lead_seq: u64,
    /// How long it has been behind without advancing, ns.
    pub stalled_ns: u64,
    /// The ranks ahead of it: (rank, pid, seq).
    pub ahead: Vec<(i32, u32, u64)>,
}

/// Finds stragglers, each once per stall.
#[derive(Debug)]
pub struct Detector {
    stall_ns: u64,
    /// Ranks behind at the last check, and at which number.
    behind: HashMap<RankKey, u64>,
    /// Ranks reported, and at which number.
    reported: HashMap<RankKey, u64>,
}

impl Detector {
    /// A detector that reports a rank stuck behind for `stall_ns`.
    pub fn new(stall_ns: u64) -> Self {
        Self {
            stall_ns,
            behind: HashMap::new(),
            reported: HashMap::new(),
        }
    }

    /// Checks every communicator of `comms` at `now_ns` (kernel monotonic), returning
    /// the stragglers not reported before.
    pub fn check(&mut self, comms: Vec<CommView>, now_ns: u64) -> Vec<Straggler> {
        let mut behind = HashMap::new();
        let mut seen = Vec::new();
        let mut out = Vec::new();
        for comm in comms {
            seen.extend(comm.ranks.iter().map(|r| r.key));
            let Some(lead) = comm.ranks.iter().map(|r| r.seq).max() else {
                continue;
            };
            for rank in comm.ranks.iter().filter(|r| r.active && r.seq < lead) {
                behind.insert(rank.key, rank.seq);
                let Some(stalled_ns) = self.stalled(&comm, rank, now_ns) else {
                    continue;
                };
                let confirmed = self.behind.get(&rank.key) == Some(&rank.seq);
                let reported = self.reported.get(&rank.key) == Some(&rank.seq);
                if !confirmed || reported {
                    continue;
                }
                self.reported.insert(rank.key, rank.seq);
                let ahead = comm
                    .ranks
                    .iter()
                    .filter(|r| r.seq > rank.seq)
                    .map(|r| (r.key.rank, r.key.pid, r.seq))
                    .collect();
                out.push(Straggler {
                    comm: comm.id,
                    nranks: comm.nranks,
                    rank: rank.clone(),
                    lead_seq: lead,
                    stalled_ns,
                    ahead,
                });
            }
        }
        self.behind = behind;
        // Ranks gone from every view cannot stall again: forget them.
        self.reported.retain(|key, _| seen.contains(key));
        out
    }

    /// How long `rank` has been behind without advancing, when that is `stall_ns` or more.
    fn stalled(&self, comm: &CommView, rank: &RankView, now_ns: u64) -> Option<u64> {
        // The next number kept: `seq + 1` itself unless dropped for the cap.
        let others_moved = comm
            .reached
            .range(rank.seq + 1..)
            .next()
            .map_or(rank.advanced_ns, |(_, &ns)| ns);
        let since = rank.advanced_ns.max(others_moved);
        let stalled = now_ns.saturating_sub(since);
        (stalled >= self.stall_ns).then_some(stalled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nccl::state::{note_reached, CommRef};

    const MS: u64 = 1_000_000;

    fn rank(rank: i32, seq: u64, advanced_ms: u64) -> RankView {
        RankView {
            key: RankKey {
                comm: CommRef::Id(CommId(7)),
                pid: 100 + rank as u32,
                rank,
            },
            task: "train".into(),
            seq,
            advanced_ns: advanced_ms * MS,
            active: true,
            in_call: None,
        }
    }

    fn view(ranks: Vec<RankView>, reached: &BTreeMap<u64, u64>) -> Vec<CommView> {
        vec![CommView {
            id: CommId(7),
            nranks: 3,
            ranks,
            reached: reached.clone(),
        }]
    }

    fn reached(entries: &[(u64, u64)]) -> BTreeMap<u64, u64> {
        let mut map = BTreeMap::new();
        for &(seq, ms) in entries {
            note_reached(&mut map, seq, ms * MS);
        }
        map
    }

    #[test]
    fn a_stuck_rank_is_reported_once_per_stall() {
        let mut detector = Detector::new(1000 * MS);
        let reached = reached(&[(4, 100), (5, 110)]);
        let ranks = || vec![rank(0, 5, 110), rank(1, 3, 90), rank(2, 5, 111)];
        // Behind since 100 ms: not yet 1 s at 900 ms, seen behind.
        assert!(detector.check(view(ranks(), &reached), 900 * MS).is_empty());
        let found = detector.check(view(ranks(), &reached), 1200 * MS);
        assert_eq!(found.len(), 1);
        let s = &found[0];
        assert_eq!((s.rank.key.rank, s.rank.seq, s.lead_seq), (1, 3, 5));
        assert_eq!(s.stalled_ns, 1100 * MS);
        assert_eq!(s.ahead, [(0, 100, 5), (2, 102, 5)]);
        assert!(detector
            .check(view(ranks(), &reached), 5000 * MS)
            .is_empty());
        // It moves on, and sticks again: a new report.
        let reached = tests::reached(&[(5, 110), (6, 6000)]);
        let ranks = vec![rank(0, 6, 6000), rank(1, 4, 5000), rank(2, 6, 6001)];
        assert!(detector
            .check(view(ranks.clone(), &reached), 6500 * MS)
            .is_empty());
        assert_eq!(detector.check(view(ranks, &reached), 7100 * MS).len(), 1);
    }

    #[test]
    fn ranks_in_step_with_long_compute_are_not_stragglers() {
        let mut detector = Detector::new(1000 * MS);
        // All at 9 for a minute; rank 0 entered number 10 a moment ago.
        let reached = reached(&[(10, 60_000)]);
        let ranks = vec![rank(0, 10, 60_000), rank(1, 9, 0), rank(2, 9, 0)];
        for now in [60_001, 60_500, 60_900] {
            assert!(detector
                .check(view(ranks.clone(), &reached), now * MS)
                .is_empty());
        }
    }

    #[test]
    fn a_rank_must_be_seen_behind_twice_and_be_active() {
        let mut detector = Detector::new(1000 * MS);
        let reached = reached(&[(4, 0)]);
        let ranks = vec![rank(0, 4, 0), rank(1, 3, 0)];
        assert!(detector
            .check(view(ranks.clone(), &reached), 9000 * MS)
            .is_empty());
        let mut exited = ranks.clone();
        exited[1].active = false;
        assert!(detector.check(view(exited, &reached), 9500 * MS).is_empty());
        assert!(detector
            .check(view(ranks.clone(), &reached), 9600 * MS)
            .is_empty());
        assert_eq!(detector.check(view(ranks, &reached), 9700 * MS).len(), 1);
    }

    #[test]
    fn all_equal_and_single_ranks_never_report() {
        let mut detector = Detector::new(MS);
        let reached = reached(&[(3, 0)]);
        for _ in 0..3 {
            let equal = vec![rank(0, 3, 0), rank(1, 3, 0), rank(2, 3, 0)];
            assert!(detector.check(view(equal, &reached), 9000 * MS).is_empty());
            assert!(detector
                .check(view(vec![rank(0, 1, 0)], &reached), 9000 * MS)
                .is_empty());
            assert!(detector
                .check(view(Vec::new(), &reached), 9000 * MS)
                .is_empty());
        }
    }
}
