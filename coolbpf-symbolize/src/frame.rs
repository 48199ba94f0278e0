//! What symbolization produces: frames, innermost first, or a reason why not.

use serde::Serialize;

/// One source-level frame for an address. An address inside inlined code yields several
/// frames: the inlined functions innermost first, then the function they were inlined
/// into (the only one with `inlined == false`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Frame {
    /// The function's name, demangled (C++ and Rust).
    pub function: String,
    /// The name as stored in the symbol table or DWARF (mangled, if it was).
    pub raw_name: String,
    /// Bytes from the function's start (for an inlined frame: from the start of the
    /// inlined range that contains the address).
    pub offset: u64,
    /// Source file, as a path (the compilation directory joined when DWARF gives one).
    pub file: Option<String>,
    /// Source line (1-based), when known.
    pub line: Option<u32>,
    /// Source column (1-based), when known.
    pub column: Option<u32>,
    /// Whether this frame is an inlined call.
    pub inlined: bool,
}

/// Why an address could not be symbolized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", content = "detail", rename_all = "snake_case")]
pub enum Unknown {
    /// The address lies in no mapping of the process (or no segment of the file).
    Unmapped,
    /// The address is mapped, but no symbol or debug entry covers it.
    NoSymbol,
    /// The mapped file has no symbols at all (stripped, no debug info found).
    NoSymbols(String),
    /// The mapped file could not be read or parsed.
    Unreadable(String),
    /// Anonymous memory (JIT code without a perf map, heap, stack).
    Anonymous,
}

impl std::fmt::Display for Unknown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unmapped => f.write_str("address is not mapped"),
            Self::NoSymbol => f.write_str("no symbol covers the address"),
            Self::NoSymbols(file) => write!(f, "{file} has no symbols"),
            Self::Unreadable(why) => write!(f, "unreadable: {why}"),
            Self::Anonymous => f.write_str("anonymous memory"),
        }
    }
}

/// The result for one address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Symbolized {
    /// Frames, innermost first.
    Frames(Vec<Frame>),
    /// Nothing found, and why.
    Unknown(Unknown),
}

impl Symbolized {
    /// The frames, or an empty slice when unknown.
    pub fn frames(&self) -> &[Frame] {
        match self {
            Self::Frames(frames) => frames,
            Self::Unknown(_) => &[],
        }
    }

    /// The outermost (non-inlined) function's name, if known.
    pub fn function(&self) -> Option<&str> {
        self.frames().last().map(|f| f.function.as_str())
    }
}
