//! A flush's own answer: what happened, at one backend, to the events queued
//! before the flush (and after the previous one), and whether the backend's
//! own flush worked.

use serde::Serialize;

use super::batch::Seqs;
use crate::ack::Outcome;
use crate::answer::{Part, Unanswered};

/// What one backend's flush found (see [`Tracker::flush`](crate::Tracker::flush)).
///
/// The counts cover the events queued for this backend after the previous
/// flush request and before this one, so two flushes, even concurrent ones,
/// never count the same event or each other's failures. Events refused at
/// emit time (a full queue) were never queued: see the backend's
/// [`dropped`](crate::BackendStats::dropped) counters for those.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct FlushOutcome {
    /// Stored by the backend.
    pub delivered: u64,
    /// Written to the dead-letter file.
    pub dead_lettered: u64,
    /// Lost (evicted, dropped at shutdown, a failed processor, an unwritable dead-letter file).
    pub dropped: u64,
    /// Filtered out by the backend's processors.
    pub filtered: u64,
    /// Why the backend's flush (or the publishing of catalog entries it
    /// waits for) failed, if it did.
    pub error: Option<String>,
}

impl FlushOutcome {
    /// Nothing lost and the backend flushed: every event counted here was
    /// delivered, dead-lettered or filtered.
    pub fn is_complete(&self) -> bool {
        self.error.is_none() && self.dropped == 0
    }

    pub(crate) fn failed(reason: impl Into<String>) -> Self {
        FlushOutcome {
            error: Some(reason.into()),
            ..FlushOutcome::default()
        }
    }

    pub(crate) fn count(&mut self, outcome: &Outcome, n: u64) {
        let counter = match outcome {
            Outcome::Delivered => &mut self.delivered,
            Outcome::DeadLettered { .. } => &mut self.dead_lettered,
            Outcome::Dropped { .. } => &mut self.dropped,
            Outcome::Filtered => &mut self.filtered,
            // Answered at emit by a disk route, never settled through a flush window.
            Outcome::Buffered => return,
        };
        *counter += n;
    }

    fn absorb(&mut self, other: &FlushOutcome) {
        self.delivered += other.delivered;
        self.dead_lettered += other.dead_lettered;
        self.dropped += other.dropped;
        self.filtered += other.filtered;
    }
}

impl Unanswered for FlushOutcome {
    fn unanswered() -> Self {
        FlushOutcome::failed("no answer: the backend's worker stopped before the flush completed")
    }
}

/// A flush request waiting in a route's control channel.
pub(super) struct PendingFlush {
    /// The sequence number of the first event queued after the request:
    /// the flush is due once every event before it is settled.
    pub(super) through: u64,
    pub(super) tally: FlushOutcome,
    pub(super) part: Part<FlushOutcome>,
}

/// A route's control channel: flush requests in the order they came, and
/// the tally of settled events that no flush has asked about yet.
#[derive(Default)]
pub(super) struct Control {
    pub(super) flushes: std::collections::VecDeque<PendingFlush>,
    pub(super) unclaimed: FlushOutcome,
}

impl Control {
    /// Counts `n` settled events with this `outcome`, by sequence number,
    /// into the window of the flush that covers them.
    pub(super) fn count(&mut self, seqs: impl Iterator<Item = u64>, outcome: &Outcome) {
        if self.flushes.is_empty() {
            self.unclaimed.count(outcome, seqs.count() as u64);
            return;
        }
        for seq in seqs {
            match self.flushes.iter_mut().find(|f| seq < f.through) {
                Some(flush) => flush.tally.count(outcome, 1),
                None => self.unclaimed.count(outcome, 1),
            }
        }
    }

    /// [`count`](Self::count) for a batch's numbers; a range is counted
    /// in one step per flush window.
    pub(super) fn count_seqs(&mut self, seqs: &Seqs, outcome: &Outcome) {
        let (first, len) = match seqs {
            Seqs::Range { first, len } => (*first, *len as u64),
            Seqs::List(list) => return self.count(list.iter().copied(), outcome),
        };
        let end = first + len;
        let mut start = first;
        // The requests are in sequence order: each covers the numbers below its `through`.
        for flush in &mut self.flushes {
            if start >= end {
                return;
            }
            if start < flush.through {
                let upto = flush.through.min(end);
                flush.tally.count(outcome, upto - start);
                start = upto;
            }
        }
        if start < end {
            self.unclaimed.count(outcome, end - start);
        }
    }

    /// Queues a request; it takes over the tally of events settled since the last one.
    pub(super) fn push(&mut self, through: u64, part: Part<FlushOutcome>) {
        let tally = std::mem::take(&mut self.unclaimed);
        self.flushes.push_back(PendingFlush {
            through,
            tally,
            part,
        });
    }

    /// Takes the requests whose events are all settled (`settled_below`:
    /// every event with a smaller sequence number is).
    pub(super) fn take_due(&mut self, settled_below: u64) -> Vec<PendingFlush> {
        let due = self
            .flushes
            .iter()
            .take_while(|f| f.through <= settled_below)
            .count();
        self.flushes.drain(..due).collect()
    }

    /// Answers every waiting request with `error` (the worker is gone).
    pub(super) fn fail_all(&mut self, error: &str) {
        for flush in self.flushes.drain(..) {
            let mut answer = FlushOutcome::failed(error);
            answer.absorb(&flush.tally);
            flush.part.fill(answer);
        }
    }
}

impl PendingFlush {
    /// Answers with the tally and the backend flush's `error`.
    pub(super) fn answer(self, error: Option<String>) {
        let mut answer = self.tally;
        answer.error = error;
        self.part.fill(answer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A control channel with flush requests covering the numbers below each of `throughs`.
    fn control(throughs: &[u64]) -> Control {
        let (_gathered, parts) =
            crate::answer::gather::<FlushOutcome>(throughs.iter().map(|t| t.to_string().into()));
        let mut control = Control::default();
        for (&through, part) in throughs.iter().zip(parts) {
            control.push(through, part);
        }
        control
    }

    fn delivered(control: &Control) -> Vec<u64> {
        let mut counts: Vec<u64> = control.flushes.iter().map(|f| f.tally.delivered).collect();
        counts.push(control.unclaimed.delivered);
        counts
    }

    #[test]
    fn a_range_is_counted_into_the_windows_of_the_flushes_that_cover_it() {
        for (first, len) in [(3, 10), (0, 0), (5, 1), (4, 1), (12, 3), (0, 20)] {
            let mut by_range = control(&[5, 10]);
            by_range.count_seqs(&Seqs::Range { first, len }, &Outcome::Delivered);
            let mut one_by_one = control(&[5, 10]);
            one_by_one.count(first..first + len as u64, &Outcome::Delivered);
            assert_eq!(
                delivered(&by_range),
                delivered(&one_by_one),
                "range {first}+{len}"
            );
        }
        let mut split = control(&[5, 10]);
        split.count_seqs(&Seqs::Range { first: 3, len: 10 }, &Outcome::Delivered);
        assert_eq!(delivered(&split), vec![2, 5, 3]);
    }
}
