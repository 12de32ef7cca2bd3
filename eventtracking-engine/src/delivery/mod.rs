//! The delivery engine: one bounded queue and one worker per backend, shared
//! by every backend (batching, retry with jittered backoff, overflow,
//! dead-letter, acknowledgements, flush and shutdown all live here, once).
//!
//! # Guarantees
//!
//! - `emit` never waits on I/O: it appends to each backend's in-memory queue.
//!   Only `overflow = "block"` can make it wait, for at most `block_timeout_ms`.
//! - Every accepted event is delivered, written to the dead-letter file with
//!   the reason, or counted as dropped with a reason. Nothing is lost silently:
//!   see [`BackendStats`]. An event emitted with
//!   [`Tracker::emit_acked`](crate::Tracker::emit_acked) also says which, per
//!   backend, in its [`Receipt`](crate::Receipt).
//! - Delivery is at-least-once per backend: a batch retried after a timeout
//!   may reach the backend twice, so backends should write idempotently on
//!   the event id.
//! - Backends are isolated: a slow or failing backend fills only its own queue.
//! - Order: with `max_in_flight = 1` (the default for backends whose sends
//!   cannot overlap, such as the file backend) a backend receives events in
//!   the order they were queued, and a retried batch is retried before the
//!   next is sent. With `max_in_flight > 1` batches overlap and may arrive
//!   in any order (Kafka still keeps per-partition order: its producer is
//!   idempotent).
//! - Shutdown has a deadline: what is still queued, retrying or in flight
//!   when it passes is written to the dead-letter file with reason
//!   `shutdown` (counted as `failed_shutdown`), so `eventtracking replay`
//!   recovers it. [`Tracker::cut_shutdown_short`](crate::Tracker::cut_shutdown_short)
//!   moves the deadline to now. A backend with `buffer = "disk"` keeps
//!   those events in its disk buffer instead (counted as `kept_in_buffer`):
//!   they are durable, and the next tracker on the same `buffer_path`
//!   delivers them first.
//! - With `buffer = "disk"`, the disk buffer is the backend's queue (see
//!   `disk_route.rs`): `emit` appends to it and the worker reads from it,
//!   so accepted events survive a crash (up to the `buffer_fsync` policy)
//!   and an outage longer than memory could absorb (up to `buffer_max_bytes`).
//!
//! # One route
//!
//! Each backend has a route: a data queue of events, each with a sequence
//! number, and a control channel for flush requests (each with its own
//! reply), catalog entries to publish, and shutdown. Its worker takes
//! batches from the queue and sends up to `max_in_flight` of them at once; a
//! flush is answered once every event queued before it is settled, with
//! what happened to those events (see [`FlushOutcome`]).

mod batch;
mod catalog_hook;
mod config;
mod dead_letter;
mod disk_route;
mod flush;
mod in_flight;
mod stats;
mod worker;

pub use config::{BufferFsync, BufferKind, DeliveryConfig, Overflow};
pub use dead_letter::{DeadLetterError, DeadLetterOutcome, DeadLetterRecord, DeadLetterWriter};
pub use flush::FlushOutcome;
pub use stats::{BackendStats, DeliveryReport, DroppedStats, TrackerStats};

pub(crate) use stats::TrackerCounters;

use eventtracking_core::sync::lock;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::ack::{Outcome, RouteAck};
use crate::answer::{self, Part};
use batch::{Batch, Seqs};
use disk_route::DiskRoute;
use eventtracking_core::Backend;
use eventtracking_core::Event;
use eventtracking_core::Processor;
use flush::Control;
use in_flight::{Claimed, InFlight, Settled};
use stats::RouteCounters;
use worker::{guarded_call, run_worker};

/// After the shutdown deadline, how long a worker still has to write what
/// it holds to the dead-letter file and flush its backend before the engine
/// stops waiting for it (and dead-letters what it held itself).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// The reason of events given up at the shutdown deadline.
const SHUTDOWN_REASON: &str = "shutdown: still undelivered when the shutdown deadline passed";

/// `now + timeout`, without overflowing on absurd timeouts (they mean "no deadline").
pub(crate) fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now)
}

/// What an event carries beside itself, only when asked for (boxed, so that
/// a plain queued event stays small).
#[derive(Debug, Default)]
pub(crate) struct Extra {
    /// The receipt's handle for this backend.
    pub(crate) ack: Option<RouteAck>,
    /// Why the tracker's schema check refused it (dead-lettered by routes
    /// with `validate_schemas`).
    pub(crate) invalid: Option<Arc<str>>,
}

/// What [`Route::offer`] did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offered {
    /// In the memory queue, with this sequence number.
    Queued(u64),
    /// Settled on the spot: written to the disk buffer or the dead-letter file.
    Settled,
    /// Refused for want of room (counted, its receipt answered), and why.
    Refused(&'static str),
}

/// An event in a route's queue.
#[derive(Debug)]
struct Queued {
    event: Arc<Event>,
    extra: Option<Box<Extra>>,
}

/// A route's queue. Its events have consecutive sequence numbers, from
/// `front_seq` on (evictions and batches both take from the front).
#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<Queued>,
    /// The sequence number of the first queued event.
    front_seq: u64,
}

impl Queue {
    /// The sequence number the next event queued gets.
    fn next_seq(&self) -> u64 {
        self.front_seq + self.items.len() as u64
    }
}

/// A batch taken from the queue, with the schema check's verdicts (by
/// index) when some event failed it.
#[derive(Debug)]
struct TakenBatch {
    batch: Batch,
    invalid: Option<Vec<Option<Arc<str>>>>,
}

/// Checks that the dead-letter file can be written (at build time).
pub(crate) fn check_dead_letter_path(path: &std::path::Path) -> std::io::Result<()> {
    DeadLetterWriter::check_writable(path)
}

/// Opens the disk buffer of a `buffer = "disk"` route (at build time);
/// `None` for a memory route. The error names the key and the path.
pub(crate) fn open_disk_route(
    name: &str,
    config: &DeliveryConfig,
) -> Result<Option<DiskRoute>, String> {
    if config.buffer != BufferKind::Disk {
        return Ok(None);
    }
    DiskRoute::open(name, config).map(Some).map_err(|error| {
        format!(
            "buffer_path = {:?}: cannot open the disk buffer: {error}",
            config.buffer_path.display().to_string()
        )
    })
}

/// One backend with its queue, control channel, counters and settings.
pub(crate) struct Route {
    pub(crate) name: Arc<str>,
    config: DeliveryConfig,
    /// How many batches may be sent at once (`max_in_flight`, resolved).
    max_in_flight: usize,
    processors: Vec<Arc<dyn Processor>>,
    queue: Mutex<Queue>,
    not_full: Condvar,
    wake: tokio::sync::Notify,
    pub(crate) counters: RouteCounters,
    /// Events handled for good (delivered, failed, filtered, evicted, dropped at shutdown).
    completed: AtomicU64,
    control: Mutex<Control>,
    closing: AtomicBool,
    worker_exited: AtomicBool,
    progress: Mutex<()>,
    progress_changed: Condvar,
    dead_letter: Arc<DeadLetterWriter>,
    /// When the shutdown must be over (set by shutdown; moved by `cut_shutdown_short`).
    deadline: Mutex<Option<Instant>>,
    deadline_changed: tokio::sync::Notify,
    /// Something was given up because the deadline passed.
    deadline_hit: AtomicBool,
    in_flight: Mutex<InFlight>,
    /// Events below this sequence number are waited on (their receipts):
    /// the worker sends them without lingering.
    hurry_below: AtomicU64,
    /// Catalog entries handed in by [`Tracker::publish_event_types`](crate::Tracker::publish_event_types),
    /// published before the next batch or flush.
    pending_types: Mutex<Vec<Arc<eventtracking_core::catalog::CatalogEntry>>>,
    /// With `buffer = "disk"`: the durable buffer that is this route's queue
    /// (the memory queue is then its read-ahead).
    disk: Option<DiskRoute>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("max_in_flight", &self.max_in_flight)
            .field("processors", &self.processors)
            .finish_non_exhaustive()
    }
}

impl Route {
    pub(crate) fn new(
        name: &str,
        config: DeliveryConfig,
        max_in_flight: usize,
        processors: Vec<Arc<dyn Processor>>,
        disk: Option<DiskRoute>,
    ) -> Arc<Self> {
        let dead_letter = DeadLetterWriter::shared(&config.dead_letter_path);
        Arc::new(Route {
            name: Arc::from(name),
            queue: Mutex::new(Queue {
                items: VecDeque::with_capacity(config.queue_capacity.min(4096)),
                front_seq: 0,
            }),
            config,
            max_in_flight: max_in_flight.max(1),
            processors,
            not_full: Condvar::new(),
            wake: tokio::sync::Notify::new(),
            counters: RouteCounters::default(),
            completed: AtomicU64::new(0),
            control: Mutex::new(Control::default()),
            closing: AtomicBool::new(false),
            worker_exited: AtomicBool::new(false),
            progress: Mutex::new(()),
            progress_changed: Condvar::new(),
            dead_letter,
            deadline: Mutex::new(None),
            deadline_changed: tokio::sync::Notify::new(),
            deadline_hit: AtomicBool::new(false),
            in_flight: Mutex::new(InFlight::default()),
            hurry_below: AtomicU64::new(0),
            pending_types: Mutex::new(Vec::new()),
            disk,
        })
    }

    /// The shutdown deadline, once shutdown has begun.
    fn deadline(&self) -> Option<Instant> {
        *lock(&self.deadline)
    }

    fn past_deadline(&self) -> bool {
        self.deadline().is_some_and(|d| Instant::now() >= d)
    }

    /// Sets the deadline (`earlier_only`: only if that moves it earlier) and wakes whoever waits on it.
    fn set_deadline(&self, deadline: Instant, earlier_only: bool) {
        {
            let mut current = lock(&self.deadline);
            match *current {
                Some(d) if earlier_only && d <= deadline => return,
                None if earlier_only => return,
                _ => *current = Some(deadline),
            }
        }
        self.deadline_changed.notify_waiters();
        self.wake.notify_one();
        self.not_full.notify_all();
        self.notify_progress();
    }

    /// Resolves when the shutdown deadline passes (never before shutdown).
    async fn deadline_reached(&self) {
        loop {
            let changed = self.deadline_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match self.deadline() {
                Some(deadline) => {
                    if tokio::time::timeout_at(deadline.into(), changed)
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                None => changed.await,
            }
        }
    }

    /// Claims in-flight events for settling: those not claimed before, each
    /// with its receipt handle. `None` when the engine has abandoned the
    /// worker (it dead-letters and counts those events itself).
    fn claim(&self, seqs: impl IntoIterator<Item = u64>) -> Option<Claimed> {
        lock(&self.in_flight).claim(seqs)
    }

    /// Answers claimed events with `outcome`, counts them for the flushes
    /// that cover them, and retires them from the in-flight batches.
    fn resolve(&self, claimed: Claimed, outcome: &Outcome) {
        if claimed.is_empty() {
            return;
        }
        let mut control = lock(&self.control);
        control.count(claimed.iter().map(|(seq, _)| *seq), outcome);
        lock(&self.in_flight).resolve(claimed.iter().map(|(seq, _)| *seq));
        if let Some(disk) = &self.disk {
            // Under the control lock, so a flush answered for these events
            // sees their records acknowledged.
            disk.acknowledge(self, claimed.iter().map(|(seq, _)| *seq));
        }
        drop(control);
        for (_, ack) in claimed {
            if let Some(ack) = ack {
                ack.fill(outcome.clone());
            }
        }
    }

    /// Claims, answers and retires events settled without a dead-letter
    /// write, in one pass (the hot path: a delivered batch); how many (none
    /// when the engine has abandoned them), added to `counter`. The counter
    /// and the flush tally are counted before the events retire, so a flush
    /// never sees them settled but uncounted.
    fn settle(&self, seqs: &Seqs, outcome: &Outcome, counter: &AtomicU64) -> usize {
        let mut acks: Vec<RouteAck> = Vec::new();
        let mut control = lock(&self.control);
        let settled = lock(&self.in_flight).settle(seqs, &mut acks);
        let n = match &settled {
            Settled::All => seqs.len(),
            Settled::Only(only) => only.len(),
        };
        // Counted before the control channel may answer a flush with them:
        // its report must already show them.
        if n > 0 {
            counter.fetch_add(n as u64, Relaxed);
            self.complete(n as u64);
        }
        match &settled {
            Settled::All => control.count_seqs(seqs, outcome),
            Settled::Only(only) => control.count(only.iter().copied(), outcome),
        }
        if let Some(disk) = &self.disk {
            // Under the control lock, so a flush answered for these events
            // sees their records acknowledged.
            match settled {
                Settled::All => disk.acknowledge(self, seqs.iter()),
                Settled::Only(only) => disk.acknowledge(self, only),
            }
        }
        drop(control);
        for ack in acks {
            ack.fill(outcome.clone());
        }
        n
    }

    /// Every event with a smaller sequence number than this is settled.
    fn settled_below(&self) -> u64 {
        let queued = lock(&self.queue).front_seq;
        lock(&self.in_flight)
            .first_open()
            .map_or(queued, |first| first.min(queued))
    }

    /// Writes events to the dead-letter file and counts them: written ones as
    /// dead-lettered, the rest as dropped with the cause. Returns how many
    /// were written (the first ones) and, for the rest, why not.
    fn dead_letter_events(
        &self,
        events: &[Arc<Event>],
        reason: &str,
        attempts: u32,
        shutdown: bool,
    ) -> (usize, Option<String>) {
        let counters = &self.counters;
        let n = events.len() as u64;
        counters.failed.fetch_add(n, Relaxed);
        if shutdown {
            counters.failed_shutdown.fetch_add(n, Relaxed);
            self.deadline_hit.store(true, SeqCst);
        }
        let written = self.dead_letter.write(&self.name, reason, attempts, events);
        let records = written.records as u64;
        counters.dead_lettered.fetch_add(records, Relaxed);
        if records > 0 {
            tracing::warn!(
                backend = %self.name,
                events = records,
                reason,
                path = %self.dead_letter.path().display(),
                "eventtracking: events dead-lettered"
            );
        }
        let mut lost_because = None;
        if let Some(error) = written.error {
            let lost = n - records;
            let counter = match error {
                DeadLetterError::Full(_) => &counters.dropped_dead_letter_full,
                DeadLetterError::Io(_) => &counters.dropped_dead_letter_error,
            };
            counter.fetch_add(lost, Relaxed);
            tracing::error!(
                backend = %self.name,
                events = lost,
                reason,
                %error,
                path = %self.dead_letter.path().display(),
                "eventtracking: events lost: cannot write them to the dead-letter file"
            );
            lost_because = Some(format!(
                "{reason}; and the dead-letter file could not be written: {error}"
            ));
        }
        self.complete(n);
        (written.records, lost_because)
    }

    /// Dead-letters events and answers their receipts: `DeadLettered` for
    /// the records written, `Dropped` for the rest.
    fn dead_letter_and_answer(
        &self,
        events: &[Arc<Event>],
        acks: Vec<Option<RouteAck>>,
        reason: &str,
        attempts: u32,
        shutdown: bool,
    ) -> (usize, Option<String>) {
        let (written, lost_because) = self.dead_letter_events(events, reason, attempts, shutdown);
        let mut acks = acks.into_iter();
        if acks.len() > 0 {
            let dead_lettered = Outcome::DeadLettered {
                reason: reason.to_owned(),
            };
            for ack in acks.by_ref().take(written).flatten() {
                ack.fill(dead_lettered.clone());
            }
            let dropped = Outcome::dropped(lost_because.clone().unwrap_or_default());
            for ack in acks.flatten() {
                ack.fill(dropped.clone());
            }
        }
        (written, lost_because)
    }

    pub(crate) fn config(&self) -> &DeliveryConfig {
        &self.config
    }

    /// Queues catalog entries for the worker to publish (see
    /// [`Tracker::publish_event_types`](crate::Tracker::publish_event_types)).
    pub(crate) fn offer_event_types(
        &self,
        entries: &[Arc<eventtracking_core::catalog::CatalogEntry>],
    ) {
        lock(&self.pending_types).extend(entries.iter().cloned());
        self.wake.notify_one();
    }

    pub(crate) fn stats(&self) -> BackendStats {
        let queued = lock(&self.queue).items.len();
        self.counters
            .snapshot(queued, self.disk.as_ref().map(DiskRoute::stats))
    }

    /// The emit path: append to the queue under the overflow policy (a disk
    /// route: to its buffer), and say what became of the event. An event
    /// refused is counted here, with its reason (and its receipt, if any,
    /// answered `Dropped`).
    pub(crate) fn offer(&self, event: Arc<Event>, extra: Option<Box<Extra>>) -> Offered {
        let counters = &self.counters;
        if let Some(disk) = &self.disk {
            // Until shutdown closes it, the disk buffer takes the event:
            // durable, delivered by this tracker or the next.
            return disk.offer(self, event, extra);
        }
        if self.closing.load(Relaxed) {
            self.dead_letter_offered_while_closing(
                event,
                extra,
                "shutdown: emitted while the tracker was shutting down",
            );
            return Offered::Settled;
        }
        let capacity = self.config.queue_capacity;
        let mut queue = lock(&self.queue);
        if queue.items.len() >= capacity {
            match self.config.overflow {
                Overflow::DropNewest => {
                    drop(queue);
                    self.note_drop(
                        counters.dropped_queue_full.fetch_add(1, Relaxed),
                        "queue full",
                    );
                    const REASON: &str = "queue full (overflow = \"drop_newest\")";
                    refuse_for_want_of_room(extra, REASON);
                    return Offered::Refused(REASON);
                }
                Overflow::DropOldest => {
                    let evicted = queue.items.pop_front();
                    let evicted_seq = queue.front_seq;
                    queue.front_seq += 1;
                    let n = counters.dropped_evicted.fetch_add(1, Relaxed);
                    self.completed.fetch_add(1, SeqCst);
                    self.note_drop(n, "evicted by a newer event");
                    if let Some(evicted) = evicted {
                        let outcome = Outcome::dropped(
                            "evicted by a newer event (overflow = \"drop_oldest\")",
                        );
                        lock(&self.control).count(std::iter::once(evicted_seq), &outcome);
                        if let Some(ack) = evicted.extra.and_then(|e| e.ack) {
                            ack.fill(outcome);
                        }
                    }
                }
                Overflow::Block => {
                    let deadline = deadline_after(self.config.block_timeout);
                    while queue.items.len() >= capacity {
                        let now = Instant::now();
                        if self.closing.load(Relaxed) {
                            drop(queue);
                            self.dead_letter_offered_while_closing(
                                event,
                                extra,
                                "shutdown: the tracker began shutting down while emit waited for room",
                            );
                            return Offered::Settled;
                        }
                        if now >= deadline {
                            drop(queue);
                            let n = counters.dropped_block_timeout.fetch_add(1, Relaxed);
                            self.note_drop(n, "queue still full after block_timeout_ms");
                            const REASON: &str = "queue still full after block_timeout_ms";
                            refuse_for_want_of_room(extra, REASON);
                            return Offered::Refused(REASON);
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
        let seq = queue.next_seq();
        queue.items.push_back(Queued { event, extra });
        counters.accepted.fetch_add(1, Relaxed);
        let len = queue.items.len();
        drop(queue);
        // Wake the worker when work appears and when a batch is full; in
        // between it is lingering on a timer anyway.
        if len == 1 || len == self.full_batch() {
            self.wake.notify_one();
        }
        Offered::Queued(seq)
    }

    /// An event offered once shutdown has begun, or waiting for room when it
    /// began: the caller handed it over, so it is dead-lettered (replayable,
    /// its receipt answered `DeadLettered`) rather than lost, and counted as
    /// accepted and failed at shutdown.
    pub(super) fn dead_letter_offered_while_closing(
        &self,
        event: Arc<Event>,
        extra: Option<Box<Extra>>,
        reason: &str,
    ) {
        self.counters.failed_shutdown.fetch_add(1, Relaxed);
        let ack = extra.and_then(|e| e.ack);
        self.dead_letter_and_answer(std::slice::from_ref(&event), vec![ack], reason, 0, false);
        // After `dead_letter_and_answer` completed it: `abandon_remaining`,
        // which may run now, reads `accepted` before `completed` and so never
        // takes this event for one unaccounted for.
        self.counters.accepted.fetch_add(1, SeqCst);
    }

    /// Someone waits on the receipt of event `seq`: send it, and what is
    /// queued before it, without waiting out the linger.
    pub(crate) fn hurry(&self, seq: u64) {
        self.hurry_below.fetch_max(seq + 1, SeqCst);
        self.wake.notify_one();
    }

    /// Everything queued now is waited on: send it without lingering.
    pub(crate) fn hurry_queued(&self) {
        let next = lock(&self.queue).next_seq();
        if let Some(last) = next.checked_sub(1) {
            self.hurry(last);
        }
    }

    /// Whether the worker may linger for a fuller batch: the queue holds
    /// less than one and none of its events is waited on.
    fn may_linger(&self) -> bool {
        let queue = lock(&self.queue);
        queue.items.len() < self.full_batch() && queue.front_seq >= self.hurry_below.load(SeqCst)
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
    }

    /// The most a batch can hold: `batch_size`, or the whole queue when that is smaller
    /// (a full queue must not wait out the linger while emit blocks or drops).
    fn full_batch(&self) -> usize {
        self.config.batch_size.min(self.config.queue_capacity)
    }

    fn flush_pending(&self) -> bool {
        !lock(&self.control).flushes.is_empty()
    }

    /// Asks the worker to flush: `part` is answered once every event queued
    /// before this call is settled and the backend has flushed.
    fn request_flush(&self, part: Part<FlushOutcome>) {
        // The queue lock orders the request among the events: those queued
        // before it have a smaller sequence number, and none queued after it
        // can settle into its tally.
        let queue = lock(&self.queue);
        let mut control = lock(&self.control);
        if self.worker_exited.load(SeqCst) {
            // Shut down: nothing is queued and the shutdown flushed the
            // backend, so there is nothing left to wait for.
            drop(control);
            drop(queue);
            part.fill(FlushOutcome::default());
            return;
        }
        if let Some(disk) = &self.disk {
            // Due once the reader has passed the records appended before it.
            disk.push_flush(part);
            drop(control);
            drop(queue);
            self.wake.notify_one();
            return;
        }
        control.push(queue.next_seq(), part);
        drop(control);
        drop(queue);
        self.wake.notify_one();
    }

    /// Answers the flush requests still waiting when the worker stops.
    fn fail_pending_flushes(&self, error: &str) {
        let _queue = lock(&self.queue);
        let mut control = lock(&self.control);
        control.fail_all(error);
        if let Some(disk) = &self.disk {
            disk.fail_flushes(error);
        }
    }

    /// Events of a disk route given up at the shutdown deadline: settled
    /// here without acknowledging their records, which stay in the buffer
    /// for the next tracker (counted as `kept_in_buffer`, not dead-lettered).
    fn keep_in_buffer(&self, items: &Batch) {
        let Some(claimed) = self.claim(items.seqs.iter()) else {
            return;
        };
        if claimed.is_empty() {
            return;
        }
        let seqs: Vec<u64> = claimed.iter().map(|(seq, _)| *seq).collect();
        lock(&self.in_flight).resolve(seqs.iter().copied());
        if let Some(disk) = &self.disk {
            disk.keep(seqs.iter().copied());
        }
        let n = seqs.len() as u64;
        self.counters.kept_in_buffer.fetch_add(n, Relaxed);
        self.deadline_hit.store(true, SeqCst);
        self.complete(n);
    }

    /// Waits for the worker to exit, up to the shutdown deadline (which
    /// `cut_shutdown_short` may move) plus the grace the worker has to
    /// dead-letter what it holds.
    fn wait_exited(&self) -> bool {
        let mut guard = lock(&self.progress);
        loop {
            if self.worker_exited.load(SeqCst) {
                return true;
            }
            let now = Instant::now();
            let until = self.deadline().map_or(now, |d| d + SHUTDOWN_GRACE);
            if now >= until {
                return false;
            }
            guard = self
                .progress_changed
                .wait_timeout(guard, until - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// After the worker is gone (or given up on): whatever is still queued or
    /// was in flight is dead-lettered with reason `shutdown` (counted).
    fn abandon_remaining(&self) {
        let mut queue = lock(&self.queue);
        let mut held = lock(&self.in_flight).abandon();
        held.extend(
            queue
                .items
                .drain(..)
                .map(|q| (q.event, q.extra.and_then(|e| e.ack))),
        );
        drop(queue);
        if let Some(disk) = &self.disk {
            // Durable already: what is held stays in the buffer, for the next
            // tracker on this path (its records are not acknowledged).
            if !held.is_empty() {
                self.deadline_hit.store(true, SeqCst);
            }
            // Later emits are dead-lettered (the buffer is closed); every
            // accepted event not settled yet is in the buffer: held at the
            // deadline, never read, or appended after the worker left.
            disk.close(self);
            let accepted = self.counters.accepted.load(SeqCst);
            let kept = accepted.saturating_sub(self.completed.load(SeqCst));
            if kept > 0 {
                tracing::warn!(
                    backend = %self.name,
                    events = kept,
                    "eventtracking: events still undelivered at shutdown stay in the disk buffer, for the next run"
                );
                self.counters.kept_in_buffer.fetch_add(kept, Relaxed);
                self.complete(kept);
            }
            self.not_full.notify_all();
            self.worker_exited.store(true, SeqCst);
            self.fail_pending_flushes("the tracker shut down before the flush completed");
            self.notify_progress();
            return;
        }
        if !held.is_empty() {
            tracing::error!(
                backend = %self.name,
                events = held.len(),
                "eventtracking: shutdown deadline passed with events still undelivered; dead-lettering them"
            );
            let (events, acks): (Vec<_>, Vec<_>) = held.into_iter().unzip();
            self.dead_letter_and_answer(&events, acks, SHUTDOWN_REASON, 0, true);
        }
        // Anything else unaccounted for (never expected) is at least counted.
        let accepted = self.counters.accepted.load(SeqCst);
        let remaining = accepted.saturating_sub(self.completed.load(SeqCst));
        if remaining > 0 {
            self.counters.dropped_shutdown.fetch_add(remaining, Relaxed);
            self.completed.fetch_add(remaining, SeqCst);
            tracing::error!(
                backend = %self.name,
                dropped = remaining,
                "eventtracking: events unaccounted for at shutdown; counted as dropped"
            );
        }
        self.not_full.notify_all();
        // The runtime is shut down: the worker is gone (or going) even if it
        // never got to say so, and later flushes have nothing to wait for.
        self.worker_exited.store(true, SeqCst);
        self.fail_pending_flushes("the tracker shut down before the flush completed");
        self.notify_progress();
    }

    /// Takes the next batch from the queue (all of it with `all`), recording
    /// it as in flight; `None` when the queue is empty or the engine has
    /// abandoned the worker.
    fn take_batch(&self, all: bool) -> Option<TakenBatch> {
        let mut queue = lock(&self.queue);
        let mut in_flight = lock(&self.in_flight);
        if in_flight.is_abandoned() {
            return None;
        }
        let n = if all {
            queue.items.len()
        } else {
            queue.items.len().min(self.config.batch_size)
        };
        if n == 0 {
            return None;
        }
        let first = queue.front_seq;
        queue.front_seq += n as u64;
        // Receipt handles and verdicts only when some event carries one.
        let mut acks: Option<Vec<Option<RouteAck>>> = None;
        let mut invalid: Option<Vec<Option<Arc<str>>>> = None;
        let events: Arc<[Arc<Event>]> = queue
            .items
            .drain(..n)
            .enumerate()
            .map(|(index, queued)| {
                if let Some(extra) = queued.extra {
                    if let Some(ack) = extra.ack {
                        acks.get_or_insert_with(|| {
                            std::iter::repeat_with(|| None).take(n).collect()
                        })[index] = Some(ack);
                    }
                    if let Some(reason) = extra.invalid {
                        invalid.get_or_insert_with(|| vec![None; n])[index] = Some(reason);
                    }
                }
                queued.event
            })
            .collect();
        in_flight.push(first, events.clone(), acks);
        drop(in_flight);
        drop(queue);
        if self.config.overflow == Overflow::Block {
            self.not_full.notify_all();
        }
        Some(TakenBatch {
            batch: Batch {
                seqs: Seqs::Range { first, len: n },
                events,
            },
            invalid,
        })
    }

    pub(crate) fn queue_len(&self) -> usize {
        lock(&self.queue).items.len()
    }
}

/// Answers the receipt, if any, of an event refused for want of room.
fn refuse_for_want_of_room(extra: Option<Box<Extra>>, reason: &str) {
    if let Some(ack) = extra.and_then(|e| e.ack) {
        ack.fill(Outcome::refused_for_want_of_room(reason));
    }
}

/// The delivery runtime and the routes it drives.
pub(crate) struct Engine {
    pub(crate) routes: Vec<Arc<Route>>,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    shut_down: AtomicBool,
    /// `cut_shutdown_short` was called: a shutdown's deadline is now.
    cut_short: AtomicBool,
    /// Set when the shutdown is over, for concurrent callers to wait on.
    finished: Mutex<bool>,
    finished_changed: Condvar,
}

/// What a flush heard back from the routes.
#[derive(Debug)]
pub(crate) struct FlushAnswers {
    /// Every route answered before the timeout.
    pub(crate) in_time: bool,
    pub(crate) by_route: BTreeMap<String, FlushOutcome>,
}

impl FlushAnswers {
    fn new(in_time: bool, parts: Vec<(Arc<str>, FlushOutcome)>) -> Self {
        FlushAnswers {
            in_time,
            by_route: parts
                .into_iter()
                .map(|(name, outcome)| (name.to_string(), outcome))
                .collect(),
        }
    }
}

/// How a shutdown ended.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShutdownOutcome {
    /// Every worker finished before the deadline, nothing was given up.
    pub(crate) in_time: bool,
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
            cut_short: AtomicBool::new(false),
            finished: Mutex::new(false),
            finished_changed: Condvar::new(),
        }
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        self.shut_down.load(SeqCst)
    }

    /// Sends a flush request down every route's control channel.
    fn start_flush(&self) -> answer::Gathered<FlushOutcome> {
        let (gathered, parts) = answer::gather(self.routes.iter().map(|r| r.name.clone()));
        for (route, part) in self.routes.iter().zip(parts) {
            route.request_flush(part);
        }
        gathered
    }

    /// Flushes every route; each answers for itself. `in_time` is false when
    /// some did not answer within `timeout` (their answers are missing).
    pub(crate) fn flush(&self, timeout: Duration) -> FlushAnswers {
        let mut gathered = self.start_flush();
        match gathered.wait_timeout(timeout) {
            Some(parts) => FlushAnswers::new(true, parts),
            None => FlushAnswers::new(false, gathered.take_answered()),
        }
    }

    /// [`flush`](Self::flush) without blocking the thread.
    pub(crate) async fn flush_async(&self, timeout: Duration) -> FlushAnswers {
        let mut gathered = self.start_flush();
        match tokio::time::timeout(timeout, &mut gathered).await {
            Ok(parts) => FlushAnswers::new(true, parts),
            Err(_) => FlushAnswers::new(false, gathered.take_answered()),
        }
    }

    /// Drains, flushes and stops every worker; what is left at the deadline
    /// is dead-lettered. `None` if another call shut down (or is shutting
    /// down) the engine: it returns once that shutdown is over.
    pub(crate) fn shutdown(&self, timeout: Duration) -> Option<ShutdownOutcome> {
        if self.shut_down.swap(true, SeqCst) {
            let mut finished = lock(&self.finished);
            while !*finished {
                finished = self
                    .finished_changed
                    .wait(finished)
                    .unwrap_or_else(|p| p.into_inner());
            }
            return None;
        }
        let deadline = deadline_after(timeout);
        for route in &self.routes {
            route.set_deadline(deadline, false);
            route.closing.store(true, SeqCst);
            route.wake.notify_one();
            route.not_full.notify_all();
        }
        // Read after the deadlines are set: a cut racing this call moves them either way.
        if self.cut_short.load(SeqCst) {
            self.cut_shutdown_short();
        }
        let mut in_time = true;
        for route in &self.routes {
            in_time &= route.wait_exited();
        }
        // Stop whatever is still running (a hung backend) without blocking the caller.
        if let Some(runtime) = lock(&self.runtime).take() {
            runtime.shutdown_background();
        }
        for route in &self.routes {
            route.abandon_remaining();
            in_time &= !route.deadline_hit.load(SeqCst);
        }
        *lock(&self.finished) = true;
        self.finished_changed.notify_all();
        Some(ShutdownOutcome { in_time })
    }

    /// Moves the deadline of a shutdown in progress to now (or makes the
    /// next shutdown start past its deadline): workers stop sending,
    /// dead-letter what they hold and exit.
    pub(crate) fn cut_shutdown_short(&self) {
        self.cut_short.store(true, SeqCst);
        let now = Instant::now();
        for route in &self.routes {
            route.set_deadline(now, true);
        }
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
