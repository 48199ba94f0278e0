//! Profiles: aggregate stack samples, symbolize each distinct address once, and export
//! the result as folded stacks, pprof, a flame graph SVG, or a "top functions" table.
//!
//! A [`Profile`] collects raw [`Sample`]s (instruction pointers, as a BPF stack map gives
//! them) and merges identical stacks. [`Profile::symbolize`] turns it into a
//! [`SymbolizedProfile`], whose [`SymbolizedStack`]s hold [`Location`]s (one per
//! instruction pointer) with their inline chains. Consumers that already have frames build
//! a [`SymbolizedProfile`] directly with [`SymbolizedProfile::from_stacks`].
//!
//! An address that cannot be symbolized never fails the profile: it becomes a location
//! named `[unknown]` (or `[libfoo.so]` when only its file is known), the reason is kept in
//! [`Location::unknown`], and [`SymbolizedProfile::unknown_addresses`] counts them; a
//! source that fails as a whole (a process that exited) is also listed in
//! [`SymbolizedProfile::failures`].
//!
//! # Example
//!
//! ```
//! use coolbpf_symbolize::Frame;
//! use coolbpf_symbolize::profile::{Location, SymbolizedProfile, SymbolizedStack};
//!
//! fn frame(name: &str) -> Frame {
//!     Frame {
//!         function: name.into(),
//!         raw_name: name.into(),
//!         offset: 0,
//!         file: None,
//!         line: None,
//!         column: None,
//!         inlined: false,
//!     }
//! }
//!
//! let stack = SymbolizedStack {
//!     pid: 42,
//!     tid: 42,
//!     comm: "burn".into(),
//!     // Innermost first, as stack maps give them.
//!     user: vec![
//!         Location::new(0x1010, vec![frame("hot_spin")]).into(),
//!         Location::new(0x2000, vec![frame("main")]).into(),
//!     ],
//!     kernel: vec![],
//!     weight: 97,
//! };
//! let profile = SymbolizedProfile::from_stacks(vec![stack]);
//! assert_eq!(profile.folded(), "burn;main;hot_spin 97\n");
//! assert_eq!(profile.top(1).entries[0].function, "hot_spin");
//! let pprof = profile.to_pprof(&Default::default()); // gzipped profile.proto
//! assert_eq!(&pprof[..2], &[0x1f, 0x8b]);
//! ```

use std::collections::BTreeMap;

mod flamegraph;
mod folded;
mod pprof;
mod proto;
mod resolve;
mod stack;
mod tables;
mod top;

pub use flamegraph::FlameGraphOptions;
pub use pprof::{Mapping, Period, PprofOptions, ValueType};
pub use resolve::StackResolver;
pub use stack::{AddressSpace, Location, SymbolizeFailure, SymbolizedProfile, SymbolizedStack};
pub use top::{Top, TopEntry};

/// One raw stack sample: instruction pointers as captured, and how much it weighs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sample {
    /// Process id (tgid).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Task name.
    pub comm: String,
    /// Kernel instruction pointers, innermost first.
    pub kernel_ips: Vec<u64>,
    /// User instruction pointers, innermost first.
    pub user_ips: Vec<u64>,
    /// Interpreter (CPython) frames the thread was running, innermost first; empty when
    /// the thread runs no interpreter or they were not captured. Symbolizing puts them
    /// among the native frames of the interpreter that runs them.
    pub python: Vec<PythonFrame>,
    /// How many times it was seen, or for how long (in the profile's unit).
    pub weight: u64,
}

/// One CPython frame as captured: which code object runs and where in it. Its names
/// (qualified name, file, line) are read from the process when it is symbolized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PythonFrame {
    /// Address of the `PyCodeObject` in the process.
    pub code: u64,
    /// Byte offset of the current instruction in the code's bytecode; `u32::MAX` when
    /// unknown.
    pub offset: u32,
    /// Whether this frame was entered from C (the first frame an evaluation loop call
    /// runs): native `_PyEval_EvalFrameDefault` frames pair with these.
    pub entry: bool,
}

/// What makes two samples the same stack.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct StackKey {
    pid: u32,
    tid: u32,
    comm: String,
    user_ips: Vec<u64>,
    kernel_ips: Vec<u64>,
    python: Vec<PythonFrame>,
}

/// Raw stack samples, aggregated: samples of the same thread (pid, tid and comm) with the
/// same instruction pointers merge by summing their weights (saturating). The thread id
/// is part of the key so that pprof keeps a `tid` label per sample; the folded and
/// flame-graph exports merge threads anyway.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    stacks: BTreeMap<StackKey, u64>,
}

impl Profile {
    /// An empty profile.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a sample, merging it into an identical stack seen before.
    pub fn add(&mut self, sample: Sample) {
        let key = StackKey {
            pid: sample.pid,
            tid: sample.tid,
            comm: sample.comm,
            user_ips: sample.user_ips,
            kernel_ips: sample.kernel_ips,
            python: sample.python,
        };
        let weight = self.stacks.entry(key).or_insert(0);
        *weight = weight.saturating_add(sample.weight);
    }

    /// The number of distinct stacks.
    pub fn len(&self) -> usize {
        self.stacks.len()
    }

    /// Whether no sample was added.
    pub fn is_empty(&self) -> bool {
        self.stacks.is_empty()
    }

    /// The sum of all weights (saturating).
    pub fn total_weight(&self) -> u64 {
        self.stacks
            .values()
            .fold(0, |sum, w| sum.saturating_add(*w))
    }

    /// The distinct stacks with their summed weights, in a stable order (by pid, tid,
    /// comm, then addresses).
    pub fn samples(&self) -> impl Iterator<Item = Sample> + '_ {
        self.stacks.iter().map(|(key, weight)| Sample {
            pid: key.pid,
            tid: key.tid,
            comm: key.comm.clone(),
            kernel_ips: key.kernel_ips.clone(),
            user_ips: key.user_ips.clone(),
            python: key.python.clone(),
            weight: *weight,
        })
    }
}

impl Extend<Sample> for Profile {
    fn extend<I: IntoIterator<Item = Sample>>(&mut self, iter: I) {
        for sample in iter {
            self.add(sample);
        }
    }
}

impl FromIterator<Sample> for Profile {
    fn from_iter<I: IntoIterator<Item = Sample>>(iter: I) -> Self {
        let mut profile = Self::new();
        profile.extend(iter);
        profile
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(tid: u32, user: &[u64], weight: u64) -> Sample {
        Sample {
            pid: 1,
            tid,
            comm: "a".into(),
            kernel_ips: vec![0xffff_ffff_8100_0000],
            user_ips: user.to_vec(),
            python: Vec::new(),
            weight,
        }
    }

    #[test]
    fn identical_stacks_merge() {
        let profile: Profile = [
            sample(1, &[1, 2], 3),
            sample(1, &[1, 2], 4),
            sample(2, &[1, 2], 1),
            sample(1, &[2, 1], 1),
            sample(1, &[1, 2], u64::MAX),
        ]
        .into_iter()
        .collect();
        assert_eq!(profile.len(), 3);
        let merged: Vec<_> = profile
            .samples()
            .map(|s| (s.tid, s.user_ips, s.weight))
            .collect();
        assert_eq!(
            merged,
            vec![
                (1, vec![1, 2], u64::MAX),
                (1, vec![2, 1], 1),
                (2, vec![1, 2], 1)
            ]
        );
        assert_eq!(profile.total_weight(), u64::MAX);
    }
}
