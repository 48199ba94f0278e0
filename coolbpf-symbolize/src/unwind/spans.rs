//! Address ranges with their rules, and how they become a sorted table of rows: overlaps
//! clipped, lower-priority sources filling only the gaps, explicit "no info" rows where
//! nothing covers the code, and consecutive identical rows merged.

use std::collections::BTreeMap;

use super::row::{CfaRule, RbpRule, UnwindRow};

/// `[start, end)` unwinds by these rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) cfa: CfaRule,
    pub(crate) rbp: RbpRule,
}

/// Non-overlapping spans, keyed by start. Sources are added best first; each later one
/// only fills what the earlier ones left uncovered.
#[derive(Debug, Default)]
pub(crate) struct Coverage {
    spans: BTreeMap<u64, Span>,
    /// Bytes of added spans that were already covered (overlapping FDEs).
    pub(crate) overlapped_bytes: u64,
}

impl Coverage {
    /// Adds the parts of `span` that nothing covers yet.
    pub(crate) fn fill(&mut self, span: Span) {
        if span.start >= span.end {
            return;
        }
        let mut cursor = span.start;
        // The span that starts before `span` may reach into it.
        if let Some((_, before)) = self.spans.range(..span.start).next_back() {
            cursor = cursor.max(before.end);
        }
        let inside: Vec<Span> = self
            .spans
            .range(span.start..span.end)
            .map(|(_, s)| *s)
            .collect();
        let mut pieces = Vec::new();
        for covered in inside {
            if covered.start > cursor {
                pieces.push((cursor, covered.start));
            }
            cursor = cursor.max(covered.end);
        }
        if cursor < span.end {
            pieces.push((cursor, span.end));
        }
        let kept: u64 = pieces.iter().map(|(s, e)| e - s).sum();
        // Saturating: corrupt FDEs can claim ranges near the whole address space, over
        // and over (found by the unwind_table fuzz target).
        self.overlapped_bytes = self
            .overlapped_bytes
            .saturating_add((span.end - span.start) - kept);
        for (start, end) in pieces {
            self.spans.insert(start, Span { start, end, ..span });
        }
    }

    /// The rows: one per span (merged with the previous row when it unwinds the same
    /// way and follows it without a gap), a no-info row at every gap, and one closing
    /// no-info row past the last span.
    pub(crate) fn into_rows(self) -> Vec<UnwindRow> {
        let mut rows: Vec<UnwindRow> = Vec::with_capacity(self.spans.len() + 1);
        let mut end = None;
        for span in self.spans.into_values() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlaps_of_huge_ranges_saturate_the_count() {
        let mut coverage = Coverage::default();
        for _ in 0..3 {
            coverage.fill(span(0, u64::MAX, 8));
        }
        assert_eq!(coverage.overlapped_bytes, u64::MAX);
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
        assert_eq!(coverage.overlapped_bytes, 0x20);
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
