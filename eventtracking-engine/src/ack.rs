//! Acknowledgements: what happened to one event at each backend, for the
//! emitters that ask ([`Tracker::emit_acked`](crate::Tracker::emit_acked)).
//!
//! An acknowledged event carries one answer handle per backend through the
//! queue; the worker that settles the event (delivered, dead-lettered,
//! dropped or filtered) answers it, and the [`Receipt`] resolves when every
//! backend has. Events emitted without a receipt carry nothing. A backend
//! with `buffer = "disk"` answers at emit instead, once the event is in its
//! disk buffer ([`Outcome::Buffered`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use eventtracking_core::uuid::Uuid;
use serde::Serialize;

use crate::answer::{Gathered, Part, Unanswered};
use crate::delivery::Route;

/// What happened to one event at one backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// The backend stored it.
    Delivered,
    /// It was written to the dead-letter file (`eventtracking replay` can
    /// send it again), with the reason.
    DeadLettered {
        /// Why it could not be delivered, as written in the dead-letter record.
        reason: String,
    },
    /// It is lost for this backend, with the reason (the queue was full, a
    /// processor failed, the dead-letter file could not be written, …).
    /// Counted in the backend's stats.
    #[non_exhaustive]
    Dropped {
        /// Why it was dropped.
        reason: String,
        /// It was refused for want of room (a full queue or disk buffer,
        /// `block_timeout_ms` passed) before it was accepted: sending the
        /// same event again later may succeed (a server answers 503 and
        /// `Retry-After`). False when a retry cannot help.
        retry_later: bool,
    },
    /// A processor filtered it out (on purpose, e.g. `allow`, `block` or `sample`).
    Filtered,
    /// It was written to the backend's durable disk buffer (`buffer =
    /// "disk"`; fsynced too under `buffer_fsync = "always"`): it survives a
    /// restart and is delivered by this tracker or, after a crash or a
    /// shutdown that left it there, by the next one built on the same
    /// `buffer_path`. The receipt does not wait for its delivery; the
    /// backend's stats and [`Tracker::flush`](crate::Tracker::flush) tell.
    Buffered,
}

impl Outcome {
    /// Delivered, dead-lettered, filtered or buffered on disk: nothing was
    /// lost, so a source may commit past this event (a dead-lettered event
    /// can be replayed; a buffered one is delivered from the disk buffer,
    /// after a restart if need be).
    pub fn is_settled(&self) -> bool {
        !matches!(self, Outcome::Dropped { .. })
    }

    pub(crate) fn dropped(reason: impl Into<String>) -> Self {
        Outcome::Dropped {
            reason: reason.into(),
            retry_later: false,
        }
    }

    /// Refused for want of room: the same event may be accepted later.
    pub(crate) fn refused_for_want_of_room(reason: impl Into<String>) -> Self {
        Outcome::Dropped {
            reason: reason.into(),
            retry_later: true,
        }
    }

    /// Dropped for want of room, so that sending it again later may succeed.
    pub fn may_succeed_later(&self) -> bool {
        matches!(
            self,
            Outcome::Dropped {
                retry_later: true,
                ..
            }
        )
    }
}

impl Unanswered for Outcome {
    fn unanswered() -> Self {
        Outcome::dropped(
            "lost: the event was discarded without an outcome (the delivery worker stopped)",
        )
    }
}

/// One backend's handle on an acknowledged event.
pub(crate) type RouteAck = Part<Outcome>;

/// The outcome of one event at every backend of the tracker that emitted it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Acknowledgement {
    event_id: Uuid,
    outcomes: Vec<(Arc<str>, Outcome)>,
}

impl Acknowledgement {
    pub(crate) fn new(event_id: Uuid, mut outcomes: Vec<(Arc<str>, Outcome)>) -> Self {
        outcomes.sort_by(|a, b| a.0.cmp(&b.0));
        Acknowledgement { event_id, outcomes }
    }

    /// The id of the event.
    pub fn event_id(&self) -> Uuid {
        self.event_id
    }

    /// Each backend's outcome, by backend name (sorted).
    pub fn outcomes(&self) -> impl Iterator<Item = (&str, &Outcome)> {
        self.outcomes
            .iter()
            .map(|(name, outcome)| (&**name, outcome))
    }

    /// The outcome at the backend named `backend`.
    pub fn outcome(&self, backend: &str) -> Option<&Outcome> {
        self.outcomes
            .iter()
            .find(|(name, _)| &**name == backend)
            .map(|(_, outcome)| outcome)
    }

    /// Every backend stored the event.
    pub fn is_delivered(&self) -> bool {
        !self.outcomes.is_empty() && self.outcomes.iter().all(|(_, o)| *o == Outcome::Delivered)
    }

    /// Every backend delivered, dead-lettered, filtered or durably buffered
    /// it: nothing was lost (see [`Outcome::is_settled`]). False when the
    /// tracker has no backend.
    pub fn is_settled(&self) -> bool {
        !self.outcomes.is_empty() && self.outcomes.iter().all(|(_, o)| o.is_settled())
    }

    /// Every backend delivered it or holds it in its disk buffer
    /// ([`Outcome::Buffered`]).
    pub fn is_delivered_or_buffered(&self) -> bool {
        !self.outcomes.is_empty()
            && self
                .outcomes
                .iter()
                .all(|(_, o)| matches!(o, Outcome::Delivered | Outcome::Buffered))
    }

    /// Every backend saw it filtered out (a tracker-level processor filters
    /// an event for all of them at once).
    pub fn is_filtered(&self) -> bool {
        !self.outcomes.is_empty() && self.outcomes.iter().all(|(_, o)| *o == Outcome::Filtered)
    }
}

/// The answer to an acknowledged emit: a future of the event's
/// [`Acknowledgement`], with blocking waits for synchronous code.
///
/// It resolves once every backend has settled the event: delivered (after
/// retries, if any), dead-lettered, dropped or filtered. A receipt can be
/// dropped at any time; the event is delivered the same.
///
/// ```
/// use std::time::Duration;
/// use eventtracking::{InMemoryBackend, Outcome, Tracker};
/// use serde_json::json;
///
/// let memory = InMemoryBackend::new();
/// let tracker = Tracker::builder().with_backend("memory", memory.clone()).build().unwrap();
/// let receipt = tracker.emit_acked("page.view", json!({"url": "/"})).unwrap();
/// let ack = receipt.wait();
/// assert_eq!(ack.outcome("memory"), Some(&Outcome::Delivered));
/// assert!(ack.is_delivered());
/// ```
#[must_use = "a receipt does nothing unless waited on; use `emit` when the outcome is not needed"]
#[derive(Debug)]
pub struct Receipt {
    event_id: Uuid,
    answer: Gathered<Outcome>,
    /// The routes that queued the event, with its sequence number there:
    /// told once, when the receipt is first waited on, to send it without
    /// waiting out their linger.
    hurry: Vec<(Weak<Route>, u64)>,
}

impl Receipt {
    pub(crate) fn new(event_id: Uuid, answer: Gathered<Outcome>) -> Self {
        Receipt {
            event_id,
            answer,
            hurry: Vec::new(),
        }
    }

    pub(crate) fn with_hurry(mut self, hurry: Vec<(Weak<Route>, u64)>) -> Self {
        self.hurry = hurry;
        self
    }

    /// Someone waits: the routes still holding the event send it now.
    fn hurry_routes(&mut self) {
        for (route, seq) in self.hurry.drain(..) {
            if let Some(route) = route.upgrade() {
                route.hurry(seq);
            }
        }
    }

    /// The id of the event.
    pub fn event_id(&self) -> Uuid {
        self.event_id
    }

    /// Whether every backend has answered (a wait would not block).
    pub fn is_ready(&self) -> bool {
        self.answer.is_done()
    }

    /// Blocks the thread until every backend has answered. A receipt
    /// waited on (or awaited) is sent without waiting out `linger_ms`. It
    /// always ends:
    /// each backend answers by its retry budget, and the tracker's shutdown
    /// answers for whatever it still holds. In async code, `.await` the
    /// receipt instead.
    pub fn wait(mut self) -> Acknowledgement {
        loop {
            if let Some(ack) = self.wait_timeout(Duration::from_secs(3600)) {
                return ack;
            }
        }
    }

    /// Blocks up to `timeout`; `None` if some backend has not answered yet
    /// (the receipt can be waited on again).
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<Acknowledgement> {
        self.hurry_routes();
        self.wait_timeout_unhurried(timeout)
    }

    /// [`wait_timeout`](Self::wait_timeout) that leaves batching alone: the
    /// event waits out `linger_ms` like any other. For waiters that follow
    /// many events and want throughput, not one event's latency (the relay,
    /// `send --receipts`).
    pub fn wait_timeout_unhurried(&mut self, timeout: Duration) -> Option<Acknowledgement> {
        let parts = self.answer.wait_timeout(timeout)?;
        Some(Acknowledgement::new(self.event_id, parts))
    }
}

impl Future for Receipt {
    type Output = Acknowledgement;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Acknowledgement> {
        self.hurry_routes();
        let event_id = self.event_id;
        Pin::new(&mut self.answer)
            .poll(cx)
            .map(|parts| Acknowledgement::new(event_id, parts))
    }
}
