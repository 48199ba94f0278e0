//! Arbitrary bytes as an ELF file: its symbol tables, DWARF (units, line programs,
//! inline chains, ranges, strings; compressed sections; `.gnu_debugdata`) and segments,
//! symbolized at a spread of addresses taken from the input's own headers.
//!
//! The symbolizer reads files (it maps them), so each input is written to a private
//! temporary file first. Beyond "no panic, no hang, bounded memory", it checks what every
//! answer must satisfy: one result per address, the same answers from the cache as from
//! a fresh parse, and well-formed frames.

#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use coolbpf_symbolize::{FileRef, Source, Symbolized, Symbolizer};
use libfuzzer_sys::fuzz_target;
use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol, SymbolKind};

/// Functions whose ranges are sampled.
const MAX_SYMBOLS: usize = 64;
/// Sections and segments whose ranges are sampled.
const MAX_SECTIONS: usize = 32;
const MAX_SEGMENTS: usize = 16;

/// Prefix of the fuzzing processes' temporary directories, which end in the pid.
const DIR_PREFIX: &str = "coolbpf-fuzz-";

/// Where each input is written: one file per fuzzing process (libFuzzer's `-fork` and
/// `-jobs` run several), rewritten per input, alone in its directory.
fn input_path() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let temp = std::env::temp_dir();
        remove_stale_dirs(&temp);
        let dir = temp.join(format!("{DIR_PREFIX}{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("cannot create the fuzzer's temporary directory");
        dir.join("input.elf")
    })
}

/// Removes the directories of fuzzing processes that are gone: libFuzzer ends a process
/// with `exit`, which runs no destructor that could.
fn remove_stale_dirs(temp: &Path) {
    let Ok(entries) = std::fs::read_dir(temp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name
            .to_str()
            .and_then(|n| n.strip_prefix(DIR_PREFIX))
            .filter(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()));
        if pid.is_some_and(|pid| !Path::new("/proc").join(pid).exists()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// `start` and points across `[start, start + size)`, and just past it.
fn spread(out: &mut Vec<u64>, start: u64, size: u64) {
    out.extend([
        start,
        start.wrapping_add(size / 3),
        start.wrapping_add(size / 3 * 2),
        start.wrapping_add(size.wrapping_sub(1)),
        start.wrapping_add(size),
    ]);
}

/// Addresses worth asking about: inside the functions, allocated sections and loadable
/// segments the headers describe, at edges that are easy to get wrong, and the last
/// words of the input itself (so that mutations can reach any address).
fn addresses(data: &[u8]) -> Vec<u64> {
    let mut addrs = vec![0, 1, 0x1000, 0x40_0000, u64::MAX - 1, u64::MAX];
    if let Ok(file) = object::File::parse(data) {
        let functions = file
            .symbols()
            .chain(file.dynamic_symbols())
            .filter(|s| s.kind() == SymbolKind::Text)
            .take(MAX_SYMBOLS);
        for symbol in functions {
            spread(&mut addrs, symbol.address(), symbol.size());
        }
        for section in file.sections().take(MAX_SECTIONS) {
            if section.address() != 0 {
                spread(&mut addrs, section.address(), section.size());
            }
        }
        for segment in file.segments().take(MAX_SEGMENTS) {
            spread(&mut addrs, segment.address(), segment.size());
        }
    }
    addrs.extend(
        data.rchunks_exact(8)
            .take(4)
            .filter_map(|w| w.try_into().ok().map(u64::from_le_bytes)),
    );
    addrs
}

/// File offsets across the file, and in each loadable segment.
fn offsets(data: &[u8]) -> Vec<u64> {
    let len = data.len() as u64;
    let mut offsets = Vec::new();
    spread(&mut offsets, 0, len);
    if let Ok(file) = object::File::parse(data) {
        for segment in file.segments().take(MAX_SEGMENTS) {
            let (start, size) = segment.file_range();
            spread(&mut offsets, start, size);
        }
    }
    offsets
}

/// What every answer must satisfy, whatever the input.
fn check(results: &[Symbolized], asked: usize) {
    assert_eq!(results.len(), asked, "one result per address");
    for result in results {
        let Symbolized::Frames(frames) = result else {
            continue;
        };
        let (outer, inlined) = frames.split_last().expect("frames are never empty");
        assert!(
            !outer.inlined,
            "the outermost frame is not inlined: {frames:?}"
        );
        assert!(inlined.iter().all(|f| f.inlined), "{frames:?}");
        for frame in frames {
            assert_ne!(frame.line, Some(0), "{frame:?}");
            assert_ne!(frame.column, Some(0), "{frame:?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let path = input_path();
    if std::fs::write(path, data).is_err() {
        return;
    }
    let addrs = addresses(data);
    // No debug directories: nothing outside the input may be read. A tiny cache (for
    // odd-sized inputs) evicts parsed units between lookups, a path of its own.
    let cache_bytes = if data.len() % 2 == 1 { 1 } else { 64 << 20 };
    let symbolizer = Symbolizer::builder()
        .debug_dirs(Vec::<PathBuf>::new())
        .cache_bytes(cache_bytes)
        .build();
    let source = Source::elf(path);
    if let Ok(first) = symbolizer.symbolize(&source, &addrs) {
        check(&first, addrs.len());
        // Again, in reverse order: the file and its units come from the cache now.
        let reversed: Vec<u64> = addrs.iter().rev().copied().collect();
        let again = symbolizer
            .symbolize(&source, &reversed)
            .expect("a file that opened once opens again");
        assert!(
            again.iter().rev().eq(first.iter()),
            "answers changed on the second call"
        );
    }
    let offsets = offsets(data);
    if let Ok(results) = symbolizer.symbolize_file_offsets(&FileRef::Path(path.into()), &offsets) {
        check(&results, offsets.len());
    }
});
