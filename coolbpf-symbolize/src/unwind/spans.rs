//! Address ranges with their rules, and how they become a sorted table of rows: overlaps
//! clipped, lower-priority sources filling only the gaps, explicit "no info" rows where
//! nothing covers the code, and consecutive identical rows merged.
//!
//! Spans are collected first and clipped once, by a sweep over them sorted by start (a
//! library has hundreds of thousands of CFI rows: clipping each as it comes, in an
//! ordered map, was most of a whole-machine profiler's CPU time on a busy machine).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::row::{CfaRule, RbpRule, UnwindRow};

/// `[start, end)` unwinds by these rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) cfa: CfaRule,
    pub(crate) rbp: RbpRule,
}

/// Spans, best first: each later one only fills what the earlier ones left uncovered.
#[derive(Debug, Default)]
pub(crate) struct Coverage {
    /// Clipped already: sorted by start, disjoint, and ahead of every pending span.
    clipped: Vec<Span>,
    /// Added since, in priority order; `true` where overlap with earlier spans counts in
    /// [`Self::overlapped_bytes`].
    pending: Vec<(Span, bool)>,
    /// Bytes of added spans that were already covered (overlapping FDEs).
    overlapped_bytes: u64,
}

impl Coverage {
    /// Adds the parts of `span` that nothing added before covers; what it overlaps is
    /// counted.
    pub(crate) fn fill(&mut self, span: Span) {
        if span.start < span.end {
            self.pending.push((span, true));
        }
    }

    /// Adds the parts of `span` that nothing covers, as a fallback: what is covered
    /// already is not counted as overlap. Returns how many of its bytes were covered.
    pub(crate) fn fill_gaps(&mut self, span: Span) -> u64 {
        if span.start >= span.end {
            return 0;
        }
        self.clip();
        let covered = self.covered_bytes(span.start, span.end);
        self.pending.push((span, false));
        covered
    }

    /// Bytes of added spans that were already covered by earlier ones (saturating:
    /// corrupt FDEs can claim ranges near the whole address space, over and over).
    pub(crate) fn overlapped_bytes(&mut self) -> u64 {
        self.clip();
        self.overlapped_bytes
    }

    /// How many bytes of `[start, end)` the clipped spans cover.
    fn covered_bytes(&self, start: u64, end: u64) -> u64 {
        let first = self.clipped.partition_point(|s| s.end <= start);
        self.clipped[first..]
            .iter()
            .take_while(|s| s.start < end)
            .map(|s| s.end.min(end) - s.start.max(start))
            .sum()
    }

    /// Clips the pending spans into the clipped ones: a sweep over every span by start,
    /// where at each point the earliest-added span that covers it wins.
    fn clip(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let pending = self.pending.len();
        let spans: Vec<(Span, bool)> = std::mem::take(&mut self.clipped)
            .into_iter()
            .map(|span| (span, false))
            .chain(std::mem::take(&mut self.pending))
            .collect();
        // Most files list their FDEs in address order, without overlaps: nothing to clip.
        if spans
            .windows(2)
            .all(|pair| pair[0].0.end <= pair[1].0.start)
        {
            self.clipped = spans.into_iter().map(|(span, _)| span).collect();
            return;
        }
        let by_start = order_by_start(&spans, spans.len() - pending);
        let mut kept = vec![0u64; spans.len()];
        // Spans covering the current point, best (earliest added) on top; ones that
        // ended are dropped when they reach the top.
        let mut active: BinaryHeap<Reverse<usize>> = BinaryHeap::new();
        let mut out: Vec<(Span, usize)> = Vec::with_capacity(spans.len());
        let mut next = 0;
        let mut point = 0;
        loop {
            while let Some(&i) = by_start.get(next).filter(|&&i| spans[i].0.start <= point) {
                active.push(Reverse(i));
                next += 1;
            }
            while active
                .peek()
                .is_some_and(|&Reverse(i)| spans[i].0.end <= point)
            {
                active.pop();
            }
            let upcoming = by_start.get(next).map(|&i| spans[i].0.start);
            let Some(&Reverse(winner)) = active.peek() else {
                match upcoming {
                    Some(start) => {
                        point = start;
                        continue;
                    }
                    None => break,
                }
            };
            let end = upcoming.map_or(spans[winner].0.end, |s| s.min(spans[winner].0.end));
            kept[winner] += end - point;
            match out.last_mut() {
                Some((last, from)) if *from == winner && last.end == point => last.end = end,
                _ => out.push((
                    Span {
                        start: point,
                        end,
                        ..spans[winner].0
                    },
                    winner,
                )),
            }
            point = end;
        }
        for ((span, counts), kept) in spans.iter().zip(kept) {
            if *counts {
                let lost = (span.end - span.start) - kept;
                self.overlapped_bytes = self.overlapped_bytes.saturating_add(lost);
            }
        }
        self.clipped = out.into_iter().map(|(span, _)| span).collect();
    }

    /// The rows: one per span (merged with the previous row when it unwinds the same
    /// way and follows it without a gap), a no-info row at every gap, and one closing
    /// no-info row past the last span.
    pub(crate) fn into_rows(mut self) -> Vec<UnwindRow> {
        self.clip();
        let mut rows: Vec<UnwindRow> = Vec::with_capacity(self.clipped.len() + 1);
        let mut end = None;
        for span in self.clipped {
            if end.is_some_and(|end| end != span.start) {
                rows.extend(end.map(UnwindRow::no_info));
            }
            let row = UnwindRow {
                pc: span.start,
                cfa: span.cfa,
                rbp: span.rbp,
            };
            if !rows.last().is_some_and(|last| last.same_rules(&row)) {
                rows.push(row);
            }
            end = Some(span.end);
        }
        rows.extend(end.map(UnwindRow::no_info));
        rows
    }
}

/// The indexes of `spans` ordered by (start, index), where the first `clipped` are sorted
/// already: only the rest is sorted (when it is not in order already), then the two merged.
fn order_by_start(spans: &[(Span, bool)], clipped: usize) -> Vec<usize> {
    let key = |i: usize| (spans[i].0.start, i);
    let mut rest: Vec<(u64, usize)> = (clipped..spans.len()).map(key).collect();
    if !rest.is_sorted() {
        rest.sort_unstable();
    }
    let mut order = Vec::with_capacity(spans.len());
    let mut done = (0..clipped).map(key).peekable();
    let mut rest = rest.into_iter().peekable();
    loop {
        let take_done = match (done.peek(), rest.peek()) {
            (Some(a), Some(b)) => a < b,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let next = if take_done { done.next() } else { rest.next() };
        order.extend(next.map(|(_, i)| i));
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlaps_of_huge_ranges_saturate_the_count() {
        let mut coverage = Coverage::default();
        for _ in 0..3 {
            coverage.fill(span(0, u64::MAX, 8));
        }
        assert_eq!(coverage.overlapped_bytes(), u64::MAX);
        assert_eq!(
            coverage.into_rows().len(),
            2,
            "one span and its closing row"
        );
    }

    fn span(start: u64, end: u64, offset: i64) -> Span {
        Span {
            start,
            end,
            cfa: CfaRule::Rsp(offset),
            rbp: RbpRule::Unchanged,
        }
    }

    fn row(pc: u64, cfa: CfaRule) -> UnwindRow {
        UnwindRow {
            pc,
            cfa,
            rbp: RbpRule::Unchanged,
        }
    }

    #[test]
    fn gaps_get_no_info_rows_and_equal_neighbours_merge() {
        let mut coverage = Coverage::default();
        coverage.fill(span(0x20, 0x30, 8));
        coverage.fill(span(0x10, 0x20, 8));
        coverage.fill(span(0x40, 0x50, 16));
        assert_eq!(
            coverage.into_rows(),
            vec![
                row(0x10, CfaRule::Rsp(8)),
                row(0x30, CfaRule::NoInfo),
                row(0x40, CfaRule::Rsp(16)),
                row(0x50, CfaRule::NoInfo),
            ]
        );
    }

    #[test]
    fn later_sources_only_fill_gaps() {
        let mut coverage = Coverage::default();
        coverage.fill(span(0x10, 0x20, 8));
        coverage.fill(span(0x30, 0x40, 8));
        coverage.fill(span(0x00, 0x50, 24));
        assert_eq!(coverage.overlapped_bytes(), 0x20);
        assert_eq!(
            coverage.into_rows(),
            vec![
                row(0x00, CfaRule::Rsp(24)),
                row(0x10, CfaRule::Rsp(8)),
                row(0x20, CfaRule::Rsp(24)),
                row(0x30, CfaRule::Rsp(8)),
                row(0x40, CfaRule::Rsp(24)),
                row(0x50, CfaRule::NoInfo),
            ]
        );
        assert!(Coverage::default().into_rows().is_empty());
    }
}

#[cfg(test)]
mod sweep_tests {
    use super::*;

    /// Paints every byte of a small address space with the first span that covers it:
    /// the rule the sweep must agree with.
    fn painted(spans: &[(u64, u64, i64)]) -> Vec<Option<i64>> {
        let mut bytes = vec![None; 64];
        for &(start, end, offset) in spans {
            for byte in &mut bytes[start as usize..end as usize] {
                byte.get_or_insert(offset);
            }
        }
        bytes
    }

    #[test]
    fn the_sweep_agrees_with_painting_byte_by_byte() {
        // A small linear congruential generator: reproducible spans, overlapping in
        // every way (nested, equal, touching, out of order, empty).
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |below: u64| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % below
        };
        for _ in 0..500 {
            let count = next(12) as usize;
            let spans: Vec<(u64, u64, i64)> = (0..count)
                .map(|_| {
                    let start = next(60);
                    let len = next(16);
                    (start, (start + len).min(64), 8 * (1 + next(3) as i64))
                })
                .collect();
            let mut coverage = Coverage::default();
            for &(start, end, offset) in &spans {
                coverage.fill(Span {
                    start,
                    end,
                    cfa: CfaRule::Rsp(offset),
                    rbp: RbpRule::Unchanged,
                });
            }
            let expected = painted(&spans);
            let total: u64 = spans.iter().map(|&(s, e, _)| e.saturating_sub(s)).sum();
            let union = expected.iter().filter(|b| b.is_some()).count() as u64;
            assert_eq!(coverage.overlapped_bytes(), total - union, "{spans:?}");
            let rows = coverage.into_rows();
            for (addr, want) in expected.iter().enumerate() {
                let after = rows.partition_point(|r| r.pc <= addr as u64);
                let got = rows[..after].last().and_then(|r| match r.cfa {
                    CfaRule::Rsp(offset) => Some(offset),
                    _ => None,
                });
                assert_eq!(got, *want, "byte {addr} of {spans:?}: {rows:?}");
            }
        }
    }
}
