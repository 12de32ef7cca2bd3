//! 100,000 events through a tracker arrive, none missing, each id once.

mod common;

use std::collections::HashSet;

use common::*;
use eventtracking::Tracker;
use serde_json::json;

#[test]
fn a_hundred_thousand_events_arrive_each_once() {
    const N: usize = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("volume");
    let tracker = Tracker::builder()
        .with_delivery(
            delivery(dir.path())
                .with_queue_capacity(2 * N)
                .with_batch_size(2_000),
        )
        .with_backend("stream", kafka_backend(json!({"topic": topic})))
        .build()
        .unwrap();
    let _ctx = tracker.context("req", json!({"user_id": 7})).unwrap();
    for i in 0..N {
        tracker.emit("volume.event", json!({"i": i})).unwrap();
    }
    let report = tracker.shutdown(WAIT).unwrap();
    let stats = &report.backends["stream"];
    assert!(report.complete, "{report:?}");
    assert_eq!(stats.delivered, N as u64, "{report:?}");
    assert_eq!(stats.failed, 0, "{report:?}");

    let received = consume(&consumer(&[&topic]), N);
    assert_eq!(received.len(), N, "extra messages arrived");
    let mut ids = HashSet::with_capacity(N);
    let mut seen = vec![false; N];
    for message in &received {
        assert!(ids.insert(message.key_str().to_owned()), "duplicate id");
        assert_eq!(message.headers["event-id"], message.key_str());
        let i = message.json()["data"]["i"].as_u64().unwrap() as usize;
        assert!(!std::mem::replace(&mut seen[i], true), "event {i} twice");
    }
    assert!(seen.iter().all(|s| *s));
}
