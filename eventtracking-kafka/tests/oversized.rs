//! A message larger than `message.max.bytes` is dead-lettered at once (not
//! retried) while its neighbours in the same batch arrive; so is an event
//! whose templated topic Kafka cannot have.

mod common;

use common::*;
use eventtracking::{DeadLetterRecord, Tracker};
use serde_json::json;

#[test]
fn an_oversized_event_is_dead_lettered_and_its_neighbours_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("oversized");
    let tracker = Tracker::builder()
        .with_delivery(delivery(dir.path()).with_linger(std::time::Duration::from_millis(200)))
        .with_backend(
            "stream",
            kafka_backend(json!({
                "topic": topic,
                "properties": {"message.max.bytes": "100000"},
            })),
        )
        .build()
        .unwrap();
    tracker.emit("small.before", json!({"i": 1})).unwrap();
    tracker
        .emit("big.one", json!({"pad": "x".repeat(200_000)}))
        .unwrap();
    tracker.emit("small.after", json!({"i": 2})).unwrap();
    let report = tracker.shutdown(WAIT).unwrap();
    let stats = &report.backends["stream"];
    assert_eq!(stats.delivered, 2, "{report:?}");
    assert_eq!(stats.dead_lettered, 1, "{report:?}");
    assert_eq!(
        stats.retried, 0,
        "a too-large message must not be retried: {report:?}"
    );

    let text = std::fs::read_to_string(dir.path().join("dead-letter.jsonl")).unwrap();
    let records: Vec<DeadLetterRecord> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].event.name(), "big.one");
    assert_eq!(records[0].backend, "stream");
    assert!(
        records[0].reason.contains("permanent") && records[0].reason.contains("size"),
        "{}",
        records[0].reason
    );

    let received = consume(&consumer(&[&topic]), 2);
    let mut names: Vec<_> = received
        .iter()
        .map(|m| m.headers["event-name"].clone())
        .collect();
    names.sort();
    assert_eq!(names, ["small.after", "small.before"]);
}

#[test]
fn an_event_without_a_valid_topic_is_dead_lettered_and_its_neighbours_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique("badtopic");
    let tracker = Tracker::builder()
        .with_delivery(delivery(dir.path()).with_linger(std::time::Duration::from_millis(200)))
        .with_backend(
            "stream",
            kafka_backend(json!({"topic": format!("{prefix}-{{name}}")})),
        )
        .build()
        .unwrap();
    tracker.emit("ok", json!({"i": 1})).unwrap();
    // 255 characters: the topic would be longer than Kafka's 249.
    tracker.emit(&"n".repeat(255), json!({"i": 2})).unwrap();
    tracker.emit("ok", json!({"i": 3})).unwrap();
    let report = tracker.shutdown(WAIT).unwrap();
    let stats = &report.backends["stream"];
    assert_eq!(stats.delivered, 2, "{report:?}");
    assert_eq!(stats.dead_lettered, 1, "{report:?}");
    assert_eq!(stats.retried, 0, "{report:?}");
    let text = std::fs::read_to_string(dir.path().join("dead-letter.jsonl")).unwrap();
    assert!(text.contains("Kafka allows at most 249"), "{text}");

    let received = consume(&consumer(&[&format!("{prefix}-ok")]), 2);
    assert_eq!(received.len(), 2);
}
