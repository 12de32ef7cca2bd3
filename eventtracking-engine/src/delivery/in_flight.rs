//! The batches a route's worker took from the queue and has not settled yet.
//!
//! The engine keeps them so that it can dead-letter them itself when it gives
//! up on a worker at shutdown, and so that a flush knows which events are
//! still open. A batch shares its events with the worker (one `Arc` of the
//! slice) and keeps receipt handles and per-event marks only when needed:
//! a batch without receipts that is delivered whole is retired in one step.

use std::collections::VecDeque;
use std::sync::Arc;

use eventtracking_core::Event;

use super::batch::Seqs;
use crate::ack::RouteAck;

/// Events claimed for settling, by sequence number, with their receipt handles.
pub(super) type Claimed = Vec<(u64, Option<RouteAck>)>;

/// What [`InFlight::settle`] settled.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Settled {
    /// Every event named (none was settled before).
    All,
    /// Only these (the others were settled already, or abandoned).
    Only(Vec<u64>),
}

#[derive(Debug)]
struct InFlightBatch {
    first_seq: u64,
    events: Arc<[Arc<Event>]>,
    /// Receipt handles by index; `None` when no event of the batch has one.
    acks: Option<Vec<Option<RouteAck>>>,
    /// Which events are claimed; `None` while none is.
    claimed: Option<Vec<bool>>,
    /// Events not yet answered (a claimed event stays unresolved until its
    /// dead-letter write is done, so a flush waits for it).
    unresolved: usize,
}

impl InFlightBatch {
    fn contains(&self, seq: u64) -> bool {
        seq >= self.first_seq && seq - self.first_seq < self.events.len() as u64
    }

    /// Claims the event `seq` (which this batch contains): its receipt
    /// handle, or `None` if it was claimed before.
    fn claim(&mut self, seq: u64) -> Option<Option<RouteAck>> {
        let index = (seq - self.first_seq) as usize;
        let len = self.events.len();
        let claimed = self.claimed.get_or_insert_with(|| vec![false; len]);
        if std::mem::replace(&mut claimed[index], true) {
            return None;
        }
        Some(self.acks.as_mut().and_then(|acks| acks[index].take()))
    }
}

/// A route's batches in flight. Once `abandoned` (shutdown gave up on the
/// worker), the engine owns their events and nothing settles any more.
#[derive(Debug, Default)]
pub(super) struct InFlight {
    batches: VecDeque<InFlightBatch>,
    abandoned: bool,
}

impl InFlight {
    pub(super) fn is_abandoned(&self) -> bool {
        self.abandoned
    }

    /// Records a batch taken from the queue: `events` hold the sequence
    /// numbers from `first_seq` on.
    pub(super) fn push(
        &mut self,
        first_seq: u64,
        events: Arc<[Arc<Event>]>,
        acks: Option<Vec<Option<RouteAck>>>,
    ) {
        self.batches.push_back(InFlightBatch {
            first_seq,
            unresolved: events.len(),
            events,
            acks,
            claimed: None,
        });
    }

    /// The smallest sequence number still open, if any.
    pub(super) fn first_open(&self) -> Option<u64> {
        self.batches.iter().map(|b| b.first_seq).min()
    }

    fn position(&self, seq: u64, hint: usize) -> Option<usize> {
        match self.batches.get(hint) {
            Some(batch) if batch.contains(seq) => Some(hint),
            _ => self.batches.iter().position(|b| b.contains(seq)),
        }
    }

    /// Claims, answers and retires events in one step (the hot path: a
    /// delivered batch). Receipt handles go to `acks`. A whole batch without
    /// claims is retired at once; otherwise event by event.
    pub(super) fn settle(&mut self, seqs: &Seqs, acks: &mut Vec<RouteAck>) -> Settled {
        if self.abandoned {
            return Settled::Only(Vec::new());
        }
        if let Seqs::Range { first, len } = *seqs {
            let whole = self
                .batches
                .iter()
                .position(|b| b.first_seq == first && b.events.len() == len && b.claimed.is_none());
            if let Some(index) = whole {
                if let Some(batch) = self.batches.remove(index) {
                    acks.extend(batch.acks.into_iter().flatten().flatten());
                }
                return Settled::All;
            }
        }
        // Events of one call are (almost always) of one batch, in order.
        let mut hint = 0;
        // Only after a miss (never expected: an event settled twice): the numbers settled.
        let mut only: Option<Vec<u64>> = None;
        for (i, seq) in seqs.iter().enumerate() {
            let claimed = self.position(seq, hint).and_then(|index| {
                hint = index;
                let batch = &mut self.batches[index];
                let ack = batch.claim(seq)?;
                batch.unresolved = batch.unresolved.saturating_sub(1);
                Some(ack)
            });
            match claimed {
                Some(ack) => {
                    if let Some(only) = &mut only {
                        only.push(seq);
                    }
                    acks.extend(ack);
                }
                None => {
                    only.get_or_insert_with(|| seqs.iter().take(i).collect());
                }
            }
        }
        self.retire_resolved();
        match only {
            None => Settled::All,
            Some(only) => Settled::Only(only),
        }
    }

    /// Claims events for a settlement that takes time (a dead-letter write):
    /// they can no longer be settled or abandoned, but stay open until
    /// [`resolve`](Self::resolve). `None` once abandoned.
    pub(super) fn claim(&mut self, seqs: impl IntoIterator<Item = u64>) -> Option<Claimed> {
        if self.abandoned {
            return None;
        }
        let mut claimed = Vec::new();
        let mut hint = 0;
        for seq in seqs {
            if let Some(index) = self.position(seq, hint) {
                hint = index;
                if let Some(ack) = self.batches[index].claim(seq) {
                    claimed.push((seq, ack));
                }
            }
        }
        Some(claimed)
    }

    /// Closes claimed events: retires the batches left with nothing open.
    pub(super) fn resolve(&mut self, seqs: impl IntoIterator<Item = u64>) {
        let mut hint = 0;
        for seq in seqs {
            if let Some(index) = self.position(seq, hint) {
                hint = index;
                let batch = &mut self.batches[index];
                batch.unresolved = batch.unresolved.saturating_sub(1);
            }
        }
        self.retire_resolved();
    }

    fn retire_resolved(&mut self) {
        if self.batches.iter().any(|b| b.unresolved == 0) {
            self.batches.retain(|b| b.unresolved > 0);
        }
    }

    /// Gives up on the worker: every unclaimed event, with its receipt
    /// handle, now belongs to the caller; nothing settles after this.
    pub(super) fn abandon(&mut self) -> Vec<(Arc<Event>, Option<RouteAck>)> {
        self.abandoned = true;
        let mut held = Vec::new();
        for mut batch in self.batches.drain(..) {
            for (index, event) in batch.events.iter().enumerate() {
                if batch.claimed.as_ref().is_some_and(|claimed| claimed[index]) {
                    continue;
                }
                let ack = batch.acks.as_mut().and_then(|acks| acks[index].take());
                held.push((event.clone(), ack));
            }
        }
        held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(n: usize) -> Arc<[Arc<Event>]> {
        (0..n)
            .map(|i| Arc::new(Event::new("test.in_flight", serde_json::json!({ "i": i })).unwrap()))
            .collect()
    }

    #[test]
    fn a_whole_batch_settles_at_once_and_is_retired() {
        let mut in_flight = InFlight::default();
        in_flight.push(0, events(3), None);
        in_flight.push(3, events(2), None);
        assert_eq!(in_flight.first_open(), Some(0));
        let mut acks = Vec::new();
        let settled = in_flight.settle(&Seqs::Range { first: 0, len: 3 }, &mut acks);
        assert_eq!(settled, Settled::All);
        assert_eq!(in_flight.first_open(), Some(3));
        // Settling the same events again settles nothing.
        let again = in_flight.settle(&Seqs::Range { first: 0, len: 3 }, &mut acks);
        assert_eq!(again, Settled::Only(vec![]));
        assert_eq!(in_flight.first_open(), Some(3));
    }

    #[test]
    fn events_settled_one_by_one_retire_the_batch_when_all_are() {
        let mut in_flight = InFlight::default();
        in_flight.push(10, events(3), None);
        let mut acks = Vec::new();
        assert_eq!(
            in_flight.settle(&Seqs::List(vec![11]), &mut acks),
            Settled::All
        );
        // A range overlapping an event already settled settles only the rest.
        assert_eq!(
            in_flight.settle(&Seqs::Range { first: 10, len: 3 }, &mut acks),
            Settled::Only(vec![10, 12])
        );
        assert_eq!(in_flight.first_open(), None);
    }

    #[test]
    fn claimed_events_stay_open_until_resolved_and_are_not_abandoned() {
        let mut in_flight = InFlight::default();
        in_flight.push(0, events(2), None);
        let claimed = in_flight.claim([1]).unwrap();
        assert_eq!(claimed.len(), 1);
        assert!(in_flight.claim([1]).unwrap().is_empty(), "claimed twice");
        assert_eq!(in_flight.first_open(), Some(0));
        let held = in_flight.abandon();
        assert_eq!(held.len(), 1, "only the unclaimed event is handed over");
        assert!(in_flight.claim([0]).is_none());
        let mut acks = Vec::new();
        assert_eq!(
            in_flight.settle(&Seqs::one(0), &mut acks),
            Settled::Only(vec![])
        );
    }
}
