//! [`MongoBackend`]: its shared state, the client created on the first
//! send, and the [`Backend`] implementation (writing is in `write.rs`,
//! catalog publishing in `catalog.rs`, indexes in `indexes.rs`).

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eventtracking_core::redact::Redactor;
use eventtracking_core::{async_trait, Backend, BackendResult, CatalogEntry, Event};
use mongodb::bson::RawDocumentBuf;
use mongodb::options::{Acknowledgment, ClientOptions, CollectionOptions, WriteConcern};
use mongodb::{Client, Collection};

use crate::builder::write_concern;
use crate::{lock, DocumentLayout, IndexSpec, MongoBackendError, INDEX_SHUTDOWN_WAIT};

/// The delivery engine's default `max_in_flight` for this backend: batches
/// sent at once, so that a round trip to the server does not idle the route.
pub const SUGGESTED_MAX_IN_FLIGHT: usize = 4;

/// The `appName` the client reports to the server unless the URI sets one.
pub const APP_NAME: &str = "eventtracking";

pub(crate) enum OptionsState {
    Ready(Box<ClientOptions>),
    /// A `mongodb+srv://` URI, resolved on the first send.
    Srv(String),
}

pub(crate) struct Inner {
    pub(crate) uri_shown: String,
    pub(crate) options: Mutex<OptionsState>,
    pub(crate) database: String,
    pub(crate) collection_name: String,
    pub(crate) w: Option<Acknowledgment>,
    /// Known once the options are (at build time unless SRV).
    pub(crate) write_concern: Option<WriteConcern>,
    pub(crate) batch_size: Option<usize>,
    pub(crate) server_selection_timeout: Duration,
    pub(crate) layout: DocumentLayout,
    pub(crate) indexes: Vec<IndexSpec>,
    pub(crate) redactor: Redactor,
    pub(crate) collection: Mutex<Option<Collection<RawDocumentBuf>>>,
    pub(crate) index_state: AtomicU8,
    pub(crate) index_attempt: Mutex<Option<Instant>>,
    pub(crate) index_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    pub(crate) shut_down: AtomicBool,
    pub(crate) catalog_collection: Option<String>,
}

/// Writes events to a MongoDB collection; see the crate docs for the
/// document layout and guarantees. Cheap to clone (clones share the client).
#[derive(Clone)]
pub struct MongoBackend {
    pub(crate) inner: Arc<Inner>,
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

impl MongoBackend {
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

    pub(crate) fn redact(&self, text: &str) -> String {
        self.inner.redactor.redact(text).into_owned()
    }

    pub(crate) fn is_srv(&self) -> bool {
        matches!(&*lock(&self.inner.options), OptionsState::Srv(_))
    }
}

#[async_trait]
impl Backend for MongoBackend {
    async fn send_batch(&self, batch: &[Arc<Event>]) -> BackendResult {
        self.write_batch(batch).await
    }

    /// Batches overlap, each on its own pooled connection (unordered
    /// inserts keyed by the event id, so their order does not matter).
    fn max_concurrent_sends(&self) -> usize {
        SUGGESTED_MAX_IN_FLIGHT
    }

    /// Upserts each entry into the catalog collection, keyed by
    /// `NAME@VERSION` (see the crate docs).
    async fn publish_event_types(&self, types: &[Arc<CatalogEntry>]) -> BackendResult {
        self.publish_catalog(types).await
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

#[cfg(test)]
mod tests {
    use crate::{MongoBackend, MongoOptions};

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
