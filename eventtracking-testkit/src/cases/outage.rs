//! (5) The store down for 10 s while events are emitted: nothing lost.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use eventtracking::Event;
use serde_json::json;

use super::not_applicable;
use crate::harness::{exclusive_store, Run, BACKEND, WAIT};
use crate::target::{Case, ConformanceTarget};

/// How long the store is down.
const OUTAGE: Duration = Duration::from_secs(10);

/// Emits 200 events and waits for them; makes the store unreachable with
/// [`ConformanceTarget::outage`] (a paused server, a directory gone) and
/// emits 1,000 more over the next 5 s; at 10 s nothing more has been
/// delivered; the store comes back and 100 more are emitted. At shutdown
/// all 1,300 are delivered, none failed, and the store holds each exactly
/// once. No other case of the binary runs meanwhile.
pub fn outage<T: ConformanceTarget>() {
    let _store = exclusive_store();
    let run = Run::<T>::new(Case::Outage);
    // Retries with backoff up to 1 s, for 2 min: they bridge the outage many times over.
    let tracker = run.tracker(
        run.delivery(|d| {
            d.with_max_retries(200)
                .with_max_backoff(std::time::Duration::from_millis(1_000))
                .with_retry_budget(std::time::Duration::from_millis(120_000))
        }),
        None,
    );
    for i in 0..200 {
        tracker
            .emit("conformance.outage.before", json!({"i": i}))
            .expect("accepted");
    }
    let before = tracker.flush(WAIT);
    assert!(before.complete, "{before}");
    assert_eq!(before.backends[BACKEND].delivered, 200, "{before}");

    let outage = match run.target.outage(&run.namespace) {
        Ok(outage) => outage,
        Err(unsupported) => return not_applicable(T::ENGINE, Case::Outage, unsupported),
    };
    let started = Instant::now();
    for i in 200..1200 {
        tracker
            .emit("conformance.outage.during", json!({"i": i}))
            .expect("accepted");
        if i % 100 == 0 {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    std::thread::sleep(OUTAGE.saturating_sub(started.elapsed()));
    let during = tracker.report();
    assert_eq!(
        during.backends[BACKEND].delivered, 200,
        "delivered while the store was down: {during}"
    );
    drop(outage);

    for i in 1200..1300 {
        tracker
            .emit("conformance.outage.after", json!({"i": i}))
            .expect("accepted");
    }
    let report = tracker.shutdown(WAIT).expect("the first shutdown");
    assert!(report.complete, "{report}");
    let stats = &report.backends[BACKEND];
    assert_eq!((stats.delivered, stats.failed), (1300, 0), "{report}");

    let stored = run.stored_events();
    let ids: BTreeSet<_> = stored.iter().map(Event::id).collect();
    let numbers: BTreeSet<u64> = stored
        .iter()
        .map(|e| e.data()["i"].as_u64().expect("each event has its number"))
        .collect();
    assert_eq!(numbers, (0..1300).collect(), "events were lost");
    assert_eq!(
        (stored.len(), ids.len()),
        (1300, 1300),
        "events were stored twice"
    );
}
