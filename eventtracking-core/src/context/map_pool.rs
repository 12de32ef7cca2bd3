//! Context maps kept for reuse on the thread that made them.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::event::JsonMap;

/// Context maps kept by the thread that built them, to be rewritten in
/// place by a later request or event once nothing else holds them.
///
/// A context map is shared (`Arc`) by every event made in it, so it is
/// usually freed by a delivery thread: the expensive kind of free (memory
/// handed back across threads), and one per key and string. A builder that
/// makes many short-lived maps of the same shape (one per request) keeps
/// each one here instead: once the last event holding it is dropped,
/// [`take`](Self::take) hands it back, whole, for its strings and keys to
/// be overwritten, and nothing of it is freed on the delivery thread.
///
/// A map comes back only when this pool holds its only reference, so no
/// later user ever sees it change under another. Keep one pool per thread
/// (a `thread_local!`), for each kind of map.
///
/// ```
/// use std::sync::Arc;
/// use eventtracking_core::context::MapPool;
/// use serde_json::json;
///
/// let mut pool = MapPool::new(16);
/// let map = Arc::new(json!({"n": 1}).as_object().unwrap().clone());
/// pool.give_back(map.clone());
/// assert!(pool.take().is_none(), "an event still holds it");
/// drop(map);
/// assert_eq!(pool.take().unwrap()["n"], 1);
/// ```
#[derive(Debug)]
pub struct MapPool {
    maps: VecDeque<Arc<JsonMap>>,
    capacity: usize,
}

impl MapPool {
    /// A pool of at most `capacity` maps; past that the oldest is let go
    /// (freed by whoever drops it last).
    pub const fn new(capacity: usize) -> Self {
        MapPool {
            maps: VecDeque::new(),
            capacity,
        }
    }

    /// The oldest map if nothing else holds it any more. Oldest first:
    /// events are delivered (and dropped) roughly in the order they were made.
    pub fn take(&mut self) -> Option<JsonMap> {
        if Arc::strong_count(self.maps.front()?) != 1 {
            return None;
        }
        let shared = self.maps.pop_front()?;
        match Arc::try_unwrap(shared) {
            Ok(map) => Some(map),
            Err(shared) => {
                self.maps.push_front(shared);
                None
            }
        }
    }

    /// Keeps `map` (events may still hold it) for a later [`take`](Self::take).
    pub fn give_back(&mut self, map: Arc<JsonMap>) {
        if self.capacity == 0 {
            return;
        }
        if self.maps.len() >= self.capacity {
            self.maps.pop_front();
        }
        self.maps.push_back(map);
    }

    /// How many maps the pool holds.
    pub fn len(&self) -> usize {
        self.maps.len()
    }

    /// Whether the pool holds no map.
    pub fn is_empty(&self) -> bool {
        self.maps.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(n: usize) -> JsonMap {
        json!({ "n": n }).as_object().unwrap().clone()
    }

    #[test]
    fn a_map_comes_back_only_when_nothing_else_holds_it_oldest_first() {
        let mut pool = MapPool::new(4);
        assert_eq!(pool.take(), None);
        let event_copy = Arc::new(map(1));
        pool.give_back(event_copy.clone());
        assert_eq!(pool.take(), None, "an event still holds it");
        drop(event_copy);
        assert_eq!(pool.take(), Some(map(1)));
        assert_eq!(pool.take(), None);

        for n in 0..10 {
            pool.give_back(Arc::new(map(n)));
        }
        // The oldest were let go; the rest come back oldest first.
        assert_eq!(pool.len(), 4);
        assert_eq!(pool.take(), Some(map(6)));
        assert_eq!(pool.take(), Some(map(7)));
    }

    #[test]
    fn a_pool_of_no_maps_keeps_nothing() {
        let mut pool = MapPool::new(0);
        pool.give_back(Arc::new(map(1)));
        assert!(pool.is_empty());
        assert_eq!(pool.take(), None);
    }
}
