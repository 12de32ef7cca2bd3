//! The [`Tracker`]: emit events, stamped with the current contexts, into the
//! processors and the delivery engine.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, LazyLock, RwLock};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::ack::{Outcome, Receipt};
use crate::answer;
use crate::delivery::{
    self, DeliveryConfig, DeliveryReport, Engine, Extra, FlushOutcome, Offered, Route,
    TrackerCounters,
};
use crate::error::EmitError;
use crate::processors::run_chain;
use crate::schema_check::SchemaCheck;
use eventtracking_core::catalog::{CatalogEntry, TrackedEvent};
use eventtracking_core::context;
use eventtracking_core::Backend;
use eventtracking_core::{BuildError, ContextError};
use eventtracking_core::{Event, JsonMap, Processor};

/// The name of the default tracker.
pub const DEFAULT_TRACKER: &str = "default";

/// How long a [`TrackerGuard`] or the last dropped [`Tracker`] waits for delivery.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Emits events into processors and backends. Cheap to clone (an `Arc`);
/// when the last clone is dropped the tracker shuts down, waiting up to
/// [`DEFAULT_SHUTDOWN_TIMEOUT`] for delivery.
///
/// ```
/// use std::time::Duration;
/// use eventtracking::{InMemoryBackend, Tracker};
/// use serde_json::json;
///
/// let memory = InMemoryBackend::new();
/// let tracker = Tracker::builder().with_backend("memory", memory.clone()).build().unwrap();
///
/// tracker.enter_context("outer", json!({"user_id": 10938})).unwrap();
/// tracker.emit("navigation.request", json!({"url": "http://www.edx.org/some/path/1"})).unwrap();
/// tracker.exit_context("outer").unwrap();
///
/// let report = tracker.shutdown(Duration::from_secs(5)).unwrap();
/// assert_eq!(report.backends["memory"].delivered, 1);
/// assert_eq!(memory.events()[0].context()["user_id"], 10938);
/// ```
#[derive(Debug, Clone)]
pub struct Tracker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    processors: Vec<Arc<dyn Processor>>,
    /// Set when some backend has `validate_schemas`.
    schema_check: Option<SchemaCheck>,
    engine: Engine,
    counters: TrackerCounters,
}

impl Tracker {
    /// Starts building a tracker.
    pub fn builder() -> TrackerBuilder {
        TrackerBuilder::default()
    }

    /// Emits an event named `name` with `data` (anything `Serialize`), in the
    /// current contexts. Never waits on I/O and never panics.
    ///
    /// `data` may be a reference (`&my_struct`) or an owned value.
    ///
    /// Errors (bad name, data that is not JSON, tracker shut down) are
    /// returned and counted. An event dropped later (full queue, processor
    /// error) is counted per backend; see [`Tracker::report`].
    pub fn emit<T: Serialize>(&self, name: &str, data: T) -> Result<(), EmitError> {
        match Event::emitted(name, context::current(), &data) {
            Ok(event) => self.emit_event(event),
            Err(error) => Err(self.invalid(error.into())),
        }
    }

    /// Emits a typed event (see [`TrackedEvent`]): its data fields as the
    /// payload, its context fields merged over the current contexts, and its
    /// schema reference (`NAME@VERSION`) in the event's `schema` field.
    /// Usually called as `my_event.emit_to(&tracker)` (see [`TrackedEventExt`](crate::TrackedEventExt)).
    pub fn emit_typed<E: TrackedEvent>(&self, event: &E) -> Result<(), EmitError> {
        match Event::emitted_typed(event, context::current()) {
            Ok(event) => self.emit_event(event),
            Err(error) => Err(self.invalid(error.into())),
        }
    }

    /// Like [`emit`](Self::emit) for data that is already a JSON value (no conversion).
    pub fn emit_value(&self, name: &str, data: Value) -> Result<(), EmitError> {
        match Event::emitted_value(name, context::current(), data) {
            Ok(event) => self.emit_event(event),
            Err(error) => Err(self.invalid(error.into())),
        }
    }

    /// Counts an event that could not be made as `invalid`.
    #[cold]
    fn invalid(&self, error: EmitError) -> EmitError {
        self.inner.counters.invalid.fetch_add(1, Relaxed);
        error
    }

    /// Sends a ready-made event (e.g. one read back from a file) through the
    /// tracker's processors and backends, keeping its id, timestamp and context.
    pub fn emit_event(&self, event: Arc<Event>) -> Result<(), EmitError> {
        self.dispatch::<false>(event).map(drop)
    }

    /// Like [`emit`](Self::emit), and returns a [`Receipt`]: a future (or a
    /// blocking [`wait`](Receipt::wait)) of what happened to the event at
    /// each backend: delivered, dead-lettered (with the reason), dropped
    /// (with the reason) or filtered. Plain `emit` carries none of this
    /// and costs nothing extra.
    ///
    /// ```
    /// use eventtracking::{InMemoryBackend, Tracker};
    /// use serde_json::json;
    ///
    /// let tracker = Tracker::builder().with_backend("memory", InMemoryBackend::new()).build().unwrap();
    /// let ack = tracker.emit_acked("page.view", json!({"url": "/"})).unwrap().wait();
    /// assert!(ack.is_delivered());
    /// ```
    pub fn emit_acked<T: Serialize>(&self, name: &str, data: T) -> Result<Receipt, EmitError> {
        match Event::emitted(name, context::current(), &data) {
            Ok(event) => self.emit_event_acked(event),
            Err(error) => Err(self.invalid(error.into())),
        }
    }

    /// [`emit_typed`](Self::emit_typed) with a [`Receipt`] (see [`emit_acked`](Self::emit_acked)).
    pub fn emit_typed_acked<E: TrackedEvent>(&self, event: &E) -> Result<Receipt, EmitError> {
        match Event::emitted_typed(event, context::current()) {
            Ok(event) => self.emit_event_acked(event),
            Err(error) => Err(self.invalid(error.into())),
        }
    }

    /// [`emit_event`](Self::emit_event) with a [`Receipt`] (see [`emit_acked`](Self::emit_acked)).
    /// Sources that commit what was delivered (the relay) use it.
    pub fn emit_event_acked(&self, event: Arc<Event>) -> Result<Receipt, EmitError> {
        self.dispatch::<true>(event)
            .map(|receipt| receipt.expect("an acknowledged dispatch returns a receipt"))
    }

    /// Emits a ready-made event, like [`emit_event`](Self::emit_event), and
    /// says at once whether every backend took it, without a receipt (no
    /// allocation unless a backend refused it): for servers that must
    /// answer "retry later" when a queue is full, never drop silently, and
    /// cannot afford a receipt per event.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use eventtracking::{Admission, DeliveryConfig, Event, InMemoryBackend, Tracker};
    /// use serde_json::json;
    ///
    /// let tracker = Tracker::builder()
    ///     .with_backend("memory", InMemoryBackend::new())
    ///     .build()?;
    /// let event = Arc::new(Event::new("page.view", json!({"path": "/"}))?);
    /// assert_eq!(tracker.emit_event_checked(event)?, Admission::Taken);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn emit_event_checked(&self, event: Arc<Event>) -> Result<Admission, EmitError> {
        let (event, invalid) = match self.admit(event)? {
            Admitted::ToRoutes { event, invalid } => (event, invalid),
            Admitted::Settled(Outcome::Filtered) => return Ok(Admission::Filtered),
            Admitted::Settled(Outcome::Dropped { reason, .. }) => {
                return Ok(Admission::ProcessorError { reason })
            }
            Admitted::Settled(_) => return Ok(Admission::Taken),
        };
        let mut refused = Vec::new();
        for route in &self.inner.engine.routes {
            let extra = invalid.as_ref().map(|invalid| {
                Box::new(Extra {
                    ack: None,
                    invalid: Some(invalid.clone()),
                })
            });
            if let Offered::Refused(reason) = route.offer(event.clone(), extra) {
                refused.push((route.name.clone(), reason));
            }
        }
        Ok(if refused.is_empty() {
            Admission::Taken
        } else {
            Admission::Refused { backends: refused }
        })
    }

    /// What every emit does before the routes: the shutdown check, the
    /// counters, the tracker processors and the schema check.
    #[inline(always)]
    fn admit(&self, event: Arc<Event>) -> Result<Admitted, EmitError> {
        let inner = &*self.inner;
        if inner.engine.is_shut_down() {
            inner.counters.after_shutdown.fetch_add(1, Relaxed);
            return Err(EmitError::ShutDown {
                name: event.name().to_owned(),
            });
        }
        inner.counters.emitted.fetch_add(1, Relaxed);
        let chain = if inner.processors.is_empty() {
            // No tracker processors (the usual case): nothing to run.
            Ok(Some(event))
        } else {
            run_chain(&inner.processors, event)
        };
        let event = match chain {
            Ok(Some(event)) => event,
            Ok(None) => {
                inner.counters.filtered.fetch_add(1, Relaxed);
                return Ok(Admitted::Settled(Outcome::Filtered));
            }
            Err(error) => {
                inner.counters.processor_errors.fetch_add(1, Relaxed);
                tracing::warn!(%error, "eventtracking: tracker processor failed; event dropped");
                return Ok(Admitted::Settled(Outcome::dropped(format!(
                    "tracker processor error: {error}"
                ))));
            }
        };
        if inner.engine.routes.is_empty() {
            let previous = inner.counters.no_backend.fetch_add(1, Relaxed);
            if previous == 0 {
                tracing::warn!("eventtracking: event emitted on a tracker with no backend; it is counted and dropped");
            }
            return Ok(Admitted::Settled(Outcome::Filtered));
        }
        let invalid = inner
            .schema_check
            .as_ref()
            .and_then(|check| check.violation(&event));
        Ok(Admitted::ToRoutes { event, invalid })
    }

    /// The emit path after the event is made: tracker processors, the schema
    /// stage, then every route's queue. With `ACKED`, the event carries one
    /// answer handle per route and the receipt is returned.
    fn dispatch<const ACKED: bool>(&self, event: Arc<Event>) -> Result<Option<Receipt>, EmitError> {
        let routes = &self.inner.engine.routes;
        let id = event.id();
        let (event, invalid) = match self.admit(event)? {
            Admitted::ToRoutes { event, invalid } => (event, invalid),
            // Settled at once, for every route alike.
            Admitted::Settled(outcome) => {
                return Ok(ACKED.then(|| {
                    let parts = routes.iter().map(|r| (r.name.clone(), outcome.clone()));
                    Receipt::new(id, answer::ready(parts.collect()))
                }));
            }
        };
        if !ACKED {
            let extra = || {
                invalid.as_ref().map(|invalid| {
                    Box::new(Extra {
                        ack: None,
                        invalid: Some(invalid.clone()),
                    })
                })
            };
            // The last route takes the caller's reference: one clone fewer.
            if let Some((last, others)) = routes.split_last() {
                for route in others {
                    route.offer(event.clone(), extra());
                }
                last.offer(event, extra());
            }
            return Ok(None);
        }
        let (gathered, parts) = answer::gather(routes.iter().map(|r| r.name.clone()));
        let mut hurry = Vec::with_capacity(routes.len());
        for (route, part) in routes.iter().zip(parts) {
            let extra = Box::new(Extra {
                ack: Some(part),
                invalid: invalid.clone(),
            });
            if let Offered::Queued(seq) = route.offer(event.clone(), Some(extra)) {
                hurry.push((Arc::downgrade(route), seq));
            }
        }
        Ok(Some(Receipt::new(id, gathered).with_hurry(hurry)))
    }

    /// Makes every backend send what is queued now without waiting out
    /// its `linger_ms` (for a waiter that cannot go on until those events
    /// settle, such as the relay at its `max_uncommitted` window).
    pub(crate) fn hurry_queued(&self) {
        for route in &self.inner.engine.routes {
            route.hurry_queued();
        }
    }

    /// Pushes a named context (any serializable map) for the current thread or task.
    pub fn enter_context(
        &self,
        name: &str,
        values: impl context::IntoContext,
    ) -> Result<(), ContextError> {
        context::enter_context(name, values.into_context_map(name)?);
        Ok(())
    }

    /// Pops the innermost context with this name.
    pub fn exit_context(&self, name: &str) -> Result<(), ContextError> {
        context::exit_context(name)
    }

    /// Enters a context until the returned guard is dropped (the seed's `with tracker.context(...)`).
    pub fn context(
        &self,
        name: &str,
        values: impl context::IntoContext,
    ) -> Result<context::ContextGuard, ContextError> {
        context::context(name, values)
    }

    /// Runs a future in an extra task-local context; see [`context::in_context`].
    pub async fn in_context<F: std::future::Future>(
        &self,
        name: &str,
        values: impl context::IntoContext,
        future: F,
    ) -> Result<F::Output, ContextError> {
        context::in_context(name, values, future).await
    }

    /// The merged current context.
    pub fn current_context(&self) -> Arc<JsonMap> {
        context::current()
    }

    /// Waits until every event emitted before this call is delivered,
    /// dead-lettered or dropped, and backends have flushed; at most `timeout`.
    /// Safe to call from any thread, including inside a tokio runtime
    /// (it blocks that thread; prefer [`flush_async`](Self::flush_async) there).
    ///
    /// Each backend answers this flush on its own (see
    /// [`DeliveryReport::flushed`]): what happened to the events queued for
    /// it since the previous flush, and whether its own flush worked. The
    /// report is `complete` when every backend answered in time and none
    /// failed to flush; a concurrent flush's failures never show in this one.
    pub fn flush(&self, timeout: Duration) -> DeliveryReport {
        let answers = self.inner.engine.flush(timeout);
        self.flush_report(answers)
    }

    /// [`flush`](Self::flush) without blocking the thread.
    pub async fn flush_async(&self, timeout: Duration) -> DeliveryReport {
        let answers = self.inner.engine.flush_async(timeout).await;
        self.flush_report(answers)
    }

    fn flush_report(&self, answers: delivery::FlushAnswers) -> DeliveryReport {
        let flushed_ok = answers
            .by_route
            .values()
            .all(|f: &FlushOutcome| f.error.is_none());
        let mut report = self.report_with(answers.in_time, self.flush_errors());
        report.complete = answers.in_time && flushed_ok;
        report.flushed = answers.by_route;
        report
    }

    fn flush_errors(&self) -> u64 {
        self.inner
            .engine
            .routes
            .iter()
            .map(|r| r.counters.flush_errors.load(Relaxed))
            .sum()
    }

    /// Delivers what is queued (up to `timeout`), shuts every backend down and
    /// returns the final report. Later emits are refused and counted. Events
    /// still queued, retrying or in flight when `timeout` passes are written
    /// to the dead-letter file with reason `shutdown` (counted as
    /// [`failed_shutdown`](crate::BackendStats::failed_shutdown)), so
    /// `eventtracking replay` recovers them. A second call (or one racing
    /// the first) returns `None`, once the first is over.
    ///
    /// See [`signal`](crate::signal) for shutting down on SIGINT/SIGTERM.
    pub fn shutdown(&self, timeout: Duration) -> Option<DeliveryReport> {
        let errors_before = self.flush_errors();
        let outcome = self.inner.engine.shutdown(timeout)?;
        Some(self.report_with(outcome.in_time, errors_before))
    }

    /// Moves the deadline of a shutdown in progress (on another thread) to
    /// now: nothing more is sent, what is undelivered is dead-lettered with
    /// reason `shutdown`, and [`shutdown`](Self::shutdown) returns. Called
    /// before a shutdown, that shutdown starts past its deadline. This is
    /// what a second SIGINT/SIGTERM does under [`signal::ShutdownSignals`](crate::signal::ShutdownSignals).
    pub fn cut_shutdown_short(&self) {
        self.inner.engine.cut_shutdown_short();
    }

    pub(crate) fn downgrade(&self) -> std::sync::Weak<Inner> {
        Arc::downgrade(&self.inner)
    }

    pub(crate) fn from_inner(inner: Arc<Inner>) -> Self {
        Tracker { inner }
    }

    /// Hands catalog entries documented elsewhere (e.g. read by a relay
    /// from a catalog topic) to every backend's
    /// [`publish_event_types`](eventtracking_core::Backend::publish_event_types). They
    /// are published by each backend's worker before its next batch or
    /// flush; a flush after this call completes only once they are stored
    /// (a failure counts as a flush error and is tried again).
    pub fn publish_event_types(&self, entries: &[Arc<CatalogEntry>]) {
        for route in &self.inner.engine.routes {
            route.offer_event_types(entries);
        }
    }

    /// How many events wait in backend `backend`'s memory queue right now
    /// (`None`: no such backend). One lock, no allocation: cheap enough to
    /// ask before every emit (a server answering 503 before its queue
    /// overflows), unlike [`report`](Self::report).
    pub fn queued(&self, backend: &str) -> Option<usize> {
        self.inner
            .engine
            .routes
            .iter()
            .find(|route| &*route.name == backend)
            .map(|route| route.queue_len())
    }

    /// The counters right now.
    pub fn report(&self) -> DeliveryReport {
        self.report_with(true, self.flush_errors())
    }

    /// The report after a flush or shutdown: complete when it was `in_time`
    /// and no backend flush failed since `flush_errors_before`.
    fn report_with(&self, in_time: bool, flush_errors_before: u64) -> DeliveryReport {
        let complete = in_time && self.flush_errors() == flush_errors_before;
        let inner = &*self.inner;
        DeliveryReport {
            tracker: inner.counters.snapshot(),
            backends: inner
                .engine
                .routes
                .iter()
                .map(|r| (r.name.to_string(), r.stats()))
                .collect(),
            complete,
            deadline_passed: !in_time,
            flushed: Default::default(),
        }
    }

    /// The names of the tracker's backends, in order.
    pub fn backend_names(&self) -> Vec<String> {
        self.inner
            .engine
            .routes
            .iter()
            .map(|r| r.name.to_string())
            .collect()
    }

    /// The delivery settings of one backend.
    pub fn delivery_config(&self, backend: &str) -> Option<DeliveryConfig> {
        self.inner
            .engine
            .routes
            .iter()
            .find(|r| &*r.name == backend)
            .map(|r| r.config().clone())
    }
}

struct PendingRoute {
    name: String,
    backend: Box<dyn Backend>,
    processors: Vec<Arc<dyn Processor>>,
    delivery: Option<DeliveryConfig>,
}

/// What [`Tracker::emit_event_checked`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Admission {
    /// Every backend took it: queued, written to its disk buffer, or
    /// settled on the spot (dead-lettered, e.g. emitted during shutdown).
    Taken,
    /// A tracker processor filtered it out, or the tracker has no backend
    /// (counted).
    Filtered,
    /// These backends refused it for want of room (a full queue or disk
    /// buffer, `block_timeout_ms` passed), counted as dropped; the others
    /// took it. Sending it again later may succeed.
    Refused {
        /// The backends that refused it, each with why (e.g. `queue full
        /// (overflow = "drop_newest")`, `disk buffer full ...`).
        backends: Vec<(Arc<str>, &'static str)>,
    },
    /// A tracker processor failed on it (counted): sending it again would
    /// fail the same way.
    ProcessorError {
        /// The processor's error.
        reason: String,
    },
}

/// Where [`Tracker::admit`] leaves an event.
enum Admitted {
    /// On to the routes, with the schema check's verdict.
    ToRoutes {
        event: Arc<Event>,
        invalid: Option<Arc<str>>,
    },
    /// Settled for every route alike, before any.
    Settled(Outcome),
}

/// Builds a [`Tracker`]: `Tracker::builder().with_backend(..).build()`.
///
/// ```
/// use std::sync::Arc;
/// use eventtracking::{DeliveryConfig, DiscardBackend, NameFilter, Tracker};
///
/// let tracker = Tracker::builder()
///     .with_delivery(DeliveryConfig::default().with_batch_size(100))
///     .with_processor(Arc::new(NameFilter::allow(&["navigation.*".into()], None).unwrap()))
///     .with_backend("archive", DiscardBackend)
///     .build()
///     .unwrap();
/// assert_eq!(tracker.backend_names(), ["archive"]);
/// ```
#[derive(Default)]
pub struct TrackerBuilder {
    delivery: DeliveryConfig,
    processors: Vec<Arc<dyn Processor>>,
    routes: Vec<PendingRoute>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for TrackerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackerBuilder")
            .field("delivery", &self.delivery)
            .field("processors", &self.processors)
            .field(
                "backends",
                &self.routes.iter().map(|r| &r.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl TrackerBuilder {
    /// Default delivery settings for every backend.
    pub fn with_delivery(mut self, delivery: DeliveryConfig) -> Self {
        self.delivery = delivery;
        self
    }

    /// Adds a tracker-level processor (runs on the emit path, in order).
    pub fn with_processor(mut self, processor: Arc<dyn Processor>) -> Self {
        self.processors.push(processor);
        self
    }

    /// Adds a backend with the default delivery settings and no processors of its own.
    pub fn with_backend(self, name: impl Into<String>, backend: impl Backend) -> Self {
        self.with_route(name, backend, Vec::new(), None)
    }

    /// Adds a backend with its own processors (run in its delivery worker)
    /// and, optionally, its own delivery settings.
    pub fn with_route(
        mut self,
        name: impl Into<String>,
        backend: impl Backend,
        processors: Vec<Arc<dyn Processor>>,
        delivery: Option<DeliveryConfig>,
    ) -> Self {
        self.routes.push(PendingRoute {
            name: name.into(),
            backend: Box::new(backend),
            processors,
            delivery,
        });
        self
    }

    /// Uses this runtime for delivery workers (config-built trackers create
    /// it first so that backend factories can use it).
    pub(crate) fn with_runtime(mut self, runtime: tokio::runtime::Runtime) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// Starts the delivery workers and returns the tracker.
    pub fn build(self) -> Result<Tracker, BuildError> {
        let mut seen = std::collections::HashSet::new();
        // The disk buffers of `buffer = "disk"` routes, by route index.
        let mut disks = Vec::with_capacity(self.routes.len());
        for route in &self.routes {
            if !seen.insert(route.name.clone()) {
                return Err(BuildError::DuplicateBackend(route.name.clone()));
            }
            // Settings that cannot work (a zero batch size makes the worker spin) are
            // refused here as they are in config files.
            let delivery = route.delivery.as_ref().unwrap_or(&self.delivery);
            if let Err(error) = delivery.validate() {
                return Err(BuildError::InvalidDelivery {
                    backend: route.name.clone(),
                    message: error.to_string(),
                });
            }
            let allowed = route.backend.max_concurrent_sends();
            if let Some(wanted) = delivery.max_in_flight {
                if wanted > 1 && allowed <= 1 {
                    return Err(BuildError::InvalidDelivery {
                        backend: route.name.clone(),
                        message: format!(
                            "max_in_flight = {wanted}: this backend's sends cannot overlap (it keeps events in order); use 1"
                        ),
                    });
                }
            }
            // Refused now rather than discovered when the first event fails.
            if let Err(error) = delivery::check_dead_letter_path(&delivery.dead_letter_path) {
                return Err(BuildError::InvalidDelivery {
                    backend: route.name.clone(),
                    message: format!(
                        "dead_letter_path = {:?} cannot be written: {error}",
                        delivery.dead_letter_path.display().to_string()
                    ),
                });
            }
            disks.push(
                delivery::open_disk_route(&route.name, delivery).map_err(|message| {
                    BuildError::InvalidDelivery {
                        backend: route.name.clone(),
                        message,
                    }
                })?,
            );
        }
        let runtime = match (self.runtime, self.routes.is_empty()) {
            (runtime, true) => runtime,
            (Some(runtime), false) => Some(runtime),
            (None, false) => Some(delivery::new_runtime().map_err(BuildError::Runtime)?),
        };
        let routes: Vec<_> = self
            .routes
            .into_iter()
            .zip(disks)
            .map(|(r, disk)| {
                let config = r.delivery.unwrap_or_else(|| self.delivery.clone());
                let max_in_flight = config
                    .max_in_flight
                    .unwrap_or_else(|| r.backend.max_concurrent_sends());
                (
                    Route::new(&r.name, config, max_in_flight, r.processors, disk),
                    r.backend,
                )
            })
            .collect();
        let route_handles: Vec<Arc<Route>> = routes.iter().map(|(r, _)| r.clone()).collect();
        Ok(Tracker {
            inner: Arc::new(Inner {
                processors: self.processors,
                schema_check: SchemaCheck::for_routes(&route_handles),
                engine: Engine::start(runtime, routes),
                counters: TrackerCounters::default(),
            }),
        })
    }
}

static TRACKERS: LazyLock<RwLock<HashMap<String, Tracker>>> = LazyLock::new(Default::default);

/// Registers a tracker under a name, returning the one it replaces.
pub fn register_tracker(name: &str, tracker: Tracker) -> Option<Tracker> {
    TRACKERS
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .insert(name.to_owned(), tracker)
}

/// Removes a named tracker, returning it.
pub fn unregister_tracker(name: &str) -> Option<Tracker> {
    TRACKERS
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .remove(name)
}

/// The tracker registered under `name`.
pub fn get_tracker(name: &str) -> Option<Tracker> {
    TRACKERS
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(name)
        .cloned()
}

/// The default tracker (the seed's `tracker.get_tracker()`). Until one is
/// registered (by [`init`] or [`register_tracker`]) it is a tracker with no
/// backends, which counts what it is given and warns once.
///
/// ```
/// use eventtracking::{default_tracker, emit, init, InMemoryBackend, Tracker};
///
/// let memory = InMemoryBackend::new();
/// let guard = init(Tracker::builder().with_backend("memory", memory.clone()).build().unwrap());
/// emit("page.view", serde_json::json!({"url": "/"})).unwrap();
/// default_tracker().flush(std::time::Duration::from_secs(5));
/// assert_eq!(memory.events().len(), 1);
/// drop(guard);
/// ```
pub fn default_tracker() -> Tracker {
    if let Some(tracker) = get_tracker(DEFAULT_TRACKER) {
        return tracker;
    }
    let mut trackers = TRACKERS.write().unwrap_or_else(|p| p.into_inner());
    trackers
        .entry(DEFAULT_TRACKER.to_owned())
        .or_insert_with(|| Tracker {
            inner: Arc::new(Inner {
                processors: Vec::new(),
                schema_check: None,
                engine: Engine::start(None, Vec::new()),
                counters: TrackerCounters::default(),
            }),
        })
        .clone()
}

/// Emits on the default tracker.
pub fn emit<T: Serialize>(name: &str, data: T) -> Result<(), EmitError> {
    default_tracker().emit(name, data)
}

/// Makes `tracker` the default and returns a guard that shuts it down when dropped.
pub fn init(tracker: Tracker) -> TrackerGuard {
    register_tracker(DEFAULT_TRACKER, tracker.clone());
    TrackerGuard { tracker }
}

/// Shuts its tracker down (waiting up to [`DEFAULT_SHUTDOWN_TIMEOUT`]) when
/// dropped, and unregisters it if it is still the default. Don't bind it to
/// `_`: that drops it at once.
#[must_use = "dropping the guard shuts the tracker down"]
#[derive(Debug)]
pub struct TrackerGuard {
    tracker: Tracker,
}

impl TrackerGuard {
    /// The guarded tracker.
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// Shuts down now and returns the final report.
    pub fn shutdown(self, timeout: Duration) -> Option<DeliveryReport> {
        self.tracker.shutdown(timeout)
    }
}

impl Drop for TrackerGuard {
    fn drop(&mut self) {
        let mut trackers = TRACKERS.write().unwrap_or_else(|p| p.into_inner());
        if trackers
            .get(DEFAULT_TRACKER)
            .is_some_and(|t| Arc::ptr_eq(&t.inner, &self.tracker.inner))
        {
            trackers.remove(DEFAULT_TRACKER);
        }
        drop(trackers);
        if let Some(report) = self.tracker.shutdown(DEFAULT_SHUTDOWN_TIMEOUT) {
            if report.total_dropped() > 0 || report.total_failed() > 0 || !report.complete {
                tracing::warn!("eventtracking: {report}");
            }
        }
    }
}
