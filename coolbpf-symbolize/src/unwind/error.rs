//! Why an unwind table could not be built.

use std::path::PathBuf;

/// Why [`UnwindTable`](super::UnwindTable) could not compile a file's CFI. A single bad
/// FDE is not an error: it is skipped and counted in
/// [`CompileStats::skipped_fdes`](super::CompileStats).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UnwindError {
    /// The file could not be opened or mapped.
    #[error("{path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: crate::Error,
    },
    /// The bytes are not an ELF object `object` can read.
    #[error("{what}: not a readable ELF object: {reason}")]
    NotElf {
        /// The file, or `<bytes>` for an in-memory image.
        what: String,
        /// The parser's message.
        reason: String,
    },
    /// The object is not x86_64: the rules (registers 6, 7, 16; return address at CFA-8)
    /// are x86_64's.
    #[error("{what}: unwind tables are built for x86_64 only, not {architecture}")]
    UnsupportedArchitecture {
        /// The file, or `<bytes>`.
        what: String,
        /// The object's architecture, as `object` names it.
        architecture: String,
    },
    /// A CFI section's structure is broken (an entry's length runs past the section, a
    /// bad CIE pointer at the section level): nothing after it can be trusted.
    #[error("{what}: {section}: {reason}")]
    Section {
        /// The file, or `<bytes>`.
        what: String,
        /// `.eh_frame` or `.debug_frame`.
        section: &'static str,
        /// gimli's message.
        reason: String,
    },
    /// The table would address more than 4 GiB of code from its base, which the compact
    /// BPF rows (32-bit pc offsets) cannot.
    #[error("{what}: code spans {span:#x} bytes, more than a compact table's 4 GiB")]
    TooLarge {
        /// The file, or `<bytes>`.
        what: String,
        /// The span from the first row to the last.
        span: u64,
    },
}
