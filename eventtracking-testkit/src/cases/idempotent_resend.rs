//! (2) The same event ids sent again (a retried or replayed batch).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use eventtracking::Event;
use serde_json::json;

use crate::harness::{shared_store, Run, BACKEND, WAIT};
use crate::target::{Case, ConformanceTarget, Idempotence};

/// Sends 20 events, then the same 20 again (same ids), in another batch:
/// both sends are reported delivered. What the store then holds depends on
/// [`ConformanceTarget::idempotence`]: with [`Idempotence::Store`] each id
/// exactly once; with [`Idempotence::ReadersDeduplicate`] (append-only
/// stores) every copy equals the event sent, and de-duplicated by id the
/// stored events are exactly the events sent.
pub fn idempotent_resend<T: ConformanceTarget>() {
    let _store = shared_store();
    let run = Run::<T>::new(Case::IdempotentResend);
    let tracker = run.tracker(run.delivery(|d| d), None);
    let events: Vec<Arc<Event>> = (0..20)
        .map(|i| Arc::new(Event::new("conformance.resend", json!({"i": i})).expect("a valid name")))
        .collect();
    for event in &events {
        tracker.emit_event(event.clone()).expect("accepted");
    }
    let first = tracker.flush(WAIT);
    assert!(first.complete, "{first}");
    assert_eq!(first.backends[BACKEND].delivered, 20, "{first}");
    for event in &events {
        tracker.emit_event(event.clone()).expect("accepted again");
    }
    let report = tracker.shutdown(WAIT).expect("the first shutdown");
    assert!(report.complete, "{report}");
    let stats = &report.backends[BACKEND];
    assert_eq!((stats.delivered, stats.failed), (40, 0), "{report}");

    let sent: BTreeMap<_, &Event> = events.iter().map(|e| (e.id(), &**e)).collect();
    let stored = run.stored_events();
    for event in &stored {
        assert_eq!(
            Some(&event),
            sent.get(&event.id()),
            "a stored event is not one of those sent"
        );
    }
    let ids: BTreeSet<_> = stored.iter().map(Event::id).collect();
    assert_eq!(
        ids,
        sent.keys().copied().collect(),
        "not every event was stored"
    );
    match run.target.idempotence() {
        Idempotence::Store => assert_eq!(
            stored.len(),
            20,
            "the store keeps an id sent twice twice, though {} claims Idempotence::Store",
            T::ENGINE
        ),
        Idempotence::ReadersDeduplicate => assert!(stored.len() <= 40, "{} copies", stored.len()),
    }
}
