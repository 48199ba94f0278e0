//! The lines of a kallsyms list that decide a set of addresses.
//!
//! The kernel lists about 120,000 symbols; parsing them all into a symbol table takes
//! about 15 MB, more than the rest of a profiler. A kallsyms lookup names an address
//! after the nearest symbol at or below it, and ends that symbol where the next one
//! starts. So the lines at those two addresses (every alias included) decide the result,
//! and parsing just those lines gives the same names as parsing the whole list: memory
//! proportional to the addresses asked about.

use std::cmp::Ordering;
use std::io::{self, BufRead};

/// The lines of a kallsyms list read from `input` that decide `addrs`, in their original
/// order. The list is streamed once and never held whole: per gap between two asked
/// addresses, only the lines at the highest and the lowest address in it are kept. A list
/// whose addresses are all hidden (zero) comes back as its first lines, so that the
/// caller's check for hidden addresses sees it.
pub(super) fn deciding_lines(mut input: impl BufRead, addrs: &[u64]) -> io::Result<String> {
    let mut wanted = addrs.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    // Gap `j` holds the addresses in (wanted[j - 1], wanted[j]]; the last one, those
    // above every wanted address.
    let mut gaps: Vec<Gap> = (0..=wanted.len()).map(|_| Gap::default()).collect();
    let mut hidden: Vec<(usize, String)> = Vec::new();
    let mut any_shown = false;
    let mut raw = Vec::new();
    let mut index = 0;
    loop {
        raw.clear();
        if input.read_until(b'\n', &mut raw)? == 0 {
            break;
        }
        let text = String::from_utf8_lossy(&raw);
        let line = text.trim_end_matches('\n');
        let Some(addr) = address(line) else {
            continue;
        };
        index += 1;
        if addr == 0 && !any_shown && hidden.len() < HIDDEN_LINES_KEPT {
            hidden.push((index, line.to_owned()));
        }
        any_shown |= addr != 0;
        let gap = &mut gaps[wanted.partition_point(|&w| w < addr)];
        gap.highest.offer(addr, index, line, Ordering::Greater);
        gap.lowest.offer(addr, index, line, Ordering::Less);
    }
    if !any_shown {
        return Ok(joined(hidden));
    }
    let mut keep: Vec<(usize, String)> = Vec::new();
    for j in 0..wanted.len() {
        // The nearest symbol at or below wanted[j], and the one that ends it.
        let below = gaps[..=j].iter().rev().find_map(|g| g.highest.lines());
        let above = gaps[j + 1..].iter().find_map(|g| g.lowest.lines());
        keep.extend(below.into_iter().chain(above).flatten().cloned());
    }
    keep.sort_unstable_by_key(|(index, _)| *index);
    keep.dedup_by_key(|(index, _)| *index);
    Ok(joined(keep))
}

/// Lines kept of a list whose addresses are all hidden: enough to see that they are.
const HIDDEN_LINES_KEPT: usize = 16;

/// The lines at the highest and at the lowest address of one gap between asked addresses.
#[derive(Debug, Default)]
struct Gap {
    highest: Edge,
    lowest: Edge,
}

/// Every line at one address (aliases), with their positions in the list.
#[derive(Debug, Default)]
struct Edge {
    at: Option<(u64, Vec<(usize, String)>)>,
}

impl Edge {
    /// Keeps `line` if it is at this edge's address, or beyond it in direction `beyond`
    /// (replacing what was kept).
    fn offer(&mut self, addr: u64, index: usize, line: &str, beyond: Ordering) {
        match &mut self.at {
            Some((at, lines)) if *at == addr => lines.push((index, line.to_owned())),
            Some((at, _)) if addr.cmp(at) != beyond => {}
            _ => self.at = Some((addr, vec![(index, line.to_owned())])),
        }
    }

    fn lines(&self) -> Option<&Vec<(usize, String)>> {
        self.at.as_ref().map(|(_, lines)| lines)
    }
}

fn joined(lines: Vec<(usize, String)>) -> String {
    let mut out = String::new();
    for (_, line) in lines {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The address at the start of a kallsyms line.
fn address(line: &str) -> Option<u64> {
    let hex = line.split(' ').next()?;
    u64::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(text: &str, addrs: &[u64]) -> String {
        deciding_lines(text.as_bytes(), addrs).unwrap()
    }

    const KALLSYMS: &str = "\
ffffffff81000000 T _stext
ffffffff81000000 T startup_64
ffffffff81000100 t helper
ffffffff81000200 T schedule
ffffffff81000300 D some_data
ffffffffc0000000 t mod_fn\t[loop]
ffffffffc0000100 t mod_other\t[loop]
";

    #[test]
    fn keeps_the_symbol_below_and_the_one_after() {
        assert_eq!(
            lines_of(KALLSYMS, &[0xffff_ffff_8100_0010]),
            "ffffffff81000000 T _stext\nffffffff81000000 T startup_64\nffffffff81000100 t helper\n"
        );
        assert_eq!(
            lines_of(KALLSYMS, &[0xffff_ffff_8100_0250, 0xffff_ffff_c000_0004]),
            "ffffffff81000200 T schedule\nffffffff81000300 D some_data\n\
             ffffffffc0000000 t mod_fn\t[loop]\nffffffffc0000100 t mod_other\t[loop]\n"
        );
        assert_eq!(
            lines_of(KALLSYMS, &[0x10]),
            "ffffffff81000000 T _stext\nffffffff81000000 T startup_64\n"
        );
        assert_eq!(lines_of(KALLSYMS, &[]), "");
    }

    #[test]
    fn hidden_lists_stay_whole() {
        let hidden = "0000000000000000 T _stext\n0000000000000000 T schedule\n";
        assert_eq!(lines_of(hidden, &[0x10]), hidden);
    }

    #[test]
    fn names_match_the_whole_list() {
        let Ok(text) = std::fs::read_to_string("/proc/kallsyms") else {
            return;
        };
        let addrs: Vec<u64> = text
            .lines()
            .filter(|l| l.contains(" T ") || l.contains(" t "))
            .step_by(997)
            .filter_map(address)
            .filter(|&a| a != 0)
            .map(|a| a + 3)
            .collect();
        if addrs.is_empty() {
            return; // addresses hidden (kptr_restrict): nothing to compare
        }
        let whole = super::super::kallsyms::Kallsyms::parse(&text);
        let part = super::super::kallsyms::Kallsyms::parse(&lines_of(&text, &addrs));
        for addr in addrs {
            assert_eq!(whole.symbolize(addr), part.symbolize(addr), "{addr:#x}");
        }
    }
}
