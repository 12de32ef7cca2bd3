//! An event whose document would pass 16 MiB is dead-lettered at once (not
//! retried) while its neighbours in the same batch are stored.

mod common;

use common::*;
use eventtracking::{DeadLetterRecord, Tracker};
use serde_json::json;

#[test]
fn an_oversized_event_is_dead_lettered_and_its_neighbours_are_stored() {
    let db = TestDb::new("oversized");
    let dir = tempfile::tempdir().unwrap();
    let tracker = Tracker::builder()
        .with_delivery(delivery(dir.path()).with_linger(std::time::Duration::from_millis(300)))
        .with_backend("warehouse", db.backend(json!({})))
        .build()
        .unwrap();
    tracker.emit("small.before", json!({"i": 1})).unwrap();
    tracker
        .emit("big.one", json!({"pad": "x".repeat(17 << 20)}))
        .unwrap();
    tracker.emit("bad.number", json!({"n": u64::MAX})).unwrap();
    tracker.emit("small.after", json!({"i": 2})).unwrap();
    let report = tracker.shutdown(WAIT).unwrap();
    let stats = &report.backends["warehouse"];
    assert_eq!(stats.delivered, 2, "{report}");
    assert_eq!(stats.dead_lettered, 2, "{report}");
    assert_eq!(stats.retried, 0, "nothing is retried: {report}");

    let text = std::fs::read_to_string(dir.path().join("dead-letter.jsonl")).unwrap();
    let records: Vec<DeadLetterRecord> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2);
    let big = records
        .iter()
        .find(|r| r.event.name() == "big.one")
        .unwrap();
    assert_eq!(big.backend, "warehouse");
    assert!(
        big.reason.contains("permanent") && big.reason.contains("16 MiB"),
        "{}",
        big.reason
    );
    assert_eq!(big.event.data()["pad"].as_str().unwrap().len(), 17 << 20);
    let number = records
        .iter()
        .find(|r| r.event.name() == "bad.number")
        .unwrap();
    assert!(number.reason.contains("`data.n`"), "{}", number.reason);

    let mut names: Vec<String> = db
        .documents("events")
        .iter()
        .map(|d| d.get_str("name").unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["small.after", "small.before"]);
}
