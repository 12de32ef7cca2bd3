//! [`MongoBackendBuilder`]: the checks of every option, the write concern,
//! and parsing the URI without a runtime.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU8};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use eventtracking_core::redact::Redactor;
use mongodb::options::{Acknowledgment, ClientOptions, WriteConcern};

use crate::backend::{Inner, OptionsState};
use crate::indexes::INDEX_IDLE;
use crate::{
    default_indexes, DocumentLayout, IndexSpec, MongoBackend, MongoBackendError,
    DEFAULT_CATALOG_COLLECTION, DEFAULT_COLLECTION, DEFAULT_DATABASE,
};

/// The default `server_selection_timeout_ms`.
pub const DEFAULT_SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(10);

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
    pub(crate) write_concern: Option<Acknowledgment>,
    pub(crate) batch_size: Option<usize>,
    create_indexes: bool,
    indexes: Vec<Result<IndexSpec, MongoBackendError>>,
    pub(crate) server_selection_timeout: Option<Duration>,
    layout: DocumentLayout,
    pub(crate) catalog_collection: Option<String>,
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
pub(crate) fn write_concern(
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::parse_acknowledgment;

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
}
