//! A batch sent again (after a failure mid-batch, or replayed) stores no
//! duplicates; events that cannot be stored fail alone, by index.

mod common;

use std::sync::Arc;

use common::*;
use eventtracking::{Backend, BackendError, Event};
use eventtracking_mongo::MongoBackend;
use mongodb::bson::doc;
use serde_json::json;

fn events(n: usize) -> Vec<Arc<Event>> {
    (0..n)
        .map(|i| Arc::new(Event::new("retry.test", json!({"i": i})).unwrap()))
        .collect()
}

#[test]
fn a_batch_sent_again_after_a_partial_write_adds_no_duplicates() {
    let db = TestDb::new("idem");
    // Split into calls of 7 documents, so one send makes several insert_many calls.
    let backend = MongoBackend::builder(uri())
        .with_database(&db.name)
        .with_batch_size(7)
        .build()
        .unwrap();
    let all = events(40);
    db.block_on(async {
        // The first 25 were stored before "the failure"...
        backend.send_batch(&all[..25]).await.unwrap();
        // ...and the engine sends the whole batch again: Ok, nothing twice.
        backend.send_batch(&all).await.unwrap();
        backend.send_batch(&all).await.unwrap();
        backend.send_batch(&all[10..20]).await.unwrap();
    });
    assert_eq!(db.count("events"), 40);
    let is: Vec<i64> = db
        .documents("events")
        .iter()
        .map(|d| d.get_document("data").unwrap().get_i64("i").unwrap())
        .collect();
    assert_eq!(is, (0..40).collect::<Vec<i64>>());
}

#[test]
fn unstorable_events_fail_alone_and_by_index() {
    let db = TestDb::new("partial");
    let backend = db.backend(json!({"batch_size": 2}));
    let mut batch = events(3);
    batch.insert(
        1,
        Arc::new(Event::new("too.big.integer", json!({"n": u64::MAX})).unwrap()),
    );
    let mut nul = Event::new("nul.key", json!({})).unwrap();
    nul.context_mut().insert("a\0b".into(), json!(1));
    batch.push(Arc::new(nul));
    let result = db.block_on(backend.send_batch(&batch));
    let Err(BackendError::Partial(failures)) = result else {
        panic!("{result:?}");
    };
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert_eq!(failures[0].index, 1);
    assert!(!failures[0].retryable);
    assert!(
        failures[0].reason.contains("data.n") && failures[0].reason.contains("Int64"),
        "{}",
        failures[0].reason
    );
    assert_eq!(failures[1].index, 4);
    assert!(failures[1].reason.contains("NUL"), "{}", failures[1].reason);
    assert_eq!(db.count("events"), 3);
}

#[test]
fn a_duplicate_on_a_unique_index_of_yours_is_a_permanent_failure() {
    let db = TestDb::new("unique");
    db.block_on(
        db.collection("events").create_index(
            mongodb::IndexModel::builder()
                .keys(doc! {"data.email": 1})
                .options(
                    mongodb::options::IndexOptions::builder()
                        .unique(true)
                        .sparse(true)
                        .build(),
                )
                .build(),
        ),
    )
    .unwrap();
    let backend = db.backend(json!({"create_indexes": false}));
    let batch: Vec<Arc<Event>> = ["a@x", "b@x", "a@x"]
        .iter()
        .map(|email| Arc::new(Event::new("user.signup", json!({"email": email})).unwrap()))
        .collect();
    let result = db.block_on(async {
        let first = backend.send_batch(&batch).await;
        // Sent again: the two stored ones are duplicates of themselves (fine),
        // the third still collides with another event.
        let second = backend.send_batch(&batch).await;
        (first, second)
    });
    for result in [result.0, result.1] {
        let Err(BackendError::Partial(failures)) = result else {
            panic!("{result:?}");
        };
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert_eq!(failures[0].index, 2);
        assert!(!failures[0].retryable);
        assert!(
            failures[0].reason.contains("unique index `data.email_1`"),
            "{}",
            failures[0].reason
        );
    }
    assert_eq!(db.count("events"), 2);
}
