//! Keeps libbpf quiet while probing, and keeps what it said for the reasons.
//!
//! Probing fails on purpose (kprobes on a kernel without them...), and libbpf reports
//! every failure on stderr, which would alarm users of `coolbpf features`. While a
//! [`Quiet`] guard lives, libbpf's messages on the probing thread are captured instead;
//! messages from other threads still reach the printer that was installed before.

use std::cell::RefCell;
use std::sync::{Mutex, MutexGuard, PoisonError};

use libbpf_rs::{PrintCallback, PrintLevel};

/// Serializes probing sessions: the printer is process-wide.
static SESSION: Mutex<()> = Mutex::new(());
/// The printer to forward other threads' messages to, and to restore afterwards.
static PREVIOUS: Mutex<Option<(PrintLevel, PrintCallback)>> = Mutex::new(None);

thread_local! {
    /// libbpf's messages on this thread, while it probes.
    static CAPTURED: RefCell<Option<Vec<(PrintLevel, String)>>> = const { RefCell::new(None) };
}

/// Captures libbpf's messages on this thread until dropped.
pub(super) struct Quiet {
    _session: MutexGuard<'static, ()>,
}

impl Quiet {
    /// Installs the capturing printer.
    pub(super) fn start() -> Self {
        let session = SESSION.lock().unwrap_or_else(PoisonError::into_inner);
        let previous = libbpf_rs::get_print();
        *PREVIOUS.lock().unwrap_or_else(PoisonError::into_inner) = previous;
        CAPTURED.with(|captured| *captured.borrow_mut() = Some(Vec::new()));
        // Warnings are all the reasons need; more only when the previous printer wants more
        // (libbpf's debug output is hundreds of lines per object).
        let level = previous.map_or(PrintLevel::Warn, |(level, _)| level.max(PrintLevel::Warn));
        libbpf_rs::set_print(Some((level, route)));
        Self { _session: session }
    }
}

impl Drop for Quiet {
    fn drop(&mut self) {
        let previous = PREVIOUS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        libbpf_rs::set_print(previous);
        CAPTURED.with(|captured| captured.borrow_mut().take());
    }
}

/// The first warning libbpf gave on this thread about `program` since the previous call
/// (libbpf names programs as `prog 'NAME'`): often more precise than the error it
/// returned, e.g. which step of a kprobe attach failed. Forgets all captured messages.
pub(super) fn take_warning_about(program: &str) -> Option<String> {
    let quoted = format!("'{program}'");
    CAPTURED.with(|captured| {
        let messages = captured.borrow_mut().as_mut().map(std::mem::take)?;
        messages
            .into_iter()
            .find(|(level, message)| *level == PrintLevel::Warn && message.contains(&quoted))
            .map(|(_, message)| message.trim().trim_start_matches("libbpf: ").to_owned())
    })
}

/// Forgets what libbpf said so far on this thread (before a new probe starts).
pub(super) fn discard() {
    CAPTURED.with(|captured| {
        if let Some(messages) = captured.borrow_mut().as_mut() {
            messages.clear();
        }
    });
}

fn route(level: PrintLevel, message: String) {
    let unrouted = CAPTURED.with(|captured| match captured.borrow_mut().as_mut() {
        Some(messages) => {
            messages.push((level, message));
            None
        }
        None => Some(message),
    });
    let Some(message) = unrouted else { return };
    let previous = *PREVIOUS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((max_level, print)) = previous {
        if level <= max_level {
            print(level, message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn captured_count() -> Option<usize> {
        CAPTURED.with(|captured| captured.borrow().as_ref().map(Vec::len))
    }

    #[test]
    fn captures_this_threads_messages_and_restores_the_printer() {
        let before = libbpf_rs::get_print().map(|(level, _)| level);
        {
            let _quiet = Quiet::start();
            // Not an ELF file: libbpf warns while failing to open it, without a program name.
            let opened = libbpf_rs::ObjectBuilder::default().open_memory(b"not an ELF object");
            assert!(opened.is_err());
            assert!(captured_count().is_some_and(|count| count > 0));
            assert_eq!(take_warning_about("some_program"), None);
            assert_eq!(
                captured_count(),
                Some(0),
                "taking forgets everything captured"
            );
        }
        assert_eq!(captured_count(), None, "capture ends with the guard");
        assert_eq!(libbpf_rs::get_print().map(|(level, _)| level), before);
    }
}
