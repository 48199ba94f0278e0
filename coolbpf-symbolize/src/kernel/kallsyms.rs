//! `/proc/kallsyms`: every kernel symbol as `ADDRESS TYPE NAME [MODULE]`, without sizes.
//! A function is taken to extend up to the next symbol.

use std::cmp::Reverse;

use crate::frame::{Frame, Symbolized, Unknown};

/// No kernel function comes near this size (the largest are tens of KiB); an address
/// further than this past the last symbol below it lies in a gap kallsyms does not
/// describe (between `_etext` and `.rodata`, past the last module), not in that symbol.
const MAX_FUNCTION_SIZE: u64 = 1 << 20;

/// One symbol. Non-text symbols are kept, nameless, only to end the function before them.
#[derive(Debug)]
struct Symbol {
    addr: u64,
    /// 0 for a non-text symbol; otherwise how strongly this name is preferred among
    /// aliases at one address (global over weak over local).
    rank: u8,
    name: Box<str>,
    module: Option<Box<str>>,
}

/// The kernel's symbols, sorted by address.
#[derive(Debug)]
pub(crate) struct Kallsyms {
    symbols: Vec<Symbol>,
    /// Lines read, and how many of them had a non-zero address.
    lines: usize,
    nonzero: usize,
}

/// Text symbols rank by type; everything else (data, rodata, bss) is a boundary.
fn rank(kind: char) -> u8 {
    match kind {
        'T' => 4,
        'W' => 3,
        't' => 2,
        'w' => 1,
        _ => 0,
    }
}

impl Kallsyms {
    /// Parses the text of kallsyms. Lines that do not parse are skipped: the format is the
    /// kernel's, and one odd line should not cost every other symbol.
    pub(crate) fn parse(text: &str) -> Self {
        let (mut lines, mut nonzero) = (0, 0);
        let mut symbols = Vec::new();
        for line in text.lines() {
            let mut fields = line.split_whitespace();
            let (Some(addr), Some(kind), Some(name)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let (Ok(addr), Some(kind)) = (u64::from_str_radix(addr, 16), kind.chars().next())
            else {
                continue;
            };
            lines += 1;
            if addr != 0 {
                nonzero += 1;
            }
            // Absolute symbols (per-CPU offsets, constants) are not addresses in memory.
            if kind.eq_ignore_ascii_case(&'a') {
                continue;
            }
            let rank = rank(kind);
            let module = fields
                .next()
                .and_then(|m| m.strip_prefix('[')?.strip_suffix(']'))
                .map(Box::from);
            let name = if rank == 0 {
                Box::from("")
            } else {
                Box::from(name)
            };
            symbols.push(Symbol {
                addr,
                rank,
                name,
                module,
            });
        }
        // Stable, so aliases keep their file order (modules and BPF programs are listed
        // after the core kernel whatever their addresses).
        symbols.sort_by_key(|s| s.addr);
        Self {
            symbols,
            lines,
            nonzero,
        }
    }

    /// Whether the kernel hid every address (kptr_restrict): all read as 0.
    pub(crate) fn is_restricted(&self) -> bool {
        self.lines > 0 && self.nonzero == 0
    }

    /// Whether there are no symbols at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.lines == 0
    }

    /// The address of the core-kernel text symbol `name`.
    pub(crate) fn address_of(&self, name: &str) -> Option<u64> {
        self.symbols
            .iter()
            .find(|s| s.rank > 0 && s.module.is_none() && &*s.name == name)
            .map(|s| s.addr)
    }

    /// The frame for `addr`, and whether it lies in the core kernel (not a module or a
    /// BPF program), where a vmlinux can say more.
    pub(crate) fn symbolize(&self, addr: u64) -> (Symbolized, bool) {
        let end = self.symbols.partition_point(|s| s.addr <= addr);
        let Some(nearest) = end.checked_sub(1).map(|i| self.symbols[i].addr) else {
            return (Symbolized::Unknown(Unknown::Unmapped), false);
        };
        let begin = self.symbols[..end].partition_point(|s| s.addr < nearest);
        // Among aliases, the strongest binding wins, then the name with fewer leading
        // underscores (`schedule` over `__schedule_alias`), then the first listed.
        let best = self.symbols[begin..end]
            .iter()
            .filter(|s| s.rank > 0)
            .min_by_key(|s| {
                (
                    Reverse(s.rank),
                    s.name.bytes().take_while(|&b| b == b'_').count(),
                )
            });
        let offset = addr - nearest;
        let Some(symbol) = best.filter(|_| offset < MAX_FUNCTION_SIZE) else {
            return (Symbolized::Unknown(Unknown::NoSymbol), false);
        };
        let function = match &symbol.module {
            Some(module) => format!("{} [{module}]", symbol.name),
            None => symbol.name.to_string(),
        };
        let frame = Frame {
            function,
            raw_name: symbol.name.to_string(),
            offset,
            file: None,
            line: None,
            column: None,
            inlined: false,
        };
        (Symbolized::Frames(vec![frame]), symbol.module.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
0000000000000000 A fixed_percpu_data
ffffffff81000000 T _stext
ffffffff81000000 T srso_alias_untrain_ret
ffffffff81000000 T _text
ffffffff816bab60 T __pfx_vfs_read
ffffffff816bab70 T vfs_read
ffffffff816bad00 t helper
ffffffff816bad00 W helper_weak_alias
ffffffff82000000 D some_data
ffffffffc0203000 t ftrace_trampoline\t[__builtin__ftrace]
ffffffffc0010000 t xfs_read\t[xfs]
garbage
";

    fn name(result: &(Symbolized, bool)) -> (String, u64, bool) {
        let frame = &result.0.frames()[0];
        (frame.function.clone(), frame.offset, result.1)
    }

    #[test]
    fn function_plus_offset() {
        let k = Kallsyms::parse(SAMPLE);
        assert_eq!(
            name(&k.symbolize(0xffff_ffff_816b_ab70)),
            ("vfs_read".into(), 0, true)
        );
        assert_eq!(
            name(&k.symbolize(0xffff_ffff_816b_ab85)),
            ("vfs_read".into(), 0x15, true)
        );
        assert_eq!(
            name(&k.symbolize(0xffff_ffff_816b_ab6f)),
            ("__pfx_vfs_read".into(), 0xf, true)
        );
        assert_eq!(k.address_of("_text"), Some(0xffff_ffff_8100_0000));
        assert_eq!(k.address_of("some_data"), None);
    }

    #[test]
    fn aliases_prefer_global_then_fewer_underscores() {
        let k = Kallsyms::parse(SAMPLE);
        assert_eq!(
            name(&k.symbolize(0xffff_ffff_8100_0004)).0,
            "srso_alias_untrain_ret"
        );
        assert_eq!(
            name(&k.symbolize(0xffff_ffff_816b_ad01)).0,
            "helper_weak_alias"
        );
    }

    #[test]
    fn modules_are_named_and_not_core() {
        let k = Kallsyms::parse(SAMPLE);
        let xfs = k.symbolize(0xffff_ffff_c001_0010);
        assert_eq!(name(&xfs), ("xfs_read [xfs]".into(), 0x10, false));
        assert_eq!(xfs.0.frames()[0].raw_name, "xfs_read");
    }

    #[test]
    fn data_gaps_and_low_addresses_are_unknown() {
        let k = Kallsyms::parse(SAMPLE);
        let unknown = |addr| k.symbolize(addr).0;
        assert_eq!(
            unknown(0xffff_ffff_8200_0010),
            Symbolized::Unknown(Unknown::NoSymbol)
        );
        assert_eq!(
            unknown(0x1000),
            Symbolized::Unknown(Unknown::Unmapped),
            "absolute syms skipped"
        );
        assert_eq!(
            unknown(0xffff_ffff_c040_0000),
            Symbolized::Unknown(Unknown::NoSymbol)
        );
        assert!(!k.is_restricted() && !k.is_empty());
    }

    #[test]
    fn all_zero_addresses_mean_restricted() {
        let k = Kallsyms::parse("0000000000000000 T _text\n0000000000000000 t foo [bar]\n");
        assert!(k.is_restricted());
        assert!(Kallsyms::parse("").is_empty() && !Kallsyms::parse("").is_restricted());
    }
}
