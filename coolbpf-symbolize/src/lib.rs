//! coolbpf-symbolize: addresses to frames.
//!
//! One entry point, [`Symbolizer`], over a [`Source`]: an ELF file, a running process
//! (through `/proc/PID/maps`, reading files via `/proc/PID/map_files` so containers
//! work, the vdso, and perf maps for JIT code), or the kernel. For each address it returns
//! [`Frame`]s, innermost first: the inline chain from DWARF when present, the symbol table
//! otherwise, or [`Unknown`] with a reason; never a panic on bad input.
//!
//! Usable alone, like blazesym; coolbpf's profiler builds on it: [`profile`] aggregates
//! stack samples, symbolizes each distinct address once, and exports folded stacks, pprof
//! and flame graphs.

mod cache;
mod debuginfo;
mod demangle;
mod dwarf;
pub mod elf;
mod error;
mod frame;
mod kernel;
mod normalize;
pub mod process;
pub mod profile;
pub mod python;
mod source;
mod symbolizer;
pub mod unwind;

pub use demangle::demangle;
pub use error::{Error, Result};
pub use frame::{Frame, Symbolized, Unknown};
pub use normalize::{normalize, FileOffset, FileRef, Normalized, DEFAULT_DEBUG_DIR};
pub use profile::{Profile, PythonFrame, Sample, SymbolizedProfile};
pub use source::{Elf, Kernel, Process, Source};
pub use symbolizer::{Symbolizer, SymbolizerBuilder};
