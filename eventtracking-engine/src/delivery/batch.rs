//! The events a worker handles together, named by their sequence numbers.
//!
//! A batch taken from the queue is a contiguous run of sequence numbers whose
//! events are shared (one `Arc` of the slice) between the worker, the
//! backend's `send_batch` and the route's in-flight record, so a plain batch
//! costs no per-event bookkeeping. Only what is picked out of a batch (what a
//! processor changed, a partial failure's retries) lists its numbers.

use std::sync::Arc;

use eventtracking_core::Event;

/// The sequence numbers of a batch's events, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seqs {
    /// `first..first + len`.
    Range { first: u64, len: usize },
    /// Any numbers, in the batch's order.
    List(Vec<u64>),
}

impl Seqs {
    pub(super) fn one(seq: u64) -> Self {
        Seqs::Range { first: seq, len: 1 }
    }

    pub(super) fn len(&self) -> usize {
        match self {
            Seqs::Range { len, .. } => *len,
            Seqs::List(seqs) => seqs.len(),
        }
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        let (range, list) = match self {
            Seqs::Range { first, len } => (*first..*first + *len as u64, &[][..]),
            Seqs::List(seqs) => (0..0, &seqs[..]),
        };
        range.chain(list.iter().copied())
    }
}

/// Events with their sequence numbers (`seqs` and `events` in step).
#[derive(Debug, Clone)]
pub(super) struct Batch {
    pub(super) seqs: Seqs,
    pub(super) events: Arc<[Arc<Event>]>,
}

impl Batch {
    /// A batch of events picked one by one.
    pub(super) fn picked(items: Vec<(u64, Arc<Event>)>) -> Self {
        let (seqs, events): (Vec<u64>, Vec<Arc<Event>>) = items.into_iter().unzip();
        Batch {
            seqs: Seqs::List(seqs),
            events: Arc::from(events),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.events.len()
    }

    /// Each event with its sequence number.
    pub(super) fn items(&self) -> impl Iterator<Item = (u64, &Arc<Event>)> + '_ {
        self.seqs.iter().zip(self.events.iter())
    }

    /// The events at `indices` (in that order), as a batch of their own.
    pub(super) fn select(&self, indices: impl IntoIterator<Item = usize>) -> Batch {
        let seqs: Vec<u64> = self.seqs.iter().collect();
        Batch::picked(
            indices
                .into_iter()
                .filter_map(|i| Some((*seqs.get(i)?, self.events.get(i)?.clone())))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u64) -> Arc<Event> {
        Arc::new(Event::new("test.batch", serde_json::json!({ "n": n })).unwrap())
    }

    #[test]
    fn a_range_and_a_list_name_the_same_numbers() {
        let range = Seqs::Range { first: 7, len: 3 };
        assert_eq!(range.iter().collect::<Vec<_>>(), vec![7, 8, 9]);
        assert_eq!(range.len(), 3);
        let list = Seqs::List(vec![9, 2]);
        assert_eq!(list.iter().collect::<Vec<_>>(), vec![9, 2]);
        assert_eq!(Seqs::one(4).iter().collect::<Vec<_>>(), vec![4]);
    }

    #[test]
    fn select_keeps_each_event_with_its_number() {
        let events: Vec<Arc<Event>> = (0..4).map(event).collect();
        let batch = Batch {
            seqs: Seqs::Range { first: 10, len: 4 },
            events: Arc::from(events.clone()),
        };
        let picked = batch.select([3, 1, 9]);
        assert_eq!(picked.seqs, Seqs::List(vec![13, 11]));
        assert!(Arc::ptr_eq(&picked.events[0], &events[3]));
        assert!(Arc::ptr_eq(&picked.events[1], &events[1]));
        let items: Vec<u64> = picked.items().map(|(seq, _)| seq).collect();
        assert_eq!(items, vec![13, 11]);
    }
}
