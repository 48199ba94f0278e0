//! Locking shared by the probes whose state is fed by a stream thread and read by
//! `collect`.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`. A panic elsewhere while holding the lock leaves plain data behind
/// (counts, maps): keep using it rather than taking the probe down.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
