//! The userspace reference walker: every Python stack of a process, read from its memory
//! (runtime -> interpreters -> thread states -> frames). It is what the BPF walk in
//! `coolbpf/python.bpf.h` is checked against, and a fallback where BPF cannot walk.
//!
//! The process keeps running while it is read, so a stack can change under the walk: a
//! frame freed between two reads reads as garbage or faults. The walk bounds everything
//! it follows and reports a fault as an error for that thread, never loops or panics.

use crate::profile::PythonFrame;

use super::error::PythonError;
use super::interpreter::Interpreter;
use super::memory::Memory;
use super::version::Version;

/// Interpreters followed (the main one and sub-interpreters).
const MAX_INTERPRETERS: usize = 64;
/// Threads followed per interpreter.
const MAX_THREADS: usize = 4096;
/// Frames read per thread.
pub const MAX_FRAMES: usize = 2048;

/// `_PyInterpreterFrame.owner` of a shim frame that the C stack owns (3.12+): not a
/// Python function; the frame above it (inner) is the first its evaluation loop runs.
pub const FRAME_OWNED_BY_CSTACK: u8 = 3;

/// The Python stack of one thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadStack {
    /// `PyThreadState.thread_id`: the thread's `pthread_self()`.
    pub thread_id: u64,
    /// `PyThreadState.native_thread_id` (3.11+): its id in the process's pid namespace.
    pub native_thread_id: Option<u64>,
    /// The frames, innermost first; empty when the thread runs no Python code now.
    pub frames: Vec<PythonFrame>,
    /// Whether the walk stopped at [`MAX_FRAMES`] with frames left.
    pub truncated: bool,
}

/// Reads every thread's Python stack.
pub fn read_stacks(
    interpreter: &Interpreter,
    memory: &Memory,
) -> Result<Vec<ThreadStack>, PythonError> {
    let o = &interpreter.offsets;
    let mut stacks = Vec::new();
    let mut interp = memory.u64(interpreter.runtime + u64::from(o.runtime_interpreters_head))?;
    for _ in 0..MAX_INTERPRETERS {
        if interp == 0 {
            break;
        }
        let mut tstate = memory.u64(interp + u64::from(o.interp_threads_head))?;
        for _ in 0..MAX_THREADS {
            if tstate == 0 {
                break;
            }
            stacks.push(thread_stack(interpreter, memory, tstate)?);
            tstate = memory.u64(tstate + u64::from(o.tstate_next))?;
        }
        interp = memory.u64(interp + u64::from(o.interp_next))?;
    }
    Ok(stacks)
}

/// The innermost frame of a thread state: `PyFrameObject *` (3.10) or
/// `_PyInterpreterFrame *`.
fn current_frame(
    interpreter: &Interpreter,
    memory: &Memory,
    tstate: u64,
) -> Result<u64, PythonError> {
    let o = &interpreter.offsets;
    let frame_field = memory.u64(tstate + u64::from(o.tstate_frame))?;
    match o.cframe_current_frame {
        // 3.11, 3.12: the field is `_PyCFrame *cframe`.
        Some(at) if frame_field != 0 => memory.u64(frame_field + u64::from(at)),
        _ => Ok(frame_field),
    }
}

fn thread_stack(
    interpreter: &Interpreter,
    memory: &Memory,
    tstate: u64,
) -> Result<ThreadStack, PythonError> {
    let o = &interpreter.offsets;
    let thread_id = memory.u64(tstate + u64::from(o.tstate_thread_id))?;
    let native_thread_id = match o.tstate_native_thread_id {
        Some(at) => Some(memory.u64(tstate + u64::from(at))?),
        None => None,
    };
    let mut frames: Vec<PythonFrame> = Vec::new();
    let mut frame = current_frame(interpreter, memory, tstate)?;
    let mut truncated = false;
    while frame != 0 {
        if frames.len() == MAX_FRAMES {
            truncated = true;
            break;
        }
        if let Some(read) = read_frame(interpreter, memory, frame)? {
            frames.push(read);
        } else if let Some(last) = frames.last_mut() {
            // A shim: the frame inside it is the first its evaluation loop ran.
            last.entry = true;
        }
        frame = memory.u64(frame + u64::from(o.frame_previous))?;
    }
    Ok(ThreadStack {
        thread_id,
        native_thread_id,
        frames,
        truncated,
    })
}

/// One frame; `None` for a 3.12+ shim frame owned by the C stack.
fn read_frame(
    interpreter: &Interpreter,
    memory: &Memory,
    frame: u64,
) -> Result<Option<PythonFrame>, PythonError> {
    let o = &interpreter.offsets;
    let code = memory.u64(frame + u64::from(o.frame_code))?;
    if interpreter.version == Version::V3_10 {
        // `f_lasti` counts code units; -1 before the first instruction. Every
        // PyFrameObject runs in its own evaluation loop call: each is an entry.
        let lasti = memory.u32(frame + u64::from(o.frame_instr))? as i32;
        let offset = u32::try_from(lasti).map_or(u32::MAX, |l| l.saturating_mul(2));
        return Ok(Some(PythonFrame {
            code,
            offset,
            entry: true,
        }));
    }
    if let Some(owner) = o.frame_owner {
        if memory.u8(frame + u64::from(owner))? == FRAME_OWNED_BY_CSTACK {
            return Ok(None);
        }
    }
    let entry = match o.frame_is_entry {
        Some(at) => memory.u8(frame + u64::from(at))? != 0,
        // 3.12+: set by the shim frame that follows (see `thread_stack`).
        None => false,
    };
    let instr = memory.u64(frame + u64::from(o.frame_instr))?;
    Ok(Some(PythonFrame {
        code,
        offset: bytecode_offset(code, u64::from(o.code_bytecode), instr),
        entry,
    }))
}

/// The byte offset of instruction pointer `instr` in the bytecode of the code object at
/// `code`, which starts `bytecode` bytes into it (3.11+); `u32::MAX` when it points
/// before the start (a frame that has not run its first instruction: 3.11 and 3.12
/// point one code unit before it) or implausibly far.
pub fn bytecode_offset(code: u64, bytecode: u64, instr: u64) -> u32 {
    instr
        .checked_sub(code.wrapping_add(bytecode))
        .and_then(|d| u32::try_from(d).ok())
        .unwrap_or(u32::MAX)
}
