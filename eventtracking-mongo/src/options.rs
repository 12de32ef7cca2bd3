//! [`MongoOptions`]: the config keys of engine `mongo` with their serde
//! helpers, and the engine's registration.

use std::fmt;
use std::time::Duration;

use eventtracking_core::redact::Redactor;
use eventtracking_core::registry::{BackendRegistration, ComponentConfig};
use eventtracking_core::{Backend, BuildError};
use mongodb::options::Acknowledgment;
use serde::{Deserialize, Deserializer};

use crate::{DocumentLayout, MongoBackend, MongoBackendBuilder};

/// The default `database`.
pub const DEFAULT_DATABASE: &str = "eventtracking";
/// The default `collection`.
pub const DEFAULT_COLLECTION: &str = "events";
/// The default collection of event type documentation.
pub const DEFAULT_CATALOG_COLLECTION: &str = "event_types";

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
    /// More indexes (see [`IndexSpec`](crate::IndexSpec)).
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
pub(crate) fn parse_acknowledgment(text: &str) -> Acknowledgment {
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
