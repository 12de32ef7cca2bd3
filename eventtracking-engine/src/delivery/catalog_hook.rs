//! What a worker does with the catalog: publishes the entries of the typed
//! events it sends (once per type). (Schema validation is the tracker's:
//! see `schema_check`.)

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventtracking_core::catalog::{catalog, CatalogEntry};
use eventtracking_core::Backend;
use eventtracking_core::Event;

use super::{guarded_call, lock, Route};

/// Per-worker catalog state.
#[derive(Default)]
pub(super) struct CatalogHook {
    /// Schema keys published to this backend, or not in the linked catalog
    /// (e.g. relayed events of types this program does not define).
    settled: Mutex<HashSet<Box<str>>>,
    /// Whether an unreadable catalog was reported already.
    catalog_error_reported: AtomicBool,
    /// Held while new types are looked up and published, so that batches
    /// in flight at once publish a type once, and none of them is sent
    /// before its type's entry.
    publishing: tokio::sync::Mutex<()>,
}

impl CatalogHook {
    /// The linked catalog, reporting (once) and counting a broken one.
    fn catalog(&self, route: &Route) -> Option<&'static eventtracking_core::catalog::Catalog> {
        match catalog() {
            Ok(catalog) => Some(catalog),
            Err(error) => {
                if !self.catalog_error_reported.swap(true, Relaxed) {
                    route.counters.catalog_errors.fetch_add(1, Relaxed);
                    tracing::error!(backend = %route.name, %error, "eventtracking: the event catalog is unusable; catalog entries are not published or validated");
                }
                None
            }
        }
    }

    /// Publishes the catalog entries of the event types in `batch` that this
    /// backend has not yet stored. Failures are counted and retried with the
    /// next batch holding that type; the batch is sent either way.
    pub(super) async fn publish_new_types(
        &self,
        route: &Route,
        backend: &Arc<dyn Backend>,
        batch: &[Arc<Event>],
        timeout: Duration,
    ) {
        if batch.iter().all(|event| event.schema().is_none()) {
            return;
        }
        let _publishing = self.publishing.lock().await;
        let mut new: Vec<Arc<CatalogEntry>> = Vec::new();
        {
            let mut settled = lock(&self.settled);
            // A batch holds few types, each many times: each key is looked
            // up once per batch, not hashed once per event.
            let mut seen: Vec<&str> = Vec::new();
            for event in batch {
                let Some(key) = event.schema() else { continue };
                if seen.iter().any(|seen| same_str(seen, key)) {
                    continue;
                }
                seen.push(key);
                if settled.contains(key) || new.iter().any(|entry| entry.key == key) {
                    continue;
                }
                match self.catalog(route).and_then(|c| c.by_key(key)) {
                    Some(entry) => new.push(entry.clone()),
                    None => {
                        settled.insert(Box::from(key));
                    }
                }
            }
        }
        if new.is_empty() {
            return;
        }
        self.publish(route, backend, new, timeout).await;
    }

    /// Publishes `entries` to the backend (guarded), counting the outcome
    /// and remembering what was stored; true when it worked.
    pub(super) async fn publish(
        &self,
        route: &Route,
        backend: &Arc<dyn Backend>,
        entries: Vec<Arc<CatalogEntry>>,
        timeout: Duration,
    ) -> bool {
        let task_backend = backend.clone();
        let task_entries = entries.clone();
        let result = guarded_call(timeout, async move {
            task_backend.publish_event_types(&task_entries).await
        })
        .await;
        match result {
            Ok(()) => {
                route
                    .counters
                    .event_types_published
                    .fetch_add(entries.len() as u64, Relaxed);
                let mut settled = lock(&self.settled);
                settled.extend(entries.iter().map(|entry| Box::from(entry.key.as_str())));
                true
            }
            Err(error) => {
                route.counters.catalog_errors.fetch_add(1, Relaxed);
                let keys: Vec<&str> = entries.iter().map(|entry| entry.key.as_str()).collect();
                tracing::warn!(backend = %route.name, %error, types = ?keys, "eventtracking: publishing event types failed; tried again with the next batch or flush");
                false
            }
        }
    }
}

/// Equal strings; typed events share their schema key's `&'static str`, so
/// the address usually answers without comparing the bytes.
fn same_str(a: &str, b: &str) -> bool {
    std::ptr::eq(a, b) || a == b
}
