//! Symbolized stacks: locations with their inline chains, and the profile that holds them.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use crate::frame::{Frame, Symbolized, Unknown};

use super::pprof::Mapping;

/// The name of a location nothing is known about.
pub(super) const UNKNOWN: &str = "[unknown]";

/// Which address space an address belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AddressSpace {
    /// The kernel's.
    Kernel,
    /// A process's, by pid.
    Process(u32),
}

/// One instruction pointer of a stack and what it symbolized to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The address that was symbolized. For a caller (any frame but the innermost) this
    /// is the return address minus one, so that the call itself, with its inline chain,
    /// is reported rather than the instruction after it.
    pub address: u64,
    /// The frames, innermost first: inlined calls, then the function they were inlined
    /// into. For an unknown location, one placeholder frame named `[unknown]`, or
    /// `[libfoo.so]` when only the file is known.
    pub frames: Vec<Frame>,
    /// Why the address could not be symbolized, when it could not.
    pub unknown: Option<String>,
}

impl Location {
    /// A symbolized location; with no frames it is an unknown one.
    pub fn new(address: u64, frames: Vec<Frame>) -> Self {
        if frames.is_empty() {
            Self::unknown(address, UNKNOWN, "no frames")
        } else {
            Self {
                address,
                frames,
                unknown: None,
            }
        }
    }

    /// An unknown location shown as `name` (e.g. `[unknown]`), with the reason.
    pub fn unknown(address: u64, name: &str, reason: impl Into<String>) -> Self {
        let frame = Frame {
            function: name.to_owned(),
            raw_name: name.to_owned(),
            offset: 0,
            file: None,
            line: None,
            column: None,
            inlined: false,
        };
        Self {
            address,
            frames: vec![frame],
            unknown: Some(reason.into()),
        }
    }

    /// The location for what the symbolizer returned for `address`.
    pub fn from_symbolized(address: u64, symbolized: Symbolized) -> Self {
        match symbolized {
            Symbolized::Frames(frames) => Self::new(address, frames),
            Symbolized::Unknown(why) => {
                let name = match &why {
                    Unknown::NoSymbols(file) => Path::new(file)
                        .file_name()
                        .map(|name| format!("[{}]", name.to_string_lossy())),
                    _ => None,
                };
                Self::unknown(address, name.as_deref().unwrap_or(UNKNOWN), why.to_string())
            }
        }
    }

    /// Whether the address could not be symbolized.
    pub fn is_unknown(&self) -> bool {
        self.unknown.is_some() || self.frames.is_empty()
    }

    /// The function names, outermost (root-most) first; `[unknown]` if there are none.
    pub(super) fn names_root_first(&self) -> impl Iterator<Item = &str> {
        let none = self.frames.is_empty().then_some(UNKNOWN);
        self.frames
            .iter()
            .rev()
            .map(|f| f.function.as_str())
            .chain(none)
    }
}

/// A symbolized stack of one thread, with its weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolizedStack {
    /// Process id (tgid).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Task name.
    pub comm: String,
    /// User locations, innermost first.
    pub user: Vec<Arc<Location>>,
    /// Kernel locations, innermost first.
    pub kernel: Vec<Arc<Location>>,
    /// How many times it was seen, or for how long.
    pub weight: u64,
}

impl SymbolizedStack {
    /// The frame names, root first: user frames, then kernel frames suffixed `_[k]` (as
    /// perf and bcc write them), each inline chain expanded (the inlined callee after its
    /// caller). The comm is not included.
    pub fn frame_names(&self) -> Vec<String> {
        let user = self
            .user
            .iter()
            .rev()
            .flat_map(|loc| loc.names_root_first());
        let kernel = self
            .kernel
            .iter()
            .rev()
            .flat_map(|loc| loc.names_root_first());
        user.map(str::to_owned)
            .chain(kernel.map(|name| format!("{name}_[k]")))
            .collect()
    }

    /// The innermost location: the kernel's if the stack has kernel frames.
    pub(super) fn leaf(&self) -> Option<(&Location, bool)> {
        match self.kernel.first() {
            Some(loc) => Some((&**loc, true)),
            None => self.user.first().map(|loc| (&**loc, false)),
        }
    }
}

/// A source that could not be used at all; its addresses became unknown locations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolizeFailure {
    /// The address space that failed.
    pub space: AddressSpace,
    /// How many distinct addresses it left unknown.
    pub addresses: usize,
    /// The error, as text.
    pub error: String,
}

/// Symbolized stacks, ready to export. See the [module docs](super).
#[derive(Debug, Clone, Default)]
pub struct SymbolizedProfile {
    stacks: Vec<SymbolizedStack>,
    mappings: Vec<(AddressSpace, Mapping)>,
    failures: Vec<SymbolizeFailure>,
    unknown_addresses: usize,
}

impl SymbolizedProfile {
    /// A profile of stacks that already have frames. Stacks are kept as given (not
    /// merged); the exports merge what they show identically.
    pub fn from_stacks(stacks: Vec<SymbolizedStack>) -> Self {
        let mut unknown = HashSet::new();
        for stack in &stacks {
            let user = stack
                .user
                .iter()
                .map(|loc| (AddressSpace::Process(stack.pid), loc));
            let kernel = stack.kernel.iter().map(|loc| (AddressSpace::Kernel, loc));
            for (space, loc) in user.chain(kernel) {
                if loc.is_unknown() {
                    unknown.insert((space, loc.address));
                }
            }
        }
        Self {
            stacks,
            mappings: Vec::new(),
            failures: Vec::new(),
            unknown_addresses: unknown.len(),
        }
    }

    /// Records sources that failed as a whole.
    pub(super) fn set_failures(&mut self, failures: Vec<SymbolizeFailure>) {
        self.failures = failures;
    }

    /// The stacks.
    pub fn stacks(&self) -> &[SymbolizedStack] {
        &self.stacks
    }

    /// The sum of all weights (saturating).
    pub fn total_weight(&self) -> u64 {
        self.stacks
            .iter()
            .fold(0, |sum, s| sum.saturating_add(s.weight))
    }

    /// How many distinct addresses (per address space) could not be symbolized.
    pub fn unknown_addresses(&self) -> usize {
        self.unknown_addresses
    }

    /// The sources that failed as a whole (each also counted in
    /// [`unknown_addresses`](Self::unknown_addresses)).
    pub fn failures(&self) -> &[SymbolizeFailure] {
        &self.failures
    }

    /// Describes a mapped binary, so that pprof output can name the binary (and build
    /// id) of each location in it. Optional.
    pub fn add_mapping(&mut self, space: AddressSpace, mapping: Mapping) {
        self.mappings.push((space, mapping));
    }

    /// The mappings added, in order.
    pub fn mappings(&self) -> &[(AddressSpace, Mapping)] {
        &self.mappings
    }
}
