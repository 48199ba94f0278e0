//! The symbol tables of a file (.symtab, .dynsym, the .symtab inside .gnu_debugdata)
//! merged into one array sorted by address, 32 bytes a symbol with names left in the
//! file. Sorting a large table costs milliseconds, so the first few lookups (a cold
//! start that wants one address) scan the tables instead, with the same answers.

use std::cmp::Ordering;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::OnceLock;

use crate::elf::bytes::{c_str_at, Bytes};
use crate::elf::symbols::{self, Candidate, Table};

/// Lookups answered by scanning before the sorted table is built.
const SCANS_BEFORE_SORTING: usize = 16;

/// Bits of [`Sym::name`] and [`Sym::file`] holding the file offset; the source index is
/// above them.
const OFFSET_BITS: u32 = 56;

/// One symbol of the sorted table.
#[derive(Debug, Clone, Copy)]
struct Sym {
    start: u64,
    /// One past the last covered address. For a symbol without a size, the next symbol's
    /// start (bounded by the end of its section).
    end: u64,
    /// Index of the source above [`OFFSET_BITS`], the name's offset in it below.
    name: u64,
    /// The same for the name of a local symbol's source file; 0 when unknown.
    file: u64,
}

/// A symbol covering an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SymbolHit<'a> {
    /// The raw (possibly mangled) name.
    pub(crate) name: &'a [u8],
    /// The symbol's first address.
    pub(crate) start: u64,
    /// The source file a local symbol came from, by the symbol table's `STT_FILE`
    /// symbols.
    pub(crate) file: Option<&'a [u8]>,
}

/// Symbols of one file, at most one per address.
#[derive(Debug, Default)]
pub(crate) struct SymbolTable {
    /// The tables read, in order of preference.
    sources: Vec<(Bytes, Table)>,
    sorted: OnceLock<Vec<Sym>>,
    scans: AtomicUsize,
}

impl SymbolTable {
    /// A table over `sources` (ELF files and which of their tables), in order of
    /// preference: at one address, an earlier source's symbol wins a tie. Sources
    /// without symbols are dropped.
    pub(crate) fn new(mut sources: Vec<(Bytes, Table)>) -> Self {
        sources.retain(|(bytes, table)| symbols::count(bytes.get(), *table) > 0);
        sources.truncate(1 << (64 - OFFSET_BITS));
        Self {
            sources,
            sorted: OnceLock::new(),
            scans: AtomicUsize::new(0),
        }
    }

    /// Whether there are no symbols at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Says that `lookups` lookups are coming: enough of them, now or in total, and
    /// the sorted table is built.
    pub(crate) fn prepare(&self, lookups: usize) {
        let before = self.scans.fetch_add(lookups, AtomicOrdering::Relaxed);
        if before.saturating_add(lookups) > SCANS_BEFORE_SORTING {
            self.sorted.get_or_init(|| self.build());
        }
    }

    /// The symbol covering `addr`: the last one starting at or before it, if it reaches
    /// that far. (A sized symbol that ends before `addr` hides any earlier, larger one:
    /// nested symbols are rare, and llvm-symbolizer answers the same way.)
    pub(crate) fn lookup(&self, addr: u64) -> Option<SymbolHit<'_>> {
        let sym = match self.sorted.get() {
            Some(sorted) => search(sorted, addr)?,
            None => scan(|f| self.for_each(f), addr)?,
        };
        if addr >= sym.end {
            return None;
        }
        let bytes = self
            .sources
            .get(usize::try_from(sym.name >> OFFSET_BITS).ok()?)?
            .0
            .get();
        let at = |tagged: u64| {
            let offset = usize::try_from(tagged & ((1 << OFFSET_BITS) - 1)).unwrap_or(usize::MAX);
            c_str_at(bytes, offset)
        };
        Some(SymbolHit {
            name: at(sym.name),
            start: sym.start,
            file: (sym.file != 0)
                .then(|| at(sym.file))
                .filter(|f| !f.is_empty()),
        })
    }

    /// Heap bytes held (a decompressed .gnu_debugdata included).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.sorted
            .get()
            .map_or(0, |s| s.capacity() * size_of::<Sym>())
            + self
                .sources
                .iter()
                .map(|(bytes, _)| bytes.heap_bytes())
                .sum::<usize>()
    }

    /// Every candidate of every source, with the source's index.
    fn for_each(&self, f: &mut dyn FnMut(u64, Candidate)) {
        for (source, (bytes, table)) in (0u64..).zip(&self.sources) {
            symbols::for_each(bytes.get(), *table, &mut |c| f(source, c));
        }
    }

    fn build(&self) -> Vec<Sym> {
        let mut all: Vec<(u64, Candidate)> = Vec::new();
        self.for_each(&mut |source, c| all.push((source, c)));
        sorted(all)
    }
}

/// Sorts `(source, symbol)` pairs, keeps the preferred one per address, and works out
/// where size-0 symbols end.
fn sorted(mut all: Vec<(u64, Candidate)>) -> Vec<Sym> {
    all.sort_unstable_by(|a, b| a.1.start.cmp(&b.1.start).then_with(|| prefer(a, b)));
    all.dedup_by_key(|(_, c)| c.start);
    let mut sorted = Vec::with_capacity(all.len());
    for (i, (source, c)) in all.iter().enumerate() {
        let next = all.get(i + 1).map_or(u64::MAX, |(_, n)| n.start);
        sorted.push(sym(*source, c, next));
    }
    sorted
}

/// The last symbol of `sorted` starting at or before `addr`.
fn search(sorted: &[Sym], addr: u64) -> Option<Sym> {
    let i = sorted.partition_point(|s| s.start <= addr).checked_sub(1)?;
    sorted.get(i).copied()
}

/// What [`sorted`] and [`search`] would answer, by one pass over the symbols `each`
/// lists: the preferred symbol starting last at or before `addr`, and the first start
/// after it.
fn scan(each: impl FnOnce(&mut dyn FnMut(u64, Candidate)), addr: u64) -> Option<Sym> {
    let mut best: Option<(u64, Candidate)> = None;
    let mut next = u64::MAX;
    each(&mut |source, c| {
        if c.start > addr {
            next = next.min(c.start);
            return;
        }
        let better = best.as_ref().is_none_or(|b| {
            c.start
                .cmp(&b.1.start)
                .reverse()
                .then_with(|| prefer(&(source, c), b))
                == Ordering::Less
        });
        if better {
            best = Some((source, c));
        }
    });
    let (source, c) = best?;
    Some(sym(source, &c, next))
}

/// Of two symbols at one address, `Less` for the one to keep: the largest (a label
/// without a size loses to the function it marks); of equal aliases (C++ emits complete
/// and base object constructors as one), the first source's, and there the last one,
/// which is the one llvm-symbolizer reports.
fn prefer(a: &(u64, Candidate), b: &(u64, Candidate)) -> Ordering {
    (b.1.size, a.0, b.1.index).cmp(&(a.1.size, b.0, a.1.index))
}

/// One past the last address of `c`, given where the next symbol starts.
fn end(c: &Candidate, next: u64) -> u64 {
    if c.size > 0 {
        c.start.saturating_add(c.size)
    } else {
        next.min(c.section_end).max(c.start.saturating_add(1))
    }
}

/// The table entry for `c` of source `source`, given where the next symbol starts.
fn sym(source: u64, c: &Candidate, next: u64) -> Sym {
    let tag = |offset: u64| (source << OFFSET_BITS) | (offset & ((1 << OFFSET_BITS) - 1));
    Sym {
        start: c.start,
        end: end(c, next),
        name: tag(c.name_offset),
        file: if c.file_offset == 0 {
            0
        } else {
            tag(c.file_offset)
        },
    }
}

#[cfg(test)]
mod tests;
