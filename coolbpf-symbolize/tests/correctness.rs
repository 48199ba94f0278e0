//! Correctness of ELF symbolization against llvm-symbolizer, on programs this test
//! builds with the system compilers: C (GCC and clang, -O2 -g, static inline helpers),
//! C++ (g++ -O2 -g: templates, namespaces, lambdas) and Rust (rustc -C opt-level=3 -g).
//!
//! Every instruction start of the program's own functions (from `llvm-objdump -d`,
//! within each function's symbol size) is symbolized by us and by llvm-symbolizer;
//! `support/compare.rs` says what agreeing means. Each binary must agree on at least
//! 99.5% of its addresses. Variants of each program:
//! - `plain`: DWARF in the binary;
//! - `debuglink`: debug sections stripped (`objcopy --strip-debug`), found again
//!   through `.gnu_debuglink` in a separate file next to it (`--only-keep-debug`);
//! - `build-id`: everything stripped (`--strip-all`, no `.symtab` either), the debug
//!   file under a configured debug directory as `.build-id/xx/rest.debug`;
//! - `zlib`: built with compressed debug sections (`-gz`; the linker's
//!   `--compress-debug-sections=zlib` for Rust);
//! - `zstd` and `zlib-gnu` (legacy `.zdebug_*`): the plain binary recompressed by
//!   objcopy, when it supports that;
//! - `symtab`: no DWARF at all (`--strip-debug`), names from `.symtab` only;
//! - `symtab files`: the debug sections removed but `.symtab` whole, so that local
//!   symbols have the source file of their `STT_FILE` symbol;
//! - `gnu_debugdata`: stripped, with its function symbols in an xz-compressed
//!   `.gnu_debugdata` (MiniDebugInfo, built as Fedora does), checked against the
//!   `symtab` answers since llvm-symbolizer does not read it.
//!
//! Variants made by objcopy leave the code untouched, so those with DWARF are checked
//! against llvm-symbolizer's answers for the plain binary (which is also what the debug
//! link has to recover, and LLVM 14 cannot read zstd sections).
//!
//! Split DWARF builds of their own (`-gsplit-dwarf`: DWARF 5 skeleton and split units,
//! and GNU's DWARF 4 extension; rustc's `-C split-debuginfo`). Splitting the DWARF does
//! not change the code, and where it is byte for byte the plain build's (always, so
//! far) the answers must be llvm-symbolizer's for the plain build: the same as
//! unsplit DWARF gives. (llvm-symbolizer 14 itself loses inlined calls whose ranges are
//! offset pairs in a DWARF 5 split unit, as clang writes them.) Else they are checked
//! against llvm-symbolizer's answers for the split build. Variants:
//! - `dwo`: the `.dwo` files where the compiler left them;
//! - `dwo moved`: the build directory renamed, so the `.dwo` files are only next to the
//!   binary (which llvm-symbolizer does not look at: checked against its answers from
//!   before the move);
//! - `dwp`: packed into `BINARY.dwp` (by llvm-dwp or dwp, or by rustc itself), the
//!   `.dwo` files removed;
//! - `no dwo`: neither left, so lines come from the skeleton and names from the symbol
//!   table.
//!
//! The plain build rewritten by dwz (`dwz`, `dwz multifile` with a supplementary file
//! named by `.gnu_debugaltlink`, absolute or `relative`, or found by `build-id`) is
//! checked against llvm-symbolizer's answers for the plain build.
//!
//! Data addresses of the plain build (`data`) are named by the data symbols covering
//! them, as llvm-symbolizer names them.
//!
//! Also checked: answers do not depend on batching, duplicates, order or cache size,
//! and corrupted files never make the symbolizer panic.

mod support;

use std::ffi::OsString;
use std::path::Path;

use coolbpf_symbolize::{Source, Symbolizer};
use support::compare::{compare, Report};
use support::lang::{Language, Split, SPLIT_C};
use support::{have, instruction_addrs, llvm_symbolize, program, run, succeeds, TempDir};

/// Agreement every binary must reach, in percent.
const REQUIRED_PERCENT: f64 = 99.5;

#[test]
fn c_built_by_gcc_agrees_with_llvm_symbolizer() {
    check(&Language {
        name: "c-gcc",
        compiler: "gcc",
        source: "prog.c",
        flags: &["-O2", "-g", "-Wl,--build-id"],
        gz_flags: &["-gz"],
        wanted: |name| name.starts_with("t_") || name == "main",
        split: SPLIT_C,
    });
}

#[test]
fn c_built_by_clang_agrees_with_llvm_symbolizer() {
    check(&Language {
        name: "c-clang",
        compiler: "clang",
        source: "prog.c",
        flags: &["-O2", "-g", "-Wl,--build-id"],
        gz_flags: &["-gz"],
        wanted: |name| name.starts_with("t_") || name == "main",
        split: SPLIT_C,
    });
}

#[test]
fn cpp_built_by_gxx_agrees_with_llvm_symbolizer() {
    check(&Language {
        name: "cpp-gxx",
        compiler: "g++",
        source: "prog.cpp",
        flags: &["-O2", "-g", "-std=c++17", "-Wl,--build-id"],
        gz_flags: &["-gz"],
        wanted: |name| name.contains("3tst") || name == "main",
        split: &SPLIT_C[..1],
    });
}

#[test]
fn rust_agrees_with_llvm_symbolizer() {
    check(&Language {
        name: "rust",
        compiler: "rustc",
        source: "prog.rs",
        flags: &[
            "--edition=2021",
            "-Copt-level=3",
            "-g",
            "-Clink-arg=-Wl,--build-id",
        ],
        gz_flags: &["-Clink-arg=-Wl,--compress-debug-sections=zlib"],
        wanted: |name| name.contains("4prog") || name.contains("prog.."),
        split: &[
            Split {
                name: "split-unpacked",
                flags: &["-Csplit-debuginfo=unpacked"],
                packed: false,
            },
            Split {
                name: "split-packed",
                flags: &["-Csplit-debuginfo=packed"],
                packed: true,
            },
        ],
    });
}

/// One program's plain build and llvm-symbolizer's answers for it.
struct Case<'a> {
    lang: &'a Language,
    dir: &'a TempDir,
    plain: &'a Path,
    addrs: &'a [u64],
    reference: &'a [Vec<support::RefFrame>],
}

impl Case<'_> {
    /// Our agreement on `binary` (same code as the plain build) with the reference.
    fn ours(&self, symbolizer: &Symbolizer, variant: &str, binary: &Path) -> Report {
        ours(
            symbolizer,
            variant,
            self.lang,
            binary,
            self.addrs,
            self.reference,
        )
    }
}

fn check(lang: &Language) {
    let tools = [
        lang.compiler,
        "llvm-symbolizer",
        "llvm-objdump",
        "objcopy",
        "nm",
    ];
    if let Some(missing) = tools.iter().find(|t| !have(t)) {
        eprintln!("skipping {}: {missing} is not installed", lang.name);
        return;
    }
    let dir = TempDir::new(lang.name);
    let plain = dir.join("prog");
    lang.build(&plain, &[]);
    let addrs = instruction_addrs(&plain, lang.wanted);
    assert!(
        addrs.len() > 100,
        "{}: only {} instructions found",
        lang.name,
        addrs.len()
    );
    let reference = llvm_symbolize(&plain, &addrs);
    let case = Case {
        lang,
        dir: &dir,
        plain: &plain,
        addrs: &addrs,
        reference: &reference,
    };
    let mut reports = vec![case.ours(&Symbolizer::new(), "plain", &plain)];
    // Data addresses are named by data symbols, as llvm-symbolizer names them.
    let data = support::data_addrs(&plain);
    let data_reference = llvm_symbolize(&plain, &data);
    reports.push(ours(
        &Symbolizer::new(),
        "data",
        lang,
        &plain,
        &data,
        &data_reference,
    ));
    same_answers_any_way_asked(&plain, &addrs);
    separate_debug_files(&case, &mut reports);
    recompressed(&case, &mut reports);
    without_dwarf(&case, &mut reports);

    // Compressed by the toolchain: a build of its own, with its own reference.
    let gz = dir.join("prog.gz");
    lang.build(&gz, lang.gz_flags);
    let gz_addrs = instruction_addrs(&gz, lang.wanted);
    let gz_reference = llvm_symbolize(&gz, &gz_addrs);
    reports.push(ours(
        &Symbolizer::new(),
        "zlib",
        lang,
        &gz,
        &gz_addrs,
        &gz_reference,
    ));
    split_dwarf(&case, &mut reports);
    dwz(&case, &mut reports);
    assert_agreement(&reports);
}

/// The debug information in a separate file: found by debug link, and by build id.
fn separate_debug_files(case: &Case<'_>, reports: &mut Vec<Report>) {
    // A debug link next to the stripped binary.
    let debug = case.dir.join("prog.debug");
    objcopy(&["--only-keep-debug"], case.plain, &debug);
    let stripped = case.dir.join("prog.stripped");
    let link = format!("--add-gnu-debuglink={}", debug.display());
    objcopy(&["--strip-debug", &link], case.plain, &stripped);
    reports.push(case.ours(&Symbolizer::new(), "debuglink", &stripped));

    // Nothing left in the binary; the debug file found by build id in our own root.
    let root = case.dir.join("debug-root");
    let elf = coolbpf_symbolize::elf::ElfFile::open(case.plain).unwrap();
    let hex = coolbpf_symbolize::elf::build_id_hex(elf.build_id().unwrap());
    let by_id = root
        .join(".build-id")
        .join(&hex[..2])
        .join(format!("{}.debug", &hex[2..]));
    std::fs::create_dir_all(by_id.parent().unwrap()).unwrap();
    std::fs::copy(&debug, &by_id).unwrap();
    let bare = case.dir.join("prog.bare");
    objcopy(&["--strip-all"], case.plain, &bare);
    let rooted = Symbolizer::builder().debug_dirs([&root]).build();
    reports.push(case.ours(&rooted, "build-id", &bare));
}

/// The debug sections recompressed by objcopy, where it can.
fn recompressed(case: &Case<'_>, reports: &mut Vec<Report>) {
    for (variant, how) in [("zstd", "zstd"), ("zlib-gnu", "zlib-gnu")] {
        let out = case.dir.join(format!("prog.{variant}"));
        let flag = format!("--compress-debug-sections={how}");
        if succeeds(
            "objcopy",
            [flag.as_ref(), case.plain.as_os_str(), out.as_os_str()],
        ) {
            reports.push(case.ours(&Symbolizer::new(), variant, &out));
        } else {
            eprintln!(
                "{}: objcopy cannot make {variant} sections, not checked",
                case.lang.name
            );
        }
    }
}

/// No DWARF anywhere: symbol table names only, from `.symtab` and from `.gnu_debugdata`.
fn without_dwarf(case: &Case<'_>, reports: &mut Vec<Report>) {
    let symtab_only = case.dir.join("prog.symtab");
    objcopy(&["--strip-debug"], case.plain, &symtab_only);
    let names_only = llvm_symbolize(&symtab_only, case.addrs);
    let default = Symbolizer::new();
    reports.push(ours(
        &default,
        "symtab",
        case.lang,
        &symtab_only,
        case.addrs,
        &names_only,
    ));

    // The debug sections removed but not the symbols naming source files (which
    // `--strip-debug` drops too): local symbols still tell their file.
    let sourced = case.dir.join("prog.nodebug");
    objcopy(
        &["--wildcard", "--remove-section=.debug_*"],
        case.plain,
        &sourced,
    );
    let with_files = llvm_symbolize(&sourced, case.addrs);
    reports.push(ours(
        &default,
        "symtab files",
        case.lang,
        &sourced,
        case.addrs,
        &with_files,
    ));
    // DWARF present but turned off: the answer without debug sections.
    let no_dwarf = Symbolizer::builder().dwarf(false).build();
    reports.push(ours(
        &no_dwarf,
        "dwarf off, symtab files",
        case.lang,
        case.plain,
        case.addrs,
        &with_files,
    ));

    // MiniDebugInfo: a stripped binary whose function symbols are in .gnu_debugdata.
    // llvm-symbolizer does not read it; the answer must be the symbol-table-only one.
    if let Some(mini) = support::minidebuginfo(case.dir, case.plain) {
        reports.push(ours(
            &default,
            "gnu_debugdata",
            case.lang,
            &mini,
            case.addrs,
            &names_only,
        ));
    } else {
        eprintln!(
            "{}: xz is not installed, .gnu_debugdata not checked",
            case.lang.name
        );
    }
}

/// The split DWARF builds: `.dwo` files in place and moved, packed, and gone.
fn split_dwarf(case: &Case<'_>, reports: &mut Vec<Report>) {
    let lang = case.lang;
    for split in lang.split {
        let build = case.dir.join(split.name);
        std::fs::create_dir_all(&build).unwrap();
        let binary = lang.build_split(&build, split);
        let own_addrs;
        let own_reference;
        let (addrs, reference) = if support::same_code(case.plain, &binary) {
            (case.addrs, case.reference)
        } else {
            eprintln!(
                "{} {}: code differs from the plain build",
                lang.name, split.name
            );
            own_addrs = instruction_addrs(&binary, lang.wanted);
            own_reference = llvm_symbolize(&binary, &own_addrs);
            (&own_addrs[..], &own_reference[..])
        };
        let check = |variant: &str, binary: &Path, reference: &[Vec<support::RefFrame>]| {
            let variant = format!("{} {variant}", split.name);
            ours(&Symbolizer::new(), &variant, lang, binary, addrs, reference)
        };
        if split.packed {
            reports.push(check("dwp", &binary, reference));
        } else {
            reports.push(check("dwo", &binary, reference));
            same_answers_any_way_asked(&binary, addrs);
            // The compilation directory gone: the .dwo files are found next to the binary.
            let moved = case.dir.join(format!("{}-moved", split.name));
            std::fs::rename(&build, &moved).unwrap();
            reports.push(check("dwo moved", &moved.join("prog"), reference));
            std::fs::rename(&moved, &build).unwrap();
            let package = support::split::package(&binary);
            for dwo in support::split::dwo_files(&build) {
                std::fs::remove_file(dwo).unwrap();
            }
            if package.is_some() {
                reports.push(check("dwp", &binary, reference));
            } else {
                eprintln!("{}: neither llvm-dwp nor dwp can pack it", lang.name);
            }
        }
        let _ = std::fs::remove_file(build.join("prog.dwp"));
        // Nothing to read but the skeleton: llvm-symbolizer then answers from the line
        // table and the symbol table, and so must we.
        let bare = llvm_symbolize(&binary, addrs);
        reports.push(check("no dwo", &binary, &bare));
    }
}

/// The DWARF rewritten by dwz, which leaves the code as it is (so the answers must be
/// those for the plain build): within the file (partial units, references across
/// units), and with what two copies share moved into a supplementary file, named with an
/// absolute path, a relative one, or found by its build id under a debug directory.
/// (llvm-symbolizer 14 does not read supplementary files.)
fn dwz(case: &Case<'_>, reports: &mut Vec<Report>) {
    if !have("dwz") {
        eprintln!("{}: dwz is not installed, not checked", case.lang.name);
        return;
    }
    let single = case.dir.join("prog.dwz");
    std::fs::copy(case.plain, &single).unwrap();
    if succeeds("dwz", [&single]) {
        reports.push(case.ours(&Symbolizer::new(), "dwz", &single));
    } else {
        eprintln!("{}: dwz cannot rewrite it, not checked", case.lang.name);
        return;
    }
    for (variant, relative) in [("dwz multifile", false), ("dwz multifile relative", true)] {
        let dir = case.dir.join(variant.replace(' ', "-"));
        std::fs::create_dir_all(&dir).unwrap();
        for copy in ["a", "b"] {
            std::fs::copy(case.plain, dir.join(copy)).unwrap();
        }
        let common = dir.join("common.debug");
        let mut args = vec![OsString::from("-m"), "common.debug".into()];
        if relative {
            args.push("-r".into());
        } else {
            args.extend(["-M".into(), common.clone().into()]);
        }
        args.extend(["a".into(), "b".into()]);
        support::run_in(&dir, "dwz", args);
        reports.push(case.ours(&Symbolizer::new(), variant, &dir.join("a")));
        same_answers_any_way_asked(&dir.join("a"), case.addrs);
        if relative {
            continue;
        }
        // The named path gone; the file installed by its build id instead.
        let elf = coolbpf_symbolize::elf::ElfFile::open(&common).unwrap();
        let hex = coolbpf_symbolize::elf::build_id_hex(elf.build_id().unwrap());
        let root = dir.join("debug-root");
        let by_id = root
            .join(".build-id")
            .join(&hex[..2])
            .join(format!("{}.debug", &hex[2..]));
        std::fs::create_dir_all(by_id.parent().unwrap()).unwrap();
        std::fs::rename(&common, &by_id).unwrap();
        let rooted = Symbolizer::builder().debug_dirs([&root]).build();
        reports.push(case.ours(&rooted, "dwz multifile build-id", &dir.join("a")));
    }
}

/// Prints every report, then requires the agreement of each.
fn assert_agreement(reports: &[Report]) {
    for report in reports {
        report.print();
    }
    for report in reports {
        // Inline chains are the hard part: a program without them would prove little.
        let has_dwarf = !["symtab", "files", "debugdata", "no dwo", "data"]
            .iter()
            .any(|without| report.name.ends_with(without));
        assert!(
            !has_dwarf || report.inlined * 10 > report.total,
            "{}: too little inlined code",
            report.name
        );
        assert!(
            report.percent() >= REQUIRED_PERCENT,
            "{}: {:.2}% agreement, below {REQUIRED_PERCENT}%",
            report.name,
            report.percent()
        );
    }
}

/// Batches, single addresses on a fresh symbolizer (the paths that scan symbol tables
/// and `.debug_aranges` instead of sorting them), duplicates, and a cache too small to
/// keep anything all give the same answers.
fn same_answers_any_way_asked(binary: &Path, addrs: &[u64]) {
    let source = Source::elf(binary);
    let batch = Symbolizer::new().symbolize(&source, addrs).unwrap();
    let fresh = Symbolizer::new();
    for (addr, expected) in addrs.iter().zip(&batch).take(24) {
        assert_eq!(
            &fresh.symbolize(&source, &[*addr]).unwrap()[0],
            expected,
            "{addr:#x} alone"
        );
    }
    let tiny = Symbolizer::builder().cache_bytes(1).build();
    assert_eq!(
        tiny.symbolize(&source, addrs).unwrap(),
        batch,
        "with a 1-byte cache"
    );
    let doubled: Vec<u64> = addrs.iter().rev().chain(addrs).copied().collect();
    let twice = Symbolizer::new().symbolize(&source, &doubled).unwrap();
    let expected: Vec<_> = batch.iter().rev().chain(&batch).cloned().collect();
    assert_eq!(twice, expected, "reversed and repeated");
}

fn ours(
    symbolizer: &Symbolizer,
    variant: &str,
    lang: &Language,
    binary: &Path,
    addrs: &[u64],
    reference: &[Vec<support::RefFrame>],
) -> Report {
    let results = symbolizer.symbolize(&Source::elf(binary), addrs).unwrap();
    compare(
        &format!("{} {variant}", lang.name),
        addrs,
        &results,
        reference,
    )
}

fn objcopy(flags: &[&str], input: &Path, output: &Path) {
    let mut args: Vec<OsString> = flags.iter().map(OsString::from).collect();
    args.extend([input.into(), output.into()]);
    run("objcopy", args);
}

/// Corrupted DWARF and symbol tables (bytes flipped in each section in turn, files cut
/// short) give errors or `Unknown`s, never a panic: in the binary, in its split DWARF
/// files, and in its dwz supplementary file.
#[test]
fn corrupted_files_never_panic() {
    use support::corrupt::corrupt_and_symbolize;
    let wanted = |n: &str| n.starts_with("t_") || n == "main";
    for compiler in ["gcc", "clang"] {
        if !have(compiler) || !have("llvm-objdump") || !have("nm") {
            eprintln!("skipping {compiler}: tools missing");
            continue;
        }
        let dir = TempDir::new(&format!("corrupt-{compiler}"));
        let binary = dir.join("prog");
        run(
            compiler,
            [
                OsString::from("-O2"),
                "-g".into(),
                "-o".into(),
                binary.clone().into(),
                program("prog.c").into(),
            ],
        );
        let addrs: Vec<u64> = instruction_addrs(&binary, wanted)
            .into_iter()
            .step_by(5)
            .collect();
        corrupt_and_symbolize(&binary, &binary, &addrs, 240);
        if compiler != "gcc" {
            continue;
        }
        let split = dir.join("split");
        std::fs::create_dir_all(&split).unwrap();
        let flags = ["-O2", "-g"];
        let source = program("prog.c");
        let binary =
            support::split::build_objects(compiler, &flags, &["-gsplit-dwarf"], &source, &split);
        corrupt_and_symbolize(&split.join("prog.dwo"), &binary, &addrs, 80);
        if let Some(package) = support::split::package(&binary) {
            std::fs::remove_file(split.join("prog.dwo")).unwrap();
            corrupt_and_symbolize(&package, &binary, &addrs, 80);
        }
        if have("dwz") {
            std::fs::copy(dir.join("prog"), dir.join("copy")).unwrap();
            support::run_in(
                dir.path(),
                "dwz",
                ["-m", "common.debug", "-r", "prog", "copy"],
            );
            corrupt_and_symbolize(&dir.join("common.debug"), &dir.join("prog"), &addrs, 80);
        }
    }
}

/// The first bytes of libc (its ELF header, at the start of its first mapping) are in no
/// function, as llvm-symbolizer says too. glibc's link warnings are symbols in sections
/// that are not loaded, at address 0; with libc's debug file installed its symbol table
/// has them, and they once named the header.
#[test]
fn libc_header_is_in_no_symbol() {
    let candidates = [
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/lib/aarch64-linux-gnu/libc.so.6",
        "/lib64/libc.so.6",
        "/usr/lib64/libc.so.6",
    ];
    let Some(libc) = candidates.iter().map(Path::new).find(|p| p.exists()) else {
        eprintln!("skipping: no libc.so.6 found");
        return;
    };
    if !have("llvm-symbolizer") {
        eprintln!("skipping: llvm-symbolizer is not installed");
        return;
    }
    let addrs = [0, 1, 0x10, 0x3f, 0x40, 0x100];
    let results = Symbolizer::new()
        .symbolize(&Source::elf(libc), &addrs)
        .unwrap();
    let report = compare(
        "libc header",
        &addrs,
        &results,
        &llvm_symbolize(libc, &addrs),
    );
    report.print();
    assert_eq!(report.agree, report.total);
    for (addr, result) in addrs.iter().zip(&results) {
        assert!(result.frames().is_empty(), "{addr:#x}: {result:?}");
    }
}

/// A symbol of a section that is not loaded covers no address, though it is linked at
/// address 0 (llvm-symbolizer, reading every symbol it finds, names the ELF header after
/// it here); the program's code is still named.
#[test]
fn symbols_of_unloaded_sections_cover_nothing() {
    if !have("gcc") || !have("nm") {
        eprintln!("skipping: gcc or nm is not installed");
        return;
    }
    let dir = TempDir::new("unloaded");
    let binary = dir.join("prog");
    run(
        "gcc",
        [
            OsString::from("-o"),
            binary.clone().into(),
            program("unloaded.c").into(),
        ],
    );
    let listing = run("nm", [binary.as_os_str()]);
    let main = listing
        .lines()
        .find_map(|l| l.strip_suffix(" T main"))
        .and_then(|a| u64::from_str_radix(a, 16).ok())
        .unwrap();
    assert!(listing.contains("unloaded_marker"), "{listing}");
    let results = Symbolizer::new()
        .symbolize(&Source::elf(&binary), &[0, 0x40, 0xff, main])
        .unwrap();
    for result in &results[..3] {
        assert!(result.frames().is_empty(), "{result:?}");
    }
    assert_eq!(results[3].function(), Some("main"));
}
