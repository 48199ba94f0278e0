//! CPython frames, read from outside the process: which interpreter a process runs
//! (3.10 to 3.13), where its state is, the structure offsets of each version, code
//! objects (names, files, line tables), a reference walker of every thread's Python
//! stack, and the interleave of Python frames into a native stack.
//!
//! Nothing here needs the process's cooperation (no restart, no `-X perf`): everything is
//! read from `/proc/PID/maps`, the interpreter's ELF symbols and `/proc/PID/mem`, which
//! needs the permission to ptrace the process (root, or the same user with ptrace
//! allowed). The BPF walk in `coolbpf/python.bpf.h` captures [`PythonFrame`]s at sample
//! time with the same [`Offsets`]; [`PythonSymbolizer`] names them afterwards.
//!
//! # Example
//!
//! ```no_run
//! use coolbpf_symbolize::python::{PythonProcess, PythonSymbolizer};
//!
//! # fn main() -> Result<(), coolbpf_symbolize::python::PythonError> {
//! let pid = 4242;
//! if let Some(process) = PythonProcess::open(pid)? {
//!     println!("CPython {}", process.interpreter().version);
//!     let mut names = PythonSymbolizer::new();
//!     for thread in process.stacks()? {
//!         for location in names.locations(pid, &thread.frames) {
//!             let frame = &location.frames[0];
//!             println!("{} {:?}:{:?}", frame.function, frame.file, frame.line);
//!         }
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! [`PythonFrame`]: crate::profile::PythonFrame

mod cache;
mod code;
mod debug_offsets;
mod error;
mod interleave;
mod interpreter;
mod linetable;
mod memory;
mod offsets;
mod process;
mod symbolizer;
mod unicode;
mod version;
mod walker;

pub use cache::{CachedCode, CodeCache, DEFAULT_CAPACITY};
pub use code::CodeInfo;
pub use debug_offsets::DebugOffsets;
pub use error::PythonError;
pub use interleave::{interleave, EVAL_FUNCTION};
pub use interpreter::Interpreter;
pub use linetable::{line_of, Format};
pub use memory::Memory;
pub use offsets::Offsets;
pub use process::PythonProcess;
pub use symbolizer::{python_frame, PythonSymbolizer, UNKNOWN_PYTHON};
pub use version::Version;
pub use walker::{bytecode_offset, read_stacks, ThreadStack, FRAME_OWNED_BY_CSTACK, MAX_FRAMES};
