//! The server paused for 10 s (SIGSTOP) and resumed loses nothing and
//! duplicates nothing: sends time out (retryable), the engine retries with
//! backoff, and inserts that reached the server before the pause and are
//! sent again count as delivered. Alone in its binary, as pausing the server
//! would disturb other tests.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use eventtracking::testing::PausedProcess;
use eventtracking::Tracker;
use mongodb::bson::Bson;
use serde_json::json;

#[test]
fn a_ten_second_server_pause_loses_nothing() {
    let pid = std::env::var("EVENTTRACKING_TEST_MONGO_PID").expect(
        "EVENTTRACKING_TEST_MONGO_PID is not set: this test pauses the MongoDB server with \
         `kill -STOP` and needs its PID. Start the server with `scripts/services start mongo` \
         and `eval \"$(scripts/services env)\"`, or give the PID of a server this test may pause",
    );
    let db = TestDb::new("outage");
    let dir = tempfile::tempdir().unwrap();
    let tracker = Tracker::builder()
        .with_delivery(
            delivery(dir.path())
                // Each attempt gives up after 2 s; 40 retries with backoff up
                // to 1 s cover the pause many times over.
                .with_send_timeout(std::time::Duration::from_millis(2_000))
                .with_max_retries(40)
                .with_initial_backoff(std::time::Duration::from_millis(100))
                .with_max_backoff(std::time::Duration::from_millis(1_000)),
        )
        .with_backend(
            "warehouse",
            db.backend(json!({"server_selection_timeout_ms": 1_500})),
        )
        .build()
        .unwrap();
    for i in 0..200 {
        tracker.emit("outage.before", json!({"i": i})).unwrap();
    }
    assert!(tracker.flush(WAIT).complete);
    assert_eq!(tracker.report().backends["warehouse"].delivered, 200);

    let paused = PausedProcess::pause(&pid);
    let started = Instant::now();
    for i in 200..1200 {
        tracker.emit("outage.during", json!({"i": i})).unwrap();
        if i % 100 == 0 {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    std::thread::sleep(Duration::from_secs(10).saturating_sub(started.elapsed()));
    let during = tracker.report().backends["warehouse"];
    assert_eq!(
        during.delivered, 200,
        "nothing can be stored while the server sleeps: {during:?}"
    );
    assert!(during.retried > 0, "{during:?}");
    drop(paused);

    for i in 1200..1300 {
        tracker.emit("outage.after", json!({"i": i})).unwrap();
    }
    let report = tracker.shutdown(WAIT).unwrap();
    let stats = &report.backends["warehouse"];
    assert!(report.complete, "{report}");
    assert_eq!(stats.delivered, 1300, "{report}");
    assert_eq!(stats.failed, 0, "{report}");

    let docs = db.documents("events");
    assert_eq!(docs.len(), 1300);
    let ids: HashSet<Vec<u8>> = docs
        .iter()
        .map(|d| match d.get("_id") {
            Some(Bson::Binary(id)) => id.bytes.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ids.len(), 1300);
    let is: HashSet<i64> = docs
        .iter()
        .map(|d| d.get_document("data").unwrap().get_i64("i").unwrap())
        .collect();
    assert_eq!(is, (0..1300).collect());
}
