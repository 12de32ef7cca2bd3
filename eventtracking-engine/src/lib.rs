//! # eventtracking-engine
//!
//! The delivery engine of eventtracking, on top of the minimal
//! `eventtracking-core` (events, contexts, the backend and processor traits).
//!
//! - [`Tracker`]: `emit(name, data)` stamps the event with the merged
//!   contexts of the current thread or task, runs the processors and queues
//!   it for every backend.
//! - [`delivery`]: bounded queues, batching, retry with jittered backoff,
//!   the dead-letter file ([`DeadLetterWriter`]), flush/shutdown reports
//!   and counters.
//! - [`buffer`]: a durable, bounded disk buffer for one backend (its
//!   storage layer; not yet used by the delivery engine).
//! - [`Config`]: the TOML config file that names registered engines.
//! - [`processors`]: the built-in processors (`allow`, `block`, `enrich`,
//!   `redact`, `sample`).
//! - [`signal`]: SIGINT/SIGTERM handling that shuts a tracker down without
//!   losing events.
//!
//! Applications use the facade `eventtracking`, which re-exports this crate
//! and the core.
//!
//! ```
//! use std::time::Duration;
//! use eventtracking::InMemoryBackend;
//! use eventtracking_engine::Tracker;
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
//! | `testing` | off | the core's `InMemoryBackend` |
//! | `derive` | on | `#[derive(TrackedEvent)]` |
//! | `validate` | off | `validate_schemas`: untyped events checked against the catalog's JSON Schemas (crate `jsonschema`) |
//!
//! # Runtime
//!
//! A tracker with backends runs its delivery workers on its own small tokio
//! runtime (two threads named `eventtracking-delivery`), so `emit` works the
//! same from plain threads and from any tokio runtime.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(docsrs, deny(rustdoc::broken_intra_doc_links))]

mod ack;
mod answer;
pub mod buffer;
mod config;
mod config_error;
pub mod delivery;
mod error;
pub mod processors;
pub mod relay;
mod schema_check;
#[cfg(unix)]
pub mod signal;
mod tracker;
mod typed;

pub use ack::{Acknowledgement, Outcome, Receipt};
pub use config::{Config, CONFIG_ENV};
pub use delivery::{
    BackendStats, BufferFsync, BufferKind, DeadLetterRecord, DeadLetterWriter, DeliveryConfig,
    DeliveryReport, DroppedStats, FlushOutcome, Overflow, TrackerStats,
};
pub use error::{ConfigError, EmitError};
pub use processors::{Enrich, NameFilter, NameMatcher, Redact, Sample};
pub use tracker::{
    default_tracker, emit, get_tracker, init, register_tracker, unregister_tracker, Admission,
    Tracker, TrackerBuilder, TrackerGuard, DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_TRACKER,
};
pub use typed::TrackedEventExt;
