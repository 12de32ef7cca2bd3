//! The engine's errors: emitting and configuration. Backends' and
//! processors' errors are in `eventtracking_core`.

use eventtracking_core::{BuildError, InvalidEventName, NewEventError};

/// Why [`Tracker::emit`](crate::Tracker::emit) refused an event.
///
/// Every refusal is also counted in the tracker's [`TrackerStats`](crate::TrackerStats).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmitError {
    /// The event name breaks the naming rules (see [`validate_event_name`](eventtracking_core::validate_event_name)).
    #[error(transparent)]
    InvalidName(#[from] InvalidEventName),
    /// The payload could not be turned into JSON.
    #[error("event `{name}`: data is not representable as JSON: {reason}")]
    InvalidData {
        /// The event name.
        name: String,
        /// What serde_json said.
        reason: String,
    },
    /// The tracker was shut down; the event was counted as dropped.
    #[error("event `{name}`: the tracker is shut down")]
    ShutDown {
        /// The event name.
        name: String,
    },
}

impl From<NewEventError> for EmitError {
    fn from(error: NewEventError) -> Self {
        match error {
            NewEventError::InvalidName(invalid) => EmitError::InvalidName(invalid),
            NewEventError::InvalidData { name, reason } => EmitError::InvalidData { name, reason },
            // `NewEventError` is non-exhaustive: a future variant is a data problem.
            other => EmitError::InvalidData {
                name: String::new(),
                reason: other.to_string(),
            },
        }
    }
}

/// Why a configuration file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file `{path}`: {source}")]
    Read {
        /// The path.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The TOML is malformed or has a bad key or value.
    #[error("invalid config{}: {message}", .path.as_deref().map(|p| format!(" `{p}`")).unwrap_or_default())]
    Parse {
        /// The file, when read from one.
        path: Option<String>,
        /// What toml/serde said, naming the key.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("invalid config: `{key}` = {value}: {reason}")]
    Invalid {
        /// The dotted key.
        key: String,
        /// The given value.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// An environment variable override is malformed.
    #[error("environment variable {var}={value:?}: {reason}")]
    Env {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// Building a backend or processor failed.
    #[error(transparent)]
    Build(#[from] BuildError),
}
