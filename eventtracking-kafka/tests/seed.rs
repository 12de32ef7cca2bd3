//! The seed example goes through a real `Tracker` and this backend to the
//! broker and comes back byte for byte, with key and headers.

mod common;

use common::*;
use eventtracking::{Config, InMemoryBackend, Tracker};
use serde_json::json;

fn emit_seed(tracker: &Tracker) {
    eventtracking_testkit::emit_seed_example(tracker).unwrap();
}

#[test]
fn seed_events_arrive_with_exact_json_key_and_headers() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("seed");
    let memory = InMemoryBackend::new();
    let tracker = Tracker::builder()
        .with_delivery(delivery(dir.path()))
        .with_backend("memory", memory.clone())
        .with_backend("stream", kafka_backend(json!({"topic": topic})))
        .build()
        .unwrap();
    emit_seed(&tracker);
    let report = tracker.shutdown(WAIT).unwrap();
    assert!(report.complete, "{report:?}");
    assert_eq!(report.backends["stream"].delivered, 3, "{report:?}");

    let sent = memory.events();
    let received = consume(&consumer(&[&topic]), 3);
    assert_eq!(received.len(), 3);
    for event in &sent {
        let id = event.id().to_string();
        let message = received
            .iter()
            .find(|m| m.key_str() == id)
            .unwrap_or_else(|| panic!("event {id} not received"));
        assert_eq!(message.topic, topic);
        assert_eq!(
            String::from_utf8_lossy(&message.payload),
            String::from_utf8_lossy(event.to_json_bytes())
        );
        assert_eq!(message.headers["event-name"], event.name());
        assert_eq!(message.headers["event-id"], id);
        assert_eq!(message.headers.len(), 2);
        let millis = event
            .timestamp()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        assert_eq!(message.timestamp, Some(millis));
    }
    // The seed's contexts, as the consumer sees them.
    let mut by_url: Vec<_> = received.iter().map(Received::json).collect();
    by_url.sort_by_key(|v| v["data"].to_string());
    let first = by_url
        .iter()
        .find(|v| v["data"]["url"] == "http://www.edx.org/some/path/1")
        .unwrap();
    assert_eq!(first["context"], json!({"user_id": 10938}));
    let second = by_url
        .iter()
        .find(|v| v["data"]["url"] == "http://www.edx.org/some/path/2")
        .unwrap();
    assert_eq!(
        second["context"],
        json!({"user_id": 11111, "session_id": "2987lkjdyoioey"})
    );
}

#[test]
fn a_config_file_builds_the_kafka_engine_and_keys_by_a_context_field() {
    require_broker();
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("config");
    let toml = format!(
        r#"
[delivery]
linger_ms = 5
dead_letter_path = {dl:?}

[backends.stream]
engine = "kafka"
brokers = {brokers:?}
topic = {topic:?}
key = "context.user_id"
flush_timeout_ms = 5000

[backends.stream.properties]
"compression.type" = "lz4"
"batch.num.messages" = 1000
"#,
        dl = dir.path().join("dl.jsonl"),
        brokers = brokers(),
    );
    let tracker = Config::from_toml_str(&toml).unwrap().build().unwrap();
    assert_eq!(tracker.backend_names(), ["stream"]);
    emit_seed(&tracker);
    tracker.emit("anonymous.view", json!({"n": 1})).unwrap();
    let report = tracker.shutdown(WAIT).unwrap();
    assert_eq!(report.backends["stream"].delivered, 4, "{report:?}");

    let received = consume(&consumer(&[&topic]), 4);
    assert_eq!(received.len(), 4);
    let mut keys: Vec<_> = received
        .iter()
        .map(|m| {
            (
                m.json()["name"].as_str().unwrap().to_owned(),
                m.key_str().to_owned(),
                m.headers["event-id"].clone(),
            )
        })
        .collect();
    keys.sort();
    // No user_id in the context: keyed by the event id.
    assert_eq!(keys[0].0, "address.create");
    assert_eq!(keys[0].1, "10938");
    assert_eq!(keys[1].0, "anonymous.view");
    assert_eq!(keys[1].1, keys[1].2);
    assert_eq!(
        [keys[2].1.as_str(), keys[3].1.as_str()]
            .iter()
            .collect::<std::collections::BTreeSet<_>>(),
        ["10938", "11111"].iter().collect()
    );
    // One user's events share a key, so a partition: in order.
    let user: Vec<_> = received.iter().filter(|m| m.key_str() == "10938").collect();
    assert_eq!(user.len(), 2);
    assert_eq!(user[0].partition, user[1].partition);
    assert_eq!(user[0].json()["name"], "navigation.request");
    assert_eq!(user[1].json()["name"], "address.create");
}
