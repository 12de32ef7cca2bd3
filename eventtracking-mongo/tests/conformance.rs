//! The backend conformance suite (`eventtracking-testkit`) for the MongoDB
//! backend, against the test server: a namespace is a database of its own
//! (collections `events` and `event_types`), dropped at the end.
//!
//! What the cases mean here: an event id stored already is a duplicate
//! `_id`, counted as delivered ([`Idempotence::Store`]); the refused event
//! holds an integer BSON cannot store; the size limit is BSON's 16 MiB; the
//! outage pauses the server (`kill -STOP`, `EVENTTRACKING_TEST_MONGO_PID`);
//! the secret is the URI's password.

mod common;

use common::*;
use eventtracking::{CatalogEntry, DeliveryConfig, Event, JsonMap};
use eventtracking_testkit::servers::mongo_pid;
use eventtracking_testkit::{
    Case, ConformanceTarget, Idempotence, Outage, PausedProcess, RefusedEvent, SecretOptions,
    SizeLimit, Unsupported,
};
use mongodb::bson::{Bson, Document, RawDocumentBuf};
use serde_json::{json, Value};

struct MongoTarget;

fn options(value: Value) -> JsonMap {
    value.as_object().cloned().expect("an object")
}

/// A document of the catalog collection, read back as the entry it was made from.
fn catalog_entry(document: &Document) -> CatalogEntry {
    let mut value = Bson::Document(document.clone()).into_relaxed_extjson();
    let map = value.as_object_mut().expect("a document");
    let key = map.remove("_id").expect("an _id");
    map.insert("key".into(), key);
    map.remove("published_at").expect("published_at");
    for schema in ["schema", "context_schema"] {
        if let Some(Value::String(text)) = map.get(schema) {
            let parsed = serde_json::from_str(text).expect("a schema in JSON");
            map.insert(schema.into(), parsed);
        }
    }
    serde_json::from_value(value).expect("a catalog entry")
}

impl ConformanceTarget for MongoTarget {
    const ENGINE: &'static str = "mongo";
    type Namespace = TestDb;

    fn connect() -> Self {
        MongoTarget
    }

    fn namespace(&self, case: Case) -> TestDb {
        TestDb::new(case.name())
    }

    fn options(&self, db: &TestDb, case: Case) -> JsonMap {
        let mut options = options(json!({"uri": uri(), "database": db.name}));
        if case == Case::Outage {
            // Sends against the paused server fail fast and are retried.
            options.insert("server_selection_timeout_ms".into(), json!(1_500));
        }
        options
    }

    fn delivery(&self, case: Case, delivery: DeliveryConfig) -> DeliveryConfig {
        match case {
            // Each attempt gives up after 2 s (a paused server never answers).
            Case::Outage => delivery.with_send_timeout(std::time::Duration::from_millis(2_000)),
            _ => delivery,
        }
    }

    fn stored_events(&self, db: &TestDb) -> Vec<Event> {
        db.documents("events")
            .iter()
            .map(|document| {
                let raw = RawDocumentBuf::from_document(document).expect("a document");
                eventtracking_mongo::event_from_document(&raw)
                    .unwrap_or_else(|e| panic!("not an event ({e}): {document}"))
            })
            .collect()
    }

    fn stored_catalog(&self, db: &TestDb) -> Vec<CatalogEntry> {
        db.documents("event_types")
            .iter()
            .map(catalog_entry)
            .collect()
    }

    fn idempotence(&self) -> Idempotence {
        Idempotence::Store
    }

    fn refused_event(&self) -> Result<RefusedEvent, Unsupported> {
        Ok(RefusedEvent {
            name: "conformance.refused".into(),
            data: json!({"n": u64::MAX}),
            reason: "`data.n`",
        })
    }

    fn size_limit(&self) -> SizeLimit {
        SizeLimit::Store {
            bytes: 16 << 20,
            reason: "16 MiB",
        }
    }

    fn outage(&self, _db: &TestDb) -> Result<Outage, Unsupported> {
        Ok(Outage::new(PausedProcess::pause(&mongo_pid())))
    }

    fn secret_options(&self, db: &TestDb, secret: &str) -> SecretOptions {
        SecretOptions {
            refused: vec![
                options(json!({"uri": format!("mongodb://user:{secret}@127.0.0.1:notaport/")})),
                options(json!({"uri": format!("mongodb://user:{secret}@h/?w=0")})),
                options(json!({"uri": format!("mongodb://user:{secret}@h/"), "colection": "x"})),
            ],
            built: vec![
                // Nobody listens: retried, then dead-lettered.
                options(json!({
                    "uri": format!("mongodb://user:{secret}@127.0.0.1:1/"),
                    "server_selection_timeout_ms": 300,
                })),
                // The real server, which accepts or refuses the credentials.
                options(json!({
                    "uri": with_credentials(&uri(), "tracker", secret),
                    "database": db.name,
                    "server_selection_timeout_ms": 3_000,
                })),
            ],
            logged: Some("retrying"),
        }
    }
}

eventtracking_testkit::conformance_tests!(MongoTarget);
