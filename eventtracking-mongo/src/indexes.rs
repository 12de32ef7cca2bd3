//! [`IndexSpec`], the default indexes, and their creation: once, in the
//! background after the first successful insert, or on demand.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventtracking_core::redact::Redactor;
use mongodb::bson::{Bson, Document, RawDocumentBuf};
use mongodb::{Collection, IndexModel};

use crate::{is_retryable, lock, MongoBackend, MongoBackendError};

/// How long shutdown waits for an index creation still running.
pub const INDEX_SHUTDOWN_WAIT: Duration = Duration::from_secs(5);
/// How long after an index creation failed because the server could not be
/// reached a later send tries again.
pub const INDEX_RETRY_INTERVAL: Duration = Duration::from_secs(30);

pub(crate) const INDEX_IDLE: u8 = 0;
pub(crate) const INDEX_RUNNING: u8 = 1;
pub(crate) const INDEX_DONE: u8 = 2;
pub(crate) const INDEX_FAILED: u8 = 3;

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

pub(crate) async fn create_indexes(
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

impl MongoBackend {
    /// Creates the indexes now and waits for the server (the backend also
    /// does this by itself, in the background, after its first insert). Returns
    /// the names of the indexes.
    pub async fn ensure_indexes(&self) -> Result<Vec<String>, MongoBackendError> {
        let collection = self.collection().await?;
        let names = create_indexes(&collection, &self.inner.indexes, &self.inner.redactor).await?;
        self.inner.index_state.store(INDEX_DONE, Ordering::SeqCst);
        Ok(names)
    }

    /// Starts the background index creation unless it ran, runs, or failed
    /// for good (or failed for a retryable reason less than
    /// [`INDEX_RETRY_INTERVAL`] ago).
    pub(crate) fn start_indexes(&self, collection: &Collection<RawDocumentBuf>) {
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
}
