//! eventtracking and [`tracing`], both ways.
//!
//! - [`TrackingLayer`]: a [`tracing_subscriber::Layer`] that turns `tracing`
//!   events marked as tracked into tracked events. Services that already
//!   instrument with `tracing` mark a few events instead of threading a
//!   second API through their code; the fields of the enclosing spans (a
//!   request's user and course ids) become the event's context.
//! - The `tracing` backend engine ([`TracingBackend`]): every event goes out
//!   as one structured `tracing` event, so an application's existing log
//!   pipeline carries them (the original's `LoggerBackend`).
//!
//! # Usage
//!
//! ```
//! use std::time::Duration;
//! use eventtracking::{InMemoryBackend, Tracker};
//! use eventtracking_tracing::TrackingLayer;
//! use tracing_subscriber::prelude::*;
//!
//! let memory = InMemoryBackend::new();
//! let tracker = Tracker::builder().with_backend("memory", memory.clone()).build().unwrap();
//! let subscriber = tracing_subscriber::registry()
//!     .with(TrackingLayer::builder().with_tracker(tracker.clone()).build());
//! tracing::subscriber::with_default(subscriber, || {
//!     let request = tracing::info_span!("request", user_id = 10938);
//!     let _entered = request.enter();
//!     // Marked by the target prefix `track`: the rest of the target is the name.
//!     tracing::info!(target: "track.navigation.request", url = "http://www.edx.org/some/path/1");
//!     // Or by a field: `tracked = true`, the name in `name`.
//!     tracing::info!(tracked = true, name = "address.create", postal_code = "90210");
//!     tracing::info!("not tracked: an ordinary log line");
//! });
//! tracker.flush(Duration::from_secs(5));
//! let events = memory.events();
//! assert_eq!(events.len(), 2);
//! assert_eq!(events[0].name(), "navigation.request");
//! assert_eq!(events[0].context()["user_id"], 10938);
//! assert_eq!(events[0].data()["url"], "http://www.edx.org/some/path/1");
//! assert_eq!(events[1].data(), &serde_json::json!({"postal_code": "90210"}));
//! ```
//!
//! The backend, from a config file (link this crate, e.g. `use
//! eventtracking_tracing as _;`, so that the engine is registered):
//!
//! ```toml
//! [backends.log]
//! engine = "tracing"
//! level = "info"            # trace, debug, info (default), warn, error
//! target = "eventtracking"  # the default
//! ```
//!
//! # Feature flags
//!
//! None.
//!
//! # Minimum supported Rust version
//!
//! The workspace's `rust-version` (1.85); raising it is a minor change.

mod backend;
mod layer;

pub use backend::{TracingBackend, TracingBackendError, DEFAULT_TARGET};
pub use layer::{
    TrackingLayer, TrackingLayerBuilder, TrackingLayerStats, DEFAULT_MARKER_FIELD,
    DEFAULT_NAME_FIELD, DEFAULT_TARGET_PREFIX,
};
