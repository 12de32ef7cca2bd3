//! [`Source`]: where events come from when they are read rather than
//! emitted (a Kafka topic for `eventtracking relay`), each with an
//! acknowledgement handle ([`SourceAck`]).
//!
//! A source hands out items; whoever delivers them (the engine's relay
//! loop) answers each handle once the tracker has settled the event:
//! [`AckStatus::Settled`] when every backend delivered, dead-lettered or
//! filtered it, [`AckStatus::Lost`] otherwise. The source commits its
//! position only past items that are all settled, so that a restart reads
//! again whatever was not, and never depends on counters that other
//! emitters can move. This is the shape of Vector's end-to-end
//! acknowledgements: events carry finalizers, and sources commit only what
//! was acknowledged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::catalog::CatalogEntry;
use crate::event::Event;

/// What happened to a source's item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AckStatus {
    /// Delivered, dead-lettered (replayable) or filtered at every backend:
    /// the source may commit past it.
    Settled,
    /// Lost somewhere (dropped, or never answered): the source must not
    /// commit past it.
    Lost,
}

/// A handle to answer for one item of a [`Source`]. Answer it with
/// [`acknowledge`](Self::acknowledge); dropped unanswered, it says
/// [`AckStatus::Lost`], so a forgotten item is never committed.
pub struct SourceAck {
    answer: Option<Box<dyn FnOnce(AckStatus) + Send>>,
}

impl std::fmt::Debug for SourceAck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceAck")
            .field("answered", &self.answer.is_none())
            .finish()
    }
}

impl SourceAck {
    /// A handle that calls `answer` with the item's status (once).
    pub fn new(answer: impl FnOnce(AckStatus) + Send + 'static) -> Self {
        SourceAck {
            answer: Some(Box::new(answer)),
        }
    }

    /// A handle for an item whose status the source does not need.
    pub fn ignored() -> Self {
        SourceAck { answer: None }
    }

    /// Says what happened to the item.
    pub fn acknowledge(mut self, status: AckStatus) {
        if let Some(answer) = self.answer.take() {
            answer(status);
        }
    }
}

impl Drop for SourceAck {
    fn drop(&mut self) {
        if let Some(answer) = self.answer.take() {
            answer(AckStatus::Lost);
        }
    }
}

/// One item a [`Source`] hands out.
#[derive(Debug)]
#[non_exhaustive]
pub enum SourceItem {
    /// An event to emit, keeping its id, timestamp and context.
    Event {
        /// The event.
        event: Arc<Event>,
        /// Answered once every backend settled it.
        ack: SourceAck,
    },
    /// Documentation of event types to hand to the backends
    /// (`publish_event_types`).
    EventTypes {
        /// The catalog entries.
        entries: Vec<Arc<CatalogEntry>>,
        /// Answered once the backends stored them.
        ack: SourceAck,
    },
    /// Something read that is not an event: to be dead-lettered as `record`
    /// (an event describing what was read) with `reason`.
    Malformed {
        /// What was read, as an event for the dead-letter file.
        record: Arc<Event>,
        /// Why it is not an event, and where it was read.
        reason: String,
        /// Answered once the record is written.
        ack: SourceAck,
    },
}

/// Why a source could not go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// A problem that may pass (a broker unreachable for a moment): the
    /// caller logs it and goes on.
    #[error("{0}")]
    Transient(String),
    /// The source cannot go on.
    #[error("{0}")]
    Fatal(String),
}

/// A source of events with acknowledgements (see the [module docs](self)).
///
/// Its methods are called from one thread, in a loop: `next` to read,
/// `commit` every so often, `close` at the end. Implementations may block
/// in `next` for at most `timeout`.
pub trait Source: Send {
    /// Waits up to `timeout` for the next item; `Ok(None)` when none came.
    fn next(&mut self, timeout: Duration) -> Result<Option<SourceItem>, SourceError>;

    /// Commits the position after the items that are all settled (per
    /// partition, say: the highest contiguous settled offset); returns how
    /// many items that commit covered. Items still unanswered, and any
    /// after an item answered [`AckStatus::Lost`], stay uncommitted.
    fn commit(&mut self) -> Result<u64, SourceError>;

    /// Items handed out and not committed yet.
    fn uncommitted(&self) -> u64;

    /// When the source last got new work (e.g. partitions assigned in a
    /// consumer group); `None` before it had any. The relay loop counts its
    /// idle time from the later of this and the last item.
    fn last_assignment(&self) -> Option<Instant> {
        None
    }

    /// Stops reading (leaving a consumer group, say) after a last commit.
    fn close(&mut self) {}
}

impl<S: Source + ?Sized> Source for Box<S> {
    fn next(&mut self, timeout: Duration) -> Result<Option<SourceItem>, SourceError> {
        (**self).next(timeout)
    }
    fn commit(&mut self) -> Result<u64, SourceError> {
        (**self).commit()
    }
    fn uncommitted(&self) -> u64 {
        (**self).uncommitted()
    }
    fn last_assignment(&self) -> Option<Instant> {
        (**self).last_assignment()
    }
    fn close(&mut self) {
        (**self).close()
    }
}
