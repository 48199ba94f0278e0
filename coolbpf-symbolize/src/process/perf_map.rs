//! perf maps: `/tmp/perf-PID.map`, where JIT compilers (V8, the JVM with an agent, .NET,
//! LuaJIT, Python 3.12's perf trampolines) list the code they generate, one line per
//! function: `START SIZE NAME`, the numbers in hex.

use std::path::PathBuf;

use crate::frame::Frame;

/// One JIT-generated function.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    start: u64,
    size: u64,
    name: String,
}

/// The functions of one perf map, sorted by start.
#[derive(Debug, Default)]
pub(crate) struct PerfMap {
    entries: Vec<Entry>,
    /// The largest size: no entry starting further below an address can cover it.
    max_size: u64,
}

fn hex(text: &str) -> Option<u64> {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    u64::from_str_radix(digits, 16).ok()
}

impl PerfMap {
    /// Parses a perf map; lines that are not `START SIZE NAME` are skipped, since a JIT
    /// may be writing the file while we read it and leave a torn last line.
    pub(crate) fn parse(text: &str) -> Self {
        let mut entries: Vec<Entry> = text
            .lines()
            .filter_map(|line| {
                let (start, rest) = line.trim_start().split_once(char::is_whitespace)?;
                let (size, name) = rest.trim_start().split_once(char::is_whitespace)?;
                let (start, size, name) = (hex(start)?, hex(size)?, name.trim());
                (size > 0 && !name.is_empty()).then(|| Entry {
                    start,
                    size,
                    name: name.to_owned(),
                })
            })
            .collect();
        // Stable: of two entries at one start, the one written later stays later, and
        // lookups prefer it (the JIT reused the address for newer code).
        entries.sort_by_key(|e| e.start);
        let max_size = entries.iter().map(|e| e.size).max().unwrap_or(0);
        Self { entries, max_size }
    }

    /// Reads the perf map of process `pid`, looking first inside the process's own root
    /// and under its own pid (a JIT in a container writes `/tmp/perf-NSPID.map` there),
    /// then at `/tmp/perf-PID.map`. No map at all is an empty map.
    pub(crate) fn read(pid: u32) -> Self {
        let mut paths = Vec::new();
        if let Some(nspid) = namespace_pid(pid) {
            paths.push(PathBuf::from(format!(
                "/proc/{pid}/root/tmp/perf-{nspid}.map"
            )));
        }
        paths.push(PathBuf::from(format!("/tmp/perf-{pid}.map")));
        paths
            .iter()
            .find_map(|p| std::fs::read(p).ok())
            .map(|bytes| Self::parse(&String::from_utf8_lossy(&bytes)))
            .unwrap_or_default()
    }

    /// The frame of the function that contains `addr`, if one does.
    pub(crate) fn lookup(&self, addr: u64) -> Option<Frame> {
        let candidates = self.entries.partition_point(|e| e.start <= addr);
        // Usually the nearest start below is the answer; overlapping entries (code that
        // was freed and regenerated) need the walk back to the latest one that covers.
        let entry = self.entries[..candidates]
            .iter()
            .rev()
            .take_while(|e| addr - e.start < self.max_size)
            .find(|e| addr - e.start < e.size)?;
        Some(Frame {
            function: entry.name.clone(),
            raw_name: entry.name.clone(),
            offset: addr - entry.start,
            file: None,
            line: None,
            column: None,
            inlined: false,
        })
    }
}

/// The pid of process `pid` in its own (innermost) pid namespace, from the last field of
/// the `NSpid:` line of its status.
fn namespace_pid(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
    line.split_whitespace().last()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_containing_function() {
        let map = PerfMap::parse(
            "7f0000001000 40 LazyCompile:*fib /app/fib.js:3\n\
             0x7f0000002000  0x10\tstub with spaces\n\
             garbage line\n\
             7f0000003000 0 empty\n\
             7f00000040",
        );
        let frame = map.lookup(0x7f00_0000_1010).unwrap();
        assert_eq!(
            (frame.function.as_str(), frame.offset),
            ("LazyCompile:*fib /app/fib.js:3", 0x10)
        );
        assert_eq!(
            map.lookup(0x7f00_0000_200f).unwrap().function,
            "stub with spaces"
        );
        assert!(map.lookup(0x7f00_0000_1040).is_none(), "one past the end");
        assert!(map.lookup(0x7f00_0000_0fff).is_none(), "before the first");
        assert!(
            map.lookup(0x7f00_0000_3000).is_none(),
            "zero-sized entries are dropped"
        );
        assert!(map.lookup(u64::MAX).is_none());
    }

    #[test]
    fn later_entries_win_on_overlap() {
        let map = PerfMap::parse("1000 100 old\n1000 100 new\n1080 10 inner\n");
        assert_eq!(map.lookup(0x1010).unwrap().function, "new");
        assert_eq!(map.lookup(0x1088).unwrap().function, "inner");
        assert_eq!(
            map.lookup(0x10f0).unwrap().function,
            "new",
            "walks back past inner"
        );
    }

    #[test]
    fn own_namespace_pid_is_known() {
        assert_eq!(namespace_pid(std::process::id()).map(|_| ()), Some(()));
        assert_eq!(namespace_pid(u32::MAX), None);
    }
}
