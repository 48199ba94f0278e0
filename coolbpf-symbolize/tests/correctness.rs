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
//! - `gnu_debugdata`: stripped, with its function symbols in an xz-compressed
//!   `.gnu_debugdata` (MiniDebugInfo, built as Fedora does), checked against the
//!   `symtab` answers since llvm-symbolizer does not read it.
//!
//! Variants made by objcopy leave the code untouched, so those with DWARF are checked
//! against llvm-symbolizer's answers for the plain binary (which is also what the debug
//! link has to recover, and LLVM 14 cannot read zstd sections). Split DWARF
//! (-gsplit-dwarf) is not covered: the symbolizer does not read .dwo files yet.
//!
//! Also checked: answers do not depend on batching, duplicates, order or cache size,
//! and corrupted files never make the symbolizer panic.

mod support;

use std::ffi::OsString;
use std::path::Path;

use coolbpf_symbolize::{Source, Symbolizer};
use support::compare::{compare, Report};
use support::{have, instruction_addrs, llvm_symbolize, program, run, succeeds, TempDir};

/// Agreement every binary must reach, in percent.
const REQUIRED_PERCENT: f64 = 99.5;

/// How one language's test program is built.
struct Language {
    /// Test name and temp dir name.
    name: &'static str,
    compiler: &'static str,
    source: &'static str,
    /// Arguments before `-o OUT SOURCE`.
    flags: &'static [&'static str],
    /// Extra arguments for compressed debug sections.
    gz_flags: &'static [&'static str],
    /// Which functions (by raw symbol name) are the program's own.
    wanted: fn(&str) -> bool,
}

impl Language {
    fn build(&self, out: &Path, extra: &[&str]) {
        let mut args: Vec<OsString> = self.flags.iter().map(OsString::from).collect();
        args.extend(extra.iter().map(OsString::from));
        args.extend([
            OsString::from("-o"),
            out.into(),
            program(self.source).into(),
        ]);
        run(self.compiler, args);
    }
}

#[test]
fn c_built_by_gcc_agrees_with_llvm_symbolizer() {
    check(&Language {
        name: "c-gcc",
        compiler: "gcc",
        source: "prog.c",
        flags: &["-O2", "-g", "-Wl,--build-id"],
        gz_flags: &["-gz"],
        wanted: |name| name.starts_with("t_") || name == "main",
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

/// Prints every report, then requires the agreement of each.
fn assert_agreement(reports: &[Report]) {
    for report in reports {
        report.print();
    }
    for report in reports {
        // Inline chains are the hard part: a program without them would prove little.
        let has_dwarf = !report.name.ends_with("symtab") && !report.name.ends_with("debugdata");
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
/// short) give errors or `Unknown`s, never a panic.
#[test]
fn corrupted_files_never_panic() {
    use object::{Object, ObjectSection};
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
        let addrs: Vec<u64> = instruction_addrs(&binary, |n| n.starts_with("t_") || n == "main")
            .into_iter()
            .step_by(5)
            .collect();
        let original = std::fs::read(&binary).unwrap();
        let sections: Vec<(usize, usize)> = {
            let object = object::File::parse(&*original).unwrap();
            object
                .sections()
                .filter(|s| {
                    s.name()
                        .is_ok_and(|n| n.starts_with(".debug") || n.ends_with("tab"))
                })
                .filter_map(|s| s.file_range())
                .map(|(offset, size)| (offset as usize, size as usize))
                .filter(|&(_, size)| size > 0)
                .collect()
        };
        assert!(sections.len() >= 6, "{compiler}: debug sections expected");
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut random = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let corrupt = dir.join("corrupt");
        for round in 0..240 {
            let mut bytes = original.clone();
            let (offset, size) = sections[round % sections.len()];
            for _ in 0..=random() % 8 {
                let at = offset + (random() as usize % size);
                bytes[at] = if random() % 2 == 0 {
                    random() as u8
                } else {
                    0xff
                };
            }
            if round % 10 == 9 {
                bytes.truncate(random() as usize % original.len());
            }
            std::fs::write(&corrupt, &bytes).unwrap();
            // Any answer will do, as long as there is one.
            let _ = Symbolizer::new().symbolize(&Source::elf(&corrupt), &addrs);
        }
    }
}
