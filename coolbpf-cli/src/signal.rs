//! Ctrl-C and SIGTERM end a run cleanly (final collect, detach) instead of killing it.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_signal: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Installs the handlers for SIGINT and SIGTERM.
pub fn install() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: on_signal is an extern "C" fn that only stores to an atomic, which is
        // async-signal-safe; signal() has no other preconditions.
        unsafe {
            libc::signal(signal, on_signal as *const () as libc::sighandler_t);
        }
    }
}

/// Restores the default SIGPIPE action (Rust ignores it), so that `coolbpf ... | head`
/// ends quietly when the reader goes away instead of panicking on a failed print.
pub fn default_sigpipe() {
    // SAFETY: resetting a signal to its default action has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Whether SIGINT or SIGTERM arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}
