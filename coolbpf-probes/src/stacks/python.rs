//! CPython frames in stacks: registering a process with any BPF object that includes
//! `coolbpf/python.bpf.h` (its interpreter found and its `coolbpf_python_procs` entry
//! filled, so the BPF walk reads its frames at sample time), and decoding the frames the
//! walk captured. Naming them and putting them among the native frames is the
//! symbolizer's ([`coolbpf_symbolize::python`], through the stack resolver).

use std::collections::HashMap;

use coolbpf_core::{BpfObject, Error, MapView, Result};

use crate::options::OptionSpec;
use coolbpf_symbolize::profile::PythonFrame;
use coolbpf_symbolize::python::{Interpreter, Offsets, PythonError, Version};

/// The option of every probe whose stacks can carry CPython frames.
pub(crate) const PYTHON: OptionSpec = OptionSpec {
    name: "python",
    help: "put the CPython (3.10 to 3.13) frames of Python processes in their stacks, read \
           from the interpreter at sample time (true or false)",
    default: "true",
};

/// The per-process config map of `python.bpf.h`.
pub const PROCS_MAP: &str = "coolbpf_python_procs";

/// Bytes of one `struct coolbpf_python_frame`: code (u64), offset (u32), flags (u32).
pub const FRAME_BYTES: usize = 16;

/// `coolbpf_python_frame.flags` bit of an entry frame (`COOLBPF_PYTHON_FRAME_ENTRY`).
const FRAME_ENTRY: u32 = 1;

/// `COOLBPF_PYTHON_ABSENT`: an offset the version lacks.
const ABSENT: u32 = u32::MAX;

/// The processes registered with one BPF object's Python walk.
#[derive(Debug)]
pub struct PythonStacks {
    procs: MapView,
    /// Every pid tried, with what it runs (`None`: no CPython, or it could not be read).
    registered: HashMap<u32, Option<Version>>,
    /// Why processes could not be registered (the first [`MAX_FAILURES`]).
    failures: Vec<(u32, String)>,
}

/// Registration failures kept (the rest are counted in `registered` only).
const MAX_FAILURES: usize = 64;

impl PythonStacks {
    /// The Python walk of `object`, which must include `coolbpf/python.bpf.h`.
    pub fn new(object: &BpfObject) -> Result<Self> {
        Ok(Self {
            procs: object.map(PROCS_MAP)?,
            registered: HashMap::new(),
            failures: Vec::new(),
        })
    }

    /// Registers `pid`: finds its interpreter and fills its map entry. `Ok(None)` for a
    /// process without CPython (nothing to do); an error for a process that cannot be
    /// read (it exited: not found) or runs an unsupported CPython, for that process only.
    pub fn register(&mut self, pid: u32) -> Result<Option<Version>> {
        let found = Interpreter::find(pid).map_err(|e| python_error(pid, e));
        let interpreter = match found {
            Ok(found) => found,
            Err(err) => {
                self.registered.insert(pid, None);
                if self.failures.len() < MAX_FAILURES {
                    self.failures.push((pid, err.to_string()));
                }
                return Err(err);
            }
        };
        let version = match interpreter {
            Some(interpreter) => {
                self.procs
                    .update(&pid.to_ne_bytes(), &config_bytes(&interpreter))?;
                Some(interpreter.version)
            }
            None => None,
        };
        self.registered.insert(pid, version);
        Ok(version)
    }

    /// Registers `pid` unless it was tried before (all-CPU profiles call this for each
    /// pid they see). Returns whether it was new; a failure is kept as "no Python" and
    /// returned once.
    pub fn register_once(&mut self, pid: u32) -> Result<bool> {
        if self.registered.contains_key(&pid) {
            return Ok(false);
        }
        self.register(pid).map(|_| true)
    }

    /// What `pid` was registered as: `Some(None)` tried but no CPython.
    pub fn registered(&self, pid: u32) -> Option<Option<Version>> {
        self.registered.get(&pid).copied()
    }

    /// The processes that could not be registered, with why (the first 64).
    pub fn failures(&self) -> &[(u32, String)] {
        &self.failures
    }
}

/// A reading error as the probes' error: a process gone is not found, anything else
/// makes Python stacks unavailable for it.
fn python_error(pid: u32, err: PythonError) -> Error {
    match err {
        PythonError::Process(coolbpf_symbolize::Error::NoSuchProcess { .. }) => Error::NotFound {
            what: "process",
            name: pid.to_string(),
            known: Vec::new(),
        },
        other => Error::Unsupported {
            feature: format!("CPython stacks of process {pid}"),
            reason: other.to_string(),
        },
    }
}

/// `struct coolbpf_python_config` of python.bpf.h for `interpreter`.
pub fn config_bytes(interpreter: &Interpreter) -> Vec<u8> {
    let o: &Offsets = &interpreter.offsets;
    let or_absent = |v: Option<u32>| v.unwrap_or(ABSENT);
    let words = [
        interpreter.version.minor(),
        o.runtime_interpreters_head,
        o.interp_next,
        o.interp_threads_head,
        o.tstate_next,
        o.tstate_thread_id,
        o.tstate_frame,
        or_absent(o.cframe_current_frame),
        o.frame_previous,
        o.frame_code,
        o.frame_instr,
        or_absent(o.frame_owner),
        or_absent(o.frame_is_entry),
        o.code_bytecode,
    ];
    let mut bytes = interpreter.runtime.to_ne_bytes().to_vec();
    bytes.extend(words.iter().flat_map(|w| w.to_ne_bytes()));
    bytes
}

/// Decodes `count` frames of `struct coolbpf_python_frame` from `bytes`.
pub fn decode_frames(bytes: &[u8]) -> Vec<PythonFrame> {
    bytes
        .chunks_exact(FRAME_BYTES)
        .map(|f| PythonFrame {
            code: u64::from_ne_bytes(f[..8].try_into().expect("8 bytes")),
            offset: u32::from_ne_bytes(f[8..12].try_into().expect("4 bytes")),
            entry: u32::from_ne_bytes(f[12..16].try_into().expect("4 bytes")) & FRAME_ENTRY != 0,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_layout_matches_the_header() {
        let interpreter = Interpreter {
            pid: 1,
            path: "/usr/lib/libpython3.12.so".into(),
            version: Version::V3_12,
            runtime: 0x7f00_0000_1000,
            offsets: *Offsets::of(Version::V3_12),
        };
        let bytes = config_bytes(&interpreter);
        // u64 runtime + 14 u32: sizeof(struct coolbpf_python_config) is 64.
        assert_eq!(bytes.len(), 64);
        assert_eq!(&bytes[..8], &0x7f00_0000_1000u64.to_ne_bytes());
        assert_eq!(&bytes[8..12], &12u32.to_ne_bytes());
        // 3.12 has no is_entry field.
        assert_eq!(&bytes[56..60], &u32::MAX.to_ne_bytes());
    }

    #[test]
    fn frames_decode_with_their_entry_flag() {
        let mut bytes = Vec::new();
        for (code, offset, flags) in [(0x10u64, 6u32, 0u32), (0x20, u32::MAX, 1)] {
            bytes.extend(code.to_ne_bytes());
            bytes.extend(offset.to_ne_bytes());
            bytes.extend(flags.to_ne_bytes());
        }
        bytes.push(0); // a partial frame is ignored
        let frames = decode_frames(&bytes);
        assert_eq!(frames.len(), 2);
        assert_eq!(
            (frames[0].code, frames[0].offset, frames[0].entry),
            (0x10, 6, false)
        );
        assert_eq!(
            (frames[1].code, frames[1].offset, frames[1].entry),
            (0x20, u32::MAX, true)
        );
    }
}
