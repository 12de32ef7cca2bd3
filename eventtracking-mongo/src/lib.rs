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
//! back to the engine per event ([`BackendError::Partial`]):
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
//! [`Redactor`]). Driver errors are
//! therefore kept as redacted text, not as sources.
//!
//! # Usage
//!
//! ```no_run
//! use std::time::Duration;
//! use eventtracking_core::{DeliveryConfig, Tracker};
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

mod classify;
mod document;

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use eventtracking_core::redact::Redactor;
use eventtracking_core::registry::{BackendRegistration, ComponentConfig};
use eventtracking_core::{
    async_trait, Backend, BackendError, BackendResult, BuildError, CatalogEntry, Event,
    EventFailure, FieldLocation,
};
use mongodb::bson::{Bson, Document, RawDocumentBuf};
use mongodb::error::{ErrorKind, IndexedWriteError, InsertManyError};
use mongodb::options::{Acknowledgment, ClientOptions, CollectionOptions, WriteConcern};
use mongodb::{Client, Collection, IndexModel};
use serde::{Deserialize, Deserializer};

pub use classify::{is_retryable, is_retryable_code, RETRYABLE_CODES};
pub use document::{
    event_from_document, event_to_document, DocumentError, DocumentLayout, MAX_DEPTH,
    MAX_DOCUMENT_BYTES,
};
pub use mongodb;

/// The default `database`.
pub const DEFAULT_DATABASE: &str = "eventtracking";
/// The default `collection`.
pub const DEFAULT_COLLECTION: &str = "events";
/// The default collection of event type documentation.
pub const DEFAULT_CATALOG_COLLECTION: &str = "event_types";
/// The default `server_selection_timeout_ms`.
pub const DEFAULT_SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// The `appName` the client reports to the server unless the URI sets one.
pub const APP_NAME: &str = "eventtracking";
/// How long shutdown waits for an index creation still running.
pub const INDEX_SHUTDOWN_WAIT: Duration = Duration::from_secs(5);
/// How long after an index creation failed because the server could not be
/// reached a later send tries again.
pub const INDEX_RETRY_INTERVAL: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Why a [`MongoBackend`] could not be built, or indexes created. Messages
/// never hold the URI's password.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum MongoBackendError {
    /// The URI cannot be parsed or names options the driver refuses.
    #[error("`uri` {uri:?}: {reason}")]
    InvalidUri {
        /// The URI, password redacted.
        uri: String,
        /// What is wrong (the driver's message, redacted).
        reason: String,
    },
    /// Another option has a bad value.
    #[error("`{key}`: {reason}")]
    InvalidOption {
        /// The config key.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The client could not be created (e.g. a TLS file cannot be read), or
    /// no tokio runtime was there to run it.
    #[error("cannot create the MongoDB client: {0}")]
    Client(String),
    /// The server refused an operation or could not be reached.
    #[error("MongoDB: {message}")]
    Operation {
        /// The driver's message, redacted.
        message: String,
        /// Whether trying again may help (see [`is_retryable`]).
        retryable: bool,
    },
}

// ---------------------------------------------------------------------------
// Options (config keys)
// ---------------------------------------------------------------------------

/// The config keys of engine `mongo` (see the crate docs), for
/// [`ComponentConfig::parse_options`]. Its `Debug` output hides the URI's password.
///
/// ```
/// use eventtracking_mongo::MongoOptions;
/// let options: MongoOptions = serde_json::from_value(serde_json::json!({
///     "uri": "mongodb://tracker:hunter2@127.0.0.1:27117",
///     "write_concern": "majority",
///     "indexes": ["context.user_id"],
/// }))
/// .unwrap();
/// assert_eq!(options.database, "eventtracking");
/// assert!(!format!("{options:?}").contains("hunter2"));
/// let backend = options.into_builder().build().unwrap();
/// assert_eq!(backend.collection_name(), "events");
/// ```
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MongoOptions {
    /// The connection string.
    pub uri: String,
    /// The database.
    #[serde(default = "default_database")]
    pub database: String,
    /// The collection.
    #[serde(default = "default_collection")]
    pub collection: String,
    /// `w`: nodes, `"majority"` or a tag name (default: the URI's, else 1).
    #[serde(default, deserialize_with = "deserialize_acknowledgment")]
    pub write_concern: Option<Acknowledgment>,
    /// The most documents per `insert_many` call.
    pub batch_size: Option<usize>,
    /// Whether to create indexes in the background.
    #[serde(default = "yes")]
    pub create_indexes: bool,
    /// More indexes (see [`IndexSpec`]).
    #[serde(default)]
    pub indexes: Vec<String>,
    /// How long a send waits for a writable server, in milliseconds.
    pub server_selection_timeout_ms: Option<u64>,
    /// Whether to store `timestamp_rfc3339`.
    #[serde(default = "yes")]
    pub rfc3339_timestamp: bool,
    /// The collection of event type documentation (`""`: none).
    #[serde(default = "default_catalog_collection")]
    pub catalog_collection: String,
}

fn default_catalog_collection() -> String {
    DEFAULT_CATALOG_COLLECTION.to_owned()
}

fn default_database() -> String {
    DEFAULT_DATABASE.to_owned()
}

fn default_collection() -> String {
    DEFAULT_COLLECTION.to_owned()
}

fn yes() -> bool {
    true
}

fn deserialize_acknowledgment<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Acknowledgment>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum W {
        Nodes(u32),
        Text(String),
    }
    Ok(match W::deserialize(deserializer)? {
        W::Nodes(n) => Some(Acknowledgment::Nodes(n)),
        W::Text(text) => Some(parse_acknowledgment(&text)),
    })
}

/// `"majority"`, a number of nodes, or a tag name.
fn parse_acknowledgment(text: &str) -> Acknowledgment {
    match text.trim().parse::<u32>() {
        Ok(n) => Acknowledgment::Nodes(n),
        Err(_) if text.trim() == "majority" => Acknowledgment::Majority,
        Err(_) => Acknowledgment::Custom(text.trim().to_owned()),
    }
}

impl fmt::Debug for MongoOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoOptions")
            .field(
                "uri",
                &Redactor::new().with_uri(&self.uri).redact(&self.uri),
            )
            .field("database", &self.database)
            .field("collection", &self.collection)
            .field("write_concern", &self.write_concern)
            .field("batch_size", &self.batch_size)
            .field("create_indexes", &self.create_indexes)
            .field("indexes", &self.indexes)
            .field(
                "server_selection_timeout_ms",
                &self.server_selection_timeout_ms,
            )
            .field("rfc3339_timestamp", &self.rfc3339_timestamp)
            .field("catalog_collection", &self.catalog_collection)
            .finish()
    }
}

impl MongoOptions {
    /// A [`MongoBackendBuilder`] set up from these options.
    pub fn into_builder(self) -> MongoBackendBuilder {
        let mut builder = MongoBackend::builder(self.uri)
            .with_database(self.database)
            .with_collection(self.collection)
            .with_create_indexes(self.create_indexes)
            .with_layout(DocumentLayout {
                rfc3339_timestamp: self.rfc3339_timestamp,
            });
        builder.write_concern = self.write_concern;
        builder.batch_size = self.batch_size;
        builder.catalog_collection =
            (!self.catalog_collection.is_empty()).then_some(self.catalog_collection);
        builder.server_selection_timeout =
            self.server_selection_timeout_ms.map(Duration::from_millis);
        for index in self.indexes {
            builder = builder.with_index(&index);
        }
        builder
    }
}

// ---------------------------------------------------------------------------
// Indexes
// ---------------------------------------------------------------------------

/// One index: field paths with their direction, e.g. `context.user_id` or
/// `context.course_id,-timestamp` (a compound index, `-` for descending).
///
/// ```
/// use eventtracking_mongo::IndexSpec;
/// let spec: IndexSpec = "context.course_id, -timestamp".parse().unwrap();
/// assert_eq!(spec.keys(), [("context.course_id".to_owned(), 1), ("timestamp".to_owned(), -1)]);
/// assert_eq!(spec.to_string(), "context.course_id,-timestamp");
/// assert!("".parse::<IndexSpec>().is_err());
/// assert!("a..b".parse::<IndexSpec>().is_err());
/// assert!("$bad".parse::<IndexSpec>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    keys: Vec<(String, i32)>,
}

impl IndexSpec {
    /// The field paths and directions (1 ascending, -1 descending), in order.
    pub fn keys(&self) -> &[(String, i32)] {
        &self.keys
    }

    /// The index keys as the driver wants them.
    pub fn model(&self) -> IndexModel {
        let mut keys = Document::new();
        for (path, direction) in &self.keys {
            keys.insert(path.clone(), Bson::Int32(*direction));
        }
        IndexModel::builder().keys(keys).build()
    }
}

impl std::str::FromStr for IndexSpec {
    type Err = MongoBackendError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: String| MongoBackendError::InvalidOption {
            key: "indexes",
            reason: format!("{text:?}: {reason}"),
        };
        let mut keys = Vec::new();
        for part in text.split(',') {
            let part = part.trim();
            let (path, direction) = match part.strip_prefix('-') {
                Some(path) => (path.trim(), -1),
                None => (part.strip_prefix('+').unwrap_or(part).trim(), 1),
            };
            if path.is_empty() {
                return Err(invalid("a field path is empty".into()));
            }
            if path.split('.').any(|p| p.is_empty() || p.starts_with('$')) {
                return Err(invalid(format!(
                    "`{path}` is not a field path (dot-separated names, none empty or starting with `$`)"
                )));
            }
            if path.contains('\0') {
                return Err(invalid("a field path holds a NUL character".into()));
            }
            if keys.iter().any(|(k, _)| k == path) {
                return Err(invalid(format!("`{path}` appears twice")));
            }
            keys.push((path.to_owned(), direction));
        }
        Ok(IndexSpec { keys })
    }
}

impl fmt::Display for IndexSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (path, direction)) in self.keys.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if *direction < 0 {
                f.write_str("-")?;
            }
            f.write_str(path)?;
        }
        Ok(())
    }
}

/// The indexes every collection gets (with `create_indexes`): `timestamp`
/// descending and `name`.
pub fn default_indexes() -> Vec<IndexSpec> {
    vec![
        IndexSpec {
            keys: vec![("timestamp".into(), -1)],
        },
        IndexSpec {
            keys: vec![("name".into(), 1)],
        },
    ]
}

// ---------------------------------------------------------------------------
// Builder
// ---------------------------------------------------------------------------

/// Builds a [`MongoBackend`]; see [`MongoBackend::builder`]. Its `Debug`
/// output hides the URI's password.
///
/// ```
/// use std::time::Duration;
/// use eventtracking_mongo::MongoBackend;
/// use eventtracking_mongo::mongodb::options::Acknowledgment;
///
/// let backend = MongoBackend::builder("mongodb://127.0.0.1:27117/?appName=shop")
///     .with_database("analytics")
///     .with_collection("events")
///     .with_write_concern(Acknowledgment::Majority)
///     .with_batch_size(1000)
///     .with_index("context.user_id")
///     .with_server_selection_timeout(Duration::from_secs(5))
///     .build()
///     .unwrap(); // no server needed: the client connects on the first send
/// assert_eq!(backend.database_name(), "analytics");
/// assert_eq!(backend.indexes().len(), 3);
///
/// let err = MongoBackend::builder("mongodb://app:hunter2@127.0.0.1:notaport/").build().unwrap_err();
/// assert!(err.to_string().contains("port") && !err.to_string().contains("hunter2"), "{err}");
/// ```
#[derive(Clone)]
pub struct MongoBackendBuilder {
    uri: String,
    database: String,
    collection: String,
    write_concern: Option<Acknowledgment>,
    batch_size: Option<usize>,
    create_indexes: bool,
    indexes: Vec<Result<IndexSpec, MongoBackendError>>,
    server_selection_timeout: Option<Duration>,
    layout: DocumentLayout,
    catalog_collection: Option<String>,
}

impl fmt::Debug for MongoBackendBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoBackendBuilder")
            .field(
                "uri",
                &Redactor::new().with_uri(&self.uri).redact(&self.uri),
            )
            .field("database", &self.database)
            .field("collection", &self.collection)
            .field("write_concern", &self.write_concern)
            .field("batch_size", &self.batch_size)
            .field("create_indexes", &self.create_indexes)
            .field("indexes", &self.indexes)
            .field("server_selection_timeout", &self.server_selection_timeout)
            .field("catalog_collection", &self.catalog_collection)
            .field("layout", &self.layout)
            .finish()
    }
}

impl MongoBackendBuilder {
    /// The database (default `eventtracking`).
    pub fn with_database(mut self, database: impl Into<String>) -> Self {
        self.database = database.into();
        self
    }

    /// The collection (default `events`).
    pub fn with_collection(mut self, collection: impl Into<String>) -> Self {
        self.collection = collection.into();
        self
    }

    /// The write concern's `w` (default: the URI's, else 1). `Nodes(0)` is refused by
    /// [`build`](Self::build).
    pub fn with_write_concern(mut self, w: Acknowledgment) -> Self {
        self.write_concern = Some(w);
        self
    }

    /// At most `n` documents per `insert_many` call (default: the whole batch in one call).
    pub fn with_batch_size(mut self, n: usize) -> Self {
        self.batch_size = Some(n);
        self
    }

    /// Whether to create the indexes in the background after the first insert (default true).
    pub fn with_create_indexes(mut self, create: bool) -> Self {
        self.create_indexes = create;
        self
    }

    /// One more index, as [`IndexSpec`] text (`"context.user_id"`,
    /// `"context.course_id,-timestamp"`); checked by [`build`](Self::build).
    pub fn with_index(mut self, spec: &str) -> Self {
        self.indexes.push(spec.parse());
        self
    }

    /// How long a send waits for a writable server (default 10 s).
    pub fn with_server_selection_timeout(mut self, timeout: Duration) -> Self {
        self.server_selection_timeout = Some(timeout);
        self
    }

    /// How events are laid out as documents.
    pub fn with_layout(mut self, layout: DocumentLayout) -> Self {
        self.layout = layout;
        self
    }

    /// Where the documentation of event types is upserted (default
    /// `event_types`; `None`: nowhere).
    pub fn with_catalog_collection(mut self, collection: Option<String>) -> Self {
        self.catalog_collection = collection;
        self
    }

    /// Checks everything and parses the URI. Does not connect, and needs no
    /// runtime: the client is created on the first send.
    pub fn build(self) -> Result<MongoBackend, MongoBackendError> {
        let redactor = Redactor::new().with_uri(&self.uri);
        check_database(&self.database)?;
        check_collection(&self.collection)?;
        if let Some(catalog) = &self.catalog_collection {
            check_collection(catalog)?;
        }
        if self.batch_size == Some(0) {
            return Err(MongoBackendError::InvalidOption {
                key: "batch_size",
                reason: "must be at least 1".into(),
            });
        }
        if self.server_selection_timeout == Some(Duration::ZERO) {
            return Err(MongoBackendError::InvalidOption {
                key: "server_selection_timeout_ms",
                reason: "must be at least 1".into(),
            });
        }
        let invalid_uri = |reason: String| MongoBackendError::InvalidUri {
            uri: redactor.redact(&self.uri).into_owned(),
            reason: redactor.redact(&reason).into_owned(),
        };
        let uri = self.uri.trim();
        if !uri.starts_with("mongodb://") && !uri.starts_with("mongodb+srv://") {
            return Err(invalid_uri(
                "expected a connection string starting with `mongodb://`".into(),
            ));
        }
        let options = match parse_now(uri) {
            Poll::Ready(Ok(options)) => OptionsState::Ready(Box::new(options)),
            Poll::Ready(Err(error)) => {
                let mut reason = error.kind.to_string();
                if uri.starts_with("mongodb+srv://") {
                    reason.push_str(
                        " (mongodb+srv:// needs the mongodb crate's `dns-resolver` feature; \
                         or list the hosts in a mongodb:// URI)",
                    );
                }
                return Err(invalid_uri(reason));
            }
            Poll::Pending => OptionsState::Srv(uri.to_owned()),
        };
        let redactor = match &options {
            OptionsState::Ready(options) => match options
                .credential
                .as_ref()
                .and_then(|c| c.password.as_deref())
            {
                Some(password) => redactor.with_secret(password),
                None => redactor,
            },
            OptionsState::Srv(_) => redactor,
        };
        let write_concern = match &options {
            OptionsState::Ready(options) => Some(write_concern(
                options.write_concern.clone(),
                &self.write_concern,
            )?),
            OptionsState::Srv(_) => None,
        };
        if let Some(Acknowledgment::Nodes(0)) = self.write_concern {
            return Err(unacknowledged());
        }
        let mut indexes = if self.create_indexes {
            default_indexes()
        } else {
            Vec::new()
        };
        for spec in self.indexes {
            let spec = spec?;
            if !indexes.contains(&spec) {
                indexes.push(spec);
            }
        }
        if !self.create_indexes {
            indexes.clear();
        }
        Ok(MongoBackend {
            inner: Arc::new(Inner {
                uri_shown: redactor.redact(uri).into_owned(),
                options: Mutex::new(options),
                database: self.database,
                collection_name: self.collection,
                w: self.write_concern,
                write_concern,
                batch_size: self.batch_size,
                server_selection_timeout: self
                    .server_selection_timeout
                    .unwrap_or(DEFAULT_SERVER_SELECTION_TIMEOUT),
                layout: self.layout,
                indexes,
                redactor,
                collection: Mutex::new(None),
                index_state: AtomicU8::new(INDEX_IDLE),
                index_attempt: Mutex::new(None),
                index_task: Mutex::new(None),
                shut_down: AtomicBool::new(false),
                catalog_collection: self.catalog_collection,
            }),
        })
    }
}

fn unacknowledged() -> MongoBackendError {
    MongoBackendError::InvalidOption {
        key: "write_concern",
        reason: "w: 0 (unacknowledged writes) is not supported: failures could not be reported \
                 and events would be lost silently"
            .into(),
    }
}

/// The URI's write concern with `w` replaced by the configured one (default 1).
fn write_concern(
    from_uri: Option<WriteConcern>,
    w: &Option<Acknowledgment>,
) -> Result<WriteConcern, MongoBackendError> {
    let mut concern = from_uri.unwrap_or_default();
    if let Some(w) = w {
        concern.w = Some(w.clone());
    }
    if concern.w.is_none() {
        concern.w = Some(Acknowledgment::Nodes(1));
    }
    if concern.w == Some(Acknowledgment::Nodes(0)) {
        return Err(unacknowledged());
    }
    Ok(concern)
}

fn check_database(name: &str) -> Result<(), MongoBackendError> {
    let reason = if name.is_empty() {
        Some("the database name is empty".to_owned())
    } else if name.len() > 63 {
        Some(format!(
            "{name:?} is {} bytes long, MongoDB allows at most 63",
            name.len()
        ))
    } else {
        name.chars()
            .find(|c| "/\\. \"$*<>:|?\0".contains(*c))
            .map(|c| format!("{name:?}: MongoDB database names cannot hold {c:?}"))
    };
    match reason {
        Some(reason) => Err(MongoBackendError::InvalidOption {
            key: "database",
            reason,
        }),
        None => Ok(()),
    }
}

fn check_collection(name: &str) -> Result<(), MongoBackendError> {
    let reason = if name.is_empty() {
        Some("the collection name is empty".to_owned())
    } else if name.contains('$') || name.contains('\0') {
        Some(format!(
            "{name:?}: MongoDB collection names cannot hold `$` or NUL"
        ))
    } else if name.starts_with("system.") {
        Some(format!(
            "{name:?}: the `system.` prefix is reserved by MongoDB"
        ))
    } else if name.len() > 255 {
        Some(format!(
            "{name:?} is {} bytes long, at most 255 are allowed",
            name.len()
        ))
    } else {
        None
    };
    match reason {
        Some(reason) => Err(MongoBackendError::InvalidOption {
            key: "collection",
            reason,
        }),
        None => Ok(()),
    }
}

/// Parses a connection string without a runtime: a `mongodb://` URI needs no
/// I/O, so the driver's future is ready at the first poll. Only an SRV lookup
/// (`mongodb+srv://` with the `dns-resolver` feature) would wait; that one is
/// left for the first send.
fn parse_now(uri: &str) -> Poll<mongodb::error::Result<ClientOptions>> {
    let future = ClientOptions::parse(uri).into_future();
    let mut future = pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    future.as_mut().poll(&mut context)
}

// ---------------------------------------------------------------------------
// The backend
// ---------------------------------------------------------------------------

enum OptionsState {
    Ready(Box<ClientOptions>),
    /// A `mongodb+srv://` URI, resolved on the first send.
    Srv(String),
}

const INDEX_IDLE: u8 = 0;
const INDEX_RUNNING: u8 = 1;
const INDEX_DONE: u8 = 2;
const INDEX_FAILED: u8 = 3;

struct Inner {
    uri_shown: String,
    options: Mutex<OptionsState>,
    database: String,
    collection_name: String,
    w: Option<Acknowledgment>,
    /// Known once the options are (at build time unless SRV).
    write_concern: Option<WriteConcern>,
    batch_size: Option<usize>,
    server_selection_timeout: Duration,
    layout: DocumentLayout,
    indexes: Vec<IndexSpec>,
    redactor: Redactor,
    collection: Mutex<Option<Collection<RawDocumentBuf>>>,
    index_state: AtomicU8,
    index_attempt: Mutex<Option<Instant>>,
    index_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    shut_down: AtomicBool,
    catalog_collection: Option<String>,
}

/// Writes events to a MongoDB collection; see the crate docs for the
/// document layout and guarantees. Cheap to clone (clones share the client).
#[derive(Clone)]
pub struct MongoBackend {
    inner: Arc<Inner>,
}

impl fmt::Debug for MongoBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("MongoBackend")
            .field("uri", &inner.uri_shown)
            .field("database", &inner.database)
            .field("collection", &inner.collection_name)
            .field("w", &inner.w)
            .field("batch_size", &inner.batch_size)
            .field("server_selection_timeout", &inner.server_selection_timeout)
            .field("layout", &inner.layout)
            .field(
                "indexes",
                &inner
                    .indexes
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl MongoBackend {
    /// A builder writing to `uri` (a `mongodb://` connection string),
    /// database `eventtracking`, collection `events`.
    pub fn builder(uri: impl Into<String>) -> MongoBackendBuilder {
        MongoBackendBuilder {
            uri: uri.into(),
            database: DEFAULT_DATABASE.to_owned(),
            collection: DEFAULT_COLLECTION.to_owned(),
            write_concern: None,
            batch_size: None,
            create_indexes: true,
            indexes: Vec::new(),
            server_selection_timeout: None,
            layout: DocumentLayout::default(),
            catalog_collection: Some(DEFAULT_CATALOG_COLLECTION.to_owned()),
        }
    }

    /// The database name.
    pub fn database_name(&self) -> &str {
        &self.inner.database
    }

    /// The collection name.
    pub fn collection_name(&self) -> &str {
        &self.inner.collection_name
    }

    /// The write concern used for inserts (`None` until a `mongodb+srv://`
    /// URI is resolved).
    pub fn write_concern(&self) -> Option<&WriteConcern> {
        self.inner.write_concern.as_ref()
    }

    /// The indexes this backend creates (empty with `create_indexes = false`).
    pub fn indexes(&self) -> &[IndexSpec] {
        &self.inner.indexes
    }

    /// The document layout.
    pub fn layout(&self) -> DocumentLayout {
        self.inner.layout
    }

    /// The redactor for this backend's URI, for messages of your own.
    pub fn redactor(&self) -> &Redactor {
        &self.inner.redactor
    }

    /// The collection events go to, creating the client on first use. Must
    /// be called inside a tokio runtime (the client's background tasks run
    /// there).
    pub async fn collection(&self) -> Result<Collection<RawDocumentBuf>, MongoBackendError> {
        if let Some(collection) = lock(&self.inner.collection).as_ref() {
            return Ok(collection.clone());
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(MongoBackendError::Client(
                "no tokio runtime: the MongoDB driver runs on tokio".into(),
            ));
        }
        let mut options = self.client_options().await?;
        options.server_selection_timeout = Some(self.inner.server_selection_timeout);
        if options.app_name.is_none() {
            options.app_name = Some(APP_NAME.to_owned());
        }
        let concern = match &self.inner.write_concern {
            Some(concern) => concern.clone(),
            None => write_concern(options.write_concern.clone(), &self.inner.w)?,
        };
        let mut slot = lock(&self.inner.collection);
        if let Some(collection) = slot.as_ref() {
            return Ok(collection.clone());
        }
        let client = Client::with_options(options)
            .map_err(|e| MongoBackendError::Client(self.redact(&e.kind.to_string())))?;
        let collection = client
            .database(&self.inner.database)
            .collection_with_options(
                &self.inner.collection_name,
                CollectionOptions::builder().write_concern(concern).build(),
            );
        *slot = Some(collection.clone());
        Ok(collection)
    }

    async fn client_options(&self) -> Result<ClientOptions, MongoBackendError> {
        let srv = match &*lock(&self.inner.options) {
            OptionsState::Ready(options) => return Ok((**options).clone()),
            OptionsState::Srv(uri) => uri.clone(),
        };
        let options = ClientOptions::parse(srv.as_str()).await.map_err(|e| {
            MongoBackendError::InvalidUri {
                uri: self.inner.uri_shown.clone(),
                reason: self.redact(&e.kind.to_string()),
            }
        })?;
        *lock(&self.inner.options) = OptionsState::Ready(Box::new(options.clone()));
        Ok(options)
    }

    /// Creates the indexes now and waits for the server (the backend also
    /// does this by itself, in the background, after its first insert). Returns
    /// the names of the indexes.
    pub async fn ensure_indexes(&self) -> Result<Vec<String>, MongoBackendError> {
        let collection = self.collection().await?;
        let names = create_indexes(&collection, &self.inner.indexes, &self.inner.redactor).await?;
        self.inner.index_state.store(INDEX_DONE, Ordering::SeqCst);
        Ok(names)
    }

    fn redact(&self, text: &str) -> String {
        self.inner.redactor.redact(text).into_owned()
    }

    /// Starts the background index creation unless it ran, runs, or failed
    /// for good (or failed for a retryable reason less than
    /// [`INDEX_RETRY_INTERVAL`] ago).
    fn start_indexes(&self, collection: &Collection<RawDocumentBuf>) {
        let inner = &self.inner;
        if inner.indexes.is_empty() || inner.index_state.load(Ordering::SeqCst) != INDEX_IDLE {
            return;
        }
        if let Some(at) = *lock(&inner.index_attempt) {
            if at.elapsed() < INDEX_RETRY_INTERVAL {
                return;
            }
        }
        if inner
            .index_state
            .compare_exchange(
                INDEX_IDLE,
                INDEX_RUNNING,
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .is_err()
        {
            return;
        }
        *lock(&inner.index_attempt) = Some(Instant::now());
        let collection = collection.clone();
        let backend = Arc::downgrade(&self.inner);
        let indexes = inner.indexes.clone();
        let redactor = inner.redactor.clone();
        let target = format!("{}.{}", inner.database, inner.collection_name);
        let task = tokio::spawn(async move {
            let result = create_indexes(&collection, &indexes, &redactor).await;
            let state = match &result {
                Ok(names) => {
                    tracing::debug!(collection = %target, ?names, "eventtracking-mongo: indexes ready");
                    INDEX_DONE
                }
                Err(MongoBackendError::Operation {
                    message,
                    retryable: true,
                }) => {
                    tracing::warn!(
                        collection = %target,
                        error = %message,
                        "eventtracking-mongo: cannot create indexes yet; will try again with a later send"
                    );
                    INDEX_IDLE
                }
                Err(error) => {
                    tracing::error!(
                        collection = %target,
                        %error,
                        "eventtracking-mongo: cannot create indexes; events are still written"
                    );
                    INDEX_FAILED
                }
            };
            if let Some(inner) = backend.upgrade() {
                inner.index_state.store(state, Ordering::SeqCst);
            }
        });
        *lock(&inner.index_task) = Some(task);
    }

    /// One `insert_many` of `docs` (the events at `indices` of the batch).
    /// `Err` is an error of the whole call: (retryable, reason).
    async fn insert(
        &self,
        collection: &Collection<RawDocumentBuf>,
        batch: &[Arc<Event>],
        docs: &[RawDocumentBuf],
        indices: &[usize],
        failures: &mut Vec<EventFailure>,
    ) -> Result<(), (bool, String)> {
        let error = match collection.insert_many(docs).ordered(false).await {
            Ok(_) => return Ok(()),
            Err(error) => error,
        };
        match &*error.kind {
            ErrorKind::InsertMany(insert) => {
                let unsure = self.write_failures(insert, batch, indices, failures);
                if !unsure.is_empty() {
                    self.resolve_duplicates(collection, batch, unsure, failures)
                        .await;
                }
                Ok(())
            }
            kind => Err((
                is_retryable(&error),
                self.redact(&format!("mongo: insert_many failed: {kind}")),
            )),
        }
    }

    /// The per-document failures of an unordered `insert_many`. Returns the
    /// duplicate-key failures on other unique indexes than `_id`: the event
    /// may be stored already (the server reports one violated index, not
    /// necessarily `_id`'s), which only a look-up can tell.
    fn write_failures(
        &self,
        insert: &InsertManyError,
        batch: &[Arc<Event>],
        indices: &[usize],
        failures: &mut Vec<EventFailure>,
    ) -> Vec<EventFailure> {
        let mut failed = vec![false; indices.len()];
        let mut unsure = Vec::new();
        for error in insert.write_errors.iter().flatten() {
            let Some(&index) = indices.get(error.index) else {
                continue;
            };
            failed[error.index] = true;
            match self.write_failure(error, index, &batch[index]) {
                WriteOutcome::Stored => {}
                WriteOutcome::Failed(failure) => failures.push(failure),
                WriteOutcome::OtherDuplicate(failure) => unsure.push(failure),
            }
        }
        if let Some(concern) = &insert.write_concern_error {
            let retryable = classify::is_retryable_write_concern(concern);
            let reason = self.redact(&format!(
                "mongo: write concern not satisfied: error {} ({}): {}",
                concern.code, concern.code_name, concern.message
            ));
            for (position, &index) in indices.iter().enumerate() {
                if !failed[position] {
                    failures.push(EventFailure {
                        index,
                        retryable,
                        reason: reason.clone(),
                    });
                }
            }
        }
        unsure
    }

    /// Of events refused as duplicates on another unique index, those whose
    /// `_id` is in the collection were stored before (delivered); the others
    /// collide with a different event (a permanent failure). If the look-up
    /// fails, they are retried.
    async fn resolve_duplicates(
        &self,
        collection: &Collection<RawDocumentBuf>,
        batch: &[Arc<Event>],
        unsure: Vec<EventFailure>,
        failures: &mut Vec<EventFailure>,
    ) {
        let ids: Vec<Bson> = unsure
            .iter()
            .map(|f| {
                Bson::Binary(mongodb::bson::Binary {
                    subtype: mongodb::bson::spec::BinarySubtype::Uuid,
                    bytes: batch[f.index].id().as_bytes().to_vec(),
                })
            })
            .collect();
        let stored = async {
            let mut cursor = collection
                .find(mongodb::bson::doc! {"_id": {"$in": ids}})
                .projection(mongodb::bson::doc! {"_id": 1})
                .await?;
            let mut stored = std::collections::HashSet::new();
            while cursor.advance().await? {
                if let Ok(id) = cursor.current().get_binary("_id") {
                    stored.insert(id.bytes.to_vec());
                }
            }
            Ok::<_, mongodb::error::Error>(stored)
        }
        .await;
        match stored {
            Ok(stored) => failures.extend(
                unsure
                    .into_iter()
                    .filter(|f| !stored.contains(&batch[f.index].id().as_bytes()[..])),
            ),
            Err(error) => {
                let reason = self.redact(&format!(
                    "mongo: duplicate key; cannot tell whether the event is stored already: {}",
                    error.kind
                ));
                failures.extend(unsure.into_iter().map(|f| EventFailure {
                    retryable: true,
                    reason: reason.clone(),
                    ..f
                }));
            }
        }
    }

    /// One document's write error.
    fn write_failure(
        &self,
        error: &IndexedWriteError,
        index: usize,
        event: &Event,
    ) -> WriteOutcome {
        let code_name = error.code_name.as_deref().unwrap_or("");
        if error.code == 11000 {
            return match duplicate_key_index(&error.message) {
                None | Some("_id_") => WriteOutcome::Stored,
                Some(other) => WriteOutcome::OtherDuplicate(EventFailure {
                    index,
                    retryable: false,
                    reason: self.redact(&format!(
                        "mongo: event `{}`: duplicate key on unique index `{other}`: {}",
                        event.name(),
                        error.message
                    )),
                }),
            };
        }
        WriteOutcome::Failed(EventFailure {
            index,
            retryable: is_retryable_code(error.code),
            reason: self.redact(&format!(
                "mongo: event `{}`: write error {} ({code_name}): {}",
                event.name(),
                error.code,
                error.message
            )),
        })
    }
}

/// What a per-document write error means.
enum WriteOutcome {
    /// A duplicate `_id`: the event was stored before.
    Stored,
    /// A failure.
    Failed(EventFailure),
    /// A duplicate on another unique index: stored before, or a real clash.
    OtherDuplicate(EventFailure),
}

/// The index named in a duplicate key message (`... index: _id_ dup key: ...`).
fn duplicate_key_index(message: &str) -> Option<&str> {
    let at = message.find(" index: ")?;
    message[at + " index: ".len()..].split_whitespace().next()
}

async fn create_indexes(
    collection: &Collection<RawDocumentBuf>,
    indexes: &[IndexSpec],
    redactor: &Redactor,
) -> Result<Vec<String>, MongoBackendError> {
    if indexes.is_empty() {
        return Ok(Vec::new());
    }
    collection
        .create_indexes(indexes.iter().map(IndexSpec::model))
        .await
        .map(|result| result.index_names)
        .map_err(|error| MongoBackendError::Operation {
            message: redactor.redact(&error.kind.to_string()).into_owned(),
            retryable: is_retryable(&error),
        })
}

#[async_trait]
impl Backend for MongoBackend {
    async fn send_batch(&self, batch: &[Arc<Event>]) -> BackendResult {
        if self.inner.shut_down.load(Ordering::SeqCst) {
            return Err(BackendError::AlreadyShutdown);
        }
        if batch.is_empty() {
            return Ok(());
        }
        let collection = self.collection().await.map_err(|error| match error {
            MongoBackendError::Operation {
                retryable: true,
                message,
            } => BackendError::Retryable(format!("mongo: {message}")),
            // An SRV lookup may fail for a moment.
            MongoBackendError::InvalidUri { .. } if self.is_srv() => {
                BackendError::Retryable(format!("mongo: {error}"))
            }
            error => BackendError::Permanent(format!("mongo: {error}")),
        })?;
        let mut failures = Vec::new();
        let mut docs = Vec::with_capacity(batch.len());
        let mut indices = Vec::with_capacity(batch.len());
        for (index, event) in batch.iter().enumerate() {
            match self.inner.layout.encode(event) {
                Ok(doc) => {
                    docs.push(doc);
                    indices.push(index);
                }
                Err(error) => failures.push(EventFailure {
                    index,
                    retryable: false,
                    reason: self.redact(&format!("mongo: event `{}`: {error}", event.name())),
                }),
            }
        }
        let chunk = self.inner.batch_size.unwrap_or(usize::MAX);
        let mut whole_error: Option<(bool, String)> = None;
        let mut some_call_succeeded = false;
        for (docs, indices) in docs.chunks(chunk).zip(indices.chunks(chunk)) {
            if whole_error.is_none() {
                match self
                    .insert(&collection, batch, docs, indices, &mut failures)
                    .await
                {
                    Ok(()) => {
                        some_call_succeeded = true;
                        continue;
                    }
                    Err(error) => whole_error = Some(error),
                }
            }
            // This call and every later one share the first call error.
            if let Some((retryable, reason)) = &whole_error {
                failures.extend(indices.iter().map(|&index| EventFailure {
                    index,
                    retryable: *retryable,
                    reason: reason.clone(),
                }));
            }
        }
        if some_call_succeeded {
            // After an insert, so the collection exists: building indexes
            // while the same call creates the collection is avoidable work
            // (and hangs some MongoDB-compatible servers).
            self.start_indexes(&collection);
        }
        if failures.is_empty() {
            return Ok(());
        }
        if let Some((retryable, reason)) = whole_error {
            if !some_call_succeeded
                && failures.len() == batch.len()
                && failures.iter().all(|f| f.reason == reason)
            {
                return Err(if retryable {
                    BackendError::Retryable(reason)
                } else {
                    BackendError::Permanent(reason)
                });
            }
        }
        failures.sort_by_key(|f| f.index);
        Err(BackendError::Partial(failures))
    }

    /// Upserts each entry into the catalog collection, keyed by
    /// `NAME@VERSION` (see the crate docs).
    async fn publish_event_types(&self, types: &[Arc<CatalogEntry>]) -> BackendResult {
        let Some(catalog) = &self.inner.catalog_collection else {
            return Ok(());
        };
        let events = self.collection().await.map_err(|error| {
            BackendError::Retryable(format!(
                "mongo: catalog: {}",
                self.redact(&error.to_string())
            ))
        })?;
        let collection: Collection<Document> = events
            .client()
            .database(&self.inner.database)
            .collection(catalog);
        for entry in types {
            let document = catalog_document(entry);
            collection
                .replace_one(mongodb::bson::doc! {"_id": entry.key.as_str()}, document)
                .upsert(true)
                .await
                .map_err(|error| {
                    let reason = self.redact(&format!(
                        "mongo: cannot upsert event type `{}` into `{catalog}`: {}",
                        entry.key, error.kind
                    ));
                    if classify::is_retryable(&error) {
                        BackendError::Retryable(reason)
                    } else {
                        BackendError::Permanent(reason)
                    }
                })?;
        }
        Ok(())
    }

    /// Lets an index creation still running finish (for at most
    /// [`INDEX_SHUTDOWN_WAIT`], so that a short-lived process gets its
    /// indexes too), then refuses further sends.
    async fn shutdown(&self) -> BackendResult {
        self.inner.shut_down.store(true, Ordering::SeqCst);
        let task = lock(&self.inner.index_task).take();
        if let Some(mut task) = task {
            if tokio::time::timeout(INDEX_SHUTDOWN_WAIT, &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
        Ok(())
    }
}

/// A catalog entry as a document of the catalog collection.
fn catalog_document(entry: &CatalogEntry) -> Document {
    let fields: Vec<Bson> = entry
        .fields
        .iter()
        .map(|field| {
            Bson::Document(mongodb::bson::doc! {
                "name": field.name.as_str(),
                "location": match field.location {
                    FieldLocation::Data => "data",
                    FieldLocation::Context => "context",
                },
                "description": field.description.as_str(),
                "required": field.required,
            })
        })
        .collect();
    let mut document = mongodb::bson::doc! {
        "_id": entry.key.as_str(),
        "name": entry.name.as_str(),
        "version": i64::from(entry.version),
        "description": entry.description.as_str(),
        "rust_type": entry.rust_type.as_str(),
        "fields": fields,
        "schema": entry.schema.to_string(),
        "published_at": mongodb::bson::DateTime::now(),
    };
    if let Some(context_schema) = &entry.context_schema {
        document.insert("context_schema", context_schema.to_string());
    }
    document
}

impl MongoBackend {
    fn is_srv(&self) -> bool {
        matches!(&*lock(&self.inner.options), OptionsState::Srv(_))
    }
}

// ---------------------------------------------------------------------------
// Registration
// ---------------------------------------------------------------------------

fn build(config: &ComponentConfig) -> Result<Box<dyn Backend>, BuildError> {
    let options: MongoOptions = config.parse_options()?;
    let backend = options
        .into_builder()
        .build()
        .map_err(|error| config.invalid(error.to_string()))?;
    Ok(Box::new(backend))
}

eventtracking_core::register_backend! {
    BackendRegistration::new(
        "mongo",
        "one MongoDB document per event (`uri`, `database`, `collection`), unordered insert_many, idempotent on the event id",
        build,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_key_messages_name_their_index() {
        assert_eq!(
            duplicate_key_index(
                "E11000 duplicate key error collection: db.events index: _id_ dup key: { _id: 1 }"
            ),
            Some("_id_")
        );
        assert_eq!(
            duplicate_key_index(
                "E11000 duplicate key error collection: db.c index: u_1 dup key: { u: 1 }"
            ),
            Some("u_1")
        );
        assert_eq!(duplicate_key_index("E11000 duplicate key"), None);
    }

    #[test]
    fn write_concerns_are_parsed_and_w0_refused() {
        assert_eq!(parse_acknowledgment("majority"), Acknowledgment::Majority);
        assert_eq!(parse_acknowledgment("2"), Acknowledgment::Nodes(2));
        assert_eq!(
            parse_acknowledgment("dc-east"),
            Acknowledgment::Custom("dc-east".into())
        );
        let concern = write_concern(None, &None).unwrap();
        assert_eq!(concern.w, Some(Acknowledgment::Nodes(1)));
        assert!(write_concern(None, &Some(Acknowledgment::Nodes(0))).is_err());
        let err = MongoBackend::builder("mongodb://h/?w=0")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("w: 0"), "{err}");
        let err = MongoBackend::builder("mongodb://h/")
            .with_write_concern(Acknowledgment::Nodes(0))
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("unacknowledged"), "{err}");
        // The URI's wtimeout and journal are kept; `w` is replaced.
        let backend = MongoBackend::builder("mongodb://h/?w=2&wtimeoutMS=1500&journal=true")
            .with_write_concern(Acknowledgment::Majority)
            .build()
            .unwrap();
        let concern = backend.write_concern().unwrap();
        assert_eq!(concern.w, Some(Acknowledgment::Majority));
        assert_eq!(concern.w_timeout, Some(Duration::from_millis(1500)));
        assert_eq!(concern.journal, Some(true));
    }

    #[test]
    fn options_are_checked_at_build_time() {
        let cases: &[(MongoBackendBuilder, &str)] = &[
            (
                MongoBackend::builder("mongodb://h/").with_database("a.b"),
                "database",
            ),
            (
                MongoBackend::builder("mongodb://h/").with_database(""),
                "database",
            ),
            (
                MongoBackend::builder("mongodb://h/").with_collection("system.x"),
                "collection",
            ),
            (
                MongoBackend::builder("mongodb://h/").with_collection("a$b"),
                "collection",
            ),
            (
                MongoBackend::builder("mongodb://h/").with_batch_size(0),
                "batch_size",
            ),
            (
                MongoBackend::builder("mongodb://h/").with_index("a,,b"),
                "indexes",
            ),
            (
                MongoBackend::builder("mongodb://h/").with_index("a,-a"),
                "indexes",
            ),
            (MongoBackend::builder("http://h/"), "uri"),
            (
                MongoBackend::builder("mongodb://h/?socketTimeoutMS=5"),
                "uri",
            ),
            (
                MongoBackend::builder("mongodb+srv://u:pw-srv-123@cluster.example.com/"),
                "dns-resolver",
            ),
        ];
        for (builder, word) in cases {
            let err = builder.clone().build().unwrap_err().to_string();
            assert!(err.contains(word), "{builder:?}: {err}");
            assert!(!err.contains("pw-srv-123"), "{err}");
        }
        let backend = MongoBackend::builder("mongodb://h/")
            .with_index("name")
            .with_index("context.user_id")
            .build()
            .unwrap();
        let shown: Vec<_> = backend.indexes().iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["-timestamp", "name", "context.user_id"]);
        let backend = MongoBackend::builder("mongodb://h/")
            .with_create_indexes(false)
            .with_index("context.user_id")
            .build()
            .unwrap();
        assert!(backend.indexes().is_empty());
    }

    #[test]
    fn debug_output_hides_the_password() {
        let uri = "mongodb://app:pw-debug-77@h:27017/?authSource=admin";
        let builder = MongoBackend::builder(uri);
        let backend = builder.clone().build().unwrap();
        let options: MongoOptions =
            serde_json::from_value(serde_json::json!({ "uri": uri })).unwrap();
        for text in [
            format!("{builder:?}"),
            format!("{backend:#?}"),
            format!("{options:?}"),
            format!("{:?}", backend.redactor()),
        ] {
            assert!(!text.contains("pw-debug-77"), "{text}");
        }
        assert!(format!("{backend:?}").contains("app:[REDACTED]@h:27017"));
    }
}
