//! (3) One event of a batch refused by the store, the others stored.

use serde_json::json;

use super::not_applicable;
use crate::harness::{shared_store, Run, BACKEND, WAIT};
use crate::target::{Case, ConformanceTarget};

/// Emits an event, the target's [`refused_event`](ConformanceTarget::refused_event)
/// and another event within one batch: the report counts two delivered and
/// one dead-lettered, nothing retried (the refusal is permanent); the
/// dead-letter file holds exactly the refused event, unchanged, naming the
/// backend and the reason; the store holds exactly the two others.
pub fn partial_failure<T: ConformanceTarget>() {
    let _store = shared_store();
    let run = Run::<T>::new(Case::PartialFailure);
    let refused = match run.target.refused_event() {
        Ok(refused) => refused,
        Err(unsupported) => return not_applicable(T::ENGINE, Case::PartialFailure, unsupported),
    };
    // One batch: the three are emitted well within the linger.
    let tracker = run.tracker(
        run.delivery(|d| {
            d.with_linger(std::time::Duration::from_millis(300))
                .with_batch_size(100)
        }),
        None,
    );
    tracker
        .emit("conformance.partial.before", json!({"i": 1}))
        .expect("accepted");
    tracker
        .emit(&refused.name, refused.data.clone())
        .expect("accepted");
    tracker
        .emit("conformance.partial.after", json!({"i": 2}))
        .expect("accepted");
    let report = tracker.shutdown(WAIT).expect("the first shutdown");
    let stats = &report.backends[BACKEND];
    assert_eq!(stats.delivered, 2, "{report}");
    assert_eq!((stats.failed, stats.dead_lettered), (1, 1), "{report}");
    assert_eq!(
        stats.retried, 0,
        "a permanent failure is not retried: {report}"
    );
    assert_eq!(
        stats.batches, 1,
        "the three events were not one batch: {report}"
    );

    let records = run.dead_letters();
    assert_eq!(records.len(), 1, "{records:?}");
    let record = &records[0];
    assert_eq!(record.event.name(), refused.name);
    assert_eq!(record.event.data(), &refused.data);
    assert_eq!(record.backend, BACKEND);
    assert!(
        record.reason.contains(refused.reason),
        "the reason {:?} does not say {:?}",
        record.reason,
        refused.reason
    );

    let stored: Vec<String> = run
        .stored_events()
        .iter()
        .map(|e| e.name().to_owned())
        .collect();
    assert_eq!(
        stored,
        ["conformance.partial.before", "conformance.partial.after"]
    );
}
