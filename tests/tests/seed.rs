//! The seed README's example, event for event, through every way of reaching a tracker.

use std::time::Duration;

use eventtracking::{InMemoryBackend, Tracker};
use serde_json::json;

fn run_seed_example(tracker: &Tracker) {
    tracker
        .enter_context("outer", json!({"user_id": 10938}))
        .unwrap();
    tracker
        .emit(
            "navigation.request",
            json!({"url": "http://www.edx.org/some/path/1"}),
        )
        .unwrap();
    {
        let _ctx = tracker
            .context(
                "inner",
                json!({"user_id": 11111, "session_id": "2987lkjdyoioey"}),
            )
            .unwrap();
        tracker
            .emit(
                "navigation.request",
                json!({"url": "http://www.edx.org/some/path/2"}),
            )
            .unwrap();
    }
    tracker
        .emit(
            "address.create",
            json!({"name": "foo", "address": {"postal_code": "90210", "country": "United States"}}),
        )
        .unwrap();
    tracker.exit_context("outer").unwrap();
}

fn assert_seed_events(memory: &InMemoryBackend) {
    let events = memory.events();
    let got: Vec<_> = events
        .iter()
        .map(|e| (e.name().to_owned(), json!(e.context()), e.data().clone()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "navigation.request".to_owned(),
                json!({"user_id": 10938}),
                json!({"url": "http://www.edx.org/some/path/1"})
            ),
            (
                "navigation.request".to_owned(),
                json!({"user_id": 11111, "session_id": "2987lkjdyoioey"}),
                json!({"url": "http://www.edx.org/some/path/2"})
            ),
            (
                "address.create".to_owned(),
                json!({"user_id": 10938}),
                json!({"name": "foo", "address": {"postal_code": "90210", "country": "United States"}})
            ),
        ]
    );
    for pair in events.windows(2) {
        assert!(pair[0].id() < pair[1].id(), "UUIDv7 ids increase");
        assert!(pair[0].timestamp() <= pair[1].timestamp());
    }
    for event in &events {
        assert_eq!(event.id().get_version_num(), 7);
        let ts = event.timestamp_rfc3339();
        assert!(ts.ends_with('Z') && ts.len() == 27, "{ts}");
    }
}

#[test]
fn the_seed_example_produces_the_seed_events() {
    let memory = InMemoryBackend::new();
    let tracker = Tracker::builder()
        .with_backend("memory", memory.clone())
        .build()
        .unwrap();
    run_seed_example(&tracker);
    tracker.flush(Duration::from_secs(10));
    assert_seed_events(&memory);
}

#[test]
fn through_the_default_and_named_trackers() {
    let memory = InMemoryBackend::new();
    let guard = eventtracking::init(
        Tracker::builder()
            .with_backend("memory", memory.clone())
            .build()
            .unwrap(),
    );
    run_seed_example(&eventtracking::default_tracker());
    guard.tracker().flush(Duration::from_secs(10));
    assert_seed_events(&memory);
    eventtracking::emit("free.function", json!({})).unwrap();
    let report = guard.shutdown(Duration::from_secs(10)).unwrap();
    assert_eq!(report.backends["memory"].delivered, 4);

    let named = InMemoryBackend::new();
    let previous = eventtracking::register_tracker(
        "analytics",
        Tracker::builder()
            .with_backend("memory", named.clone())
            .build()
            .unwrap(),
    );
    assert!(previous.is_none());
    let tracker = eventtracking::get_tracker("analytics").unwrap();
    run_seed_example(&tracker);
    tracker.flush(Duration::from_secs(10));
    assert_seed_events(&named);
    assert!(eventtracking::unregister_tracker("analytics").is_some());
    assert!(eventtracking::get_tracker("analytics").is_none());
}
