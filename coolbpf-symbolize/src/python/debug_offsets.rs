//! 3.13's `_Py_DebugOffsets`: the offsets CPython itself publishes for out-of-process
//! readers, as the first field of `_PyRuntime` (Include/internal/pycore_runtime.h of
//! 3.13). Used to check (and follow) the 3.13 table of [`Offsets`]: a patch release or a
//! distribution build whose layout differs is read with its own numbers, and a
//! free-threaded build is refused rather than misread.

use super::error::PythonError;
use super::offsets::Offsets;

/// The cookie `_Py_DebugOffsets` starts with.
pub const COOKIE: &[u8; 8] = b"xdebugpy";

/// How many `uint64_t` words of `_Py_DebugOffsets` (3.13) are read: the cookie up to and
/// including `unicode_object.asciiobject_size`.
pub const WORDS: usize = 71;

/// Word indices in 3.13's `_Py_DebugOffsets` (each `uint64_t`, the cookie being word 0),
/// in declaration order of its nested structs.
mod word {
    pub const VERSION: usize = 1;
    pub const FREE_THREADED: usize = 2;
    pub const RUNTIME_INTERPRETERS_HEAD: usize = 5;
    pub const INTERP_NEXT: usize = 8;
    pub const INTERP_THREADS_HEAD: usize = 9;
    pub const TSTATE_NEXT: usize = 21;
    pub const TSTATE_CURRENT_FRAME: usize = 23;
    pub const TSTATE_THREAD_ID: usize = 24;
    pub const TSTATE_NATIVE_THREAD_ID: usize = 25;
    pub const FRAME_PREVIOUS: usize = 29;
    pub const FRAME_EXECUTABLE: usize = 30;
    pub const FRAME_INSTR_PTR: usize = 31;
    pub const FRAME_OWNER: usize = 33;
    pub const CODE_FILENAME: usize = 35;
    pub const CODE_NAME: usize = 36;
    pub const CODE_QUALNAME: usize = 37;
    pub const CODE_LINETABLE: usize = 38;
    pub const CODE_FIRSTLINENO: usize = 39;
    pub const CODE_CO_CODE_ADAPTIVE: usize = 43;
    pub const OBJECT_OB_TYPE: usize = 45;
    pub const TYPE_TP_NAME: usize = 47;
    pub const BYTES_OB_SIZE: usize = 65;
    pub const BYTES_OB_SVAL: usize = 66;
    pub const UNICODE_STATE: usize = 68;
    pub const UNICODE_LENGTH: usize = 69;
    pub const UNICODE_ASCIIOBJECT_SIZE: usize = 70;
}

/// The parsed debug offsets of one 3.13 interpreter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebugOffsets {
    /// `PY_VERSION_HEX` of the interpreter that wrote them.
    pub version: u64,
    /// Whether the interpreter is a free-threaded (no GIL) build.
    pub free_threaded: bool,
    words: Vec<u64>,
}

impl DebugOffsets {
    /// Parses the first words of `_PyRuntime` (the layout this module reads).
    pub fn parse(bytes: &[u8]) -> Result<Self, PythonError> {
        if bytes.len() < WORDS * 8 {
            return Err(PythonError::malformed(
                "_Py_DebugOffsets",
                format!("{} bytes, {} needed", bytes.len(), WORDS * 8),
            ));
        }
        if &bytes[..8] != COOKIE {
            return Err(PythonError::malformed(
                "_Py_DebugOffsets",
                format!("cookie {:?}, not \"xdebugpy\"", &bytes[..8]),
            ));
        }
        let words: Vec<u64> = bytes[..WORDS * 8]
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        Ok(Self {
            version: words[word::VERSION],
            free_threaded: words[word::FREE_THREADED] != 0,
            words,
        })
    }

    /// `table` with every field the debug offsets also give replaced by their value.
    /// An offset too large for a structure field (over 1 MiB) is an error: these words
    /// were not written by a 3.13 interpreter.
    pub fn apply(&self, table: &Offsets) -> Result<Offsets, PythonError> {
        let get = |index: usize| -> Result<u32, PythonError> {
            let value = self.words[index];
            u32::try_from(value)
                .ok()
                .filter(|v| *v < 1 << 20)
                .ok_or_else(|| {
                    PythonError::malformed(
                        "_Py_DebugOffsets",
                        format!("word {index} is {value:#x}, not a field offset"),
                    )
                })
        };
        Ok(Offsets {
            runtime_interpreters_head: get(word::RUNTIME_INTERPRETERS_HEAD)?,
            interp_next: get(word::INTERP_NEXT)?,
            interp_threads_head: get(word::INTERP_THREADS_HEAD)?,
            tstate_next: get(word::TSTATE_NEXT)?,
            tstate_thread_id: get(word::TSTATE_THREAD_ID)?,
            tstate_native_thread_id: Some(get(word::TSTATE_NATIVE_THREAD_ID)?),
            tstate_frame: get(word::TSTATE_CURRENT_FRAME)?,
            frame_previous: get(word::FRAME_PREVIOUS)?,
            frame_code: get(word::FRAME_EXECUTABLE)?,
            frame_instr: get(word::FRAME_INSTR_PTR)?,
            frame_owner: Some(get(word::FRAME_OWNER)?),
            code_filename: get(word::CODE_FILENAME)?,
            code_name: get(word::CODE_NAME)?,
            code_qualname: Some(get(word::CODE_QUALNAME)?),
            code_linetable: get(word::CODE_LINETABLE)?,
            code_first_line: get(word::CODE_FIRSTLINENO)?,
            code_bytecode: get(word::CODE_CO_CODE_ADAPTIVE)?,
            object_type: get(word::OBJECT_OB_TYPE)?,
            type_name: get(word::TYPE_TP_NAME)?,
            bytes_size: get(word::BYTES_OB_SIZE)?,
            bytes_data: get(word::BYTES_OB_SVAL)?,
            unicode_state: get(word::UNICODE_STATE)?,
            unicode_length: get(word::UNICODE_LENGTH)?,
            unicode_ascii_data: get(word::UNICODE_ASCIIOBJECT_SIZE)?,
            ..*table
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::python::Version;

    #[test]
    fn short_or_foreign_bytes_are_errors() {
        assert!(DebugOffsets::parse(&[0; 16]).is_err());
        assert!(DebugOffsets::parse(&[0; WORDS * 8]).is_err());
    }

    #[test]
    fn absurd_offsets_are_errors() {
        let mut bytes = vec![0xffu8; WORDS * 8];
        bytes[..8].copy_from_slice(COOKIE);
        let parsed = DebugOffsets::parse(&bytes).unwrap();
        assert!(parsed.apply(Offsets::of(Version::V3_13)).is_err());
    }
}
