//! Unwind tables against readelf's interpretation of the same CFI (every row), for a
//! program built without frame pointers (its `.eh_frame`, and its `.debug_frame` alone),
//! Debian's libc and python3.11; the reference unwinder on a real process snapshot
//! against gdb; and corrupt CFI, which must give errors or counted skips, never panics.

// The correctness test's helpers, for their TempDir; the rest serves that test.
#[allow(dead_code)]
mod support;
mod unwind_support;

use std::path::Path;

use coolbpf_symbolize::unwind::{
    executable_mappings, CfaRule, Module, Registers, StepError, UnwindError, UnwindTable, Unwinder,
    WalkEnd,
};
use coolbpf_symbolize::{Source, Symbolized, Symbolizer};
use support::TempDir;
use unwind_support::build_c;
use unwind_support::compare::compare;
use unwind_support::snapshot::Blocked;

const LIBC: &str = "/lib/x86_64-linux-gnu/libc.so.6";
const PYTHON: &str = "/usr/bin/python3.11";
const NOFP: &[&str] = &["-O2", "-g", "-fomit-frame-pointer"];

/// Compiles `binary`'s table and checks every readelf row against it.
fn check_against_readelf(binary: &Path) -> UnwindTable {
    let started = std::time::Instant::now();
    let table = UnwindTable::from_file(binary).expect("compile the table");
    let elapsed = started.elapsed();
    let result = compare(binary, &table);
    println!(
        "{}: {} rows ({} compact bytes) from {:?} in {elapsed:?}; {} readelf rows checked, {} in overlapping FDEs",
        binary.display(),
        table.rows().len(),
        table.compact().map_or(0, |c| c.bytes()),
        table.stats(),
        result.rows,
        result.overlapped,
    );
    assert!(result.rows > 0, "readelf listed no rows");
    assert!(
        result.mismatches.is_empty(),
        "{} of {} rows differ, first: {:#?}",
        result.mismatches.len(),
        result.rows,
        &result.mismatches[..result.mismatches.len().min(10)]
    );
    assert!(
        result.stray_rows.is_empty(),
        "rows readelf does not explain: {:x?}",
        &result.stray_rows[..result.stray_rows.len().min(10)]
    );
    table
}

#[test]
fn program_without_frame_pointers_matches_readelf() {
    let dir = TempDir::new("readelf-c");
    let binary = dir.join("chain");
    build_c("unwind_chain.c", &binary, NOFP);
    let table = check_against_readelf(&binary);
    assert!(
        table
            .rows()
            .iter()
            .any(|r| matches!(r.cfa, CfaRule::Rbp(16))),
        "level3's VLA frame is rbp-based"
    );
    assert!(table.rows().iter().any(|r| r.cfa == CfaRule::Plt));
    assert!(
        table.rows().iter().any(|r| r.cfa == CfaRule::Undefined),
        "_start ends walks"
    );
}

#[test]
fn debug_frame_alone_matches_readelf() {
    let dir = TempDir::new("readelf-debug-frame");
    let binary = dir.join("chain");
    let flags = [NOFP, &["-fno-asynchronous-unwind-tables"]].concat();
    build_c("unwind_chain.c", &binary, &flags);
    let table = check_against_readelf(&binary);
    assert!(table
        .rows()
        .iter()
        .any(|r| matches!(r.cfa, CfaRule::Rbp(16))));
}

#[test]
fn libc_matches_readelf() {
    let table = check_against_readelf(Path::new(LIBC));
    assert!(table.rows().len() > 10_000);
    assert_eq!(table.stats().skipped_fdes, 0);
}

#[test]
fn python_matches_readelf() {
    assert!(
        Path::new(PYTHON).exists(),
        "{PYTHON} is part of the test machine"
    );
    let table = check_against_readelf(Path::new(PYTHON));
    assert!(table.rows().len() > 10_000);
    assert_eq!(table.stats().skipped_fdes, 0);
}

/// The function names of `ips` in process `pid` (outermost inline frame's name).
fn names(pid: u32, ips: &[u64]) -> Vec<String> {
    let symbolizer = Symbolizer::new();
    // Return addresses are looked up one byte back, inside the call.
    let lookups: Vec<u64> = ips
        .iter()
        .enumerate()
        .map(|(i, ip)| if i == 0 { *ip } else { ip - 1 })
        .collect();
    symbolizer
        .symbolize(&Source::process(pid), &lookups)
        .expect("symbolize")
        .into_iter()
        .map(|s| match s {
            Symbolized::Frames(frames) => frames
                .last()
                .map(|f| f.function.clone())
                .unwrap_or_default(),
            Symbolized::Unknown(_) => "?".to_owned(),
        })
        .collect()
}

#[test]
fn reference_unwinder_walks_a_blocked_process_like_gdb() {
    let dir = TempDir::new("snapshot");
    let binary = dir.join("chain");
    build_c("unwind_chain.c", &binary, NOFP);
    let process = Blocked::start(&binary);
    let (sp, pc) = process.wait_in_read();
    let (mapped, failed) = executable_mappings(process.pid()).expect("mappings");
    assert!(failed.is_empty(), "{failed:?}");
    let tables: Vec<UnwindTable> = mapped
        .iter()
        .map(|m| UnwindTable::from_elf(&m.elf).expect("table"))
        .collect();
    let modules = mapped
        .iter()
        .zip(&tables)
        .map(|(m, table)| Module {
            start: m.entry.start,
            end: m.entry.end,
            bias: m.bias,
            table,
        })
        .collect();
    let unwinder = Unwinder::new(modules);
    // /proc/PID/syscall gives no rbp, which level3's rbp-based CFA needs: CFI alone
    // reaches level3 and stops there, saying why.
    let partial = unwinder.walk(
        Registers {
            ip: pc,
            sp,
            bp: None,
        },
        64,
        process.memory(),
    );
    assert_eq!(partial.end, WalkEnd::Failed(StepError::NoFramePointer));
    assert_eq!(
        names(process.pid(), &partial.ips)
            .last()
            .map(String::as_str),
        Some("level3")
    );
    let (ip, ptrace_sp, bp) = process.registers();
    assert_eq!(
        (ip, ptrace_sp),
        (pc, sp),
        "ptrace and /proc/PID/syscall agree"
    );
    let walk = unwinder.walk(
        Registers {
            ip,
            sp,
            bp: Some(bp),
        },
        64,
        process.memory(),
    );
    let ours = names(process.pid(), &walk.ips);
    println!("ours: {ours:?} ({walk:x?})");
    assert_eq!(walk.end, WalkEnd::Outermost, "{ours:?}");
    assert_eq!(walk.frame_pointer_steps, 0);
    let chain = [
        "leaf", "level5", "level4", "level3", "level2", "level1", "main",
    ];
    let at = ours
        .iter()
        .position(|n| n == "leaf")
        .expect("leaf is on the stack");
    assert_eq!(&ours[at..at + chain.len()], chain);
    assert_eq!(ours.last().map(String::as_str), Some("_start"));

    let gdb = process.gdb_backtrace();
    println!("gdb: {gdb:x?}");
    let gdb_pcs: Vec<u64> = gdb.iter().map(|(pc, _)| *pc).collect();
    assert_eq!(walk.ips, gdb_pcs, "every frame where gdb has it");
}

#[test]
fn non_x86_objects_are_refused() {
    let dir = TempDir::new("arch");
    let object = dir.join("x.o");
    let source = dir.join("x.c");
    std::fs::write(&source, "int f(int x) { return x + 1; }\n").unwrap();
    let status = std::process::Command::new("clang")
        .args(["--target=aarch64-linux-gnu", "-c", "-O2", "-o"])
        .arg(&object)
        .arg(&source)
        .status()
        .expect("run clang");
    assert!(status.success());
    let err = UnwindTable::from_file(&object).unwrap_err();
    assert!(
        matches!(err, UnwindError::UnsupportedArchitecture { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("x86_64"), "{err}");
}

/// Flips bytes of `.eh_frame` in a copy of the test program, one region at a time: every
/// result is a table or an error, and a table's rows stay sorted.
#[test]
fn corrupt_cfi_gives_errors_or_counted_skips() {
    use object::{Object, ObjectSection};
    let dir = TempDir::new("corrupt");
    let binary = dir.join("chain");
    build_c("unwind_chain.c", &binary, NOFP);
    let data = std::fs::read(&binary).unwrap();
    let (start, size) = {
        let object = object::File::parse(&*data).unwrap();
        let section = object.section_by_name(".eh_frame").unwrap();
        let (start, size) = section.file_range().unwrap();
        (start as usize, size as usize)
    };
    let clean = UnwindTable::from_bytes(&data).unwrap();
    let (mut errors, mut skipped, mut tables) = (0, 0, 0);
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for round in 0..2000 {
        let mut bad = data.clone();
        // Xorshift: deterministic, no dependency.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let at = start + (seed as usize) % size;
        let len = 1 + round % 8;
        for (i, byte) in bad[at..(at + len).min(start + size)].iter_mut().enumerate() {
            *byte ^= (seed >> (8 * (i % 8))) as u8 | 1;
        }
        match UnwindTable::from_bytes(&bad) {
            Ok(table) => {
                tables += 1;
                if table.stats().skipped_fdes > 0 {
                    skipped += 1;
                }
                assert!(table.rows().windows(2).all(|w| w[0].pc < w[1].pc));
                let _ = table.compact();
            }
            Err(err) => {
                assert!(!err.to_string().is_empty());
                errors += 1;
            }
        }
    }
    // Truncating the whole section: an error or an empty table, no panic.
    let mut cut = data.clone();
    cut.truncate(start + size / 2);
    let _ = UnwindTable::from_bytes(&cut);
    println!("2000 corruptions: {tables} tables ({skipped} with skipped FDEs), {errors} errors");
    assert!(errors > 0 && skipped > 0, "corruption reached both paths");
    assert!(clean.stats().skipped_fdes == 0);
    assert!(UnwindTable::from_bytes(b"not an elf").is_err());
}
