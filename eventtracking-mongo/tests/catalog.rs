//! Typed events: the `schema` field on each document, and the catalog
//! entries upserted into `event_types`, once per type, joinable by `$lookup`.

mod common;

use common::*;
use eventtracking::{TrackedEvent, TrackedEventExt, Tracker};
use mongodb::bson::{doc, Bson};
use serde_json::json;

/// A learner enrolled in a course.
///
/// Emitted once the enrollment is saved.
#[derive(TrackedEvent)]
#[tracked_event(crate = "eventtracking", name = "mongo.enroll", version = 4)]
struct Enroll {
    /// The course.
    course_id: String,
    /// The learner.
    #[tracked_event(context)]
    user_id: u64,
}

#[test]
fn typed_events_carry_their_schema_and_the_catalog_is_upserted_once() {
    let db = TestDb::new("catalog");
    let dir = tempfile::tempdir().unwrap();
    let tracker = Tracker::builder()
        .with_delivery(delivery(dir.path()).with_batch_size(10))
        .with_backend("warehouse", db.backend(json!({})))
        .build()
        .unwrap();
    for i in 0..30 {
        Enroll {
            course_id: format!("course-{i}"),
            user_id: i,
        }
        .emit_to(&tracker)
        .unwrap();
    }
    tracker.emit("untyped", json!({})).unwrap();
    let report = tracker.shutdown(WAIT).unwrap();
    let stats = &report.backends["warehouse"];
    assert_eq!(
        (
            stats.delivered,
            stats.event_types_published,
            stats.catalog_errors
        ),
        (31, 1, 0)
    );

    let events = db.documents("events");
    let typed = events
        .iter()
        .filter(|d| d.get_str("schema") == Ok("mongo.enroll@4"))
        .count();
    assert_eq!(typed, 30);
    let untyped = events
        .iter()
        .find(|d| d.get_str("name") == Ok("untyped"))
        .unwrap();
    assert!(untyped.get("schema").is_none());

    let types = db.documents("event_types");
    assert_eq!(types.len(), 1);
    let entry = &types[0];
    assert_eq!(entry.get_str("_id").unwrap(), "mongo.enroll@4");
    assert_eq!(entry.get_str("name").unwrap(), "mongo.enroll");
    assert_eq!(entry.get("version"), Some(&Bson::Int64(4)));
    assert_eq!(
        entry.get_str("description").unwrap(),
        "A learner enrolled in a course.\n\nEmitted once the enrollment is saved."
    );
    let fields = entry.get_array("fields").unwrap();
    let field = fields[1].as_document().unwrap();
    assert_eq!(field.get_str("name").unwrap(), "user_id");
    assert_eq!(field.get_str("location").unwrap(), "context");
    assert_eq!(field.get_str("description").unwrap(), "The learner.");
    let schema: serde_json::Value = serde_json::from_str(entry.get_str("schema").unwrap()).unwrap();
    assert_eq!(
        schema["properties"]["course_id"]["description"],
        "The course."
    );
    assert!(entry.get_datetime("published_at").is_ok());

    // Analysis joins events to their documentation.
    let joined = db.aggregate(
        "events",
        [
            doc! {"$match": {"schema": "mongo.enroll@4"}},
            doc! {"$limit": 1},
            doc! {"$lookup": {"from": "event_types", "localField": "schema", "foreignField": "_id", "as": "type"}},
        ],
    );
    let joined_type = joined[0].get_array("type").unwrap()[0]
        .as_document()
        .unwrap();
    assert_eq!(joined_type.get_str("_id").unwrap(), "mongo.enroll@4");

    // A second process publishes again: an upsert, still one entry.
    let tracker = Tracker::builder()
        .with_delivery(delivery(dir.path()))
        .with_backend(
            "warehouse",
            db.backend(json!({"catalog_collection": "event_types"})),
        )
        .build()
        .unwrap();
    Enroll {
        course_id: "again".into(),
        user_id: 1,
    }
    .emit_to(&tracker)
    .unwrap();
    let report = tracker.shutdown(WAIT).unwrap();
    assert_eq!(report.backends["warehouse"].event_types_published, 1);
    assert_eq!(db.count("event_types"), 1);
}

#[test]
fn the_catalog_collection_can_be_renamed_or_turned_off() {
    let db = TestDb::new("catalog_off");
    let dir = tempfile::tempdir().unwrap();
    let tracker = Tracker::builder()
        .with_delivery(delivery(dir.path()))
        .with_backend(
            "docs",
            db.backend(json!({"collection": "a", "catalog_collection": "types"})),
        )
        .with_backend(
            "nodocs",
            db.backend(json!({"collection": "b", "catalog_collection": ""})),
        )
        .build()
        .unwrap();
    Enroll {
        course_id: "c".into(),
        user_id: 1,
    }
    .emit_to(&tracker)
    .unwrap();
    tracker.shutdown(WAIT).unwrap();
    assert_eq!(db.count("a") + db.count("b"), 2);
    assert_eq!(db.count("types"), 1);
    assert_eq!(db.count("event_types"), 0);
}
