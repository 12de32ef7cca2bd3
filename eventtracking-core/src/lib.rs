//! # eventtracking-core
//!
//! The small, stable core of eventtracking: context-aware, semi-structured
//! events and one delivery engine that every backend shares.
//!
//! - [`Event`]: `{"id", "name", "timestamp", "context", "data"}`, shared as `Arc<Event>`.
//! - [`Tracker`]: `emit(name, data)` stamps the event with the merged
//!   [`context`] stack of the current thread or task, runs [`Processor`]s and
//!   queues it for every [`Backend`].
//! - [`delivery`]: bounded queues, batching, retry with jittered backoff,
//!   dead-letter file, flush/shutdown reports and counters.
//! - [`registry`]: backends and processors register at compile time
//!   (`inventory`) so a [`Config`] file can name them (`engine = "file"`).
//!
//! # Usage
//!
//! ```
//! use std::time::Duration;
//! use eventtracking_core::{InMemoryBackend, Tracker};
//! use serde_json::json;
//!
//! let memory = InMemoryBackend::new();
//! let tracker = Tracker::builder().with_backend("memory", memory.clone()).build().unwrap();
//! tracker.enter_context("outer", json!({"user_id": 10938})).unwrap();
//! tracker.emit("navigation.request", json!({"url": "http://www.edx.org/some/path/1"})).unwrap();
//! {
//!     let _ctx = tracker.context("inner", json!({"user_id": 11111, "session_id": "2987lkjdyoioey"})).unwrap();
//!     tracker.emit("navigation.request", json!({"url": "http://www.edx.org/some/path/2"})).unwrap();
//! }
//! tracker.flush(Duration::from_secs(5));
//! let events = memory.events();
//! assert_eq!(events[0].context()["user_id"], 10938);
//! assert_eq!(events[1].context()["session_id"], "2987lkjdyoioey");
//! # tracker.exit_context("outer").unwrap();
//! ```
//!
//! # Feature flags
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `testing` | off | [`InMemoryBackend`], a backend that keeps what it is sent |
//! | `derive` | on | `#[derive(TrackedEvent)]` (crate `eventtracking-macros`) |
//! | `validate` | off | `validate_schemas`: untyped events checked against the catalog's JSON Schemas (crate `jsonschema`) |
//!
//! # Runtime
//!
//! A tracker with backends runs its delivery workers on its own small tokio
//! runtime (two threads named `eventtracking-delivery`), so `emit` works the
//! same from plain threads and from any tokio runtime.
//!
//! # MSRV
//!
//! Rust 1.85.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(docsrs, deny(rustdoc::broken_intra_doc_links))]

mod backend;
pub mod catalog;
mod config;
mod config_error;
pub mod context;
pub mod delivery;
mod error;
mod event;
mod json_text;
mod processor;
pub mod redact;
pub mod registry;
#[cfg(unix)]
pub mod signal;
mod tracker;

pub use async_trait::async_trait;
#[cfg(any(test, feature = "testing"))]
pub use backend::InMemoryBackend;
pub use backend::{Backend, DiscardBackend};
pub use catalog::{
    catalog, Catalog, CatalogEntry, DuplicateEventType, EventTypeInfo, FieldInfo, FieldLocation,
    TrackedEvent,
};
pub use config::{Config, CONFIG_ENV};
pub use delivery::{
    BackendStats, DeadLetterRecord, DeliveryConfig, DeliveryReport, DroppedStats, Overflow,
    TrackerStats,
};
pub use error::{
    BackendError, BackendResult, BuildError, ConfigError, ContextError, EmitError, EventFailure,
    InvalidEventName, ProcessorError,
};
pub use event::{parse_timestamp, validate_event_name, Event, JsonMap, MAX_EVENT_NAME_BYTES};
/// `#[derive(TrackedEvent)]` (feature `derive`): see [`catalog`](mod@catalog).
#[cfg(feature = "derive")]
pub use eventtracking_macros::TrackedEvent;
pub use processor::{Enrich, NameFilter, NameMatcher, ProcessResult, Processor, Redact, Sample};
pub use tracker::{
    default_tracker, emit, get_tracker, init, register_tracker, unregister_tracker, Tracker,
    TrackerBuilder, TrackerGuard, DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_TRACKER,
};

#[doc(hidden)]
pub use inventory;

/// Support for generated code; not public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::json_text::write_json_value;
    pub use inventory;
    pub use schemars;
    pub use serde;
    pub use serde_json;
}
