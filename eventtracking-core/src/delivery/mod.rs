//! The delivery engine: one bounded queue and one worker per backend, shared
//! by every backend (batching, retry with jittered backoff, overflow,
//! dead-letter, flush and shutdown all live here, once).
//!
//! # Guarantees
//!
//! - `emit` never waits on I/O: it appends to each backend's in-memory queue.
//!   Only `overflow = "block"` can make it wait, for at most `block_timeout_ms`.
//! - Every accepted event is delivered, written to the dead-letter file with
//!   the reason, or counted as dropped with a reason. Nothing is lost silently:
//!   see [`BackendStats`].
//! - Delivery is at-least-once per backend: a batch retried after a timeout
//!   may reach the backend twice, so backends should write idempotently on
//!   the event id.
//! - Backends are isolated: a slow or failing backend fills only its own queue.

mod catalog_hook;
mod config;
mod dead_letter;
mod stats;

pub use config::{DeliveryConfig, Overflow};
pub use dead_letter::DeadLetterRecord;
pub use stats::{BackendStats, DeliveryReport, DroppedStats, TrackerStats};

pub(crate) use stats::TrackerCounters;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::backend::Backend;
use crate::error::BackendError;
use crate::error::BackendResult;
use crate::event::Event;
use crate::processor::{panic_message, run_chain, Processor};
use dead_letter::DeadLetterFile;
use stats::RouteCounters;

/// One backend with its queue, counters and settings.
pub(crate) struct Route {
    pub(crate) name: Arc<str>,
    config: DeliveryConfig,
    processors: Vec<Arc<dyn Processor>>,
    queue: Mutex<VecDeque<Arc<Event>>>,
    not_full: Condvar,
    wake: tokio::sync::Notify,
    pub(crate) counters: RouteCounters,
    /// Events handled for good (delivered, failed, filtered, evicted, dropped at shutdown).
    completed: AtomicU64,
    flush_requested: AtomicU64,
    flush_target: AtomicU64,
    flush_done: AtomicU64,
    closing: AtomicBool,
    worker_exited: AtomicBool,
    progress: Mutex<()>,
    progress_changed: Condvar,
    progress_notify: tokio::sync::Notify,
    dead_letter: DeadLetterFile,
    /// Catalog entries handed in by [`Tracker::publish_event_types`](crate::Tracker::publish_event_types),
    /// published before the next batch or flush.
    pending_types: Mutex<Vec<Arc<crate::catalog::CatalogEntry>>>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("processors", &self.processors)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the data invalid
    // (a queue or a unit), so poisoning is ignored rather than spread.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Route {
    pub(crate) fn new(
        name: &str,
        config: DeliveryConfig,
        processors: Vec<Arc<dyn Processor>>,
    ) -> Arc<Self> {
        let dead_letter = DeadLetterFile::new(&config.dead_letter_path);
        Arc::new(Route {
            name: Arc::from(name),
            queue: Mutex::new(VecDeque::with_capacity(config.queue_capacity.min(4096))),
            config,
            processors,
            not_full: Condvar::new(),
            wake: tokio::sync::Notify::new(),
            counters: RouteCounters::default(),
            completed: AtomicU64::new(0),
            flush_requested: AtomicU64::new(0),
            flush_target: AtomicU64::new(0),
            flush_done: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            worker_exited: AtomicBool::new(false),
            progress: Mutex::new(()),
            progress_changed: Condvar::new(),
            progress_notify: tokio::sync::Notify::new(),
            dead_letter,
            pending_types: Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn config(&self) -> &DeliveryConfig {
        &self.config
    }

    /// Queues catalog entries for the worker to publish (see
    /// [`Tracker::publish_event_types`](crate::Tracker::publish_event_types)).
    pub(crate) fn offer_event_types(&self, entries: &[Arc<crate::catalog::CatalogEntry>]) {
        lock(&self.pending_types).extend(entries.iter().cloned());
        self.wake.notify_one();
    }

    pub(crate) fn stats(&self) -> BackendStats {
        let queued = lock(&self.queue).len();
        self.counters.snapshot(queued)
    }

    /// The emit path: append to the queue under the overflow policy. An
    /// event refused is counted here, with its reason.
    pub(crate) fn offer(&self, event: Arc<Event>) {
        let counters = &self.counters;
        if self.closing.load(Relaxed) {
            counters.dropped_shutdown.fetch_add(1, Relaxed);
            return;
        }
        let capacity = self.config.queue_capacity;
        let mut queue = lock(&self.queue);
        if queue.len() >= capacity {
            match self.config.overflow {
                Overflow::DropNewest => {
                    drop(queue);
                    self.note_drop(
                        counters.dropped_queue_full.fetch_add(1, Relaxed),
                        "queue full",
                    );
                    return;
                }
                Overflow::DropOldest => {
                    queue.pop_front();
                    let n = counters.dropped_evicted.fetch_add(1, Relaxed);
                    self.completed.fetch_add(1, SeqCst);
                    self.note_drop(n, "evicted by a newer event");
                }
                Overflow::Block => {
                    let deadline =
                        Instant::now() + Duration::from_millis(self.config.block_timeout_ms);
                    while queue.len() >= capacity {
                        let now = Instant::now();
                        if now >= deadline || self.closing.load(Relaxed) {
                            drop(queue);
                            let n = counters.dropped_block_timeout.fetch_add(1, Relaxed);
                            self.note_drop(n, "queue still full after block_timeout_ms");
                            return;
                        }
                        queue = self
                            .not_full
                            .wait_timeout(queue, deadline - now)
                            .unwrap_or_else(|p| p.into_inner())
                            .0;
                    }
                }
            }
        }
        queue.push_back(event);
        counters.accepted.fetch_add(1, Relaxed);
        let len = queue.len();
        drop(queue);
        // Wake the worker when work appears and when a batch is full; in
        // between it is lingering on a timer anyway.
        if len == 1 || len == self.full_batch() {
            self.wake.notify_one();
        }
    }

    /// Logs the first drop and then every 10,000th, so a flood of drops stays visible but quiet.
    fn note_drop(&self, previous: u64, reason: &str) {
        if previous % 10_000 == 0 {
            tracing::warn!(
                backend = %self.name,
                dropped_so_far = previous + 1,
                "eventtracking: dropping events: {reason}"
            );
        }
    }

    fn complete(&self, n: u64) {
        self.completed.fetch_add(n, SeqCst);
    }

    fn notify_progress(&self) {
        let _guard = lock(&self.progress);
        self.progress_changed.notify_all();
        self.progress_notify.notify_waiters();
    }

    /// The most a batch can hold: `batch_size`, or the whole queue when that is smaller
    /// (a full queue must not wait out the linger while emit blocks or drops).
    fn full_batch(&self) -> usize {
        self.config.batch_size.min(self.config.queue_capacity)
    }

    fn flush_pending(&self) -> bool {
        self.pending_flush().is_some()
    }

    /// The newest flush generation requested and not yet done, if any.
    fn pending_flush(&self) -> Option<u64> {
        let requested = self.flush_requested.load(SeqCst);
        (requested > self.flush_done.load(SeqCst)).then_some(requested)
    }

    /// Asks the worker to flush; returns the request's generation.
    fn request_flush(&self) -> u64 {
        let target = self.counters.accepted.load(SeqCst);
        self.flush_target.fetch_max(target, SeqCst);
        let generation = self.flush_requested.fetch_add(1, SeqCst) + 1;
        self.wake.notify_one();
        generation
    }

    fn flushed(&self, generation: u64) -> bool {
        self.flush_done.load(SeqCst) >= generation || self.worker_exited.load(SeqCst)
    }

    /// Blocks until the flush request `generation` is done or the deadline passes.
    fn wait_flushed(&self, generation: u64, deadline: Instant) -> bool {
        self.wait_until(deadline, || self.flushed(generation))
    }

    /// Blocks until `done()` (re-checked whenever the worker reports progress)
    /// or the deadline passes; says whether `done()` held.
    fn wait_until(&self, deadline: Instant, done: impl Fn() -> bool) -> bool {
        let mut guard = lock(&self.progress);
        loop {
            if done() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            guard = self
                .progress_changed
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    async fn wait_flushed_async(&self, generation: u64, deadline: Instant) -> bool {
        loop {
            let notified = self.progress_notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.flushed(generation) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            let _ = tokio::time::timeout(deadline - now, notified).await;
        }
    }

    fn wait_exited(&self, deadline: Instant) -> bool {
        self.wait_until(deadline, || self.worker_exited.load(SeqCst))
    }

    /// After the worker is gone: whatever is still queued or was in flight is dropped (counted).
    fn abandon_remaining(&self) {
        let mut queue = lock(&self.queue);
        queue.clear();
        let accepted = self.counters.accepted.load(SeqCst);
        let completed = self.completed.load(SeqCst);
        let remaining = accepted.saturating_sub(completed);
        if remaining > 0 {
            self.counters.dropped_shutdown.fetch_add(remaining, Relaxed);
            self.completed.fetch_add(remaining, SeqCst);
            tracing::error!(
                backend = %self.name,
                dropped = remaining,
                "eventtracking: shutdown deadline passed with events still undelivered"
            );
        }
        drop(queue);
        self.not_full.notify_all();
        // The runtime is shut down: the worker is gone (or going) even if it
        // never got to say so, and later flushes have nothing to wait for.
        self.worker_exited.store(true, SeqCst);
        self.notify_progress();
    }

    fn take_batch(&self) -> Vec<Arc<Event>> {
        let mut queue = lock(&self.queue);
        let n = queue.len().min(self.config.batch_size);
        let batch: Vec<_> = queue.drain(..n).collect();
        drop(queue);
        if self.config.overflow == Overflow::Block {
            self.not_full.notify_all();
        }
        batch
    }

    fn queue_len(&self) -> usize {
        lock(&self.queue).len()
    }
}

/// The worker of one route: waits for events, batches, sends, retries, dead-letters.
pub(crate) async fn run_worker(route: Arc<Route>, backend: Arc<dyn Backend>) {
    let worker = Worker {
        route: route.clone(),
        backend,
        catalog: catalog_hook::CatalogHook::default(),
    };
    worker.run().await;
    route.worker_exited.store(true, SeqCst);
    route.notify_progress();
}

struct Worker {
    route: Arc<Route>,
    backend: Arc<dyn Backend>,
    catalog: catalog_hook::CatalogHook,
}

impl Worker {
    async fn run(&self) {
        let route = &*self.route;
        loop {
            // Read the flush generation before looking at the queue: the
            // events of every request up to it were queued before that
            // request, so an empty queue means they are all handled. (Read
            // after, a request arriving in between would be marked done
            // with its events still queued.)
            let pending = route.pending_flush();
            let len = route.queue_len();
            if len == 0 {
                if let Some(generation) = pending {
                    self.flush_backend(generation).await;
                    continue;
                }
                if route.closing.load(SeqCst) {
                    break;
                }
                route.wake.notified().await;
                continue;
            }
            if len < route.full_batch() {
                self.linger().await;
            }
            let batch = route.take_batch();
            if !batch.is_empty() {
                self.handle(batch).await;
            }
            // Likewise the generation is read before the target it is checked against.
            if let Some(generation) = route.pending_flush() {
                if route.completed.load(SeqCst) >= route.flush_target.load(SeqCst) {
                    self.flush_backend(generation).await;
                }
            }
        }
        if let Err(error) = self.backend.flush().await {
            route.counters.flush_errors.fetch_add(1, Relaxed);
            tracing::error!(backend = %route.name, %error, "eventtracking: flush at shutdown failed");
        }
        if let Err(error) = self.backend.shutdown().await {
            tracing::error!(backend = %route.name, %error, "eventtracking: backend shutdown failed");
        }
    }

    /// Waits up to `linger_ms` for a full batch, so that a trickle of events
    /// still makes full batches; a flush or shutdown cuts it short.
    async fn linger(&self) {
        let route = &*self.route;
        let deadline = tokio::time::Instant::now() + route.config.linger();
        while route.queue_len() < route.full_batch()
            && !route.flush_pending()
            && !route.closing.load(SeqCst)
        {
            if tokio::time::timeout_at(deadline, route.wake.notified())
                .await
                .is_err()
            {
                break;
            }
        }
    }

    /// Flushes the backend and marks flush requests up to `generation` done.
    async fn flush_backend(&self, generation: u64) {
        let route = &*self.route;
        // Entries handed in must be stored before a flush counts as complete.
        if !self.publish_pending_types().await {
            route.counters.flush_errors.fetch_add(1, Relaxed);
        }
        if let Err(error) = self.backend.flush().await {
            route.counters.flush_errors.fetch_add(1, Relaxed);
            tracing::error!(backend = %route.name, %error, "eventtracking: backend flush failed");
        }
        route.flush_done.fetch_max(generation, SeqCst);
        route.notify_progress();
    }

    async fn handle(&self, batch: Vec<Arc<Event>>) {
        let route = &*self.route;
        let config = &route.config;
        let mut chunk = Vec::with_capacity(batch.len());
        let mut chunk_bytes = 0usize;
        for event in batch {
            let event = if route.processors.is_empty() {
                event
            } else {
                match run_chain(&route.processors, event) {
                    Ok(Some(event)) => event,
                    Ok(None) => {
                        route.counters.filtered.fetch_add(1, Relaxed);
                        route.complete(1);
                        continue;
                    }
                    Err(error) => {
                        route.counters.processor_errors.fetch_add(1, Relaxed);
                        route.complete(1);
                        tracing::warn!(backend = %route.name, %error, "eventtracking: processor failed; event dropped for this backend");
                        continue;
                    }
                }
            };
            if config.validate_schemas {
                if let Some(reason) = self.catalog.validation_error(route, &event) {
                    route.counters.schema_invalid.fetch_add(1, Relaxed);
                    self.fail(&[event], &reason, 0);
                    continue;
                }
            }
            // Sizes are measured only when a byte limit is set (see DeliveryConfig::batch_bytes).
            if let Some(max) = config.max_event_bytes {
                let size = event.to_json_bytes().len();
                if size > max {
                    let reason =
                        format!("oversized: event is {size} bytes, max_event_bytes is {max}");
                    self.fail(&[event], &reason, 0);
                    continue;
                }
            }
            if let Some(limit) = config.batch_bytes {
                let size = event.to_json_bytes().len();
                if !chunk.is_empty() && chunk_bytes + size > limit {
                    self.send_with_retry(std::mem::take(&mut chunk)).await;
                    chunk_bytes = 0;
                }
                chunk_bytes += size + 1;
            }
            chunk.push(event);
        }
        if !chunk.is_empty() {
            self.send_with_retry(chunk).await;
        }
        route.notify_progress();
    }

    /// Publishes the entries handed in by `Tracker::publish_event_types`;
    /// false (and kept for the next try) when that failed.
    async fn publish_pending_types(&self) -> bool {
        let route = &*self.route;
        let entries = std::mem::take(&mut *lock(&route.pending_types));
        if entries.is_empty() {
            return true;
        }
        let timeout = Duration::from_millis(route.config.send_timeout_ms);
        if self
            .catalog
            .publish(route, &self.backend, entries.clone(), timeout)
            .await
        {
            true
        } else {
            let mut pending = lock(&route.pending_types);
            let newer = std::mem::replace(&mut *pending, entries);
            pending.extend(newer);
            false
        }
    }

    async fn send_with_retry(&self, mut pending: Vec<Arc<Event>>) {
        let route = &*self.route;
        let config = &route.config;
        let timeout = Duration::from_millis(config.send_timeout_ms);
        self.publish_pending_types().await;
        self.catalog
            .publish_new_types(route, &self.backend, &pending, timeout)
            .await;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            route.counters.batches.fetch_add(1, Relaxed);
            let result = self.send_once(&pending, timeout).await;
            let last_error = match result {
                Ok(()) => {
                    self.delivered(pending.len());
                    return;
                }
                Err(BackendError::Partial(failures)) => {
                    let mut retry = Vec::new();
                    let mut failed_indices = vec![false; pending.len()];
                    for failure in &failures {
                        let Some(slot) = failed_indices.get_mut(failure.index) else {
                            continue;
                        };
                        if std::mem::replace(slot, true) {
                            continue;
                        }
                        let event = pending[failure.index].clone();
                        if failure.retryable {
                            retry.push(event);
                        } else {
                            self.fail(
                                &[event],
                                &format!("permanent failure: {}", failure.reason),
                                attempt,
                            );
                        }
                    }
                    let failed_count = failed_indices.iter().filter(|f| **f).count();
                    self.delivered(pending.len() - failed_count);
                    if retry.is_empty() {
                        return;
                    }
                    let reason = failures
                        .iter()
                        .find(|f| f.retryable)
                        .map(|f| f.reason.clone())
                        .unwrap_or_default();
                    pending = retry;
                    reason
                }
                Err(BackendError::Closed(reason)) => {
                    self.dropped_closed(pending.len(), &reason);
                    return;
                }
                Err(error) if error.is_retryable() => error.to_string(),
                Err(error) => {
                    self.fail(&pending, &error.to_string(), attempt);
                    return;
                }
            };
            if attempt > config.max_retries {
                let reason = format!("retries exhausted after {attempt} attempts: {last_error}");
                self.fail(&pending, &reason, attempt);
                return;
            }
            route
                .counters
                .retried
                .fetch_add(pending.len() as u64, Relaxed);
            let backoff = config.backoff(attempt);
            tracing::warn!(
                backend = %route.name,
                events = pending.len(),
                attempt,
                ?backoff,
                error = %last_error,
                "eventtracking: send failed; retrying"
            );
            tokio::time::sleep(backoff).await;
        }
    }

    /// One `send_batch`, guarded (see [`guarded_call`]).
    async fn send_once(&self, pending: &[Arc<Event>], timeout: Duration) -> BackendResult {
        let backend = self.backend.clone();
        let batch = pending.to_vec();
        guarded_call(timeout, async move { backend.send_batch(&batch).await }).await
    }

    fn delivered(&self, n: usize) {
        self.route.counters.delivered.fetch_add(n as u64, Relaxed);
        self.route.complete(n as u64);
    }

    /// Events whose destination closed for good: counted as dropped, logged
    /// once (see [`BackendError::Closed`]).
    fn dropped_closed(&self, n: usize, reason: &str) {
        let route = &*self.route;
        let before = route.counters.dropped_closed.fetch_add(n as u64, Relaxed);
        if before == 0 {
            tracing::warn!(backend = %route.name, reason, "eventtracking: the output is closed; its events are dropped, not dead-lettered");
        }
        route.complete(n as u64);
    }

    /// Events that will not be delivered: to the dead-letter file, or counted as dropped.
    fn fail(&self, events: &[Arc<Event>], reason: &str, attempts: u32) {
        let route = &*self.route;
        let n = events.len() as u64;
        route.counters.failed.fetch_add(n, Relaxed);
        // A file write: tell the runtime this worker thread blocks for a moment.
        let written = tokio::task::block_in_place(|| {
            route
                .dead_letter
                .write(&route.name, reason, attempts, events)
        });
        match written {
            Ok(()) => {
                route.counters.dead_lettered.fetch_add(n, Relaxed);
                tracing::warn!(
                    backend = %route.name,
                    events = n,
                    reason,
                    path = %route.dead_letter.path().display(),
                    "eventtracking: events dead-lettered"
                );
            }
            Err(error) => {
                route
                    .counters
                    .dropped_dead_letter_error
                    .fetch_add(n, Relaxed);
                tracing::error!(
                    backend = %route.name,
                    events = n,
                    reason,
                    %error,
                    path = %route.dead_letter.path().display(),
                    "eventtracking: events lost: cannot write the dead-letter file"
                );
            }
        }
        route.complete(n);
    }
}

/// Runs one backend call in a task of its own, so that a panicking backend
/// fails this call (a permanent error with the panic message: the events are
/// dead-lettered) instead of killing the worker; past `timeout` it is aborted
/// and counts as a retryable timeout.
pub(super) async fn guarded_call(
    timeout: Duration,
    call: impl std::future::Future<Output = BackendResult> + Send + 'static,
) -> BackendResult {
    let mut task = tokio::spawn(call);
    match tokio::time::timeout(timeout, &mut task).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) if join.is_panic() => Err(BackendError::Permanent(format!(
            "the backend panicked: {}",
            panic_message(join.into_panic().as_ref())
        ))),
        Ok(Err(join)) => Err(BackendError::Retryable(format!("cancelled: {join}"))),
        Err(_) => {
            task.abort();
            // Let the aborted call unwind before the next one starts, so
            // calls never overlap (bounded: a backend stuck outside an
            // `.await` cannot hold the worker forever).
            let _ = tokio::time::timeout(timeout, task).await;
            Err(BackendError::Timeout(timeout))
        }
    }
}

/// The delivery runtime and the routes it drives.
pub(crate) struct Engine {
    pub(crate) routes: Vec<Arc<Route>>,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    shut_down: AtomicBool,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("routes", &self.routes)
            .finish_non_exhaustive()
    }
}

/// Creates the runtime that runs delivery workers (two threads named `eventtracking-delivery`).
pub(crate) fn new_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("eventtracking-delivery")
        .enable_all()
        .build()
}

impl Engine {
    pub(crate) fn start(
        runtime: Option<tokio::runtime::Runtime>,
        routes: Vec<(Arc<Route>, Box<dyn Backend>)>,
    ) -> Self {
        let handles: Vec<Arc<Route>> = routes.iter().map(|(r, _)| r.clone()).collect();
        if let Some(runtime) = &runtime {
            for (route, backend) in routes {
                runtime.spawn(run_worker(route, Arc::from(backend)));
            }
        }
        Engine {
            routes: handles,
            runtime: Mutex::new(runtime),
            shut_down: AtomicBool::new(false),
        }
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        self.shut_down.load(SeqCst)
    }

    pub(crate) fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let requests: Vec<_> = self.routes.iter().map(|r| (r, r.request_flush())).collect();
        requests.into_iter().fold(true, |all, (route, generation)| {
            route.wait_flushed(generation, deadline) && all
        })
    }

    pub(crate) async fn flush_async(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let requests: Vec<_> = self.routes.iter().map(|r| (r, r.request_flush())).collect();
        let mut all = true;
        for (route, generation) in requests {
            all &= route.wait_flushed_async(generation, deadline).await;
        }
        all
    }

    /// Drains, flushes and stops every worker; `None` if already shut down.
    pub(crate) fn shutdown(&self, timeout: Duration) -> Option<bool> {
        if self.shut_down.swap(true, SeqCst) {
            return None;
        }
        let deadline = Instant::now() + timeout;
        for route in &self.routes {
            route.closing.store(true, SeqCst);
            route.wake.notify_one();
            route.not_full.notify_all();
        }
        let mut complete = true;
        for route in &self.routes {
            complete &= route.wait_exited(deadline);
        }
        // Stop whatever is still running (a hung backend) without blocking the caller.
        if let Some(runtime) = lock(&self.runtime).take() {
            runtime.shutdown_background();
        }
        for route in &self.routes {
            route.abandon_remaining();
        }
        Some(complete)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if !self.routes.is_empty() {
            self.shutdown(Duration::from_secs(5));
        }
        // A runtime kept without routes (a config with no backends) must not be
        // dropped in place: that blocks, and panics inside async code.
        if let Some(runtime) = lock(&self.runtime).take() {
            runtime.shutdown_background();
        }
    }
}
