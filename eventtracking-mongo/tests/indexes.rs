//! Indexes are created in the background after the first insert (the
//! defaults and the configured ones), and not at all when switched off.

mod common;

use std::time::{Duration, Instant};

use common::*;
use eventtracking::Tracker;
use eventtracking_mongo::MongoBackend;
use serde_json::json;

fn wait_for_indexes(db: &TestDb, expected: &[&str]) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut names = db.index_names("events");
        names.sort();
        if expected.iter().all(|e| names.iter().any(|n| n == e)) {
            return names;
        }
        assert!(
            Instant::now() < deadline,
            "indexes {expected:?} never appeared; there are {names:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn default_and_configured_indexes_are_created_in_the_background() {
    let db = TestDb::new("indexes");
    let dir = tempfile::tempdir().unwrap();
    let tracker = Tracker::builder()
        .with_delivery(delivery(dir.path()))
        .with_backend(
            "warehouse",
            db.backend(json!({"indexes": ["context.user_id", "data.course_id,-timestamp"]})),
        )
        .build()
        .unwrap();
    tracker
        .emit("page.view", json!({"course_id": "c1"}))
        .unwrap();
    assert!(tracker.flush(WAIT).complete);
    let names = wait_for_indexes(
        &db,
        &[
            "_id_",
            "timestamp_-1",
            "name_1",
            "context.user_id_1",
            "data.course_id_1_timestamp_-1",
        ],
    );
    assert_eq!(names.len(), 5, "{names:?}");
    tracker.shutdown(WAIT);
}

#[test]
fn ensure_indexes_creates_them_now_and_none_when_switched_off() {
    let db = TestDb::new("ensure");
    let backend = MongoBackend::builder(uri())
        .with_database(&db.name)
        .with_collection("explicit")
        .with_index("context.user_id")
        .build()
        .unwrap();
    let mut created = db.block_on(backend.ensure_indexes()).unwrap();
    created.sort();
    assert_eq!(created, ["context.user_id_1", "name_1", "timestamp_-1"]);
    let mut names = db.index_names("explicit");
    names.sort();
    assert_eq!(
        names,
        ["_id_", "context.user_id_1", "name_1", "timestamp_-1"]
    );

    let dir = tempfile::tempdir().unwrap();
    let tracker = Tracker::builder()
        .with_delivery(delivery(dir.path()))
        .with_backend(
            "warehouse",
            db.backend(json!({"create_indexes": false, "indexes": ["context.user_id"]})),
        )
        .build()
        .unwrap();
    tracker.emit("page.view", json!({})).unwrap();
    tracker.shutdown(WAIT);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(db.index_names("events"), ["_id_"]);
}
