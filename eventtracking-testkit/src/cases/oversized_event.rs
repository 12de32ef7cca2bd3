//! (4) An event too large for the store dead-lettered, its batch
//! neighbours stored.

use serde_json::json;

use crate::harness::{shared_store, Run, BACKEND, WAIT};
use crate::target::{Case, ConformanceTarget, SizeLimit};

/// Emits a small event, an event larger than the target's
/// [`size_limit`](ConformanceTarget::size_limit) and another small one
/// within one batch: the large one is dead-lettered at once (not retried),
/// whole, naming the backend and why; the small ones are stored.
pub fn oversized_event<T: ConformanceTarget>() {
    let _store = shared_store();
    let run = Run::<T>::new(Case::OversizedEvent);
    let (bytes, reason, engine_limit) = match run.target.size_limit() {
        SizeLimit::Store { bytes, reason } => (bytes, reason, None),
        SizeLimit::Engine { bytes } => (bytes, "oversized", Some(bytes)),
    };
    let tracker = run.tracker(
        run.delivery(|d| {
            let d = d
                .with_linger(std::time::Duration::from_millis(300))
                .with_batch_size(100);
            match engine_limit {
                Some(max) => d.with_max_event_bytes(max),
                None => d,
            }
        }),
        None,
    );
    let pad = bytes + bytes / 16;
    tracker
        .emit("conformance.small.before", json!({"i": 1}))
        .expect("accepted");
    tracker
        .emit("conformance.oversized", json!({"pad": "x".repeat(pad)}))
        .expect("accepted");
    tracker
        .emit("conformance.small.after", json!({"i": 2}))
        .expect("accepted");
    let report = tracker.shutdown(WAIT).expect("the first shutdown");
    let stats = &report.backends[BACKEND];
    assert_eq!(stats.delivered, 2, "{report}");
    assert_eq!((stats.failed, stats.dead_lettered), (1, 1), "{report}");
    assert_eq!(
        stats.retried, 0,
        "an oversized event is not retried: {report}"
    );

    let records = run.dead_letters();
    assert_eq!(records.len(), 1, "{}", records.len());
    let record = &records[0];
    assert_eq!(record.event.name(), "conformance.oversized");
    assert_eq!(record.event.data()["pad"].as_str().map(str::len), Some(pad));
    assert_eq!(record.backend, BACKEND);
    assert!(
        record.reason.contains(reason),
        "the reason {:?} does not say {reason:?}",
        record.reason
    );

    let stored: Vec<String> = run
        .stored_events()
        .iter()
        .map(|e| e.name().to_owned())
        .collect();
    assert_eq!(
        stored,
        ["conformance.small.before", "conformance.small.after"]
    );
}
