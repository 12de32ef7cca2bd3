//! Error types, one per operation, each carrying the offending key or value.

use std::time::Duration;

/// An event name that breaks the naming rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidEventName {
    /// The name is the empty string.
    #[error("invalid event name: the name is empty")]
    Empty,
    /// The name is longer than [`MAX_EVENT_NAME_BYTES`](crate::MAX_EVENT_NAME_BYTES).
    #[error("invalid event name `{prefix}...`: {len} bytes, at most 255 are allowed")]
    TooLong {
        /// The first 32 characters of the name.
        prefix: String,
        /// The name's length in bytes.
        len: usize,
    },
    /// The name holds whitespace or a control character.
    #[error("invalid event name {name:?}: character {character:?} at byte {position} is whitespace or a control character")]
    BadCharacter {
        /// The whole name.
        name: String,
        /// The offending character.
        character: char,
        /// Its byte offset.
        position: usize,
    },
}

/// Why [`Event::emitted`](crate::Event::emitted) could not make an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NewEventError {
    /// The event name breaks the naming rules.
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
}

impl NewEventError {
    pub(crate) fn invalid_data(name: &str, error: &serde_json::Error) -> Self {
        NewEventError::InvalidData {
            name: name.to_owned(),
            reason: error.to_string(),
        }
    }
}

/// Errors of the context stack.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContextError {
    /// `exit_context` named a context that is not on the current stack.
    #[error("cannot exit context `{name}`: it was never entered (entered here: {entered:?})")]
    NotEntered {
        /// The name given to `exit_context`.
        name: String,
        /// The names currently on the stack, outermost first.
        entered: Vec<String>,
    },
    /// The value given as a context is not a JSON object.
    #[error("context `{name}` must be a JSON object (a map of keys to values), got {kind}")]
    NotAnObject {
        /// The context name.
        name: String,
        /// The JSON kind that was given instead.
        kind: &'static str,
    },
}

/// The outcome of [`Backend::send_batch`](crate::Backend::send_batch) and friends.
pub type BackendResult = Result<(), BackendError>;

/// Why a backend could not take a batch (or part of one).
///
/// The delivery engine decides what happens next from the variant: retryable
/// failures are retried with backoff, the others go to the dead-letter file.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The backend was shut down and takes no more events. Not retryable.
    #[error("the backend is shut down")]
    AlreadyShutdown,
    /// The backend gave up after the given time. Retryable.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// A transient failure (network, server busy, ...). The whole batch is retried.
    #[error("transient failure: {0}")]
    Retryable(String),
    /// A failure that will not go away by retrying. The whole batch is dead-lettered.
    #[error("permanent failure: {0}")]
    Permanent(String),
    /// Some events of the batch failed and the rest were stored. The engine
    /// retries the retryable ones and dead-letters the others.
    #[error("{} of the batch's events failed", .0.len())]
    Partial(Vec<EventFailure>),
    /// The destination went away for good and nobody reads what would be
    /// written there (stdout whose reader closed the pipe, as in `… | head
    /// -1`). Not retryable. The engine counts this batch and the rest of the
    /// queue as dropped (reason `closed`) instead of dead-lettering them:
    /// output meant for a reader that left is not worth a file of its own.
    #[error("the destination is closed: {0}")]
    Closed(String),
}

impl BackendError {
    /// Whether retrying the same events may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            BackendError::Timeout(_) | BackendError::Retryable(_) => true,
            BackendError::AlreadyShutdown
            | BackendError::Permanent(_)
            | BackendError::Closed(_) => false,
            BackendError::Partial(failures) => failures.iter().any(|f| f.retryable),
        }
    }
}

/// One event of a batch that a backend could not store.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventFailure {
    /// The event's index in the batch given to `send_batch`.
    pub index: usize,
    /// Whether sending it again may succeed.
    pub retryable: bool,
    /// Why it failed (goes to the dead-letter file).
    pub reason: String,
}

/// Why a backend or processor could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No registered engine has that name.
    #[error("unknown {kind} engine `{engine}` (for `{owner}`); registered {kind} engines: {}", .registered.join(", "))]
    UnknownEngine {
        /// "backend" or "processor".
        kind: &'static str,
        /// The engine name that was asked for.
        engine: String,
        /// Which config entry asked for it.
        owner: String,
        /// The engines this binary knows.
        registered: Vec<&'static str>,
    },
    /// An option has a bad key or value.
    #[error("`{owner}` (engine `{engine}`): {message}")]
    InvalidOption {
        /// Which config entry.
        owner: String,
        /// Its engine.
        engine: String,
        /// What is wrong, naming the key or value.
        message: String,
    },
    /// The backend could not start (cannot open a file, reach a server, ...).
    #[error("`{owner}` (engine `{engine}`): {message}")]
    Startup {
        /// Which config entry.
        owner: String,
        /// Its engine.
        engine: String,
        /// What failed.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A backend's delivery settings cannot work: a value refused, a
    /// `dead_letter_path` or `buffer_path` that cannot be written.
    #[error("backend `{backend}`: delivery settings: {message}")]
    InvalidDelivery {
        /// The backend's name.
        backend: String,
        /// What is wrong, naming the key and its value.
        message: String,
    },
    /// Two backends were given the same name.
    #[error("two backends are named `{0}`")]
    DuplicateBackend(String),
    /// Two registrations share one engine name.
    #[error("engine `{name}` is registered twice ({kind})")]
    DuplicateEngine {
        /// "backend" or "processor".
        kind: &'static str,
        /// The name.
        name: &'static str,
    },
    /// The delivery runtime could not be started.
    #[error("cannot start the delivery runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// A processor failed on one event. The event is dropped for the affected
/// route and the failure is counted and logged.
#[derive(Debug, Clone, thiserror::Error)]
#[error("processor `{processor}` failed on event `{event}`: {reason}")]
#[non_exhaustive]
pub struct ProcessorError {
    /// The processor's name.
    pub processor: String,
    /// The event name.
    pub event: String,
    /// What went wrong.
    pub reason: String,
}

impl ProcessorError {
    /// Processor `processor` failed on the event named `event`.
    pub fn new(
        processor: impl Into<String>,
        event: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        ProcessorError {
            processor: processor.into(),
            event: event.into(),
            reason: reason.into(),
        }
    }
}

impl EventFailure {
    /// The event at `index` of the batch failed; `retryable`: sending it again may succeed.
    pub fn new(index: usize, retryable: bool, reason: impl Into<String>) -> Self {
        EventFailure {
            index,
            retryable,
            reason: reason.into(),
        }
    }

    /// The event at `index` of the batch failed; sending it again may succeed.
    pub fn retryable(index: usize, reason: impl Into<String>) -> Self {
        EventFailure {
            index,
            retryable: true,
            reason: reason.into(),
        }
    }

    /// The event at `index` of the batch failed for good (it is dead-lettered).
    pub fn permanent(index: usize, reason: impl Into<String>) -> Self {
        EventFailure {
            index,
            retryable: false,
            reason: reason.into(),
        }
    }
}
