//! Exactly once across the two sources: the kernel log's history and the live lines.
//!
//! The probe reads `/dev/kmsg` to the end (pass 1), attaches the tracepoint, then reads
//! on from where pass 1 stopped (pass 2) and notes the monotonic time `until_ns` once it
//! reached the end again. Both passes are reported as past lines.
//!
//! printk fires `printk:console` before it commits the record, so:
//! - a record of pass 1 was committed before the attach: its tracepoint fired earlier
//!   still, it has no live twin;
//! - a live line whose record is in the history was committed before pass 2 ended, so
//!   its record is in pass 2 and its time stamp is at most `until_ns`.
//!
//! The [`Gate`] holds live lines back while the history is read, then drops each live
//! line stamped at most `until_ns` whose text equals a pass-2 record not yet matched
//! (counting repeats: three identical records absorb at most three live twins). Later
//! lines pass untouched. The one case this cannot tell apart needs two lines of the very
//! same text, one logged in the millisecond between pass 1's end and the attach and one
//! logged, but not yet committed, as pass 2 ended; it would be reported once.

use std::collections::HashMap;

use super::live::LiveLine;

/// Where live lines stand with respect to the history.
#[derive(Debug)]
pub enum Gate {
    /// The history is being read: live lines wait here, in order.
    Holding(Vec<LiveLine>),
    /// The history is reported: live lines pass, except twins of `overlap` records.
    Open {
        /// Texts of the pass-2 records not yet matched, with their counts.
        overlap: HashMap<String, usize>,
        /// Only live lines stamped at or before this can be twins.
        until_ns: u64,
        /// Live lines dropped as twins so far.
        twins: u64,
    },
}

impl Default for Gate {
    fn default() -> Self {
        Self::Holding(Vec::new())
    }
}

impl Gate {
    /// A gate that lets every line through (no history is read).
    pub fn open_now() -> Self {
        Self::Open {
            overlap: HashMap::new(),
            until_ns: 0,
            twins: 0,
        }
    }

    /// Live lines dropped so far because the history had reported them.
    pub fn twins(&self) -> u64 {
        match self {
            Self::Holding(_) => 0,
            Self::Open { twins, .. } => *twins,
        }
    }

    /// Takes one live line: returns it when it is to be reported now.
    pub fn admit(&mut self, line: LiveLine) -> Option<LiveLine> {
        match self {
            Self::Holding(held) => {
                held.push(line);
                None
            }
            Self::Open {
                overlap,
                until_ns,
                twins,
            } => {
                if line.ts_ns > *until_ns {
                    // Logged after the history ended: no twin. (The overlap is kept:
                    // lines of other CPUs may still arrive slightly out of order.)
                    return Some(line);
                }
                match overlap.get_mut(&line.text) {
                    Some(count) if *count > 0 => {
                        *count -= 1;
                        *twins += 1;
                        None
                    }
                    _ => Some(line),
                }
            }
        }
    }

    /// Opens the gate once the history is reported: `overlap` are the texts of the
    /// records pass 2 read, `until_ns` the time pass 2 ended. Returns the held lines to
    /// report, in order.
    pub fn open(
        &mut self,
        overlap: impl IntoIterator<Item = String>,
        until_ns: u64,
    ) -> Vec<LiveLine> {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for text in overlap {
            *counts.entry(text).or_default() += 1;
        }
        let held = match std::mem::replace(
            self,
            Self::Open {
                overlap: counts,
                until_ns,
                twins: 0,
            },
        ) {
            Self::Holding(held) => held,
            Self::Open { .. } => Vec::new(),
        };
        held.into_iter()
            .filter_map(|line| self.admit(line))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(ts_ns: u64, text: &str) -> LiveLine {
        LiveLine {
            ts_ns,
            text: text.to_owned(),
            truncated: false,
        }
    }

    #[test]
    fn held_twins_of_the_history_are_dropped_once_each() {
        let mut gate = Gate::default();
        assert_eq!(gate.admit(line(10, "a")), None);
        assert_eq!(gate.admit(line(11, "a")), None);
        assert_eq!(gate.admit(line(12, "b")), None);
        // Pass 2 saw "a" once and "c" (whose live twin had not arrived yet).
        let passed = gate.open(["a".to_owned(), "c".to_owned()], 20);
        assert_eq!(passed, vec![line(11, "a"), line(12, "b")]);
        assert_eq!(gate.admit(line(15, "c")), None, "late twin still matched");
        assert_eq!(gate.admit(line(16, "c")), Some(line(16, "c")));
        assert_eq!(gate.admit(line(21, "a")), Some(line(21, "a")));
        assert_eq!(gate.twins(), 2);
    }

    #[test]
    fn lines_after_the_window_always_pass() {
        let mut gate = Gate::default();
        assert!(gate.open(["a".to_owned()], 5).is_empty());
        assert_eq!(gate.admit(line(6, "a")), Some(line(6, "a")));
        assert_eq!(
            gate.admit(line(4, "a")),
            None,
            "a twin arriving out of order"
        );
        assert_eq!(gate.admit(line(4, "a")), Some(line(4, "a")));
    }

    #[test]
    fn an_open_gate_passes_everything() {
        let mut gate = Gate::open_now();
        assert_eq!(gate.admit(line(0, "a")), Some(line(0, "a")));
        assert!(gate.open(Vec::new(), 0).is_empty());
    }
}
