//! # eventtracking-core
//!
//! The small, stable core of eventtracking: what a backend or processor
//! crate builds on, and nothing that runs a pipeline.
//!
//! - [`Event`]: `{"id", "name", "timestamp", "context", "data"}`, shared as `Arc<Event>`.
//! - [`context`]: the nested contexts of the current thread or task, merged
//!   into every event emitted inside them.
//! - [`Backend`] and [`Processor`]: where events go and what changes them,
//!   with their errors ([`BackendError`], [`ProcessorError`]).
//! - [`registry`]: compile-time registration ([`register_backend!`](crate::register_backend),
//!   [`register_processor!`](crate::register_processor)) so that a config file can name an engine.
//! - [`catalog`](mod@catalog): typed events ([`TrackedEvent`], `#[derive(TrackedEvent)]`)
//!   and the catalog entries backends persist.
//! - [`redact`]: the one secret policy.
//!
//! The tracker, the delivery engine (queues, batching, retry, dead letters,
//! stats), the config file and the built-in processors are in
//! `eventtracking-engine`; applications use the facade `eventtracking`,
//! which re-exports both.
//!
//! ```
//! use std::sync::Arc;
//! use eventtracking_core::{context, Event};
//! use serde_json::json;
//!
//! let _outer = context::context("outer", json!({"user_id": 10938})).unwrap();
//! let event = Event::emitted("navigation.request", context::current(), &json!({"url": "/1"})).unwrap();
//! assert_eq!(event.context()["user_id"], 10938);
//! ```
//!
//! # Feature flags
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `testing` | off | [`InMemoryBackend`], a backend that keeps what it is sent |
//! | `derive` | on | `#[derive(TrackedEvent)]` (crate `eventtracking-macros`) |
//!
//! # MSRV
//!
//! Rust 1.85.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(docsrs, deny(rustdoc::broken_intra_doc_links))]

mod backend;
pub mod catalog;
pub mod context;
mod error;
mod event;
mod json_text;
mod processor;
pub mod redact;
pub mod registry;
pub mod source;
pub mod sync;

pub use async_trait::async_trait;
#[cfg(any(test, feature = "testing"))]
pub use backend::InMemoryBackend;
pub use backend::{Backend, DiscardBackend};
pub use catalog::{
    catalog, Catalog, CatalogEntry, DuplicateEventType, EventTypeInfo, FieldInfo, FieldLocation,
    TrackedEvent,
};
pub use error::{
    BackendError, BackendResult, BuildError, ContextError, EventFailure, InvalidEventName,
    NewEventError, ProcessorError,
};
pub use event::{
    format_timestamp, intern_event_name, parse_timestamp, validate_event_name, Event,
    EventLineParser, JsonMap, MAX_EVENT_NAME_BYTES,
};
/// `#[derive(TrackedEvent)]` (feature `derive`): see [`catalog`](mod@catalog).
#[cfg(feature = "derive")]
pub use eventtracking_macros::TrackedEvent;
pub use processor::{processor_fn, FnProcessor, ProcessResult, Processor};
/// Event data and contexts are `serde_json` values: the crate is re-exported
/// on purpose, so that its version always matches.
pub use serde_json;
pub use source::{AckStatus, Source, SourceAck, SourceError, SourceItem};
/// Event ids are `uuid` UUIDs (v7), re-exported on purpose.
pub use uuid;

/// Support for generated code and the crate's own macros; not public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::event::check_event_name_const;
    pub use crate::json_text::write_json_value;
    pub use inventory;
    pub use serde;
    pub use serde_json;
}
