//! The catalog collection: documents joinable to their events by
//! `$lookup`, renamed or turned off. (That typed events carry their schema
//! key and the entry is upserted once, equal to the registered one, is the
//! conformance suite's `catalog` case.)

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
fn events_join_their_catalog_entry_by_lookup() {
    let db = TestDb::new("catalog");
    let dir = tempfile::tempdir().unwrap();
    let tracker = Tracker::builder()
        .with_delivery(delivery(dir.path()))
        .with_backend("warehouse", db.backend(json!({})))
        .build()
        .unwrap();
    Enroll {
        course_id: "course-1".into(),
        user_id: 1,
    }
    .emit_to(&tracker)
    .unwrap();
    let report = tracker.shutdown(WAIT).unwrap();
    assert_eq!(report.backends["warehouse"].event_types_published, 1);

    let types = db.documents("event_types");
    assert_eq!(types.len(), 1);
    assert_eq!(types[0].get_str("_id").unwrap(), "mongo.enroll@4");
    assert_eq!(types[0].get("version"), Some(&Bson::Int64(4)));
    assert!(types[0].get_datetime("published_at").is_ok());
    let joined = db.aggregate(
        "events",
        [
            doc! {"$match": {"schema": "mongo.enroll@4"}},
            doc! {"$lookup": {"from": "event_types", "localField": "schema", "foreignField": "_id", "as": "type"}},
        ],
    );
    assert_eq!(joined.len(), 1);
    let joined_type = joined[0].get_array("type").unwrap()[0]
        .as_document()
        .unwrap();
    assert_eq!(
        joined_type.get_str("description").unwrap(),
        "A learner enrolled in a course.\n\nEmitted once the enrollment is saved."
    );
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
