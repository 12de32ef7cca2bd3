//! # eventtracking-mongo
//!
//! The MongoDB backend of eventtracking, engine `mongo`: every event becomes
//! one document, written with the official [`mongodb`] driver (3.x, tokio) by
//! unordered `insert_many`. Batching, retries with backoff and dead-lettering
//! are done by the delivery engine of `eventtracking-core`; this crate only
//! turns a batch into documents, inserts them, and says which failed and
//! whether retrying can help.
//!
//! # Config keys
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `uri` | required | a `mongodb://` connection string; credentials and driver options (`tls`, `authSource`, `replicaSet`, `wtimeoutMS`, `maxPoolSize`…) go here. Its password never appears in logs, `Debug` output or errors |
//! | `database` | `"eventtracking"` | the database (a database in the URI's path is only the auth database) |
//! | `collection` | `"events"` | the collection |
//! | `write_concern` | `1` | `w`: a number of nodes (≥ 1), `"majority"`, or a custom write-concern tag name. Overrides a `w` in the URI; `wtimeoutMS` and `journal` come from the URI. `0` (unacknowledged) is refused: failures could not be reported |
//! | `batch_size` | none | the most documents per `insert_many` call: a batch of the engine is split into several calls (a driver/server size limit, not batching: the engine's `[backends.NAME.delivery] batch_size` decides how many events one send gets). Without it one call takes the whole batch (the driver still splits by MongoDB's 100,000 documents / 48 MB per message) |
//! | `create_indexes` | `true` | create the indexes below, once, in the background after the first successful insert (failures are logged, never fatal; a failure from an unreachable server is tried again after a later send) |
//! | `indexes` | `[]` | more indexes: each entry a field path (`"context.user_id"`), `-` first for descending (`"-data.score"`), or a compound index as a comma-separated list (`"context.user_id,-timestamp"`) |
//! | `server_selection_timeout_ms` | `10000` | how long one send waits for a writable server before it fails (retryable), so an unreachable server costs a bounded time; overrides `serverSelectionTimeoutMS` in the URI. Keep it below the engine's `send_timeout_ms` (default 30000) |
//! | `rfc3339_timestamp` | `true` | also store `timestamp_rfc3339`, the exact timestamp as text (see below) |
//! | `catalog_collection` | `"event_types"` | where the documentation of typed events is upserted (see below); `""` turns it off |
//!
//! ```toml
//! [backends.warehouse]
//! engine = "mongo"
//! uri = "mongodb://tracker:secret@db1:27017,db2:27017/?replicaSet=rs0&authSource=admin"
//! database = "eventtracking"
//! collection = "events"
//! write_concern = "majority"
//! indexes = ["context.user_id", "context.course_id,-timestamp"]
//!
//! [backends.warehouse.delivery]
//! batch_size = 1000
//! ```
//!
//! `mongodb+srv://` URIs need the driver's `dns-resolver` feature, which this
//! workspace leaves off to keep builds lean: add
//! `mongodb = { version = "3.9", features = ["dns-resolver"] }` to your
//! application (cargo unifies the features), or list the hosts in a
//! `mongodb://` URI.
//!
//! Link the crate once so that its registration is kept (the `eventtracking`
//! facade's `mongo` feature does this for you):
//!
//! ```
//! use eventtracking_mongo as _;
//! ```
//!
//! # Documents
//!
//! | field | BSON type | from |
//! |---|---|---|
//! | `_id` | Binary, subtype 4 (UUID) | the event id, a UUIDv7: 16 bytes (not 36 characters of text), shown as `UUID("…")` by `mongosh`; ids sort by creation time |
//! | `name` | String | the event name |
//! | `schema` | String | typed events only: `NAME@VERSION`, the `_id` of the event type's entry in the `event_types` collection |
//! | `timestamp` | Date | the event time, **truncated to milliseconds** (BSON dates hold no more): for range queries, sorting and TTL indexes |
//! | `timestamp_rfc3339` | String | the exact time with microseconds, `2026-11-29T01:52:39.123456Z`, as in the JSON-lines form (off with `rfc3339_timestamp = false`) |
//! | `context` | Document | the merged context |
//! | `data` | Document (or the payload's own type when it is not an object) | the payload |
//!
//! Inside `context` and `data`: JSON integers become Int64 (every one, so a
//! field has one type whatever its value), an integer above `i64::MAX` has
//! no BSON form and fails that event (permanently), floats become Double,
//! strings String, arrays Array, objects Document, `null` Null. Keys holding
//! a NUL character and nesting deeper than MongoDB's 100 levels also fail the
//! event. [`event_to_document`] and [`event_from_document`] convert by hand.
//!
//! # The event catalog
//!
//! Before the first event of each typed event type (see
//! [`eventtracking_core::catalog`](mod@eventtracking_core::catalog)) is inserted, its catalog entry is
//! upserted into `catalog_collection` (default `event_types`, same
//! database), once per type per process: `_id` is `NAME@VERSION`, what the
//! events carry in their `schema` field, so
//! `db.events.aggregate([{$lookup: {from: "event_types", localField: "schema", foreignField: "_id", as: "type"}}])`
//! joins events to their documentation. Fields: `name`, `version` (Int64),
//! `description`, `rust_type`, `fields` (an array of `{name, location,
//! description, required}`), `schema` and `context_schema` (the JSON
//! Schemas as JSON text: their `$schema`/`$ref` keys are not valid MongoDB
//! field names everywhere) and `published_at` (Date).
//!
//! # Delivery guarantee
//!
//! At least once, with no duplicates in the collection. The `_id` is the event
//! id, so an event written twice (a batch retried after a timeout, after a
//! network error, or replayed from the dead-letter file) is refused by the
//! server as a duplicate key (code 11000 on the `_id_` index), which this
//! backend counts as delivered. Writes are `insert_many` with
//! `ordered: false`: one bad document does not stop the others. Failures go
//! back to the engine per event ([`BackendError::Partial`](eventtracking_core::BackendError::Partial)):
//!
//! - an event that has no BSON form or whose document is over 16 MiB
//!   ([`MAX_DOCUMENT_BYTES`], checked before sending) is dead-lettered at once,
//!   and the rest of its batch is inserted;
//! - a per-document write error is dead-lettered, or retried when its code is
//!   retryable ([`RETRYABLE_CODES`]); a duplicate key on another unique index
//!   (one of yours) is a permanent failure;
//! - a write concern error (e.g. `majority` not reached within `wtimeoutMS`)
//!   retries the documents of that call;
//! - an error of the whole call (no reachable server, network, not primary…)
//!   is retried when [`is_retryable`] says so, for the events of that call
//!   and those after it; events of earlier calls (see `batch_size`) count as
//!   delivered.
//!
//! The driver also retries a failed write once by itself (retryable writes,
//! on by default; `retryWrites=false` in the URI turns that off). A server
//! that is down when the tracker starts is not an error: the client connects
//! lazily, and events queue and are retried. A URI that cannot be parsed is
//! a build error.
//!
//! # Secrets
//!
//! The URI's password and its credential-bearing parameters (any whose name
//! looks secret by the workspace's one rule,
//! [`eventtracking_core::redact::is_secret_key`]:
//! `tlsCertificateKeyFilePassword`, `authMechanismProperties` with its
//! `AWS_SESSION_TOKEN:…`, …) are replaced by `[REDACTED]` in `Debug` output of
//! [`MongoOptions`], [`MongoBackendBuilder`] and [`MongoBackend`], in build
//! errors, in failure reasons (which go to logs and the dead-letter file) and
//! in this crate's log lines, both in `key=value` form and on their own, as
//! written and percent-decoded (core's
//! [`Redactor`](eventtracking_core::redact::Redactor)). Driver errors are
//! therefore kept as redacted text, not as sources.
//!
//! # Usage
//!
//! ```no_run
//! use std::time::Duration;
//! use eventtracking::{DeliveryConfig, Tracker};
//! use eventtracking_mongo::MongoBackend;
//!
//! let backend = MongoBackend::builder("mongodb://127.0.0.1:27117")
//!     .with_database("eventtracking")
//!     .with_collection("events")
//!     .with_index("context.user_id")
//!     .build()
//!     .unwrap();
//! let tracker = Tracker::builder()
//!     .with_delivery(DeliveryConfig::default().with_batch_size(1000))
//!     .with_backend("warehouse", backend)
//!     .build()
//!     .unwrap();
//! tracker.emit("page.view", serde_json::json!({"url": "/"})).unwrap();
//! tracker.shutdown(Duration::from_secs(10));
//! ```
//!
//! # Runtime
//!
//! The driver runs on tokio. The client is created on the first send, inside
//! the delivery runtime that drives the backend (so [`MongoBackendBuilder::build`]
//! works from any thread and never waits for the server); index creation runs
//! as a task of that runtime.
//!
//! # MSRV
//!
//! Rust 1.85.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(docsrs, deny(rustdoc::broken_intra_doc_links))]

mod backend;
mod builder;
mod catalog;
mod classify;
mod document;
mod error;
mod indexes;
mod options;
mod write;

pub use backend::{MongoBackend, APP_NAME, SUGGESTED_MAX_IN_FLIGHT};
pub use builder::{MongoBackendBuilder, DEFAULT_SERVER_SELECTION_TIMEOUT};
pub use classify::{is_retryable, is_retryable_code, RETRYABLE_CODES};
pub use document::{
    event_from_document, event_to_document, DocumentError, DocumentLayout, MAX_DEPTH,
    MAX_DOCUMENT_BYTES,
};
pub use error::MongoBackendError;
pub use indexes::{default_indexes, IndexSpec, INDEX_RETRY_INTERVAL, INDEX_SHUTDOWN_WAIT};
pub use mongodb;
pub use options::{MongoOptions, DEFAULT_CATALOG_COLLECTION, DEFAULT_COLLECTION, DEFAULT_DATABASE};

use eventtracking_core::sync::lock;
