//! The lines of a kallsyms list that decide a set of addresses.
//!
//! The kernel lists about 120,000 symbols; parsing them all into a symbol table takes
//! about 15 MB, more than the rest of a profiler. A kallsyms lookup names an address
//! after the nearest symbol at or below it, and ends that symbol where the next one
//! starts. So the lines at those two addresses (every alias included) decide the result,
//! and parsing just those lines gives the same names as parsing the whole list: memory
//! proportional to the addresses asked about.

/// The lines of `text` (kallsyms format) that decide `addrs`, in their original order.
/// A list whose addresses are all hidden (zero) comes back whole, so that the caller's
/// check for hidden addresses sees it.
pub(super) fn deciding_lines(text: &str, addrs: &[u64]) -> String {
    let lines = || text.lines().filter(|l| !l.is_empty());
    let mut known: Vec<u64> = lines().filter_map(address).collect();
    known.sort_unstable();
    known.dedup();
    if known.iter().all(|&a| a == 0) {
        return text.to_owned();
    }
    let mut keep = Vec::with_capacity(addrs.len() * 2);
    for &addr in addrs {
        // The nearest symbol at or below, and the one that ends it.
        let above = known.partition_point(|&k| k <= addr);
        keep.extend(above.checked_sub(1).map(|i| known[i]));
        keep.extend(known.get(above).copied());
    }
    keep.sort_unstable();
    keep.dedup();
    let mut out = String::new();
    for line in lines() {
        if address(line).is_some_and(|a| keep.binary_search(&a).is_ok()) {
            out.push_str(line);
            out.push('\n');
        }
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
            deciding_lines(KALLSYMS, &[0xffff_ffff_8100_0010]),
            "ffffffff81000000 T _stext\nffffffff81000000 T startup_64\nffffffff81000100 t helper\n"
        );
        assert_eq!(
            deciding_lines(KALLSYMS, &[0xffff_ffff_8100_0250, 0xffff_ffff_c000_0004]),
            "ffffffff81000200 T schedule\nffffffff81000300 D some_data\n\
             ffffffffc0000000 t mod_fn\t[loop]\nffffffffc0000100 t mod_other\t[loop]\n"
        );
        assert_eq!(
            deciding_lines(KALLSYMS, &[0x10]),
            "ffffffff81000000 T _stext\nffffffff81000000 T startup_64\n"
        );
        assert_eq!(deciding_lines(KALLSYMS, &[]), "");
    }

    #[test]
    fn hidden_lists_stay_whole() {
        let hidden = "0000000000000000 T _stext\n0000000000000000 T schedule\n";
        assert_eq!(deciding_lines(hidden, &[0x10]), hidden);
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
        let part = super::super::kallsyms::Kallsyms::parse(&deciding_lines(&text, &addrs));
        for addr in addrs {
            assert_eq!(whole.symbolize(addr), part.symbolize(addr), "{addr:#x}");
        }
    }
}
