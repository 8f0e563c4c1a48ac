//! The crate's one way to take a `Mutex`.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, taking the data over even if a thread panicked while holding it. Every critical
/// section in the crate is a few field updates that a panic cannot leave half done, so a
/// poisoned lock holds consistent data, and a panic in one worker (or in a user's callback)
/// must not take the client, the pool or the metrics down with it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
