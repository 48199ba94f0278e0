use super::*;

fn candidate(start: u64, size: u64, index: u32) -> Candidate {
    Candidate {
        start,
        size,
        section_end: 0x1000,
        name_offset: u64::from(index),
        file_offset: 0,
        index,
    }
}

/// `(start, end, name offset)` by sorting and searching, checked against scanning.
fn find(symbols: &[(u64, Candidate)], addr: u64) -> Option<(u64, u64, u64)> {
    let tuple = |s: Sym| (s.start, s.end, s.name);
    let by_search = search(&sorted(symbols.to_vec()), addr).map(tuple);
    let by_scan = scan(|f| symbols.iter().for_each(|&(s, c)| f(s, c)), addr).map(tuple);
    assert_eq!(by_search, by_scan, "at {addr:#x}");
    by_search.filter(|&(_, end, _)| addr < end)
}

#[test]
fn sized_symbols_cover_exactly_their_range() {
    let t = [
        (0, candidate(0x100, 0x10, 1)),
        (0, candidate(0x200, 0x20, 2)),
    ];
    assert_eq!(find(&t, 0xff), None);
    assert_eq!(find(&t, 0x100), Some((0x100, 0x110, 1)));
    assert_eq!(find(&t, 0x10f), Some((0x100, 0x110, 1)));
    assert_eq!(find(&t, 0x110), None);
    assert_eq!(find(&t, 0x21f), Some((0x200, 0x220, 2)));
    assert_eq!(find(&t, 0x220), None);
}

#[test]
fn size_zero_symbols_reach_the_next_symbol_or_section_end() {
    let t = [
        (0, candidate(0x180, 0, 2)),
        (0, candidate(0x100, 0, 1)),
        (0, candidate(0x300, 16, 3)),
    ];
    assert_eq!(find(&t, 0x17f), Some((0x100, 0x180, 1)));
    assert_eq!(find(&t, 0x180), Some((0x180, 0x300, 2)));
    assert_eq!(find(&t, 0x2ff), Some((0x180, 0x300, 2)));
    let last = [(0, candidate(0xf00, 0, 1))];
    assert_eq!(find(&last, 0xfff), Some((0xf00, 0x1000, 1)));
    assert_eq!(find(&last, 0x1000), None);
}

#[test]
fn the_largest_symbol_at_an_address_wins_then_the_first_source_then_the_last_alias() {
    let labels = [
        (0, candidate(0x100, 0, 1)),
        (0, candidate(0x100, 0x40, 2)),
        (0, candidate(0x100, 8, 3)),
    ];
    assert_eq!(find(&labels, 0x120), Some((0x100, 0x140, 2)));
    let aliases = [
        (0, candidate(0x100, 0x10, 4)),
        (0, candidate(0x100, 0x10, 5)),
        (1, candidate(0x100, 0x10, 9)),
    ];
    assert_eq!(find(&aliases, 0x100), Some((0x100, 0x110, 5)));
}

#[test]
fn a_real_table_answers_the_same_sorted_and_scanned() {
    let exe =
        std::sync::Arc::new(crate::elf::ElfFile::open(&std::env::current_exe().unwrap()).unwrap());
    let table = SymbolTable::new(vec![
        (Bytes::File(exe.clone()), Table::Static),
        (Bytes::File(exe), Table::Dynamic),
    ]);
    let mut starts = Vec::new();
    table.for_each(&mut |_, c| starts.push(c.start));
    starts.sort_unstable();
    let probes: Vec<u64> = starts
        .iter()
        .step_by(starts.len() / 50 + 1)
        .flat_map(|&s| [s, s + 1, s.saturating_sub(1)])
        .collect();
    let scanned: Vec<_> = probes
        .iter()
        .map(|&a| {
            table
                .lookup(a)
                .map(|h| (h.start, h.name.to_vec(), h.file.map(<[u8]>::to_vec)))
        })
        .collect();
    table.prepare(SCANS_BEFORE_SORTING + 1);
    assert!(table.sorted.get().is_some());
    let searched: Vec<_> = probes
        .iter()
        .map(|&a| {
            table
                .lookup(a)
                .map(|h| (h.start, h.name.to_vec(), h.file.map(<[u8]>::to_vec)))
        })
        .collect();
    assert_eq!(scanned, searched);
    assert!(searched.iter().flatten().count() > probes.len() / 3);
}
