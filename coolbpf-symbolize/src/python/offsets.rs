//! Where the fields the frame walk reads sit in each CPython version's structures, in
//! bytes from the start of the structure (x86_64, the default non-debug, GIL build).
//!
//! Where the numbers come from: each is `offsetof(STRUCT, FIELD)` (or a `sizeof`) of the
//! structure named in the field's comment, as declared by that version's headers
//! (`Include/cpython/*.h` and `Include/internal/pycore_*.h`, compiled with
//! `-DPy_BUILD_CORE`). The test `python_offsets` (coolbpf-symbolize/tests) compiles a C
//! program against each pyenv build's headers and checks every number here against what
//! the compiler says, and checks 3.13's against the `_Py_DebugOffsets` that 3.13 itself
//! stores at the start of `_PyRuntime`. These layouts hold for every patch release of a
//! minor version (CPython keeps them stable within one), not for debug (`Py_DEBUG`) or
//! free-threaded (`--disable-gil`) builds, which 3.13's debug offsets reveal.

use super::version::Version;

/// The byte offsets one CPython version's walk needs. `None`: the field does not exist in
/// that version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offsets {
    /// `_PyRuntimeState.interpreters.head`: the first (main) interpreter.
    pub runtime_interpreters_head: u32,
    /// `PyInterpreterState.next`.
    pub interp_next: u32,
    /// `PyInterpreterState.threads.head` (`tstate_head` in 3.10).
    pub interp_threads_head: u32,
    /// `PyThreadState.next`.
    pub tstate_next: u32,
    /// `PyThreadState.thread_id`: `pthread_self()` of the thread the state belongs to.
    pub tstate_thread_id: u32,
    /// `PyThreadState.native_thread_id` (3.11+): the thread's id in its pid namespace.
    pub tstate_native_thread_id: Option<u32>,
    /// Where the innermost frame hangs off the thread state: `PyThreadState.frame`
    /// (3.10, a `PyFrameObject *`), `PyThreadState.cframe` (3.11, 3.12, a `_PyCFrame *`)
    /// or `PyThreadState.current_frame` (3.13, a `_PyInterpreterFrame *`).
    pub tstate_frame: u32,
    /// `_PyCFrame.current_frame` (3.11, 3.12).
    pub cframe_current_frame: Option<u32>,
    /// The caller's frame: `PyFrameObject.f_back` (3.10) or
    /// `_PyInterpreterFrame.previous`.
    pub frame_previous: u32,
    /// The frame's code: `PyFrameObject.f_code`, `_PyInterpreterFrame.f_code` (3.11,
    /// 3.12) or `_PyInterpreterFrame.f_executable` (3.13).
    pub frame_code: u32,
    /// Where the frame is in its code: `PyFrameObject.f_lasti` (3.10, an `int` counting
    /// code units), `_PyInterpreterFrame.prev_instr` (3.11, 3.12) or
    /// `_PyInterpreterFrame.instr_ptr` (3.13), pointers into the code's bytecode.
    pub frame_instr: u32,
    /// `_PyInterpreterFrame.owner` (3.11+, a `char`).
    pub frame_owner: Option<u32>,
    /// `_PyInterpreterFrame.is_entry` (3.11 only, a `bool`).
    pub frame_is_entry: Option<u32>,
    /// The bytecode: `PyCodeObject.co_code` (3.10, a `PyBytesObject *`) or
    /// `PyCodeObject.co_code_adaptive` (3.11+, inline in the code object).
    pub code_bytecode: u32,
    /// `PyCodeObject.co_filename`.
    pub code_filename: u32,
    /// `PyCodeObject.co_name`.
    pub code_name: u32,
    /// `PyCodeObject.co_qualname` (3.11+).
    pub code_qualname: Option<u32>,
    /// `PyCodeObject.co_firstlineno` (an `int`).
    pub code_first_line: u32,
    /// `PyCodeObject.co_linetable` (a `PyBytesObject *`).
    pub code_linetable: u32,
    /// `PyObject.ob_type`.
    pub object_type: u32,
    /// `PyTypeObject.tp_name` (a `const char *`).
    pub type_name: u32,
    /// `PyVarObject.ob_size` of a `PyBytesObject`.
    pub bytes_size: u32,
    /// `PyBytesObject.ob_sval`.
    pub bytes_data: u32,
    /// `PyASCIIObject.length`.
    pub unicode_length: u32,
    /// `PyASCIIObject.state` (a bit field: interned:2, kind:3, compact:1, ascii:1 from
    /// bit 0, in every supported version).
    pub unicode_state: u32,
    /// `sizeof(PyASCIIObject)`: where a compact ASCII string's characters start.
    pub unicode_ascii_data: u32,
    /// `sizeof(PyCompactUnicodeObject)`: where a compact non-ASCII string's start.
    pub unicode_compact_data: u32,
}

/// 3.10 (Include/internal/pycore_runtime.h, pycore_interp.h, cpython/pystate.h,
/// cpython/frameobject.h, cpython/code.h, cpython/unicodeobject.h of 3.10).
const V3_10: Offsets = Offsets {
    runtime_interpreters_head: 32,
    interp_next: 0,
    interp_threads_head: 8,
    tstate_next: 8,
    tstate_thread_id: 176,
    tstate_native_thread_id: None,
    tstate_frame: 24,
    cframe_current_frame: None,
    frame_previous: 24,
    frame_code: 32,
    frame_instr: 96,
    frame_owner: None,
    frame_is_entry: None,
    code_bytecode: 48,
    code_filename: 104,
    code_name: 112,
    code_qualname: None,
    code_first_line: 40,
    code_linetable: 120,
    object_type: 8,
    type_name: 24,
    bytes_size: 16,
    bytes_data: 32,
    unicode_length: 16,
    unicode_state: 32,
    unicode_ascii_data: 48,
    unicode_compact_data: 72,
};

/// 3.11 (the same headers of 3.11, plus internal/pycore_frame.h).
const V3_11: Offsets = Offsets {
    runtime_interpreters_head: 40,
    interp_next: 0,
    interp_threads_head: 16,
    tstate_next: 8,
    tstate_thread_id: 152,
    tstate_native_thread_id: Some(160),
    tstate_frame: 56,
    cframe_current_frame: Some(8),
    frame_previous: 48,
    frame_code: 32,
    frame_instr: 56,
    frame_owner: Some(69),
    frame_is_entry: Some(68),
    code_bytecode: 184,
    code_filename: 112,
    code_name: 120,
    code_qualname: Some(128),
    code_first_line: 72,
    code_linetable: 136,
    object_type: 8,
    type_name: 24,
    bytes_size: 16,
    bytes_data: 32,
    unicode_length: 16,
    unicode_state: 32,
    unicode_ascii_data: 48,
    unicode_compact_data: 72,
};

/// 3.12 (the same headers of 3.12; `wstr` left `PyASCIIObject`, so strings start
/// earlier).
const V3_12: Offsets = Offsets {
    runtime_interpreters_head: 40,
    interp_next: 0,
    interp_threads_head: 72,
    tstate_next: 8,
    tstate_thread_id: 136,
    tstate_native_thread_id: Some(144),
    tstate_frame: 56,
    cframe_current_frame: Some(0),
    frame_previous: 8,
    frame_code: 0,
    frame_instr: 56,
    frame_owner: Some(70),
    frame_is_entry: None,
    code_bytecode: 192,
    code_filename: 112,
    code_name: 120,
    code_qualname: Some(128),
    code_first_line: 68,
    code_linetable: 136,
    object_type: 8,
    type_name: 24,
    bytes_size: 16,
    bytes_data: 32,
    unicode_length: 16,
    unicode_state: 32,
    unicode_ascii_data: 40,
    unicode_compact_data: 56,
};

/// 3.13 (the same headers of 3.13; `_PyRuntimeState` now starts with
/// `_Py_DebugOffsets`, which is why the interpreters list moved to 632).
const V3_13: Offsets = Offsets {
    runtime_interpreters_head: 632,
    interp_next: 7264,
    interp_threads_head: 7344,
    tstate_next: 8,
    tstate_thread_id: 152,
    tstate_native_thread_id: Some(160),
    tstate_frame: 72,
    cframe_current_frame: None,
    frame_previous: 8,
    frame_code: 0,
    frame_instr: 56,
    frame_owner: Some(70),
    frame_is_entry: None,
    code_bytecode: 200,
    code_filename: 112,
    code_name: 120,
    code_qualname: Some(128),
    code_first_line: 68,
    code_linetable: 136,
    object_type: 8,
    type_name: 24,
    bytes_size: 16,
    bytes_data: 32,
    unicode_length: 16,
    unicode_state: 32,
    unicode_ascii_data: 40,
    unicode_compact_data: 56,
};

impl Offsets {
    /// The table of `version`.
    pub fn of(version: Version) -> &'static Offsets {
        match version {
            Version::V3_10 => &V3_10,
            Version::V3_11 => &V3_11,
            Version::V3_12 => &V3_12,
            Version::V3_13 => &V3_13,
        }
    }

    /// Every field by its name (the names the offsets test program prints), `None` where
    /// the version lacks it.
    pub fn named(&self) -> Vec<(&'static str, Option<u32>)> {
        vec![
            (
                "runtime_interpreters_head",
                Some(self.runtime_interpreters_head),
            ),
            ("interp_next", Some(self.interp_next)),
            ("interp_threads_head", Some(self.interp_threads_head)),
            ("tstate_next", Some(self.tstate_next)),
            ("tstate_thread_id", Some(self.tstate_thread_id)),
            ("tstate_native_thread_id", self.tstate_native_thread_id),
            ("tstate_frame", Some(self.tstate_frame)),
            ("cframe_current_frame", self.cframe_current_frame),
            ("frame_previous", Some(self.frame_previous)),
            ("frame_code", Some(self.frame_code)),
            ("frame_instr", Some(self.frame_instr)),
            ("frame_owner", self.frame_owner),
            ("frame_is_entry", self.frame_is_entry),
            ("code_bytecode", Some(self.code_bytecode)),
            ("code_filename", Some(self.code_filename)),
            ("code_name", Some(self.code_name)),
            ("code_qualname", self.code_qualname),
            ("code_first_line", Some(self.code_first_line)),
            ("code_linetable", Some(self.code_linetable)),
            ("object_type", Some(self.object_type)),
            ("type_name", Some(self.type_name)),
            ("bytes_size", Some(self.bytes_size)),
            ("bytes_data", Some(self.bytes_data)),
            ("unicode_length", Some(self.unicode_length)),
            ("unicode_state", Some(self.unicode_state)),
            ("unicode_ascii_data", Some(self.unicode_ascii_data)),
            ("unicode_compact_data", Some(self.unicode_compact_data)),
        ]
    }
}
