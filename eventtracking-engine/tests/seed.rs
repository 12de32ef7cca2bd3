//! The example of the seed README, reproduced exactly: through a tracker,
//! through the default tracker and free `emit`, and through named trackers.

mod common;

use std::sync::Arc;

use common::{map, DEADLINE};
use eventtracking::{
    default_tracker, emit, get_tracker, init, register_tracker, unregister_tracker, Event,
    InMemoryBackend, Tracker,
};
use serde_json::{json, Value};

/// The seed's three emits, in the seed's style (imperative outer context,
/// scoped inner context), on whichever tracker `emit` goes to.
fn run_seed_example(tracker: &Tracker, emit: impl Fn(&str, Value)) {
    tracker
        .enter_context("outer", json!({"user_id": 10938}))
        .unwrap();
    emit(
        "navigation.request",
        json!({"url": "http://www.edx.org/some/path/1"}),
    );
    {
        let _inner = tracker
            .context(
                "inner",
                json!({"user_id": 11111, "session_id": "2987lkjdyoioey"}),
            )
            .unwrap();
        emit(
            "navigation.request",
            json!({"url": "http://www.edx.org/some/path/2"}),
        );
    }
    emit(
        "address.create",
        json!({
            "name": "foo",
            "address": {
                "postal_code": "90210",
                "country": "United States"
            }
        }),
    );
    tracker.exit_context("outer").unwrap();
}

/// The keys of a JSON object in document order (whatever serde_json's map type keeps).
struct TopLevelKeys(Vec<String>);

impl<'de> serde::Deserialize<'de> for TopLevelKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = TopLevelKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<TopLevelKeys, A::Error> {
                let mut keys = Vec::new();
                while let Some((key, _)) = map.next_entry::<String, serde::de::IgnoredAny>()? {
                    keys.push(key);
                }
                Ok(TopLevelKeys(keys))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

fn is_rfc3339_utc_micros(text: &str) -> bool {
    regex::Regex::new(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
        .unwrap()
        .is_match(text)
}

/// Checks the three events against the seed README's expected output.
fn assert_seed_events(events: &[Arc<Event>]) {
    // What the seed README says comes out (the one copy, in the testkit).
    let expected = eventtracking_testkit::seed_example_events();
    assert_eq!(events.len(), expected.len(), "{events:#?}");
    for (event, (name, context, data)) in events.iter().zip(&expected) {
        assert_eq!(event.name(), *name);
        assert_eq!(event.context(), &map(context.clone()));
        assert_eq!(event.data(), data);
        assert_eq!(event.id().get_version_num(), 7, "{}", event.id());

        // The serialized record has exactly the five fields.
        let value: Value = serde_json::from_slice(event.to_json_bytes()).unwrap();
        let keys: TopLevelKeys = serde_json::from_slice(event.to_json_bytes()).unwrap();
        assert_eq!(keys.0, ["id", "name", "timestamp", "context", "data"]);
        assert_eq!(value["id"], event.id().to_string());
        assert_eq!(value["name"], *name);
        assert_eq!(value["context"], *context);
        assert_eq!(value["data"], *data);
        let timestamp = value["timestamp"].as_str().unwrap();
        assert!(is_rfc3339_utc_micros(timestamp), "{timestamp}");
        assert_eq!(timestamp, event.timestamp_rfc3339());
        // The record reads back as the same event.
        let back: Event = serde_json::from_slice(event.to_json_bytes()).unwrap();
        assert_eq!(&back, &**event);
    }
    // Ids are unique and increase in emit order; timestamps never go back.
    for pair in events.windows(2) {
        assert!(
            pair[0].id() < pair[1].id(),
            "{} !< {}",
            pair[0].id(),
            pair[1].id()
        );
        assert!(pair[0].timestamp() <= pair[1].timestamp());
    }
}

#[test]
fn seed_example_through_a_tracker() {
    let dir = tempfile::tempdir().unwrap();
    let memory = InMemoryBackend::new();
    let tracker = Tracker::builder()
        .with_delivery(common::delivery(dir.path()))
        .with_backend("memory", memory.clone())
        .build()
        .unwrap();
    run_seed_example(&tracker, |name, data| tracker.emit(name, data).unwrap());
    assert!(tracker.current_context().is_empty());

    let report = tracker.flush(DEADLINE);
    assert!(report.complete);
    assert_eq!(report.tracker.emitted, 3);
    assert_eq!(report.backends["memory"].delivered, 3);
    assert_seed_events(&memory.events());
}

#[test]
fn seed_example_through_the_default_tracker_and_free_emit() {
    let dir = tempfile::tempdir().unwrap();
    let memory = InMemoryBackend::new();
    let guard = init(
        Tracker::builder()
            .with_delivery(common::delivery(dir.path()))
            .with_backend("memory", memory.clone())
            .build()
            .unwrap(),
    );
    // The seed's `tracker.get_tracker()`.
    let tracker = default_tracker();
    assert_eq!(tracker.backend_names(), ["memory"]);
    run_seed_example(&tracker, |name, data| emit(name, data).unwrap());
    drop(tracker);

    let report = guard.shutdown(DEADLINE).unwrap();
    assert!(report.complete);
    assert_eq!(report.backends["memory"].delivered, 3);
    assert_seed_events(&memory.events());

    // The guard unregistered its tracker: the default is a fresh one without backends.
    let fresh = default_tracker();
    assert!(fresh.backend_names().is_empty());
    emit("after.guard", json!({})).unwrap();
    assert_eq!(fresh.report().tracker.no_backend, 1);
    assert_eq!(memory.events().len(), 3);
}

#[test]
fn seed_example_through_named_trackers() {
    let dir = tempfile::tempdir().unwrap();
    let first = InMemoryBackend::new();
    let second = InMemoryBackend::new();
    let build = |memory: &InMemoryBackend| {
        Tracker::builder()
            .with_delivery(common::delivery(dir.path()))
            .with_backend("memory", memory.clone())
            .build()
            .unwrap()
    };
    const NAME: &str = "seed-test-named";
    assert!(register_tracker(NAME, build(&first)).is_none());
    let tracker = get_tracker(NAME).expect("registered");
    run_seed_example(&tracker, |name, data| {
        get_tracker(NAME).unwrap().emit(name, data).unwrap()
    });
    assert!(tracker.flush(DEADLINE).complete);
    assert_seed_events(&first.events());

    // Registering again replaces (and returns) the previous tracker.
    let previous = register_tracker(NAME, build(&second)).expect("the first tracker");
    assert_eq!(previous.report().backends["memory"].delivered, 3);
    get_tracker(NAME)
        .unwrap()
        .emit("second.tracker", json!({}))
        .unwrap();
    let removed = unregister_tracker(NAME).expect("the second tracker");
    assert!(get_tracker(NAME).is_none());
    let report = removed.shutdown(DEADLINE).unwrap();
    assert_eq!(report.backends["memory"].delivered, 1);
    assert_eq!(second.events()[0].name(), "second.tracker");
    assert_eq!(first.events().len(), 3);
}
