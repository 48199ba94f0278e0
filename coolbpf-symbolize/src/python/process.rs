//! One CPython process, opened for reading: its interpreter and its memory.

use super::code::CodeInfo;
use super::error::PythonError;
use super::interpreter::Interpreter;
use super::memory::Memory;
use super::walker::{read_stacks, ThreadStack};

/// A process that runs CPython, open for reading.
#[derive(Debug)]
pub struct PythonProcess {
    interpreter: Interpreter,
    memory: Memory,
}

impl PythonProcess {
    /// Opens `pid`: `Ok(None)` when it runs no CPython.
    pub fn open(pid: u32) -> Result<Option<Self>, PythonError> {
        let Some(interpreter) = Interpreter::find(pid)? else {
            return Ok(None);
        };
        let memory = Memory::open(pid)?;
        Ok(Some(Self {
            interpreter,
            memory,
        }))
    }

    /// Its interpreter.
    pub fn interpreter(&self) -> &Interpreter {
        &self.interpreter
    }

    /// Its memory.
    pub fn memory(&self) -> &Memory {
        &self.memory
    }

    /// Every thread's Python stack, read now (see [`read_stacks`]).
    pub fn stacks(&self) -> Result<Vec<ThreadStack>, PythonError> {
        read_stacks(&self.interpreter, &self.memory)
    }

    /// The code object at `addr`.
    pub fn code(&self, addr: u64) -> Result<CodeInfo, PythonError> {
        CodeInfo::read(
            &self.memory,
            self.interpreter.version,
            &self.interpreter.offsets,
            addr,
        )
    }
}
