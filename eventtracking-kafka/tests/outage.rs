//! The broker paused for 10 s (SIGSTOP) and resumed loses nothing: librdkafka
//! holds the messages and `send_batch` waits for their delivery reports.
//! Alone in its binary, as pausing the broker would disturb other tests.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use eventtracking::testing::PausedProcess;
use eventtracking::Tracker;
use serde_json::json;

#[test]
fn a_ten_second_broker_pause_loses_nothing() {
    let pid = std::env::var("EVENTTRACKING_TEST_KAFKA_PID").expect(
        "EVENTTRACKING_TEST_KAFKA_PID is not set: start the broker with `scripts/services start kafka` \
         and `eval \"$(scripts/services env)\"` (or give the PID of a broker this test may pause)",
    );
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("outage");
    let tracker = Tracker::builder()
        .with_delivery(delivery(dir.path()))
        .with_backend("stream", kafka_backend(json!({"topic": topic})))
        .build()
        .unwrap();
    for i in 0..200 {
        tracker.emit("outage.before", json!({"i": i})).unwrap();
    }
    assert!(tracker.flush(WAIT).complete);

    let paused = PausedProcess::pause(&pid);
    let started = Instant::now();
    for i in 200..1200 {
        tracker.emit("outage.during", json!({"i": i})).unwrap();
        if i % 100 == 0 {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    std::thread::sleep(Duration::from_secs(10).saturating_sub(started.elapsed()));
    // Nothing can have been delivered while the broker slept.
    assert_eq!(tracker.report().backends["stream"].delivered, 200);
    drop(paused);

    for i in 1200..1300 {
        tracker.emit("outage.after", json!({"i": i})).unwrap();
    }
    let report = tracker.shutdown(WAIT).unwrap();
    let stats = &report.backends["stream"];
    assert!(report.complete, "{report:?}");
    assert_eq!(stats.delivered, 1300, "{report:?}");
    assert_eq!(stats.failed, 0, "{report:?}");

    let received = consume(&consumer(&[&topic]), 1300);
    let ids: HashSet<_> = received.iter().map(|m| m.key_str().to_owned()).collect();
    assert_eq!(received.len(), 1300);
    assert_eq!(ids.len(), 1300);
    let is: HashSet<_> = received
        .iter()
        .map(|m| m.json()["data"]["i"].as_u64().unwrap())
        .collect();
    assert_eq!(is, (0..1300).collect());
}
