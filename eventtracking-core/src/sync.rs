//! Locking that survives a panic elsewhere.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, taking the data over even if another thread panicked
/// while holding it: the event pipeline's shared state (queues, counters,
/// buffers) stays consistent between statements, and one panicking
/// processor or backend must not stop delivery for everyone else.
///
/// ```
/// use std::sync::Mutex;
/// let counter = Mutex::new(1);
/// *eventtracking_core::sync::lock(&counter) += 1;
/// assert_eq!(*counter.lock().unwrap(), 2);
/// ```
pub fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
