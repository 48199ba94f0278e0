//! Helpers of the correctness test: building programs, listing instruction addresses,
//! asking llvm-symbolizer, and comparing its answers with ours.

pub mod compare;
pub mod corrupt;
pub mod lang;
pub mod split;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A directory removed (with its contents) when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh directory named after `name` under the system temp dir.
    pub fn new(name: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("coolbpf-symtest-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A path inside it.
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether `tool` can be run.
pub fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `program` with `args`, failing the test with its output if it fails.
pub fn run<I, S>(program: &str, args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_in(Path::new("."), program, args)
}

/// Runs `program` with `args` in `dir`, failing the test with its output if it fails.
pub fn run_in<I, S>(dir: &Path, program: &str, args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(program);
    command.args(args).current_dir(dir);
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} in {} failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Whether `program args...` succeeds (for optional features of the toolchain).
pub fn succeeds<I, S>(program: &str, args: I) -> bool
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether two binaries have the same code at the same addresses: every executable
/// section the same, byte for byte.
pub fn same_code(a: &Path, b: &Path) -> bool {
    use object::{Object, ObjectSection, SectionKind};
    let code = |path: &Path| -> Vec<(String, u64, Vec<u8>)> {
        let bytes = std::fs::read(path).unwrap();
        let file = object::File::parse(&*bytes).unwrap();
        file.sections()
            .filter(|s| s.kind() == SectionKind::Text)
            .map(|s| {
                let name = s.name().unwrap_or_default().to_owned();
                (name, s.address(), s.data().unwrap_or_default().to_vec())
            })
            .collect()
    };
    code(a) == code(b)
}

/// A test program's source in tests/programs.
pub fn program(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/programs")
        .join(name)
}

/// The start of every instruction of the functions `wanted` accepts (by raw symbol
/// name), within each function's symbol size: what `llvm-objdump -d` lists, less the
/// alignment padding after a function.
pub fn instruction_addrs(binary: &Path, wanted: impl Fn(&str) -> bool) -> Vec<u64> {
    let sizes = symbol_sizes(binary);
    let listing = run(
        "llvm-objdump",
        [
            OsStr::new("-d"),
            OsStr::new("--no-show-raw-insn"),
            binary.as_os_str(),
        ],
    );
    let mut addrs = Vec::new();
    let mut current: Option<(u64, u64)> = None;
    for line in listing.lines() {
        if let Some((start, name)) = parse_block_header(line) {
            current = sizes
                .iter()
                .find(|(s, _, n)| *s == start && n == name)
                .filter(|(_, size, _)| *size > 0 && wanted(name))
                .map(|(s, size, _)| (*s, s + size));
            continue;
        }
        let Some((start, end)) = current else {
            continue;
        };
        let Some((addr, _)) = line.trim_start().split_once(':') else {
            continue;
        };
        if let Ok(addr) = u64::from_str_radix(addr, 16) {
            if (start..end).contains(&addr) {
                addrs.push(addr);
            }
        }
    }
    addrs
}

/// The first and last byte of every data object with a size in a data section. Not
/// thread-local ones (their values are offsets in a thread's block, not addresses), nor
/// those in notes near the start of the file, where llvm-symbolizer finds lines of
/// functions the linker discarded (sequences starting at address 0, which we skip).
pub fn data_addrs(binary: &Path) -> Vec<u64> {
    use object::{Object, ObjectSection, ObjectSymbol, SectionKind, SymbolKind};
    let bytes = std::fs::read(binary).unwrap();
    let file = object::File::parse(&*bytes).unwrap();
    let in_data = |s: &object::Symbol<'_, '_>| {
        let section = s
            .section_index()
            .and_then(|i| file.section_by_index(i).ok());
        section.is_some_and(|section| {
            matches!(
                section.kind(),
                SectionKind::Data
                    | SectionKind::ReadOnlyData
                    | SectionKind::ReadOnlyString
                    | SectionKind::UninitializedData
            )
        })
    };
    let mut addrs: Vec<u64> = file
        .symbols()
        .filter(|s| s.kind() == SymbolKind::Data && s.size() > 0 && in_data(s))
        .flat_map(|s| [s.address(), s.address() + s.size() - 1])
        .collect();
    addrs.sort_unstable();
    addrs.dedup();
    addrs
}

/// `0000000000001170 <compute>:` as `(0x1170, "compute")`.
fn parse_block_header(line: &str) -> Option<(u64, &str)> {
    let (addr, rest) = line.split_once(" <")?;
    let name = rest.strip_suffix(">:")?;
    Some((u64::from_str_radix(addr, 16).ok()?, name))
}

/// `(address, size, name)` of every defined symbol, from `nm -S`.
fn symbol_sizes(binary: &Path) -> Vec<(u64, u64, String)> {
    let listing = run(
        "nm",
        [
            OsStr::new("-S"),
            OsStr::new("--defined-only"),
            binary.as_os_str(),
        ],
    );
    listing
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let addr = u64::from_str_radix(parts.next()?, 16).ok()?;
            let size = u64::from_str_radix(parts.next()?, 16).ok()?;
            let _kind = parts.next()?;
            Some((addr, size, parts.next()?.to_owned()))
        })
        .collect()
}

/// One frame as llvm-symbolizer reports it: empty strings and zeros mean unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefFrame {
    /// Raw (not demangled) function name.
    pub function: String,
    pub file: String,
    pub line: u64,
    pub column: u64,
}

/// llvm-symbolizer's frames (innermost first, raw names) for each of `addrs`.
pub fn llvm_symbolize(binary: &Path, addrs: &[u64]) -> Vec<Vec<RefFrame>> {
    use std::fmt::Write as _;
    use std::io::Write as _;
    let mut child = Command::new("llvm-symbolizer")
        .arg("--output-style=JSON")
        .arg("--no-demangle")
        .arg("--inlines")
        .arg(format!("--obj={}", binary.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("llvm-symbolizer runs");
    let input = addrs.iter().fold(String::new(), |mut input, a| {
        let _ = writeln!(input, "{a:#x}");
        input
    });
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let frames: Vec<Vec<RefFrame>> = text
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            value["Symbol"]
                .as_array()
                .map(|frames| {
                    frames
                        .iter()
                        .map(|f| RefFrame {
                            function: f["FunctionName"].as_str().unwrap_or("").to_owned(),
                            file: f["FileName"].as_str().unwrap_or("").to_owned(),
                            line: f["Line"].as_u64().unwrap_or(0),
                            column: f["Column"].as_u64().unwrap_or(0),
                        })
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(frames.len(), addrs.len(), "one answer per address");
    frames
}

/// A stripped copy of `binary` carrying its function symbols in `.gnu_debugdata` the way
/// Fedora builds MiniDebugInfo; `None` when `xz` is missing.
pub fn minidebuginfo(dir: &TempDir, binary: &Path) -> Option<PathBuf> {
    if !have("xz") {
        return None;
    }
    let names = |args: &[&str]| -> std::collections::BTreeSet<String> {
        let mut all: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        all.push(binary.as_os_str());
        run("nm", all)
            .lines()
            .filter_map(|l| {
                let mut parts = l.split_whitespace();
                let name = parts.next()?;
                let kind = parts.next()?;
                matches!(kind, "T" | "t" | "W" | "w").then(|| name.to_owned())
            })
            .collect()
    };
    let dynamic = names(&["-D", "--format=posix", "--defined-only"]);
    let keep: Vec<String> = names(&["--format=posix", "--defined-only"])
        .difference(&dynamic)
        .cloned()
        .collect();
    let keep_file = dir.join("mini.keep");
    std::fs::write(&keep_file, keep.join("\n") + "\n").unwrap();
    let debug = dir.join("mini.debug");
    let mini = dir.join("mini.elf");
    let stripped = dir.join("prog.mini");
    run(
        "objcopy",
        [
            OsStr::new("--only-keep-debug"),
            binary.as_os_str(),
            debug.as_os_str(),
        ],
    );
    let keep_arg = format!("--keep-symbols={}", keep_file.display());
    run(
        "objcopy",
        [
            OsStr::new("-S"),
            OsStr::new("--remove-section=.gdb_index"),
            OsStr::new("--remove-section=.comment"),
            OsStr::new(&keep_arg),
            debug.as_os_str(),
            mini.as_os_str(),
        ],
    );
    run("xz", [OsStr::new("-f"), mini.as_os_str()]);
    let xz = dir.join("mini.elf.xz");
    run(
        "objcopy",
        [
            OsStr::new("--strip-all"),
            binary.as_os_str(),
            stripped.as_os_str(),
        ],
    );
    let section = format!(".gnu_debugdata={}", xz.display());
    run(
        "objcopy",
        [
            OsStr::new("--add-section"),
            OsStr::new(&section),
            stripped.as_os_str(),
        ],
    );
    Some(stripped)
}
