//! A full librdkafka queue on enqueue is a retryable per-message failure: the
//! engine retries just those messages, and every event arrives once.

mod common;

use std::collections::HashSet;

use common::*;
use eventtracking::Tracker;
use serde_json::json;

#[test]
fn a_full_local_queue_is_retried_by_the_engine_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("queuefull");
    let tracker = Tracker::builder()
        .with_delivery(
            delivery(dir.path())
                .with_batch_size(200)
                .with_linger(std::time::Duration::from_millis(100))
                .with_max_retries(50)
                .with_initial_backoff(std::time::Duration::from_millis(5))
                .with_max_backoff(std::time::Duration::from_millis(20)),
        )
        .with_backend(
            "stream",
            kafka_backend(json!({
                "topic": topic,
                // librdkafka holds at most 25 messages: most of each batch is refused on enqueue.
                "properties": {"queue.buffering.max.messages": 25},
            })),
        )
        .build()
        .unwrap();
    for i in 0..400 {
        tracker.emit("queue.full", json!({"i": i})).unwrap();
    }
    let report = tracker.shutdown(WAIT).unwrap();
    let stats = &report.backends["stream"];
    assert_eq!(stats.delivered, 400, "{report:?}");
    assert_eq!(stats.failed, 0, "{report:?}");
    assert!(stats.retried > 0, "the queue never filled: {report:?}");

    let received = consume(&consumer(&[&topic]), 400);
    assert_eq!(received.len(), 400, "duplicates arrived");
    let ids: HashSet<_> = received.iter().map(|m| m.key_str().to_owned()).collect();
    assert_eq!(ids.len(), 400);
}
