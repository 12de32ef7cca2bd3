//! Typed events: the `event-schema` header, and catalog entries published
//! to the catalog topic keyed by `NAME@VERSION`, once per type per process.

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
fn typed_events_carry_a_schema_header_and_the_catalog_goes_to_its_topic() {
    let topic = unique("typed");
    let catalog_topic = unique("types");
    let dir = tempfile::tempdir().unwrap();
    let tracker = Tracker::builder()
        .with_delivery(delivery(dir.path()).with_batch_size(5))
        .with_backend(
            "stream",
            kafka_backend(json!({"topic": topic, "catalog_topic": catalog_topic})),
        )
        .build()
        .unwrap();
    for order in 0..20 {
        OrderPlaced { order }.emit_to(&tracker).unwrap();
    }
    tracker.emit("kafka.untyped", json!({})).unwrap();
    let report = tracker.shutdown(WAIT).unwrap();
    let stats = &report.backends["stream"];
    assert_eq!(
        (
            stats.delivered,
            stats.event_types_published,
            stats.catalog_errors
        ),
        (21, 1, 0)
    );

    let events = consume(&consumer(&[&topic]), 21);
    for message in &events {
        let value = message.json();
        match value["name"].as_str().unwrap() {
            "kafka.order.place" => {
                assert_eq!(message.headers["event-schema"], "kafka.order.place@2");
                assert_eq!(value["schema"], "kafka.order.place@2");
            }
            _ => assert!(!message.headers.contains_key("event-schema")),
        }
    }

    let entries = consume(&consumer(&[&catalog_topic]), 1);
    assert_eq!(entries.len(), 1);
    let entry = &entries[0];
    assert_eq!(entry.key_str(), "kafka.order.place@2");
    assert_eq!(entry.headers["event-schema"], "kafka.order.place@2");
    let value = entry.json();
    assert_eq!(value["description"], "An order was placed.");
    assert_eq!(
        value["schema"]["properties"]["order"]["description"],
        "The order number."
    );

    // A second process publishes the same entry again (idempotent: same key and value).
    let tracker = Tracker::builder()
        .with_delivery(delivery(dir.path()))
        .with_backend(
            "stream",
            kafka_backend(json!({"topic": topic, "catalog_topic": catalog_topic})),
        )
        .build()
        .unwrap();
    OrderPlaced { order: 99 }.emit_to(&tracker).unwrap();
    tracker.shutdown(WAIT).unwrap();
    let entries = consume(&consumer(&[&catalog_topic]), 2);
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].payload, entries[1].payload);
    assert_eq!(entries[0].key, entries[1].key);
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
