//! The seed example goes through a real `Tracker` and this backend into the
//! collection and reads back with the driver field by field, with exact BSON
//! types; a config file using the documented keys builds the same pipeline.

mod common;

use std::time::UNIX_EPOCH;

use common::*;
use eventtracking::{Config, InMemoryBackend, Tracker};
use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{doc, Bson, RawDocumentBuf};
use serde_json::json;

fn emit_seed(tracker: &Tracker) {
    eventtracking_testkit::emit_seed_example(tracker).unwrap();
}

#[test]
fn seed_events_round_trip_with_exact_shape_and_types() {
    let db = TestDb::new("seed");
    let dir = tempfile::tempdir().unwrap();
    let memory = InMemoryBackend::new();
    let tracker = Tracker::builder()
        .with_delivery(delivery(dir.path()))
        .with_backend("memory", memory.clone())
        .with_backend("warehouse", db.backend(json!({})))
        .build()
        .unwrap();
    emit_seed(&tracker);
    let report = tracker.shutdown(WAIT).unwrap();
    assert!(report.complete, "{report}");
    assert_eq!(report.backends["warehouse"].delivered, 3, "{report}");
    assert_eq!(report.backends["warehouse"].failed, 0, "{report}");

    let sent = memory.events();
    let docs = db.documents("events");
    assert_eq!(docs.len(), 3);
    // UUIDv7 ids sort by creation time, and so do the binary `_id`s.
    for (event, doc) in sent.iter().zip(&docs) {
        let keys: Vec<&str> = doc.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "_id",
                "name",
                "timestamp",
                "timestamp_rfc3339",
                "context",
                "data"
            ]
        );
        match doc.get("_id").unwrap() {
            Bson::Binary(id) => {
                assert_eq!(id.subtype, BinarySubtype::Uuid);
                assert_eq!(id.bytes, event.id().as_bytes());
            }
            other => panic!("_id is {other:?}"),
        }
        assert_eq!(doc.get_str("name").unwrap(), event.name());
        let millis = event
            .timestamp()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        match doc.get("timestamp").unwrap() {
            Bson::DateTime(date) => assert_eq!(date.timestamp_millis(), millis),
            other => panic!("timestamp is {other:?}"),
        }
        assert_eq!(
            doc.get_str("timestamp_rfc3339").unwrap(),
            event.timestamp_rfc3339()
        );
        // Read back as an event, it is the event that was emitted.
        let raw = RawDocumentBuf::from_document(doc).unwrap();
        assert_eq!(
            &eventtracking_mongo::event_from_document(&raw).unwrap(),
            &**event
        );
    }

    // Contexts and payloads as nested documents; JSON integers as Int64.
    assert_eq!(
        docs[0].get_document("context").unwrap(),
        &doc! {"user_id": 10938i64}
    );
    assert_eq!(
        docs[0].get("data"),
        Some(&Bson::Document(
            doc! {"url": "http://www.edx.org/some/path/1"}
        ))
    );
    assert_eq!(
        docs[1].get_document("context").unwrap(),
        &doc! {"user_id": 11111i64, "session_id": "2987lkjdyoioey"}
    );
    assert!(matches!(
        docs[1].get_document("context").unwrap().get("user_id"),
        Some(Bson::Int64(11111))
    ));
    assert_eq!(
        docs[1]
            .get_document("data")
            .unwrap()
            .get_str("url")
            .unwrap(),
        "http://www.edx.org/some/path/2"
    );
    assert_eq!(
        docs[2].get_document("context").unwrap(),
        &doc! {"user_id": 10938i64}
    );
    assert_eq!(
        docs[2].get_document("data").unwrap(),
        &doc! {"name": "foo", "address": {"postal_code": "90210", "country": "United States"}}
    );

    // Dates make range queries work.
    let first = docs[0].get_datetime("timestamp").unwrap();
    let in_range = db
        .block_on(
            db.collection("events")
                .count_documents(doc! {"timestamp": {"$gte": first}, "name": "navigation.request"}),
        )
        .unwrap();
    assert_eq!(in_range, 2);
}

#[test]
fn a_config_file_with_the_documented_keys_builds_the_pipeline() {
    let db = TestDb::new("config");
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"
        [delivery]
        linger_ms = 5
        dead_letter_path = "{dead}"

        [backends.warehouse]
        engine = "mongo"
        uri = "{uri}"
        database = "{database}"
        collection = "events"
        "#,
        dead = dir.path().join("dead.jsonl").display(),
        uri = uri(),
        database = db.name,
    );
    let tracker = Config::from_toml_str(&config).unwrap().build().unwrap();
    emit_seed(&tracker);
    let report = tracker.shutdown(WAIT).unwrap();
    assert_eq!(report.backends["warehouse"].delivered, 3, "{report}");
    let names: Vec<String> = db
        .documents("events")
        .iter()
        .map(|d| d.get_str("name").unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        ["navigation.request", "navigation.request", "address.create"]
    );

    // A misspelt key is an error naming it.
    let bad = config.replace("collection = ", "colection = ");
    let err = Config::from_toml_str(&bad)
        .unwrap()
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("colection") && err.contains("backends.warehouse"),
        "{err}"
    );
}
