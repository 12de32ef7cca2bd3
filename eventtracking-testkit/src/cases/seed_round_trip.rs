//! (1) The seed example through a tracker into the store, and back equal.

use eventtracking::{Event, InMemoryBackend};

use crate::harness::{shared_store, Run, BACKEND, WAIT};
use crate::seed::{emit_seed_example, seed_example_events};
use crate::target::{Case, ConformanceTarget};

/// Emits the seed example through a tracker sending to the backend (and to
/// an [`InMemoryBackend`] that keeps what was sent), then reads back what
/// the store holds: the three events, equal to those sent (id, timestamp,
/// name, context, data), with the seed's names, contexts and payloads.
pub fn seed_round_trip<T: ConformanceTarget>() {
    let _store = shared_store();
    let run = Run::<T>::new(Case::SeedRoundTrip);
    let memory = InMemoryBackend::new();
    let tracker = run.tracker(run.delivery(|d| d), Some(&memory));
    emit_seed_example(&tracker).expect("the seed example emits");
    let report = tracker.shutdown(WAIT).expect("the first shutdown");
    assert!(report.complete, "{report}");
    let stats = &report.backends[BACKEND];
    assert_eq!((stats.delivered, stats.failed), (3, 0), "{report}");

    let mut sent: Vec<Event> = memory.events().iter().map(|e| (**e).clone()).collect();
    sent.sort_by_key(|event| event.id());
    let stored = run.stored_events();
    assert_eq!(stored, sent, "the store does not hold the events sent");
    // Ids grow in emit order, so sorted by id they are the seed's, in order.
    assert_eq!(stored.len(), 3);
    for (event, (name, context, data)) in stored.iter().zip(seed_example_events()) {
        assert_eq!(event.name(), name);
        assert_eq!(Some(event.context()), context.as_object());
        assert_eq!(event.data(), &data);
        assert_eq!(event.schema(), None);
    }
}
