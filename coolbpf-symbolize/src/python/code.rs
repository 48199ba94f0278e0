//! Code objects (`PyCodeObject`) read out of a process: the names and line table that
//! turn a captured (code address, bytecode offset) into a function, a file and a line.

use super::error::PythonError;
use super::linetable::{line_of, Format};
use super::memory::Memory;
use super::offsets::Offsets;
use super::unicode::read_str;
use super::version::Version;

/// The largest line table read (real ones are a few KiB; a huge size is a bad pointer).
const MAX_LINETABLE: u64 = 1 << 20;

/// What a code object says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeInfo {
    /// The qualified name (`co_qualname`: `Class.method`, `outer.<locals>.inner`); in
    /// 3.10, which has none, the plain name.
    pub qualname: String,
    /// The plain name (`co_name`).
    pub name: String,
    /// The file it was compiled from (`co_filename`).
    pub filename: String,
    /// Its first line (`co_firstlineno`).
    pub first_line: i32,
    format: Format,
    linetable: Vec<u8>,
}

impl CodeInfo {
    /// Reads the code object at `addr`, checking first that it is one (its type is named
    /// `code`), so that a stale or wrong address gives an error, not garbage.
    pub fn read(
        memory: &Memory,
        version: Version,
        offsets: &Offsets,
        addr: u64,
    ) -> Result<Self, PythonError> {
        if addr == 0 {
            return Err(PythonError::malformed("code object", "NULL pointer"));
        }
        let field = |offset: u32| addr + u64::from(offset);
        let ty = memory.u64(field(offsets.object_type))?;
        let type_name = memory.c_string(memory.u64(ty + u64::from(offsets.type_name))?, 64)?;
        if type_name != "code" {
            return Err(PythonError::malformed(
                "code object",
                format!("{addr:#x} is a {type_name:?} object"),
            ));
        }
        let name = read_str(memory, offsets, memory.u64(field(offsets.code_name))?)?;
        let qualname = match offsets.code_qualname {
            Some(at) => read_str(memory, offsets, memory.u64(field(at))?)?,
            None => name.clone(),
        };
        let filename = read_str(memory, offsets, memory.u64(field(offsets.code_filename))?)?;
        let first_line = memory.u32(field(offsets.code_first_line))? as i32;
        let table = memory.u64(field(offsets.code_linetable))?;
        let size = memory.u64(table + u64::from(offsets.bytes_size))?;
        if size > MAX_LINETABLE {
            return Err(PythonError::malformed(
                "code object",
                format!("line table of {size} bytes at {table:#x}"),
            ));
        }
        let linetable = memory.bytes(table + u64::from(offsets.bytes_data), size as usize)?;
        let format = if version == Version::V3_10 {
            Format::Pep626
        } else {
            Format::Locations
        };
        Ok(Self {
            qualname,
            name,
            filename,
            first_line,
            format,
            linetable,
        })
    }

    /// A code object with no line table, for unit tests of what consumes them.
    #[cfg(test)]
    pub(crate) fn for_tests(name: &str) -> Self {
        Self {
            qualname: name.into(),
            name: name.into(),
            filename: format!("{name}.py"),
            first_line: 1,
            format: Format::Locations,
            linetable: Vec::new(),
        }
    }

    /// The line of the instruction at byte offset `offset`; the first line when the
    /// offset is unknown (`u32::MAX`), as CPython reports a frame that has not started.
    pub fn line(&self, offset: u32) -> Option<u32> {
        if offset == u32::MAX {
            return u32::try_from(self.first_line).ok();
        }
        line_of(self.format, &self.linetable, self.first_line, offset)
    }
}
