//! (7) A typed event's catalog entry reaches the backend's catalog store.

use eventtracking::{catalog as registered, TrackedEvent, TrackedEventExt};
use serde_json::json;

use crate::harness::{shared_store, Run, BACKEND, WAIT};
use crate::target::{Case, ConformanceTarget, Idempotence};

/// A learner enrolled in a course (the conformance suite's typed event).
///
/// Emitted once the enrollment is saved.
#[derive(TrackedEvent)]
#[tracked_event(name = "conformance.enroll", version = 3)]
struct Enrolled {
    /// The course.
    course_id: String,
    /// The learner.
    #[tracked_event(context)]
    user_id: u64,
}

/// Emits five typed events and an untyped one: all six are delivered, the
/// type's entry is published once without error, the store's catalog holds
/// exactly that entry (equal to the registered one: name, version,
/// descriptions, fields, schemas), and the typed events are stored with its
/// key. A second tracker (another process) publishing again leaves one
/// entry per key with [`Idempotence::Store`], else copies equal to it.
pub fn catalog<T: ConformanceTarget>() {
    let _store = shared_store();
    let run = Run::<T>::new(Case::Catalog);
    let expected = registered()
        .expect("no duplicate event types")
        .get(Enrolled::NAME, Enrolled::VERSION)
        .expect("the derive registered the type")
        .as_ref()
        .clone();
    let tracker = run.tracker(run.delivery(|d| d), None);
    for i in 0..5 {
        Enrolled {
            course_id: format!("course-{i}"),
            user_id: i,
        }
        .emit_to(&tracker)
        .expect("accepted");
    }
    tracker
        .emit("conformance.untyped", json!({}))
        .expect("accepted");
    let report = tracker.shutdown(WAIT).expect("the first shutdown");
    assert!(report.complete, "{report}");
    let stats = &report.backends[BACKEND];
    assert_eq!(
        (
            stats.delivered,
            stats.event_types_published,
            stats.catalog_errors
        ),
        (6, 1, 0),
        "{report}"
    );
    assert_eq!(
        run.target.stored_catalog(&run.namespace),
        std::slice::from_ref(&expected)
    );
    let stored = run.stored_events();
    assert_eq!(stored.len(), 6);
    for event in &stored {
        let schema = (event.name() == Enrolled::NAME).then_some(Enrolled::SCHEMA);
        assert_eq!(event.schema(), schema, "{event:?}");
    }

    let again = run.tracker(run.delivery(|d| d), None);
    Enrolled {
        course_id: "again".into(),
        user_id: 1,
    }
    .emit_to(&again)
    .expect("accepted");
    let report = again.shutdown(WAIT).expect("the first shutdown");
    assert_eq!(report.backends[BACKEND].catalog_errors, 0, "{report}");
    let entries = run.target.stored_catalog(&run.namespace);
    assert!(!entries.is_empty());
    for entry in &entries {
        assert_eq!(entry, &expected);
    }
    if run.target.idempotence() == Idempotence::Store {
        assert_eq!(entries.len(), 1, "the entry was stored twice");
    }
}
