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
//!   moves the deadline to now.
//!
//! # One route
//!
//! Each backend has a route: a data queue of events, each with a sequence
//! number, and a control channel for flush requests (each with its own
//! reply), catalog entries to publish, and shutdown. Its worker takes
//! batches from the queue and sends up to `max_in_flight` of them at once; a
//! flush is answered once every event queued before it is settled, with
//! what happened to those events (see [`FlushOutcome`]).

mod catalog_hook;
mod config;
mod dead_letter;
mod flush;
mod stats;

pub use config::{DeliveryConfig, Overflow};
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
use crate::processors::{panic_message, run_chain};
use eventtracking_core::Backend;
use eventtracking_core::Event;
use eventtracking_core::{BackendError, BackendResult, Processor};
use flush::Control;
use stats::RouteCounters;

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

/// An event in a route's queue.
#[derive(Debug)]
struct Queued {
    seq: u64,
    event: Arc<Event>,
    extra: Option<Box<Extra>>,
}

#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<Queued>,
    /// The sequence number of the next event queued.
    next_seq: u64,
}

/// An event of a batch, by its sequence number.
type Slotted = (u64, Arc<Event>);

/// A batch taken from the queue: its events, each with the schema check's
/// verdict if it failed.
type TakenBatch = Vec<(Slotted, Option<Arc<str>>)>;

/// Events claimed for settling, by sequence number, with their receipt handles.
type Claimed = Vec<(u64, Option<RouteAck>)>;

/// An event a worker took and has not settled yet: the engine dead-letters
/// it itself if the worker never finishes.
#[derive(Debug)]
struct Slot {
    event: Arc<Event>,
    ack: Option<RouteAck>,
}

/// A batch in flight: its slots by `seq - first_seq`; a slot is `None` once
/// claimed for settling. `unresolved` counts the events not yet answered.
#[derive(Debug)]
struct InFlightBatch {
    first_seq: u64,
    slots: Vec<Option<Slot>>,
    unresolved: usize,
}

/// The batches the worker took from the queue and has not settled yet.
/// Once `abandoned` (shutdown gave up on the worker), the engine owns them.
#[derive(Debug, Default)]
struct InFlight {
    batches: VecDeque<InFlightBatch>,
    abandoned: bool,
}

impl InFlightBatch {
    fn contains(&self, seq: u64) -> bool {
        seq >= self.first_seq && seq < self.first_seq + self.slots.len() as u64
    }
}

impl InFlight {
    fn batch_of(&mut self, seq: u64) -> Option<&mut InFlightBatch> {
        self.batches.iter_mut().find(|b| b.contains(seq))
    }
}

/// Checks that the dead-letter file can be written (at build time).
pub(crate) fn check_dead_letter_path(path: &std::path::Path) -> std::io::Result<()> {
    DeadLetterWriter::check_writable(path)
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
    /// Catalog entries handed in by [`Tracker::publish_event_types`](crate::Tracker::publish_event_types),
    /// published before the next batch or flush.
    pending_types: Mutex<Vec<Arc<eventtracking_core::catalog::CatalogEntry>>>,
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
    ) -> Arc<Self> {
        let dead_letter = DeadLetterWriter::shared(&config.dead_letter_path);
        Arc::new(Route {
            name: Arc::from(name),
            queue: Mutex::new(Queue {
                items: VecDeque::with_capacity(config.queue_capacity.min(4096)),
                next_seq: 0,
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
            pending_types: Mutex::new(Vec::new()),
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
        let mut in_flight = lock(&self.in_flight);
        if in_flight.abandoned {
            return None;
        }
        let mut claimed = Vec::new();
        for seq in seqs {
            if let Some(batch) = in_flight.batch_of(seq) {
                let index = (seq - batch.first_seq) as usize;
                if let Some(slot) = batch.slots[index].take() {
                    claimed.push((seq, slot.ack));
                }
            }
        }
        Some(claimed)
    }

    /// Answers claimed events with `outcome`, counts them for the flushes
    /// that cover them, and retires them from the in-flight batches.
    fn resolve(&self, claimed: Claimed, outcome: &Outcome) {
        if claimed.is_empty() {
            return;
        }
        lock(&self.control).count(claimed.iter().map(|(seq, _)| *seq), outcome);
        {
            let mut in_flight = lock(&self.in_flight);
            for (seq, _) in &claimed {
                if let Some(batch) = in_flight.batch_of(*seq) {
                    batch.unresolved = batch.unresolved.saturating_sub(1);
                }
            }
            in_flight.batches.retain(|b| b.unresolved > 0);
        }
        for (_, ack) in claimed {
            if let Some(ack) = ack {
                ack.fill(outcome.clone());
            }
        }
    }

    /// Claims, answers and retires events settled without a dead-letter
    /// write, in one pass (the hot path: a delivered batch); how many (none
    /// when the engine has abandoned them). Receipt handles are collected
    /// only when there are any, and the flush tally is counted before the
    /// events retire, so a flush never sees them settled but uncounted.
    fn settle(&self, seqs: &[u64], outcome: &Outcome) -> usize {
        let mut acks: Vec<RouteAck> = Vec::new();
        let mut control = lock(&self.control);
        let mut in_flight = lock(&self.in_flight);
        if in_flight.abandoned {
            return 0;
        }
        let mut settled = 0;
        let mut batch_index = 0;
        // Only after a miss (never expected: a seq settled twice): the seqs claimed.
        let mut claimed: Option<Vec<u64>> = None;
        for (i, &seq) in seqs.iter().enumerate() {
            // Events of one call are (almost always) of one batch, in order.
            let found = match in_flight.batches.get(batch_index) {
                Some(b) if b.contains(seq) => Some(batch_index),
                _ => in_flight.batches.iter().position(|b| b.contains(seq)),
            };
            let slot = found.and_then(|index| {
                batch_index = index;
                let batch = &mut in_flight.batches[index];
                let slot = batch.slots[(seq - batch.first_seq) as usize].take();
                if slot.is_some() {
                    batch.unresolved = batch.unresolved.saturating_sub(1);
                }
                slot
            });
            match slot {
                Some(slot) => {
                    settled += 1;
                    if let Some(claimed) = &mut claimed {
                        claimed.push(seq);
                    }
                    if let Some(ack) = slot.ack {
                        acks.push(ack);
                    }
                }
                None => {
                    claimed.get_or_insert_with(|| seqs[..i].to_vec());
                }
            }
        }
        if in_flight.batches.iter().any(|b| b.unresolved == 0) {
            in_flight.batches.retain(|b| b.unresolved > 0);
        }
        drop(in_flight);
        match &claimed {
            None => control.count(seqs.iter().copied(), outcome),
            Some(claimed) => control.count(claimed.iter().copied(), outcome),
        }
        drop(control);
        for ack in acks {
            ack.fill(outcome.clone());
        }
        settled
    }

    /// Every event with a smaller sequence number than this is settled.
    fn settled_below(&self) -> u64 {
        let queue = lock(&self.queue);
        let queued = queue.items.front().map_or(queue.next_seq, |q| q.seq);
        let in_flight = lock(&self.in_flight);
        in_flight
            .batches
            .iter()
            .map(|b| b.first_seq)
            .min()
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
        self.counters.snapshot(queued)
    }

    /// The emit path: append to the queue under the overflow policy. An
    /// event refused is counted here, with its reason (and its receipt, if
    /// any, answered `Dropped`).
    pub(crate) fn offer(&self, event: Arc<Event>, extra: Option<Box<Extra>>) {
        let counters = &self.counters;
        if self.closing.load(Relaxed) {
            counters.dropped_shutdown.fetch_add(1, Relaxed);
            refuse(extra, "shutdown: the tracker was shutting down");
            return;
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
                    refuse(extra, "queue full (overflow = \"drop_newest\")");
                    return;
                }
                Overflow::DropOldest => {
                    let evicted = queue.items.pop_front();
                    let n = counters.dropped_evicted.fetch_add(1, Relaxed);
                    self.completed.fetch_add(1, SeqCst);
                    self.note_drop(n, "evicted by a newer event");
                    if let Some(evicted) = evicted {
                        let outcome = Outcome::dropped(
                            "evicted by a newer event (overflow = \"drop_oldest\")",
                        );
                        lock(&self.control).count(std::iter::once(evicted.seq), &outcome);
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
                            let n = counters.dropped_shutdown.fetch_add(1, Relaxed);
                            self.note_drop(n, "shutting down while waiting for room");
                            refuse(
                                extra,
                                "shutdown: the tracker shut down while emit waited for room",
                            );
                            return;
                        }
                        if now >= deadline {
                            drop(queue);
                            let n = counters.dropped_block_timeout.fetch_add(1, Relaxed);
                            self.note_drop(n, "queue still full after block_timeout_ms");
                            refuse(extra, "queue still full after block_timeout_ms");
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
        let seq = queue.next_seq;
        queue.next_seq += 1;
        queue.items.push_back(Queued { seq, event, extra });
        counters.accepted.fetch_add(1, Relaxed);
        let len = queue.items.len();
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
        control.push(queue.next_seq, part);
        drop(control);
        drop(queue);
        self.wake.notify_one();
    }

    /// Answers the flush requests still waiting when the worker stops.
    fn fail_pending_flushes(&self, error: &str) {
        let _queue = lock(&self.queue);
        lock(&self.control).fail_all(error);
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
        let mut held: Vec<Slot> = {
            let mut in_flight = lock(&self.in_flight);
            in_flight.abandoned = true;
            in_flight
                .batches
                .drain(..)
                .flat_map(|b| b.slots.into_iter().flatten())
                .collect()
        };
        held.extend(queue.items.drain(..).map(|q| Slot {
            event: q.event,
            ack: q.extra.and_then(|e| e.ack),
        }));
        drop(queue);
        if !held.is_empty() {
            tracing::error!(
                backend = %self.name,
                events = held.len(),
                "eventtracking: shutdown deadline passed with events still undelivered; dead-lettering them"
            );
            let (events, acks): (Vec<_>, Vec<_>) =
                held.into_iter().map(|s| (s.event, s.ack)).unzip();
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
    /// it as in flight; empty once the engine has abandoned the worker.
    fn take_batch(&self, all: bool) -> TakenBatch {
        let mut queue = lock(&self.queue);
        let mut in_flight = lock(&self.in_flight);
        if in_flight.abandoned {
            return Vec::new();
        }
        let n = if all {
            queue.items.len()
        } else {
            queue.items.len().min(self.config.batch_size)
        };
        if n == 0 {
            return Vec::new();
        }
        let mut batch = Vec::with_capacity(n);
        let mut slots = Vec::with_capacity(n);
        let mut first_seq = None;
        for queued in queue.items.drain(..n) {
            first_seq.get_or_insert(queued.seq);
            let (ack, invalid) = match queued.extra {
                Some(extra) => (extra.ack, extra.invalid),
                None => (None, None),
            };
            slots.push(Some(Slot {
                event: queued.event.clone(),
                ack,
            }));
            batch.push(((queued.seq, queued.event), invalid));
        }
        in_flight.batches.push_back(InFlightBatch {
            first_seq: first_seq.unwrap_or_default(),
            unresolved: slots.len(),
            slots,
        });
        drop(in_flight);
        drop(queue);
        if self.config.overflow == Overflow::Block {
            self.not_full.notify_all();
        }
        batch
    }

    fn queue_len(&self) -> usize {
        lock(&self.queue).items.len()
    }
}

/// Answers a refused event's receipt, if it has one.
fn refuse(extra: Option<Box<Extra>>, reason: &str) {
    if let Some(ack) = extra.and_then(|e| e.ack) {
        ack.fill(Outcome::dropped(reason));
    }
}

/// The worker of one route: waits for events, batches, sends (up to
/// `max_in_flight` batches at once), retries, dead-letters, answers flushes.
pub(crate) async fn run_worker(route: Arc<Route>, backend: Arc<dyn Backend>) {
    let worker = Arc::new(Worker {
        route: route.clone(),
        backend,
        catalog: catalog_hook::CatalogHook::default(),
    });
    worker.run().await;
    route.worker_exited.store(true, SeqCst);
    route.fail_pending_flushes("the backend's worker stopped before the flush completed");
    route.notify_progress();
}

struct Worker {
    route: Arc<Route>,
    backend: Arc<dyn Backend>,
    catalog: catalog_hook::CatalogHook,
}

impl Worker {
    async fn run(self: &Arc<Self>) {
        let route = &*self.route;
        let mut sends = tokio::task::JoinSet::new();
        loop {
            if route.past_deadline() {
                // Past the deadline nothing more is sent: what is queued is
                // dead-lettered; sends in flight give up on their own.
                let rest = route.take_batch(true);
                if !rest.is_empty() {
                    let slotted: Vec<Slotted> = rest.into_iter().map(|(s, _)| s).collect();
                    self.fail(&slotted, SHUTDOWN_REASON, 0, true);
                }
                while sends.join_next().await.is_some() {}
                break;
            }
            self.answer_due_flushes().await;
            let len = route.queue_len();
            if len == 0 || sends.len() >= route.max_in_flight {
                if len == 0 && sends.is_empty() && route.closing.load(SeqCst) {
                    break;
                }
                let woken = route.wake.notified();
                if sends.is_empty() {
                    woken.await;
                } else {
                    tokio::select! {
                        _ = sends.join_next() => {}
                        () = woken => {}
                    }
                }
                continue;
            }
            if len < route.full_batch() {
                self.linger().await;
            }
            let batch = route.take_batch(false);
            if !batch.is_empty() {
                let worker = self.clone();
                sends.spawn(async move { worker.handle(batch).await });
            }
        }
        // The last flush (an fsync, say) and the backend's shutdown get what
        // is left of the deadline, and at least half the grace after it.
        let budget = || {
            let rest = route.deadline().map_or(Duration::ZERO, |d| {
                d.saturating_duration_since(Instant::now())
            });
            rest.max(SHUTDOWN_GRACE / 2)
        };
        match tokio::time::timeout(budget(), self.backend.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                route.counters.flush_errors.fetch_add(1, Relaxed);
                tracing::error!(backend = %route.name, %error, "eventtracking: flush at shutdown failed");
            }
            Err(_) => {
                route.counters.flush_errors.fetch_add(1, Relaxed);
                tracing::error!(backend = %route.name, "eventtracking: flush at shutdown timed out");
            }
        }
        match tokio::time::timeout(budget(), self.backend.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::error!(backend = %route.name, %error, "eventtracking: backend shutdown failed")
            }
            Err(_) => {
                tracing::error!(backend = %route.name, "eventtracking: backend shutdown timed out")
            }
        }
    }

    /// Runs `future` unless the shutdown deadline passes first (`None`).
    async fn before_deadline<T>(&self, future: impl std::future::Future<Output = T>) -> Option<T> {
        tokio::select! {
            biased;
            value = future => Some(value),
            () = self.route.deadline_reached() => None,
        }
    }

    /// Waits up to `linger_ms` for a full batch, so that a trickle of events
    /// still makes full batches; a flush or shutdown cuts it short.
    async fn linger(&self) {
        let route = &*self.route;
        // `linger_ms = 0`: send what is queued now. (A zero timeout would
        // still wait for the timer's next tick, ~1 ms, on every batch.)
        if route.config.linger.is_zero() {
            return;
        }
        let deadline = tokio::time::Instant::now() + route.config.linger;
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

    /// Answers the flush requests whose events are all settled: publishes
    /// pending catalog entries, flushes the backend once for all of them,
    /// and gives each its own tally and the flush's error, if any.
    async fn answer_due_flushes(&self) {
        let route = &*self.route;
        let settled_below = route.settled_below();
        let due = lock(&route.control).take_due(settled_below);
        if due.is_empty() {
            return;
        }
        let mut error = None;
        // Entries handed in must be stored before a flush counts as complete.
        if !self.publish_pending_types().await {
            route.counters.flush_errors.fetch_add(1, Relaxed);
            error = Some("publishing catalog entries failed (tried again later)".to_owned());
        }
        match self.before_deadline(self.backend.flush()).await {
            Some(Ok(())) => {}
            None => {
                error.get_or_insert_with(|| {
                    "the shutdown deadline passed during the backend's flush".to_owned()
                });
            }
            Some(Err(flush_error)) => {
                route.counters.flush_errors.fetch_add(1, Relaxed);
                tracing::error!(backend = %route.name, error = %flush_error, "eventtracking: backend flush failed");
                error = Some(format!("the backend's flush failed: {flush_error}"));
            }
        }
        for flush in due {
            flush.answer(error.clone());
        }
        route.notify_progress();
    }

    /// Settles an event handled without a send (filtered, processor errors) and counts it.
    fn settle_counted(&self, seq: u64, counter: &AtomicU64, outcome: Outcome) {
        if self.route.settle(&[seq], &outcome) == 1 {
            counter.fetch_add(1, Relaxed);
            self.route.complete(1);
        }
    }

    async fn handle(&self, batch: TakenBatch) {
        let route = &*self.route;
        let config = &route.config;
        let mut chunk: Vec<Slotted> = Vec::with_capacity(batch.len());
        let mut chunk_bytes = 0usize;
        for ((seq, event), invalid) in batch {
            let event = if route.processors.is_empty() {
                event
            } else {
                match run_chain(&route.processors, event) {
                    Ok(Some(event)) => event,
                    Ok(None) => {
                        self.settle_counted(seq, &route.counters.filtered, Outcome::Filtered);
                        continue;
                    }
                    Err(error) => {
                        tracing::warn!(backend = %route.name, %error, "eventtracking: processor failed; event dropped for this backend");
                        self.settle_counted(
                            seq,
                            &route.counters.processor_errors,
                            Outcome::dropped(format!("processor error: {error}")),
                        );
                        continue;
                    }
                }
            };
            if config.validate_schemas {
                if let Some(reason) = invalid {
                    route.counters.schema_invalid.fetch_add(1, Relaxed);
                    self.fail(&[(seq, event)], &reason, 0, false);
                    continue;
                }
            }
            // Sizes are measured only when a byte limit is set (see DeliveryConfig::batch_bytes).
            if let Some(max) = config.max_event_bytes {
                let size = event.to_json_bytes().len();
                if size > max {
                    let reason =
                        format!("oversized: event is {size} bytes, max_event_bytes is {max}");
                    self.fail(&[(seq, event)], &reason, 0, false);
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
            chunk.push((seq, event));
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
        let timeout = route.config.send_timeout;
        let published = self
            .before_deadline(
                self.catalog
                    .publish(route, &self.backend, entries.clone(), timeout),
            )
            .await;
        if published == Some(true) {
            true
        } else {
            let mut pending = lock(&route.pending_types);
            let newer = std::mem::replace(&mut *pending, entries);
            pending.extend(newer);
            false
        }
    }

    /// Sends a chunk, retrying what failed retryably until it is delivered,
    /// `max_retries` or `retry_budget_ms` is spent (then dead-lettered), or
    /// the shutdown deadline passes (then dead-lettered with reason `shutdown`).
    async fn send_with_retry(&self, mut pending: Vec<Slotted>) {
        let route = &*self.route;
        let config = &route.config;
        let send_timeout = config.send_timeout;
        let started = Instant::now();
        let budget_end = deadline_after(config.retry_budget);
        self.publish_pending_types().await;
        // The first attempt's batch; a retry builds its own from what is left.
        let mut first: Option<Vec<Arc<Event>>> =
            Some(pending.iter().map(|(_, e)| e.clone()).collect());
        if let Some(batch) = &first {
            self.before_deadline(self.catalog.publish_new_types(
                route,
                &self.backend,
                batch,
                send_timeout,
            ))
            .await;
        }
        let mut attempt: u32 = 0;
        let mut last_error = String::new();
        loop {
            if route.past_deadline() {
                self.give_up_at_deadline(&pending, attempt, &last_error);
                return;
            }
            attempt += 1;
            route.counters.batches.fetch_add(1, Relaxed);
            // Retries never outlast the retry budget.
            let timeout = if attempt == 1 {
                send_timeout
            } else {
                send_timeout
                    .min(budget_end.saturating_duration_since(Instant::now()))
                    .max(Duration::from_millis(1))
            };
            let batch = first
                .take()
                .unwrap_or_else(|| pending.iter().map(|(_, e)| e.clone()).collect());
            let send = send_once(&self.backend, batch, timeout);
            tokio::pin!(send);
            let result = match self.before_deadline(&mut send).await {
                Some(result) => result,
                // A send under way at the deadline may be about to finish (a
                // local write, an fsync): it gets part of the grace, which
                // saves a duplicate in the dead-letter file.
                None => match tokio::time::timeout(SHUTDOWN_GRACE / 4, &mut send).await {
                    Ok(result) => result,
                    Err(_) => {
                        self.give_up_at_deadline(&pending, attempt, "the send was still in flight");
                        return;
                    }
                },
            };
            last_error = match result {
                Ok(()) => {
                    self.delivered(&pending);
                    return;
                }
                Err(BackendError::Partial(failures)) => {
                    let mut retry = Vec::new();
                    let mut failed = vec![false; pending.len()];
                    for failure in &failures {
                        let Some(flag) = failed.get_mut(failure.index) else {
                            continue;
                        };
                        if std::mem::replace(flag, true) {
                            continue;
                        }
                        let item = pending[failure.index].clone();
                        if failure.retryable {
                            retry.push(item);
                        } else {
                            self.fail(
                                &[item],
                                &format!("permanent failure: {}", failure.reason),
                                attempt,
                                false,
                            );
                        }
                    }
                    let delivered: Vec<Slotted> = pending
                        .iter()
                        .zip(&failed)
                        .filter(|(_, failed)| !**failed)
                        .map(|(item, _)| item.clone())
                        .collect();
                    self.delivered(&delivered);
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
                    self.dropped_closed(&pending, &reason);
                    return;
                }
                Err(error) if error.is_retryable() => error.to_string(),
                Err(error) => {
                    self.fail(&pending, &error.to_string(), attempt, false);
                    return;
                }
            };
            let backoff = config.backoff(attempt);
            if attempt > config.max_retries || Instant::now() + backoff >= budget_end {
                let reason = format!(
                    "retries exhausted after {attempt} attempts in {:.1?} (max_retries {}, retry_budget_ms {}): {last_error}",
                    started.elapsed(),
                    config.max_retries,
                    config.retry_budget.as_millis()
                );
                self.fail(&pending, &reason, attempt, false);
                return;
            }
            route
                .counters
                .retried
                .fetch_add(pending.len() as u64, Relaxed);
            tracing::warn!(
                backend = %route.name,
                events = pending.len(),
                attempt,
                ?backoff,
                error = %last_error,
                "eventtracking: send failed; retrying"
            );
            // The deadline ends the wait (checked at the top of the loop).
            self.before_deadline(tokio::time::sleep(backoff)).await;
        }
    }

    /// Dead-letters what a send or retry loop still held when the shutdown deadline passed.
    fn give_up_at_deadline(&self, pending: &[Slotted], attempts: u32, last_error: &str) {
        let reason = if last_error.is_empty() {
            SHUTDOWN_REASON.to_owned()
        } else {
            format!("{SHUTDOWN_REASON} (after {attempts} attempts; last: {last_error})")
        };
        self.fail(pending, &reason, attempts, true);
    }

    fn delivered(&self, items: &[Slotted]) {
        let route = &*self.route;
        let seqs: Vec<u64> = items.iter().map(|(seq, _)| *seq).collect();
        let n = route.settle(&seqs, &Outcome::Delivered) as u64;
        if n > 0 {
            route.counters.delivered.fetch_add(n, Relaxed);
            route.complete(n);
        }
    }

    /// Events whose destination closed for good: counted as dropped, logged
    /// once (see [`BackendError::Closed`]).
    fn dropped_closed(&self, items: &[Slotted], reason: &str) {
        let route = &*self.route;
        let seqs: Vec<u64> = items.iter().map(|(seq, _)| *seq).collect();
        // Settled here, so the shutdown deadline does not dead-letter them too.
        let outcome = Outcome::dropped(format!("the output is closed: {reason}"));
        let n = route.settle(&seqs, &outcome);
        if n == 0 {
            return;
        }
        let before = route.counters.dropped_closed.fetch_add(n as u64, Relaxed);
        if before == 0 {
            tracing::warn!(backend = %route.name, reason, "eventtracking: the output is closed; its events are dropped, not dead-lettered");
        }
        route.complete(n as u64);
    }

    /// Events that will not be delivered: to the dead-letter file, or counted as dropped.
    fn fail(&self, items: &[Slotted], reason: &str, attempts: u32, shutdown: bool) {
        let route = &*self.route;
        // Claimed first, so that a shutdown giving up on this worker does
        // not dead-letter them a second time.
        let Some(mut claimed) = route.claim(items.iter().map(|(seq, _)| *seq)) else {
            return;
        };
        if claimed.is_empty() {
            return;
        }
        // `claimed` keeps the order of `items`.
        let mut wanted = claimed.iter().map(|(seq, _)| *seq).peekable();
        let events: Vec<Arc<Event>> = items
            .iter()
            .filter(|(seq, _)| wanted.next_if_eq(seq).is_some())
            .map(|(_, event)| event.clone())
            .collect();
        // A file write: tell the runtime this worker thread blocks for a moment.
        let (written, lost_because) = tokio::task::block_in_place(|| {
            route.dead_letter_events(&events, reason, attempts, shutdown)
        });
        let lost = claimed.split_off(written.min(claimed.len()));
        route.resolve(
            claimed,
            &Outcome::DeadLettered {
                reason: reason.to_owned(),
            },
        );
        route.resolve(lost, &Outcome::dropped(lost_because.unwrap_or_default()));
    }
}

/// One `send_batch`, guarded (see [`guarded_call`]).
async fn send_once(
    backend: &Arc<dyn Backend>,
    batch: Vec<Arc<Event>>,
    timeout: Duration,
) -> BackendResult {
    let backend = backend.clone();
    guarded_call(timeout, async move { backend.send_batch(&batch).await }).await
}

/// Runs one backend call in a task of its own, so that a panicking backend
/// fails this call (a permanent error with the panic message: the events are
/// dead-lettered) instead of killing the worker; past `timeout` it is aborted
/// and counts as a retryable timeout.
pub(super) async fn guarded_call(
    timeout: Duration,
    call: impl std::future::Future<Output = BackendResult> + Send + 'static,
) -> BackendResult {
    /// Aborts the call when the caller stops waiting (e.g. at the shutdown deadline).
    struct AbortOnDrop(tokio::task::JoinHandle<BackendResult>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let mut task = AbortOnDrop(tokio::spawn(call));
    match tokio::time::timeout(timeout, &mut task.0).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) if join.is_panic() => Err(BackendError::Permanent(format!(
            "the backend panicked: {}",
            panic_message(join.into_panic().as_ref())
        ))),
        Ok(Err(join)) => Err(BackendError::Retryable(format!("cancelled: {join}"))),
        Err(_) => {
            task.0.abort();
            // Let the aborted call unwind before the next one starts, so
            // calls never overlap (bounded: a backend stuck outside an
            // `.await` cannot hold the worker forever).
            let _ = tokio::time::timeout(timeout, &mut task.0).await;
            Err(BackendError::Timeout(timeout))
        }
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
