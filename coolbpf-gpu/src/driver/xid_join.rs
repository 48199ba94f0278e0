//! The Xid join: the driver's own word on the GPU, attached to each hang report.
//!
//! A driver hang after Xid 79 (the GPU fell off the bus) or Xid 119/120 (the GSP firmware
//! timed out or failed) has its cause in those lines. The kernel log is read with the
//! `xid` probe's reader ([`Kmsg`], from its oldest record at start, then only what is new
//! each interval) and its parser; lines with those codes logged within the window before
//! a report are joined to it as `xid` ("79 at 0000:3b:00: GPU has fallen off the bus.")
//! and named in its `summary`.
//!
//! Kernel log times are the kernel's `local_clock`, which counts like the monotonic clock
//! the hangs are timed by (both from boot, neither across suspend).

use std::collections::VecDeque;

use crate::xid::kmsg::{Kmsg, KmsgRecord};
use crate::xid::{parse, XidLine};

/// The codes joined to hang reports.
pub const JOINED_CODES: [u32; 3] = [79, 119, 120];

/// One joined Xid line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentXid {
    /// When it was logged, µs since boot.
    pub ts_us: u64,
    /// The line, parsed.
    pub line: XidLine,
}

impl RecentXid {
    /// `79 at 0000:3b:00: GPU has fallen off the bus.`
    pub fn describe(&self) -> String {
        let line = &self.line;
        let at = line
            .bus_id
            .as_deref()
            .map_or_else(String::new, |bus| format!(" at {bus}"));
        format!("{}{at}: {}", line.code, line.text)
    }
}

/// The lines of `records` whose code is one of [`JOINED_CODES`] (others, and lines that
/// do not parse, are left out).
pub fn select(records: &[KmsgRecord]) -> Vec<RecentXid> {
    records
        .iter()
        .filter_map(|r| {
            let line = parse::parse(&r.message).ok()?;
            JOINED_CODES.contains(&line.code).then_some(RecentXid {
                ts_us: r.ts_us,
                line,
            })
        })
        .collect()
}

/// What the join adds to one report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Joined {
    /// The lines, oldest first, described by [`RecentXid::describe`].
    pub lines: Vec<String>,
    /// What they say happened to the GPU (`the GPU fell off the bus (Xid 79 at ...)`).
    pub verdict: Option<String>,
    /// Why the kernel log could not be read, when it could not.
    pub error: Option<String>,
}

/// The lines of `recent` logged within `window_us` before `now_us`, and their verdict.
pub fn join(recent: &[RecentXid], now_us: u64, window_us: u64) -> Joined {
    let inside: Vec<&RecentXid> = recent
        .iter()
        .filter(|x| now_us.saturating_sub(x.ts_us) <= window_us)
        .collect();
    let mut causes = Vec::new();
    for (code, what) in [
        (79, "the GPU fell off the bus"),
        (119, "the GSP firmware timed out"),
        (120, "the GSP firmware reported an error"),
    ] {
        // The latest line of each code names the GPU it happened to.
        if let Some(x) = inside.iter().rev().find(|x| x.line.code == code) {
            let at = x
                .line
                .bus_id
                .as_deref()
                .map_or_else(String::new, |bus| format!(" at {bus}"));
            causes.push(format!("{what} (Xid {code}{at})"));
        }
    }
    Joined {
        lines: inside.iter().map(|x| x.describe()).collect(),
        verdict: (!causes.is_empty()).then(|| causes.join(", and ")),
        error: None,
    }
}

/// The joined codes' recent lines, kept up to date from the kernel log.
#[derive(Debug)]
pub struct XidWindow {
    kmsg: Option<Kmsg>,
    error: Option<String>,
    recent: VecDeque<RecentXid>,
    window_us: u64,
}

impl XidWindow {
    /// Opens the kernel log and reads its history; `window_us` 0 reads nothing. A log
    /// that cannot be opened is no error: reports then say why they have no Xid lines.
    pub fn open(window_us: u64) -> Self {
        let mut window = Self {
            kmsg: None,
            error: None,
            recent: VecDeque::new(),
            window_us,
        };
        if window_us > 0 {
            match Kmsg::open() {
                Ok(kmsg) => window.kmsg = Some(kmsg),
                Err(err) => window.error = Some(err.to_string()),
            }
        }
        window
    }

    /// Reads the lines logged since the last call and forgets those out of the window.
    pub fn refresh(&mut self, now_us: u64) {
        let Some(kmsg) = &mut self.kmsg else {
            return;
        };
        let mut records = Vec::new();
        if let Err(err) = kmsg.read_xid_records(&mut records) {
            self.error = Some(err.to_string());
        }
        self.recent.extend(select(&records));
        while self
            .recent
            .front()
            .is_some_and(|x| now_us.saturating_sub(x.ts_us) > self.window_us)
        {
            self.recent.pop_front();
        }
    }

    /// The join for a report made at `now_us`; `None` when the join is off.
    pub fn join(&self, now_us: u64) -> Option<Joined> {
        if self.window_us == 0 {
            return None;
        }
        let recent: Vec<RecentXid> = self.recent.iter().cloned().collect();
        let mut joined = join(&recent, now_us, self.window_us);
        joined.error.clone_from(&self.error);
        Some(joined)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64, ts_us: u64, message: &str) -> KmsgRecord {
        KmsgRecord {
            seq,
            ts_us,
            message: message.into(),
        }
    }

    #[test]
    fn joins_the_bus_and_gsp_codes_within_the_window() {
        let minute = 60_000_000;
        let records = [
            record(
                1,
                0,
                "NVRM: Xid (PCI:0000:3b:00): 79, pid=1, name=x, too old.",
            ),
            record(
                2,
                9 * minute,
                "NVRM: Xid (PCI:0000:3b:00): 13, pid=5, name=x, SM fault",
            ),
            record(
                3,
                10 * minute,
                "NVRM: Xid (PCI:0000:3B:00): 79, pid=5, name=python3, GPU has fallen off the bus.",
            ),
            record(
                4,
                10 * minute + 1,
                "NVRM: Xid (PCI:0000:5e:00): 119, Timeout after 6s of waiting for RPC response",
            ),
            record(5, 10 * minute + 2, "NVRM: Xid (PCI:0000:5e:00): garbage"),
            record(6, 10 * minute + 3, "usb 1-1: new device"),
        ];
        let recent = select(&records);
        assert_eq!(
            recent.len(),
            3,
            "the 13, the unparsed line and the usb line are out"
        );
        let joined = join(&recent, 12 * minute, 5 * minute);
        assert_eq!(
            joined.lines,
            [
                "79 at 0000:3b:00: GPU has fallen off the bus.",
                "119 at 0000:5e:00: Timeout after 6s of waiting for RPC response"
            ]
        );
        assert_eq!(
            joined.verdict.as_deref(),
            Some(
                "the GPU fell off the bus (Xid 79 at 0000:3b:00), \
                 and the GSP firmware timed out (Xid 119 at 0000:5e:00)"
            )
        );
        // Past the window: nothing joined, no verdict.
        let late = join(&recent, 30 * minute, 5 * minute);
        assert_eq!(late, Joined::default());
        // A line without a bus id.
        let bare = select(&[record(1, 5, "NVRM: Xid: 120, GSP error")]);
        let joined = join(&bare, 5, 1);
        assert_eq!(joined.lines, ["120: GSP error"]);
        assert_eq!(
            joined.verdict.as_deref(),
            Some("the GSP firmware reported an error (Xid 120)")
        );
    }

    #[test]
    fn a_window_of_zero_joins_nothing() {
        let window = XidWindow::open(0);
        assert_eq!(window.join(1), None);
    }
}
