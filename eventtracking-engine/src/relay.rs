//! The relay loop, generic over its [`Source`]: read an item, emit it with
//! a receipt ([`Tracker::emit_event_acked`]), answer the item's
//! [`SourceAck`] once every backend settled the event, and let the source
//! commit what is acknowledged. `eventtracking relay` runs it with the
//! Kafka source of `eventtracking-kafka`.
//!
//! - The source commits only past items whose events every backend
//!   delivered, dead-lettered or filtered: a dead-lettered event in the
//!   middle does not hold the commit back (it is in the dead-letter file,
//!   replayable). Nothing depends on the tracker's counters, so other
//!   emitters of the same tracker, and their drops, do not affect the relay.
//! - An event of the relay that is lost (dropped at a backend, a processor
//!   error) stops the relay with [`RelayStopReason::Failed`]: the source
//!   never commits past it, so a restart reads it again.
//! - Back-pressure: the loop stops reading while `max_uncommitted` items
//!   are handed out and not committed, so the tracker's queues cannot
//!   overflow.
//! - Receipts are watched by a thread of the loop's own, so items are
//!   acknowledged while the loop blocks in the source (during a consumer
//!   group rebalance, for one).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eventtracking_core::source::{AckStatus, Source, SourceAck, SourceError, SourceItem};
use eventtracking_core::sync::lock;

use crate::ack::{Outcome, Receipt};
use crate::delivery::{DeadLetterWriter, DeliveryReport};
use crate::Tracker;

/// The `backend` of dead-letter records the relay writes itself (malformed input).
pub const RELAY_DEAD_LETTER_BACKEND: &str = "relay";

/// Default of [`RelayLoop::with_commit_interval`].
pub const DEFAULT_COMMIT_INTERVAL: Duration = Duration::from_secs(1);

/// Default of [`RelayLoop::with_max_uncommitted`] (also bounded by the
/// backends' smallest `queue_capacity`).
pub const DEFAULT_MAX_UNCOMMITTED: usize = 10_000;

/// Default of [`RelayLoop::with_flush_timeout`].
pub const DEFAULT_RELAY_FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest one read waits, so that a stop request is seen quickly.
const POLL_SLICE: Duration = Duration::from_millis(100);

/// The most items a relay into `tracker` keeps handed out and not
/// committed: `asked` (default [`DEFAULT_MAX_UNCOMMITTED`]), lowered to the
/// smallest `queue_capacity` of the tracker's backends so that no queue can
/// overflow, and at least 1.
pub fn effective_max_uncommitted(tracker: &Tracker, asked: Option<usize>) -> usize {
    let capacity = tracker
        .backend_names()
        .iter()
        .filter_map(|name| tracker.delivery_config(name))
        .map(|delivery| delivery.queue_capacity)
        .min()
        .unwrap_or(usize::MAX);
    asked
        .unwrap_or(DEFAULT_MAX_UNCOMMITTED)
        .min(capacity)
        .max(1)
}

/// Asks a running [`RelayLoop::run`] to stop: it stops reading, waits for
/// the acknowledgements, commits and returns. Cheap to clone; safe from any
/// thread (e.g. a signal handler's).
#[derive(Debug, Clone, Default)]
pub struct StopHandle {
    stopped: Arc<AtomicBool>,
}

impl StopHandle {
    /// Requests the stop.
    pub fn stop(&self) {
        self.stopped.store(true, Relaxed);
    }

    /// Whether a stop was requested.
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Relaxed)
    }
}

/// Why [`RelayLoop::run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RelayStopReason {
    /// [`StopHandle::stop`] was called (SIGINT/SIGTERM in the CLI).
    Requested,
    /// Nothing arrived for [`with_exit_when_idle`](RelayLoop::with_exit_when_idle).
    Idle,
    /// An event was lost, could not be dead-lettered, or the source failed:
    /// the relay stopped without committing past it.
    Failed,
}

impl std::fmt::Display for RelayStopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RelayStopReason::Requested => "stop requested",
            RelayStopReason::Idle => "idle",
            RelayStopReason::Failed => "FAILED",
        })
    }
}

/// The loop's counters, live.
#[derive(Debug, Default)]
struct Counters {
    items: AtomicU64,
    events: AtomicU64,
    event_types: AtomicU64,
    malformed: AtomicU64,
    committed: AtomicU64,
    uncommitted: AtomicU64,
    commits: AtomicU64,
    commit_errors: AtomicU64,
    lost: AtomicU64,
    dead_lettered: AtomicU64,
}

/// What a relay loop counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayLoopStats {
    /// Items read from the source and handled.
    pub items: u64,
    /// Of those, events emitted into the tracker.
    pub events: u64,
    /// Of those, catalog entries handed to the backends.
    pub event_types: u64,
    /// Of those, malformed input (dead-lettered or, without a dead-letter path, logged).
    pub malformed: u64,
    /// Items whose position is committed.
    pub committed: u64,
    /// Items handed out and not committed (yet).
    pub uncommitted: u64,
    /// Successful commits.
    pub commits: u64,
    /// Failed commits (retried; a failed commit costs duplicates after a restart, never events).
    pub commit_errors: u64,
    /// Events of the relay that some backend lost.
    pub lost: u64,
    /// Events of the relay that some backend dead-lettered (settled: committed past).
    pub dead_lettered: u64,
}

impl Counters {
    fn snapshot(&self) -> RelayLoopStats {
        RelayLoopStats {
            items: self.items.load(Relaxed),
            events: self.events.load(Relaxed),
            event_types: self.event_types.load(Relaxed),
            malformed: self.malformed.load(Relaxed),
            committed: self.committed.load(Relaxed),
            uncommitted: self.uncommitted.load(Relaxed),
            commits: self.commits.load(Relaxed),
            commit_errors: self.commit_errors.load(Relaxed),
            lost: self.lost.load(Relaxed),
            dead_lettered: self.dead_lettered.load(Relaxed),
        }
    }
}

/// Reads a relay loop's counters while it runs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RelayLoopMonitor {
    counters: Arc<Counters>,
}

impl RelayLoopMonitor {
    /// The counters right now.
    pub fn snapshot(&self) -> RelayLoopStats {
        self.counters.snapshot()
    }
}

/// What [`RelayLoop::run`] did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RelayLoopReport {
    /// Why it stopped.
    pub stop: RelayStopReason,
    /// What went wrong, if anything.
    pub error: Option<String>,
    /// The counters at the end.
    pub stats: RelayLoopStats,
    /// The tracker's final report (from its shutdown).
    pub delivery: DeliveryReport,
}

/// Source → tracker → acknowledgements → commit (see the [module docs](self)).
///
/// ```no_run
/// # fn source() -> Box<dyn eventtracking::Source> { unimplemented!() }
/// use std::time::Duration;
/// use eventtracking::relay::RelayLoop;
/// use eventtracking::{DiscardBackend, Tracker};
///
/// let tracker = Tracker::builder().with_backend("archive", DiscardBackend).build().unwrap();
/// let relay = RelayLoop::new(source(), tracker).with_exit_when_idle(Duration::from_secs(5));
/// let report = relay.run();
/// assert!(report.error.is_none());
/// ```
pub struct RelayLoop<S> {
    source: S,
    tracker: Tracker,
    commit_interval: Duration,
    max_uncommitted: Option<usize>,
    flush_timeout: Duration,
    exit_when_idle: Option<Duration>,
    max_rate: Option<u64>,
    dead_letter_path: Option<PathBuf>,
    stop: StopHandle,
    counters: Arc<Counters>,
}

impl<S> std::fmt::Debug for RelayLoop<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayLoop")
            .field("commit_interval", &self.commit_interval)
            .field("max_uncommitted", &self.max_uncommitted)
            .field("flush_timeout", &self.flush_timeout)
            .field("exit_when_idle", &self.exit_when_idle)
            .field("max_rate", &self.max_rate)
            .field("stats", &self.counters.snapshot())
            .finish_non_exhaustive()
    }
}

impl<S: Source> RelayLoop<S> {
    /// A loop reading `source` into `tracker` (which [`run`](Self::run)
    /// shuts down at the end). Malformed input is only logged and counted
    /// unless [`with_dead_letter_path`](Self::with_dead_letter_path) is set.
    pub fn new(source: S, tracker: Tracker) -> Self {
        RelayLoop {
            source,
            tracker,
            commit_interval: DEFAULT_COMMIT_INTERVAL,
            max_uncommitted: None,
            flush_timeout: DEFAULT_RELAY_FLUSH_TIMEOUT,
            exit_when_idle: None,
            max_rate: None,
            dead_letter_path: None,
            stop: StopHandle::default(),
            counters: Arc::default(),
        }
    }

    /// How often acknowledged items are committed (default 1 s).
    pub fn with_commit_interval(mut self, interval: Duration) -> Self {
        self.commit_interval = interval;
        self
    }

    /// The most items handed out and not committed; reading waits above it
    /// (default [`DEFAULT_MAX_UNCOMMITTED`], lowered to the backends'
    /// smallest `queue_capacity` so that no queue can overflow).
    pub fn with_max_uncommitted(mut self, max: usize) -> Self {
        self.max_uncommitted = Some(max.max(1));
        self
    }

    /// How long the end of [`run`](Self::run) waits for outstanding
    /// acknowledgements, and the tracker's shutdown timeout (default 30 s).
    pub fn with_flush_timeout(mut self, timeout: Duration) -> Self {
        self.flush_timeout = timeout;
        self
    }

    /// Stop once nothing arrived for this long, counted from the last item
    /// or the source's last assignment (never before its first).
    pub fn with_exit_when_idle(mut self, idle: Duration) -> Self {
        self.exit_when_idle = Some(idle);
        self
    }

    /// Handle at most this many items per second.
    pub fn with_max_rate(mut self, per_second: u64) -> Self {
        self.max_rate = Some(per_second.max(1));
        self
    }

    /// Where malformed input is dead-lettered.
    pub fn with_dead_letter_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.dead_letter_path = Some(path.into());
        self
    }

    /// A handle that stops [`run`](Self::run).
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// A handle reading the counters while [`run`](Self::run) runs.
    pub fn monitor(&self) -> RelayLoopMonitor {
        RelayLoopMonitor {
            counters: self.counters.clone(),
        }
    }

    /// The tracker the events go to.
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// The source.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// The effective `max_uncommitted` (see [`with_max_uncommitted`](Self::with_max_uncommitted)).
    pub fn max_uncommitted(&self) -> usize {
        effective_max_uncommitted(&self.tracker, self.max_uncommitted)
    }

    /// Reads, delivers and commits until stopped ([`StopHandle::stop`], idle
    /// time, a loss or a fatal source error); then waits for the
    /// outstanding acknowledgements (up to the flush timeout), commits,
    /// closes the source and shuts the tracker down. Blocks the calling thread.
    pub fn run(mut self) -> RelayLoopReport {
        let max_uncommitted = self.max_uncommitted();
        let fatal: Arc<Mutex<Option<String>>> = Arc::default();
        let (receipts, watched) = mpsc::channel::<(Receipt, SourceAck)>();
        let watcher = {
            let counters = self.counters.clone();
            let fatal = fatal.clone();
            std::thread::Builder::new()
                .name("eventtracking-relay-acks".into())
                .spawn(move || watch_receipts(watched, &counters, &fatal))
                .expect("spawning the relay's acknowledgement thread")
        };
        let mut last_commit = Instant::now();
        let mut uncommitted_at_most = self.source.uncommitted() as usize;
        let mut last_item: Option<Instant> = None;
        let mut next_slot = Instant::now();
        let mut errors = RepeatedLog::default();
        let mut failure: Option<String> = None;

        let reason = loop {
            if self.stop.is_stopped() {
                break RelayStopReason::Requested;
            }
            if let Some(error) = lock(&fatal).clone() {
                failure = Some(error);
                break RelayStopReason::Failed;
            }
            // `uncommitted_at_most` bounds the source's count from above
            // (only commits and revocations lower it), so the source is asked
            // only when the bound reaches the limit: not once per item.
            if uncommitted_at_most >= max_uncommitted {
                uncommitted_at_most = self.source.uncommitted() as usize;
            }
            let full = uncommitted_at_most >= max_uncommitted;
            // One clock read per item (it showed in profiles at three).
            let mut now = Instant::now();
            if full || now.duration_since(last_commit) >= self.commit_interval {
                self.commit();
                now = Instant::now();
                last_commit = now;
                uncommitted_at_most = self.source.uncommitted() as usize;
                if uncommitted_at_most >= max_uncommitted {
                    // The backends have not settled enough yet: wait, not
                    // read; and have them send what they hold now, or a
                    // partial batch would wait out the linger every window.
                    self.tracker.hurry_queued();
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
            }
            if let Some(idle) = self.exit_when_idle {
                let since = match (last_item, self.source.last_assignment()) {
                    (Some(item), Some(assigned)) => Some(item.max(assigned)),
                    (item, assigned) => item.or(assigned),
                };
                if since.is_some_and(|since| now.saturating_duration_since(since) >= idle) {
                    break RelayStopReason::Idle;
                }
            }
            if self.max_rate.is_some() {
                let now = Instant::now();
                if next_slot > now {
                    std::thread::sleep((next_slot - now).min(POLL_SLICE));
                    continue;
                }
            }
            let until_commit = self
                .commit_interval
                .saturating_sub(now.duration_since(last_commit))
                .max(Duration::from_millis(1));
            match self.source.next(POLL_SLICE.min(until_commit)) {
                Ok(None) => {}
                Err(SourceError::Transient(error)) => errors.warn(error),
                Err(SourceError::Fatal(error)) => {
                    failure = Some(format!("the source failed: {error}"));
                    break RelayStopReason::Failed;
                }
                Err(error) => {
                    failure = Some(format!("the source failed: {error}"));
                    break RelayStopReason::Failed;
                }
                Ok(Some(item)) => {
                    uncommitted_at_most += 1;
                    last_item = Some(now);
                    if let Some(rate) = self.max_rate {
                        let now = Instant::now();
                        // Time not used is not saved up beyond a 100 ms burst.
                        let earliest = now.checked_sub(POLL_SLICE).unwrap_or(now);
                        next_slot =
                            next_slot.max(earliest) + Duration::from_secs_f64(1.0 / rate as f64);
                    }
                    self.counters.items.fetch_add(1, Relaxed);
                    if let Err(error) = self.handle(item, &receipts) {
                        failure = Some(error);
                        break RelayStopReason::Failed;
                    }
                }
            }
        };

        // Stop reading; let the backends settle what was handed out, then
        // commit it. After a loss, what came before it is still committed.
        drop(receipts);
        let deadline = Instant::now() + self.flush_timeout;
        let _ = self.tracker.flush(self.flush_timeout);
        while !watcher.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut committed = self.commit();
        for _ in 0..3 {
            if committed {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
            committed = self.commit();
        }
        let left = self.source.uncommitted();
        self.counters.uncommitted.store(left, Relaxed);
        let unfinished = (left > 0).then(|| {
            format!(
                "{left} item(s) left uncommitted: not settled by the backends within {:?}, lost, or the commit failed \
                 (a restart reads them again)",
                self.flush_timeout
            )
        });
        self.source.close();
        let error = failure.or_else(|| lock(&fatal).clone()).or(unfinished);
        let delivery = self
            .tracker
            .shutdown(self.flush_timeout)
            .unwrap_or_else(|| self.tracker.report());
        RelayLoopReport {
            stop: reason,
            error,
            stats: self.counters.snapshot(),
            delivery,
        }
    }

    /// Commits what is acknowledged; false when the commit failed.
    fn commit(&mut self) -> bool {
        let ok = match self.source.commit() {
            Ok(0) => true,
            Ok(items) => {
                self.counters.committed.fetch_add(items, Relaxed);
                self.counters.commits.fetch_add(1, Relaxed);
                true
            }
            Err(error) => {
                self.counters.commit_errors.fetch_add(1, Relaxed);
                tracing::warn!(%error, "eventtracking relay: commit failed (the events are delivered; retrying)");
                false
            }
        };
        self.counters
            .uncommitted
            .store(self.source.uncommitted(), Relaxed);
        ok
    }

    /// Emits, publishes or dead-letters one item.
    fn handle(
        &mut self,
        item: SourceItem,
        receipts: &mpsc::Sender<(Receipt, SourceAck)>,
    ) -> Result<(), String> {
        match item {
            SourceItem::Event { event, ack } => {
                let name = event.name().to_owned();
                let receipt = self
                    .tracker
                    .emit_event_acked(event)
                    .map_err(|error| format!("the tracker refused an event `{name}`: {error}"))?;
                self.counters.events.fetch_add(1, Relaxed);
                receipts
                    .send((receipt, ack))
                    .map_err(|_| "the relay's acknowledgement thread stopped".to_owned())?;
            }
            SourceItem::EventTypes { entries, ack } => {
                if entries.is_empty() {
                    ack.acknowledge(AckStatus::Settled);
                    return Ok(());
                }
                self.tracker.publish_event_types(&entries);
                self.counters
                    .event_types
                    .fetch_add(entries.len() as u64, Relaxed);
                // Committed only once stored: the engine retries a failed
                // publication at each flush, for up to the flush timeout.
                let deadline = Instant::now() + self.flush_timeout;
                loop {
                    let report = self.tracker.flush(self.flush_timeout);
                    if report.complete {
                        ack.acknowledge(AckStatus::Settled);
                        break;
                    }
                    if Instant::now() >= deadline {
                        ack.acknowledge(AckStatus::Lost);
                        return Err(
                            "catalog entries could not be stored by every backend within the flush timeout; \
                             not committing past them"
                                .to_owned(),
                        );
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
            SourceItem::Malformed {
                record,
                reason,
                ack,
            } => {
                self.counters.malformed.fetch_add(1, Relaxed);
                let Some(path) = &self.dead_letter_path else {
                    tracing::error!(%reason, "eventtracking relay: malformed input; skipped (no dead-letter path)");
                    ack.acknowledge(AckStatus::Settled);
                    return Ok(());
                };
                tracing::error!(%reason, dead_letter_path = %path.display(), "eventtracking relay: malformed input; dead-lettered");
                // The engine's one writer: whole records, and the same
                // per-file writer as the tracker's routes.
                let written = DeadLetterWriter::shared(path).write(
                    RELAY_DEAD_LETTER_BACKEND,
                    &reason,
                    0,
                    &[record],
                );
                match written.error {
                    None => ack.acknowledge(AckStatus::Settled),
                    Some(error) => {
                        ack.acknowledge(AckStatus::Lost);
                        return Err(format!(
                            "cannot write the dead letter of malformed input to {}: {error}; not committing past it ({reason})",
                            path.display()
                        ));
                    }
                }
            }
            other => {
                drop(other);
                return Err("the source handed out an item this relay does not know".to_owned());
            }
        }
        Ok(())
    }
}

/// The acknowledgement thread: answers each item's handle once its
/// receipt resolved, in the order the items came, until the loop hangs up and every
/// receipt is answered.
fn watch_receipts(
    incoming: mpsc::Receiver<(Receipt, SourceAck)>,
    counters: &Counters,
    fatal: &Mutex<Option<String>>,
) {
    let mut pending: VecDeque<(Receipt, SourceAck)> = VecDeque::new();
    let mut open = true;
    loop {
        // Take in what the loop handed over; block only when idle.
        loop {
            let next = if pending.is_empty() && open {
                incoming
                    .recv()
                    .map_err(|_| mpsc::TryRecvError::Disconnected)
            } else {
                incoming.try_recv()
            };
            match next {
                Ok(item) => pending.push_back(item),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        if pending.is_empty() {
            if open {
                continue;
            }
            return;
        }
        // Answered from the front: receipts mostly resolve in the order the
        // items came, and the source commits contiguous runs anyway.
        let mut answered = 0;
        while pending
            .front()
            .is_some_and(|(receipt, _)| receipt.is_ready())
        {
            let (mut receipt, ack) = pending.pop_front().expect("the front");
            let outcome = receipt
                .wait_timeout_unhurried(Duration::ZERO)
                .expect("a ready receipt answers");
            answer(outcome, ack, counters, fatal);
            answered += 1;
        }
        if answered == 0 {
            if let Some((front, _)) = pending.front_mut() {
                // Not hurried: the relay wants full batches, not the
                // latency of one event.
                if let Some(outcome) = front.wait_timeout_unhurried(Duration::from_millis(2)) {
                    let (_, ack) = pending.pop_front().expect("the front");
                    answer(outcome, ack, counters, fatal);
                }
            }
        }
    }
}

fn answer(
    outcome: crate::ack::Acknowledgement,
    ack: SourceAck,
    counters: &Counters,
    fatal: &Mutex<Option<String>>,
) {
    if outcome.is_settled() {
        if outcome
            .outcomes()
            .any(|(_, o)| matches!(o, Outcome::DeadLettered { .. }))
        {
            counters.dead_lettered.fetch_add(1, Relaxed);
        }
        ack.acknowledge(AckStatus::Settled);
        return;
    }
    ack.acknowledge(AckStatus::Lost);
    counters.lost.fetch_add(1, SeqCst);
    let why: Vec<String> = outcome
        .outcomes()
        .filter(|(_, o)| !o.is_settled())
        .map(|(backend, o)| match o {
            Outcome::Dropped { reason, .. } => format!("{backend}: {reason}"),
            other => format!("{backend}: {other:?}"),
        })
        .collect();
    let mut fatal = lock(fatal);
    if fatal.is_none() {
        tracing::error!(event = %outcome.event_id(), reasons = ?why, "eventtracking relay: an event was lost; stopping without committing past it");
        *fatal = Some(format!(
            "event {} was lost ({}); the source does not commit past it, so a restart delivers it again",
            outcome.event_id(),
            if why.is_empty() {
                "no backend".to_owned()
            } else {
                why.join("; ")
            }
        ));
    }
}

/// Logs a source's transient errors, the same text at most every 10 s.
#[derive(Default)]
struct RepeatedLog {
    last: Option<(String, Instant)>,
    suppressed: u64,
}

impl RepeatedLog {
    fn warn(&mut self, text: String) {
        if let Some((last, at)) = &self.last {
            if *last == text && at.elapsed() < Duration::from_secs(10) {
                self.suppressed += 1;
                return;
            }
        }
        let repeated = std::mem::take(&mut self.suppressed);
        tracing::warn!(error = %text, repeated, "eventtracking relay: source error");
        self.last = Some((text, Instant::now()));
    }
}
