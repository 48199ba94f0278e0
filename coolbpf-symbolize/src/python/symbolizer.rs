//! Captured Python frames to [`Location`]s: each (code object, offset) read once per
//! process through the [`CodeCache`], named with its qualified name, file and line, so
//! that folded stacks, pprof and flame graphs render them like native frames.

use std::collections::HashMap;
use std::sync::Arc;

use crate::frame::Frame;
use crate::profile::{Location, PythonFrame};

use super::cache::CodeCache;
use super::code::CodeInfo;
use super::process::PythonProcess;

/// The name of a Python frame whose code object could not be read.
pub const UNKNOWN_PYTHON: &str = "[python]";

/// The frame for instruction `offset` of `code`. Its `offset` is the bytecode offset.
pub fn python_frame(code: &CodeInfo, offset: u32) -> Frame {
    Frame {
        function: code.qualname.clone(),
        raw_name: code.name.clone(),
        offset: if offset == u32::MAX {
            0
        } else {
            u64::from(offset)
        },
        file: Some(code.filename.clone()),
        line: code.line(offset),
        column: None,
        inlined: false,
    }
}

/// Names the Python frames of many processes, each code object once per process.
#[derive(Debug, Default)]
pub struct PythonSymbolizer {
    /// Opened processes, or why not (kept: a process that exited stays gone).
    processes: HashMap<u32, Result<Option<PythonProcess>, Arc<str>>>,
    codes: CodeCache,
    /// One location per (pid, code, line): frames of a line share it, which is also what
    /// pprof interns by.
    locations: HashMap<(u32, u64, Option<u32>), Arc<Location>>,
}

impl PythonSymbolizer {
    /// An empty symbolizer.
    pub fn new() -> Self {
        Self::default()
    }

    /// The locations of `frames` (innermost first) of process `pid`, one each. A frame
    /// that cannot be named (the process exited, the code object is gone) becomes an
    /// unknown location named `[python]` with the reason: counted, never dropped.
    pub fn locations(&mut self, pid: u32, frames: &[PythonFrame]) -> Vec<Arc<Location>> {
        frames.iter().map(|f| self.location(pid, f)).collect()
    }

    fn location(&mut self, pid: u32, frame: &PythonFrame) -> Arc<Location> {
        let process = self
            .processes
            .entry(pid)
            .or_insert_with(|| PythonProcess::open(pid).map_err(|e| Arc::from(e.to_string())));
        let process = match process {
            Ok(Some(process)) => process,
            Ok(None) => {
                let why = format!("process {pid} runs no CPython");
                return Arc::new(Location::unknown(frame.code, UNKNOWN_PYTHON, why));
            }
            Err(why) => {
                return Arc::new(Location::unknown(frame.code, UNKNOWN_PYTHON, &**why));
            }
        };
        let code = self
            .codes
            .get_or_read(pid, frame.code, || process.code(frame.code));
        match code {
            Ok(code) => {
                let line = code.line(frame.offset);
                let key = (pid, frame.code, line);
                let made = || {
                    Arc::new(Location::new(
                        frame.code,
                        vec![python_frame(&code, frame.offset)],
                    ))
                };
                self.locations.entry(key).or_insert_with(made).clone()
            }
            Err(why) => Arc::new(Location::unknown(frame.code, UNKNOWN_PYTHON, &*why)),
        }
    }

    /// Forgets what is known of `pid` (it exited; its pid may be reused).
    pub fn forget(&mut self, pid: u32) {
        self.processes.remove(&pid);
        self.codes.forget(pid);
        self.locations.retain(|&(p, _, _), _| p != pid);
    }
}
