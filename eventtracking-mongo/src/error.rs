//! [`MongoBackendError`]: why a backend could not be built, or indexes created.

/// Why a [`MongoBackend`](crate::MongoBackend) could not be built, or indexes created. Messages
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
        /// Whether trying again may help (see [`is_retryable`](crate::is_retryable)).
        retryable: bool,
    },
}
