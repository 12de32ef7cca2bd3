//! # eventtracking
//!
//! Track context-aware, semi-structured events and deliver them to pluggable
//! backends. This facade re-exports the minimal core ([`eventtracking_core`]:
//! events, contexts, the backend and processor traits, registration, the
//! catalog's types, redaction) and the engine ([`eventtracking_engine`]: the
//! tracker, delivery, the config file, the built-in processors), and links
//! the backends chosen by feature flags, so that a config file can name them.
//! `use eventtracking::prelude::*;` brings what an application usually needs.
//!
//! ```
//! use std::time::Duration;
//! use eventtracking::{InMemoryBackend, Tracker};
//! use serde_json::json;
//!
//! let memory = InMemoryBackend::new();
//! let tracker = Tracker::builder().with_backend("memory", memory.clone()).build().unwrap();
//! let _outer = tracker.context("outer", json!({"user_id": 10938})).unwrap();
//! tracker.emit("navigation.request", json!({"url": "http://www.edx.org/some/path/1"})).unwrap();
//! tracker.flush(Duration::from_secs(5));
//! assert_eq!(memory.events()[0].context()["user_id"], 10938);
//! ```
//!
//! # Feature flags
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `file` | on | the JSON-lines file backend, engine `file` ([`file`](mod@file)) |
//! | `derive` | on | `#[derive(TrackedEvent)]`: typed events documented in the [`catalog`](mod@catalog) |
//! | `validate` | off | `validate_schemas = true` in `[delivery]`: untyped events checked against the catalog's JSON Schemas |
//! | `testing` | off | [`InMemoryBackend`] |
//! | `tower` | off | `eventtracking::tower` (crate `eventtracking-tower`): a tower/axum layer giving every HTTP request its own context |
//! | `kafka` | off | the Kafka backend, engine `kafka` ([`kafka`](mod@kafka), crate `eventtracking-kafka`, bundled librdkafka) |
//! | `mongo` | off | the MongoDB backend, engine `mongo` ([`mongo`](mod@mongo), crate `eventtracking-mongo`, official `mongodb` driver) |
//! | `full` | off | all of the above |
//!
//! # Configuration
//!
//! [`load_config`] reads the file given, else the one named by
//! `EVENTTRACKING_CONFIG`, else [`DEFAULT_CONFIG`] (the file backend writing
//! JSON lines to stdout). See [`Config`] for the format and
//! [`DeliveryConfig`] for the delivery keys and their environment overrides.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(docsrs, deny(rustdoc::broken_intra_doc_links))]

pub use eventtracking_core::*;
pub use eventtracking_engine::*;

/// What an application usually needs: the tracker, contexts, typed events
/// and their `emit()`/`emit_to(&tracker)`.
pub mod prelude {
    pub use eventtracking_core::context::{self, ContextSnapshot};
    pub use eventtracking_core::{Event, TrackedEvent};
    pub use eventtracking_engine::{TrackedEventExt, Tracker};
}

/// The JSON-lines file backend (feature `file`).
#[cfg(feature = "file")]
#[cfg_attr(docsrs, doc(cfg(feature = "file")))]
pub use eventtracking_file as file;

/// The MongoDB backend, engine `mongo` (feature `mongo`).
#[cfg(feature = "mongo")]
#[cfg_attr(docsrs, doc(cfg(feature = "mongo")))]
pub use eventtracking_mongo as mongo;

/// The Kafka backend, engine `kafka` (feature `kafka`).
#[cfg(feature = "kafka")]
#[cfg_attr(docsrs, doc(cfg(feature = "kafka")))]
pub use eventtracking_kafka as kafka;

/// Tower/axum middleware: every HTTP request in its own context (feature `tower`).
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use eventtracking_tower as tower;

use std::path::Path;

/// The pipeline used when no config file is given: JSON lines to stdout.
pub const DEFAULT_CONFIG: &str = r#"# The embedded default: every event as one JSON line on stdout.
[backends.stdout]
engine = "file"
path = "-"
"#;

/// Reads `path`, else the file named by `EVENTTRACKING_CONFIG`, else [`DEFAULT_CONFIG`].
///
/// ```
/// let config = eventtracking::load_config(None).unwrap();
/// # if std::env::var_os("EVENTTRACKING_CONFIG").is_none() {
/// assert_eq!(config.backend_engine("stdout"), Some("file"));
/// # }
/// ```
pub fn load_config(path: Option<&Path>) -> Result<Config, ConfigError> {
    match path {
        Some(path) => Config::from_path(path),
        None => match Config::from_env()? {
            Some(config) => Ok(config),
            None => Config::from_toml_str(DEFAULT_CONFIG),
        },
    }
}

/// Builds the tracker of [`load_config`]`(path)`, makes it the default and
/// returns the guard that shuts it down when dropped.
///
/// ```no_run
/// let guard = eventtracking::init_from_config(None).unwrap();
/// eventtracking::emit("app.start", serde_json::json!({"version": "1.0"})).unwrap();
/// drop(guard); // delivers what is queued, then stops
/// ```
pub fn init_from_config(path: Option<&Path>) -> Result<TrackerGuard, ConfigError> {
    Ok(init(load_config(path)?.build()?))
}
