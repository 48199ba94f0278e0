//! The kernel source against /proc/kallsyms read line by line here, and a vmlinux
//! stand-in (a small program built here, relocated by a made-up KASLR slide) against
//! addr2line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use coolbpf_symbolize::{Error, Kernel, Source, Symbolized, Symbolizer, Unknown};

/// Text symbols by address: the names there and their module.
type Symbols = BTreeMap<u64, (Vec<String>, Option<String>)>;

/// Text symbols of the running kernel, from kallsyms as is.
fn kallsyms() -> Option<Symbols> {
    let text = std::fs::read_to_string("/proc/kallsyms").ok()?;
    let mut symbols = Symbols::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 3 || !matches!(fields[1], "t" | "T" | "w" | "W") {
            continue;
        }
        let addr = u64::from_str_radix(fields[0], 16).ok()?;
        let module = fields.get(3).map(|m| m.trim_matches(['[', ']']).to_owned());
        let entry = symbols.entry(addr).or_default();
        entry.0.push(fields[2].to_owned());
        entry.1 = module;
    }
    // With kptr_restrict every address is 0 and nothing can be checked.
    (symbols.keys().any(|&a| a != 0)).then_some(symbols)
}

fn kernel(addrs: &[u64]) -> Vec<Symbolized> {
    Symbolizer::new()
        .symbolize(&Source::kernel(), addrs)
        .expect("symbolize kernel addresses")
}

#[test]
fn known_functions_with_offsets() {
    let Some(symbols) = kallsyms() else {
        eprintln!("skipped: /proc/kallsyms shows no addresses (not root, or kptr_restrict=2)");
        return;
    };
    let address_of = |name: &str| {
        symbols
            .iter()
            .find(|(_, (names, m))| m.is_none() && names.iter().any(|n| n == name))
            .map(|(a, _)| *a)
    };
    let mut checked = 0;
    for name in ["schedule", "vfs_read", "do_sys_open", "ksys_read"] {
        let Some(addr) = address_of(name) else {
            continue;
        };
        // The offset stays inside the function: no other symbol starts before it.
        let next = symbols
            .range(addr + 1..)
            .next()
            .map_or(u64::MAX, |(a, _)| *a);
        let offset = 0x10.min(next - addr - 1);
        let results = kernel(&[addr + offset, addr, addr + offset]);
        let aliases = &symbols[&addr].0;
        for (result, expected_offset) in results.iter().zip([offset, 0, offset]) {
            let frames = result.frames();
            assert_eq!(frames.len(), 1, "{name}: {result:?}");
            assert!(
                aliases.contains(&frames[0].function),
                "{name}: {:?} not in {aliases:?}",
                frames[0]
            );
            assert_eq!(frames[0].offset, expected_offset, "{name}");
            assert!(!frames[0].inlined && frames[0].file.is_none());
        }
        checked += 1;
    }
    assert!(checked >= 2, "schedule and vfs_read exist in every kernel");
}

#[test]
fn module_and_bpf_symbols_name_their_module() {
    let Some(symbols) = kallsyms() else {
        eprintln!("skipped: /proc/kallsyms shows no addresses");
        return;
    };
    let Some((&addr, (names, Some(module)))) = symbols.iter().find(|(_, (_, m))| m.is_some())
    else {
        eprintln!("skipped: no module, BPF program or trampoline in kallsyms");
        return;
    };
    let result = &kernel(&[addr])[0];
    let function = result.function().unwrap_or_default();
    assert!(
        names.iter().any(|n| function == format!("{n} [{module}]")),
        "{result:?}"
    );
}

#[test]
fn hidden_addresses_are_an_error_that_says_how_to_fix_it() {
    let path = temp("restricted");
    std::fs::write(
        &path,
        "0000000000000000 T _text\n0000000000000000 T schedule\n",
    )
    .unwrap();
    let source = Source::Kernel(Kernel {
        kallsyms: Some(path.clone()),
        vmlinux: None,
    });
    let err = Symbolizer::new().symbolize(&source, &[0x1000]).unwrap_err();
    let _ = std::fs::remove_file(&path);
    let text = err.to_string();
    assert!(
        text.contains("kptr_restrict") && text.contains("root"),
        "{text}"
    );
    let missing = Source::Kernel(Kernel {
        kallsyms: Some("/nonexistent/kallsyms".into()),
        vmlinux: None,
    });
    assert!(matches!(
        Symbolizer::new().symbolize(&missing, &[1]),
        Err(Error::Io { .. })
    ));
}

#[test]
fn a_kallsyms_file_from_elsewhere() {
    let path = temp("elsewhere");
    std::fs::write(
        &path,
        "ffffffff81000000 T _text\nffffffff81000100 t helper\nffffffffa0000000 t mod_fn\t[mymod]\n",
    )
    .unwrap();
    let source = Source::Kernel(Kernel {
        kallsyms: Some(path.clone()),
        vmlinux: None,
    });
    let results = Symbolizer::new()
        .symbolize(
            &source,
            &[0xffff_ffff_8100_0108, 0xffff_ffff_a000_0004, 0x1000],
        )
        .unwrap();
    let _ = std::fs::remove_file(&path);
    assert_eq!(
        (results[0].function(), results[0].frames()[0].offset),
        (Some("helper"), 8)
    );
    assert_eq!(results[1].function(), Some("mod_fn [mymod]"));
    assert_eq!(results[2], Symbolized::Unknown(Unknown::Unmapped));
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("coolbpf-kernel-{}-{name}", std::process::id()))
}

/// A stand-in vmlinux: `_text` and a function with an inlined helper, with DWARF.
const FAKE_VMLINUX: &str = r"
void _text(void) {}
static inline __attribute__((always_inline)) int helper(int x) {
    return x * 7 + 1;
}
__attribute__((noinline)) int target_fn(int x) {
    return helper(x) + 3;
}
int main(int argc, char **argv) { (void)argv; return target_fn(argc); }
";

/// Builds the stand-in as `temp(name)`; `None` (skip) without a C compiler.
fn build_fake_vmlinux(name: &str) -> Option<PathBuf> {
    let source = temp(&format!("{name}.c"));
    let binary = temp(name);
    std::fs::write(&source, FAKE_VMLINUX).ok()?;
    let built = Command::new("cc")
        .args(["-g", "-O1", "-o"])
        .arg(&binary)
        .arg(&source)
        .status();
    built.is_ok_and(|s| s.success()).then_some(binary)
}

/// `(link address, size)` of a symbol, by nm.
fn nm(binary: &Path, name: &str) -> Option<(u64, u64)> {
    let out = Command::new("nm").arg("-S").arg(binary).output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() != 4 || fields[3] != name {
                return None;
            }
            Some((
                u64::from_str_radix(fields[0], 16).ok()?,
                u64::from_str_radix(fields[1], 16).ok()?,
            ))
        })
}

/// addr2line's frames for `vaddr`, innermost first: (function, line).
fn addr2line(binary: &Path, vaddr: u64) -> Option<Vec<(String, u32)>> {
    let out = Command::new("addr2line")
        .args(["-f", "-i", "-e"])
        .arg(binary)
        .arg(format!("{vaddr:#x}"))
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    lines
        .chunks(2)
        .map(|pair| {
            let line = pair
                .get(1)?
                .rsplit(':')
                .next()?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            Some((pair[0].to_owned(), line))
        })
        .collect()
}

#[test]
fn vmlinux_gives_lines_and_inlines_after_the_kaslr_slide() {
    let Some(binary) = build_fake_vmlinux("slid") else {
        eprintln!("skipped: no C compiler to build a stand-in vmlinux");
        return;
    };
    let (Some((text, _)), Some((target, size))) = (nm(&binary, "_text"), nm(&binary, "target_fn"))
    else {
        panic!("nm finds the stand-in's symbols");
    };
    // Pretend the kernel was loaded 16 MiB above its link address.
    let slide = 0x100_0000;
    let kallsyms = temp("slid-kallsyms");
    std::fs::write(
        &kallsyms,
        format!(
            "{:x} T _text\n{:x} T target_fn\n",
            text + slide,
            target + slide
        ),
    )
    .unwrap();
    let source = Source::Kernel(Kernel {
        kallsyms: Some(kallsyms.clone()),
        vmlinux: Some(binary.clone()),
    });
    // Every byte of target_fn: some lie in the inlined helper.
    let vaddrs: Vec<u64> = (target..target + size).collect();
    let runtime: Vec<u64> = vaddrs.iter().map(|v| v + slide).collect();
    let results = Symbolizer::new().symbolize(&source, &runtime);
    let expected: Vec<_> = vaddrs.iter().map(|&v| addr2line(&binary, v)).collect();
    let _ = std::fs::remove_file(&kallsyms);
    let _ = std::fs::remove_file(&binary);
    let _ = std::fs::remove_file(temp("slid.c"));
    let results = results.unwrap();
    let mut inlined = 0;
    for ((vaddr, result), expected) in vaddrs.iter().zip(&results).zip(&expected) {
        let Some(expected) = expected
            .as_ref()
            .filter(|e| e.iter().all(|(f, _)| f != "??"))
        else {
            continue;
        };
        let got: Vec<(String, u32)> = result
            .frames()
            .iter()
            .map(|f| (f.function.clone(), f.line.unwrap_or(0)))
            .collect();
        assert_eq!(&got, expected, "at {vaddr:#x}: {result:?}");
        inlined += usize::from(got.len() > 1);
    }
    assert!(inlined > 0, "helper is inlined into target_fn: {results:?}");
}

#[test]
fn a_vmlinux_of_another_build_is_refused_for_the_running_kernel() {
    if kallsyms().is_none() || !Path::new("/sys/kernel/notes").exists() {
        eprintln!("skipped: needs readable kallsyms and /sys/kernel/notes");
        return;
    }
    let Some(binary) = build_fake_vmlinux("other-build") else {
        eprintln!("skipped: no C compiler to build a stand-in vmlinux");
        return;
    };
    let schedule = kallsyms().and_then(|s| {
        s.iter()
            .find(|(_, (n, _))| n.iter().any(|n| n == "schedule"))
            .map(|(a, _)| *a)
    });
    let source = Source::Kernel(Kernel {
        kallsyms: None,
        vmlinux: Some(binary.clone()),
    });
    let result = Symbolizer::new().symbolize(&source, &[schedule.unwrap_or(0)]);
    let _ = std::fs::remove_file(&binary);
    let _ = std::fs::remove_file(temp("other-build.c"));
    match result {
        Err(Error::InvalidArgument(why)) => {
            assert!(why.contains("not the running kernel"), "{why}");
        }
        other => panic!("expected a build id mismatch, got {other:?}"),
    }
}
