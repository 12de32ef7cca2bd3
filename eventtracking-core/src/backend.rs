//! The [`Backend`] trait: where events finally go.

use std::sync::Arc;

use async_trait::async_trait;

use crate::catalog::CatalogEntry;
use crate::error::BackendResult;
use crate::event::Event;

/// A destination for events: a file, a database, a broker, or your own.
///
/// Only [`send_batch`](Backend::send_batch) is required. Backends are thin
/// translations to their driver: batching, retries with backoff, overflow,
/// dead-lettering and shutdown are done once, by the delivery engine.
///
/// # Duties of an implementation
///
/// - By default the engine never calls `send_batch` concurrently on one
///   backend, and never calls it again before the previous call returned,
///   so events arrive in the order they were emitted. A backend whose
///   store takes overlapping writes says so with
///   [`max_concurrent_sends`](Backend::max_concurrent_sends): then up to the
///   route's `max_in_flight` calls overlap, and must be safe to.
/// - A call must give up within a bounded time (the engine also cancels it
///   after the configured `send_timeout_ms` and treats that as retryable).
/// - Say what failed and whether retrying can help: return
///   [`BackendError::Retryable`](crate::BackendError::Retryable) or
///   [`Timeout`](crate::BackendError::Timeout) for transient trouble,
///   [`Permanent`](crate::BackendError::Permanent) for the whole batch, or
///   [`Partial`](crate::BackendError::Partial) listing the failed events when
///   the rest were stored. A retried batch may hold events that were already
///   stored once: make writes idempotent on [`Event::id`] where the store allows.
/// - A panic in `send_batch` is caught: that batch fails for good (it goes to
///   the dead-letter file with the panic message) and the worker goes on.
///
/// # Example
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use eventtracking_core::{async_trait, Backend, BackendResult, Event};
///
/// #[derive(Debug, Default)]
/// struct Names(Mutex<Vec<String>>);
///
/// #[async_trait]
/// impl Backend for Names {
///     async fn send_batch(&self, batch: &[Arc<Event>]) -> BackendResult {
///         let mut names = self.0.lock().unwrap();
///         names.extend(batch.iter().map(|e| e.name().to_owned()));
///         Ok(())
///     }
/// }
///
/// // The engine's tracker calls it (`Tracker::builder().with_backend("names", names)`);
/// // here, by hand:
/// let names = Names::default();
/// let event = Arc::new(Event::new("page.view", serde_json::json!({})).unwrap());
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// names.send_batch(&[event]).await.unwrap();
/// # });
/// assert_eq!(*names.0.lock().unwrap(), ["page.view"]);
/// ```
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Stores a batch of events.
    async fn send_batch(&self, batch: &[Arc<Event>]) -> BackendResult;

    /// Makes everything sent so far durable (e.g. fsync). Called by
    /// the engine's `Tracker::flush` after the queue is drained.
    async fn flush(&self) -> BackendResult {
        Ok(())
    }

    /// How many `send_batch` calls may run at once: the engine's default
    /// for the delivery key `max_in_flight` of this backend. `1` (the
    /// default) means calls never overlap, which keeps events in order; the
    /// engine then refuses a `max_in_flight` above 1 for this backend. A
    /// backend returning more must accept concurrent calls, in any order.
    fn max_concurrent_sends(&self) -> usize {
        1
    }

    /// Releases resources. Called once, after the last batch.
    async fn shutdown(&self) -> BackendResult {
        Ok(())
    }

    /// Persists the documentation of event types beside the events: the
    /// delivery engine calls it before sending the first batch that holds a
    /// typed event of a type this backend has not yet published in this
    /// process (so once per type per process), with those types'
    /// [`CatalogEntry`]s. On an error the engine counts it
    /// (`catalog_errors`) and tries again with the next batch holding that
    /// type; the events themselves are sent either way.
    ///
    /// Make it idempotent (an upsert keyed by [`CatalogEntry::key`]): every
    /// process publishes the types it emits. The default stores nothing.
    async fn publish_event_types(&self, types: &[Arc<CatalogEntry>]) -> BackendResult {
        let _ = types;
        Ok(())
    }
}

#[async_trait]
impl<B: Backend + ?Sized> Backend for Box<B> {
    async fn send_batch(&self, batch: &[Arc<Event>]) -> BackendResult {
        (**self).send_batch(batch).await
    }
    fn max_concurrent_sends(&self) -> usize {
        (**self).max_concurrent_sends()
    }
    async fn flush(&self) -> BackendResult {
        (**self).flush().await
    }
    async fn shutdown(&self) -> BackendResult {
        (**self).shutdown().await
    }
    async fn publish_event_types(&self, types: &[Arc<CatalogEntry>]) -> BackendResult {
        (**self).publish_event_types(types).await
    }
}

#[async_trait]
impl<B: Backend + ?Sized> Backend for Arc<B> {
    async fn send_batch(&self, batch: &[Arc<Event>]) -> BackendResult {
        (**self).send_batch(batch).await
    }
    fn max_concurrent_sends(&self) -> usize {
        (**self).max_concurrent_sends()
    }
    async fn flush(&self) -> BackendResult {
        (**self).flush().await
    }
    async fn shutdown(&self) -> BackendResult {
        (**self).shutdown().await
    }
    async fn publish_event_types(&self, types: &[Arc<CatalogEntry>]) -> BackendResult {
        (**self).publish_event_types(types).await
    }
}

/// `None` accepts and discards everything, so a backend can be switched off at run time.
#[async_trait]
impl<B: Backend> Backend for Option<B> {
    async fn send_batch(&self, batch: &[Arc<Event>]) -> BackendResult {
        match self {
            Some(backend) => backend.send_batch(batch).await,
            None => Ok(()),
        }
    }
    fn max_concurrent_sends(&self) -> usize {
        self.as_ref().map_or(1, B::max_concurrent_sends)
    }
    async fn flush(&self) -> BackendResult {
        match self {
            Some(backend) => backend.flush().await,
            None => Ok(()),
        }
    }
    async fn shutdown(&self) -> BackendResult {
        match self {
            Some(backend) => backend.shutdown().await,
            None => Ok(()),
        }
    }
    async fn publish_event_types(&self, types: &[Arc<CatalogEntry>]) -> BackendResult {
        match self {
            Some(backend) => backend.publish_event_types(types).await,
            None => Ok(()),
        }
    }
}

/// Accepts every batch and drops it (engine `discard`): for benchmarks and
/// for switching a route off in config.
#[derive(Debug, Default, Clone, Copy)]
pub struct DiscardBackend;

#[async_trait]
impl Backend for DiscardBackend {
    async fn send_batch(&self, _batch: &[Arc<Event>]) -> BackendResult {
        Ok(())
    }
}

fn build_discard(
    config: &crate::registry::ComponentConfig,
) -> Result<Box<dyn Backend>, crate::BuildError> {
    config.parse_options::<crate::registry::NoOptions>()?;
    Ok(Box::new(DiscardBackend))
}

crate::register_backend! {
    crate::registry::BackendRegistration::new(
        "discard",
        "accepts every event and drops it (for benchmarks)",
        build_discard,
    )
}

#[cfg(any(test, feature = "testing"))]
pub use in_memory::InMemoryBackend;

#[cfg(any(test, feature = "testing"))]
mod in_memory {
    use std::sync::Mutex;

    use super::*;

    /// Keeps every event it is sent, for tests (feature `testing`).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use eventtracking_core::{Backend, Event, InMemoryBackend};
    /// let memory = InMemoryBackend::new();
    /// // Usually given to a tracker: `Tracker::builder().with_backend("memory", memory.clone())`.
    /// let event = Arc::new(Event::new("a", serde_json::json!(1)).unwrap());
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// memory.send_batch(&[event]).await.unwrap();
    /// # });
    /// assert_eq!(memory.events()[0].name(), "a");
    /// ```
    #[derive(Debug, Default, Clone)]
    pub struct InMemoryBackend {
        events: Arc<Mutex<Vec<Arc<Event>>>>,
        event_types: Arc<Mutex<Vec<Arc<CatalogEntry>>>>,
    }

    impl InMemoryBackend {
        /// An empty backend; clones share the same storage.
        pub fn new() -> Self {
            Self::default()
        }

        /// Every event received so far, in order.
        pub fn events(&self) -> Vec<Arc<Event>> {
            self.events.lock().map(|e| e.clone()).unwrap_or_default()
        }

        /// Every catalog entry published to it so far
        /// ([`Backend::publish_event_types`]), in order.
        pub fn event_types(&self) -> Vec<Arc<CatalogEntry>> {
            self.event_types
                .lock()
                .map(|e| e.clone())
                .unwrap_or_default()
        }

        /// Forgets the events received so far.
        pub fn clear(&self) {
            if let Ok(mut events) = self.events.lock() {
                events.clear();
            }
        }
    }

    #[async_trait]
    impl Backend for InMemoryBackend {
        async fn send_batch(&self, batch: &[Arc<Event>]) -> BackendResult {
            let mut events = self
                .events
                .lock()
                .map_err(|_| crate::BackendError::Permanent("memory poisoned".into()))?;
            events.extend(batch.iter().cloned());
            Ok(())
        }

        async fn publish_event_types(&self, types: &[Arc<CatalogEntry>]) -> BackendResult {
            let mut published = self
                .event_types
                .lock()
                .map_err(|_| crate::BackendError::Permanent("memory poisoned".into()))?;
            published.extend(types.iter().cloned());
            Ok(())
        }
    }
}
