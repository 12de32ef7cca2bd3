//! Request context maps are recycled on the thread that built them.
//!
//! A request's context map is shared (`Arc`) by its context frame and by
//! every event emitted in it, so it is usually freed by the delivery thread,
//! after the request ends. That is the expensive kind of free: glibc hands
//! memory allocated by one thread back from another through locked arena
//! bins, and every one of the map's strings is a separate block. Instead,
//! each request's map is kept here when the request ends; once the last
//! event holding it is dropped, the next request on this thread takes it
//! back and overwrites its strings in place (no allocation for the usual
//! fields), and nothing of it is freed on the delivery thread.
//!
//! A map is taken back only when this pool holds the only reference, so no
//! request ever sees another's values.

use std::cell::RefCell;
use std::sync::Arc;

use eventtracking_core::context::MapPool;
use eventtracking_core::JsonMap;

/// Most maps kept per thread. Events are delivered in batches (512 by
/// default), so a map waits about a batch behind before it can be reused;
/// past this many the oldest is let go (freed by whoever drops it last).
pub(crate) const POOL_CAPACITY: usize = 1024;

/// A recycled map's string values longer than this are freed rather than
/// kept (a rare long user agent or path is not held for good).
pub(crate) const KEEP_STRING_CAPACITY: usize = 256;

thread_local! {
    static POOL: RefCell<MapPool> = const { RefCell::new(MapPool::new(POOL_CAPACITY)) };
}

/// The oldest map of this thread's pool if nothing else holds it any more.
pub(crate) fn take() -> Option<JsonMap> {
    POOL.try_with(|pool| pool.try_borrow_mut().ok()?.take())
        .ok()
        .flatten()
}

/// Keeps a request's map (its events may still hold it) for a later request.
pub(crate) fn give_back(map: Arc<JsonMap>) {
    let _ = POOL.try_with(|pool| {
        if let Ok(mut pool) = pool.try_borrow_mut() {
            pool.give_back(map);
        }
    });
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(n: i32) -> JsonMap {
        json!({ "n": n }).as_object().unwrap().clone()
    }

    #[test]
    fn each_thread_takes_back_only_its_own_maps() {
        // Threads of their own: empty pools.
        std::thread::spawn(|| {
            give_back(Arc::new(map(1)));
            std::thread::spawn(|| assert_eq!(take(), None))
                .join()
                .unwrap();
            assert_eq!(take(), Some(map(1)));
            assert_eq!(take(), None);
        })
        .join()
        .unwrap();
    }
}
