//! Unwind tables from CFI, for walking stacks of code built without frame pointers.
//!
//! [`UnwindTable`] compiles an x86_64 ELF file's `.eh_frame` (and `.debug_frame` where
//! `.eh_frame` does not cover a range) into one sorted list of [`UnwindRow`]s: from each
//! row's pc on, how to find the CFA (from rsp or rbp plus an offset, by the PLT's
//! expression, or not at all) and the caller's rbp. The design is the OpenTelemetry eBPF
//! profiler's: tables are compiled in userspace, loaded into BPF maps in the
//! [`CompactRow`] layout, and walked frame by frame in the kernel, by CFI where a table
//! covers the pc and by frame pointers where none does. [`Unwinder`] is the same walk in
//! Rust, over any memory a closure can read.
//!
//! ```no_run
//! use coolbpf_symbolize::unwind::{UnwindTable, CfaRule};
//!
//! let table = UnwindTable::from_file("/lib/x86_64-linux-gnu/libc.so.6".as_ref())?;
//! println!("{} rows, {:?}", table.rows().len(), table.stats());
//! if let Some(row) = table.lookup(0x27280) {
//!     assert_ne!(row.cfa, CfaRule::NoInfo);
//! }
//! let compact = table.compact()?;
//! println!("{} bytes in a BPF map", compact.bytes());
//! # Ok::<(), coolbpf_symbolize::unwind::UnwindError>(())
//! ```

mod compact;
mod compile;
mod error;
mod plt;
mod process;
mod row;
mod rules;
mod spans;
mod table;
mod unwinder;

pub use compact::{cfa_kind, rbp_kind, CompactRow, CompactTable, COMPACT_ROW_BYTES};
pub use error::UnwindError;
pub use process::{executable_mappings, load_bias, MappedObject, UnopenedMapping};
pub use row::{CfaRule, RbpRule, UnwindRow};
pub use table::{CompileStats, UnwindTable};
pub use unwinder::{step, Module, Registers, Step, StepError, StepKind, Unwinder, Walk, WalkEnd};
