//! Typed events and catalog entries: the `event-schema` header, the entry's
//! key `NAME@VERSION`, and no template as catalog topic. (That the entry
//! published is the registered one, and the typed events carry its key, is
//! the conformance suite's `catalog` case.)

mod common;

use common::*;
use eventtracking::{TrackedEvent, TrackedEventExt, Tracker};
use serde_json::json;

/// An order was placed.
#[derive(TrackedEvent)]
#[tracked_event(crate = "eventtracking", name = "kafka.order.place", version = 2)]
struct OrderPlaced {
    /// The order number.
    order: u64,
}

#[test]
fn typed_events_and_their_catalog_entry_carry_a_schema_header() {
    let topic = unique("typed");
    let catalog_topic = unique("types");
    let dir = tempfile::tempdir().unwrap();
    let tracker = Tracker::builder()
        .with_delivery(delivery(dir.path()))
        .with_backend(
            "stream",
            kafka_backend(json!({"topic": topic, "catalog_topic": catalog_topic})),
        )
        .build()
        .unwrap();
    OrderPlaced { order: 1 }.emit_to(&tracker).unwrap();
    tracker.emit("kafka.untyped", json!({})).unwrap();
    let report = tracker.shutdown(WAIT).unwrap();
    assert_eq!(report.backends["stream"].delivered, 2, "{report}");

    let events = consume(&consumer(&[&topic]), 2);
    assert_eq!(events.len(), 2);
    for message in &events {
        match message.json()["name"].as_str().unwrap() {
            "kafka.order.place" => {
                assert_eq!(message.headers["event-schema"], "kafka.order.place@2");
            }
            _ => assert!(!message.headers.contains_key("event-schema")),
        }
    }
    let entries = consume(&consumer(&[&catalog_topic]), 1);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].key_str(), "kafka.order.place@2");
    assert_eq!(entries[0].headers["event-schema"], "kafka.order.place@2");
}

#[test]
fn a_template_is_refused_as_catalog_topic() {
    let result =
        eventtracking::registry::build_backend(&eventtracking::registry::ComponentConfig::new(
            "backends.stream",
            "kafka",
            json!({"brokers": brokers(), "topic": "events", "catalog_topic": "types.{name}"})
                .as_object()
                .unwrap()
                .clone(),
        ));
    let Err(error) = result else {
        panic!("a template was accepted as catalog_topic")
    };
    let error = error.to_string();
    assert!(
        error.contains("catalog_topic") && error.contains("types.{name}"),
        "{error}"
    );
}
