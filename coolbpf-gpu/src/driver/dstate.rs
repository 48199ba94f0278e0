//! The D-state detector's bookkeeping: since when each thread of a watched process has
//! been seen in uninterruptible sleep, and which of them are due for a report.
//!
//! States are sampled once per interval, so "since" is the first sample that saw D: a
//! thread is reported between T and T plus two intervals after it entered D, once per
//! stretch in D (a thread seen out of D and back in starts a new stretch).

use std::collections::HashMap;

/// One thread as one round of sampling saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Process id.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Whether it was in D state.
    pub in_d: bool,
}

#[derive(Debug, Clone, Copy)]
struct Stretch {
    since_ns: u64,
    reported: bool,
}

/// A thread due for a report: in D since `since_ns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// Process id.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// When it was first seen in D, monotonic ns.
    pub since_ns: u64,
}

/// Since when each thread has been in D.
#[derive(Debug, Default)]
pub struct DStates {
    stretches: HashMap<u32, Stretch>,
}

impl DStates {
    /// Takes one round of samples at `now_ns` and returns the threads in D for at least
    /// `threshold_ns` that were not reported yet (they count as reported from now on).
    /// Threads absent from the round (gone, or their process no longer watched) are
    /// forgotten.
    pub fn round(&mut self, samples: &[Sample], now_ns: u64, threshold_ns: u64) -> Vec<Due> {
        let mut next = HashMap::with_capacity(samples.len());
        let mut due = Vec::new();
        for sample in samples.iter().filter(|s| s.in_d) {
            let mut stretch = self.stretches.get(&sample.tid).copied().unwrap_or(Stretch {
                since_ns: now_ns,
                reported: false,
            });
            if !stretch.reported && now_ns.saturating_sub(stretch.since_ns) >= threshold_ns {
                stretch.reported = true;
                due.push(Due {
                    pid: sample.pid,
                    tid: sample.tid,
                    since_ns: stretch.since_ns,
                });
            }
            next.insert(sample.tid, stretch);
        }
        self.stretches = next;
        due
    }

    /// How many threads are in D now.
    pub fn in_d(&self) -> usize {
        self.stretches.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(tid: u32, in_d: bool) -> Sample {
        Sample { pid: 1, tid, in_d }
    }

    #[test]
    fn reports_once_per_stretch_after_the_threshold() {
        let mut d = DStates::default();
        let t = 1000;
        assert!(d.round(&[s(5, true), s(6, false)], 0, t).is_empty());
        assert_eq!(d.in_d(), 1);
        assert!(d.round(&[s(5, true)], 999, t).is_empty());
        let due = d.round(&[s(5, true), s(6, true)], 1000, t);
        assert_eq!(
            due,
            [Due {
                pid: 1,
                tid: 5,
                since_ns: 0
            }]
        );
        // Still in D: not again. Thread 6 reaches the threshold later.
        assert!(d.round(&[s(5, true), s(6, true)], 1500, t).is_empty());
        assert_eq!(d.round(&[s(5, true), s(6, true)], 2000, t)[0].tid, 6);
        // Out of D, then back: a new stretch, reported again after the threshold.
        assert!(d.round(&[s(5, false)], 2100, t).is_empty());
        assert_eq!(d.in_d(), 0);
        assert!(d.round(&[s(5, true)], 2200, t).is_empty());
        assert_eq!(d.round(&[s(5, true)], 3200, t)[0].since_ns, 2200);
        // A thread that disappears is forgotten.
        assert!(d.round(&[], 3300, t).is_empty());
        assert_eq!(d.in_d(), 0);
    }
}
