//! 100,000 events through the delivery engine arrive exactly once.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::*;
use eventtracking::{Event, Overflow, Tracker};
use mongodb::bson::Bson;
use serde_json::json;

#[test]
fn a_hundred_thousand_events_arrive_exactly_once() {
    const N: usize = 100_000;
    let db = TestDb::new("volume");
    let dir = tempfile::tempdir().unwrap();
    let tracker = Tracker::builder()
        .with_delivery(
            delivery(dir.path())
                .with_queue_capacity(N)
                .with_overflow(Overflow::Block)
                .with_block_timeout(std::time::Duration::from_millis(60_000))
                .with_batch_size(2_000),
        )
        .with_backend("warehouse", db.backend(json!({})))
        .build()
        .unwrap();
    let events: Vec<Arc<Event>> = (0..N)
        .map(|i| {
            let mut event =
                Event::new("volume.test", json!({"i": i, "url": "/some/path"})).unwrap();
            event.context_mut().insert("user_id".into(), json!(i % 97));
            Arc::new(event)
        })
        .collect();
    for event in &events {
        tracker.emit_event(event.clone()).unwrap();
    }
    let report = tracker.shutdown(WAIT).unwrap();
    let stats = &report.backends["warehouse"];
    assert!(report.complete, "{report}");
    assert_eq!(stats.delivered, N as u64, "{report}");
    assert_eq!(stats.failed + stats.dropped, 0, "{report}");

    assert_eq!(db.count("events"), N as u64);
    let ids: HashSet<Vec<u8>> = db
        .documents("events")
        .into_iter()
        .map(|doc| match doc.get("_id") {
            Some(Bson::Binary(id)) => id.bytes.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    let expected: HashSet<Vec<u8>> = events.iter().map(|e| e.id().as_bytes().to_vec()).collect();
    assert_eq!(ids.len(), N);
    assert_eq!(ids, expected);
}
