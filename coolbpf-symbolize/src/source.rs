//! Where addresses come from, and so how they are interpreted.

use std::path::PathBuf;

/// What the addresses given to [`Symbolizer::symbolize`](crate::Symbolizer::symbolize)
/// refer to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Virtual addresses of an ELF file as linked (what `llvm-symbolizer --obj` takes).
    Elf(Elf),
    /// Virtual addresses in a running process.
    Process(Process),
    /// Kernel addresses.
    Kernel(Kernel),
}

/// An ELF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elf {
    /// The file's path.
    pub path: PathBuf,
}

/// A running process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    /// Its pid.
    pub pid: u32,
    /// Consult `/tmp/perf-PID.map` for JIT code (default true).
    pub perf_map: bool,
}

impl Process {
    /// A process source with defaults.
    pub fn new(pid: u32) -> Self {
        Self {
            pid,
            perf_map: true,
        }
    }
}

/// The running kernel (or a vmlinux image of it).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Kernel {
    /// Symbol list (default `/proc/kallsyms`).
    pub kallsyms: Option<PathBuf>,
    /// A vmlinux with DWARF for lines and inlines, when available.
    pub vmlinux: Option<PathBuf>,
}

impl Source {
    /// An ELF file source.
    pub fn elf(path: impl Into<PathBuf>) -> Self {
        Self::Elf(Elf { path: path.into() })
    }

    /// A process source.
    pub fn process(pid: u32) -> Self {
        Self::Process(Process::new(pid))
    }

    /// The running kernel, from `/proc/kallsyms`.
    pub fn kernel() -> Self {
        Self::Kernel(Kernel::default())
    }
}
