//! # eventtracking-tower
//!
//! Tower middleware for eventtracking (the seed's Django integration): every
//! HTTP request is handled inside an eventtracking context of its own, so
//! every event emitted while handling it carries who asked, for what, and
//! the request id, with no parameter passing.
//!
//! - [`TrackingContextLayer`] / [`TrackingContextService`]: for each request,
//!   build the request context, then run the inner service's future inside
//!   it as a task-local context stack (it survives `.await` on any worker
//!   thread and is never seen by another request), and exit it at the end.
//! - [`ContextExtractor`]: the application adds its own fields (`user_id`,
//!   `session_id`, `org_id`...) from the request head; a failing extractor
//!   is logged and counted, never fails the request.
//! - Optional request events: one event per completed request (status,
//!   latency), off by default.
//! - [`RequestId`]: the request id, taken from a header or generated, in the
//!   request extensions and echoed in the response.
//!
//! Works with any tower-based HTTP server (axum, hyper via `hyper-util`,
//! tonic) whose requests are `http::Request`s.
//!
//! # Usage
//!
//! ```
//! use std::time::Duration;
//! use axum::{routing::get, Router};
//! use eventtracking::{InMemoryBackend, Tracker};
//! use eventtracking_tower::TrackingContextLayer;
//! use http::request::Parts;
//! use serde_json::json;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() {
//! let memory = InMemoryBackend::new();
//! let tracker = Tracker::builder().with_backend("memory", memory.clone()).build().unwrap();
//!
//! let handler_tracker = tracker.clone();
//! let app = Router::new()
//!     .route("/courses/{id}", get(move || async move {
//!         handler_tracker.emit("course.view", json!({"phase": "start"})).unwrap();
//!         tokio::task::yield_now().await;
//!         handler_tracker.emit("course.view", json!({"phase": "end"})).unwrap();
//!         "ok"
//!     }))
//!     .layer(
//!         TrackingContextLayer::builder()
//!             .with_extractor(|request: &Parts| match request.headers.get("x-user-id") {
//!                 Some(user) => user.to_str().map(|user| json!({"user_id": user})),
//!                 None => Ok(json!(null)),
//!             })
//!             .build()
//!             .unwrap(),
//!     );
//!
//! // With a real server: axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).
//! let request = http::Request::get("/courses/42")
//!     .header("x-user-id", "u-7")
//!     .body(axum::body::Body::empty())
//!     .unwrap();
//! let response = app.oneshot(request).await.unwrap();
//! let request_id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
//!
//! tracker.flush_async(Duration::from_secs(5)).await;
//! for event in memory.events() {
//!     assert_eq!(event.context()["user_id"], "u-7");
//!     assert_eq!(event.context()["path"], "/courses/42");
//!     assert_eq!(event.context()["request_id"], request_id.as_str());
//! }
//! assert_eq!(memory.events().len(), 2);
//! # }
//! ```
//!
//! # The request context
//!
//! | key | value | when |
//! |---|---|---|
//! | `method` | `"GET"` | always |
//! | `path` | `"/courses/42"` (never the query string) | always |
//! | `host` | the `Host` header, else the URI authority | if known |
//! | `user_agent` | the `User-Agent` header | if sent |
//! | `referer` | the `Referer` header | if sent |
//! | `client_ip` | the client address (see below) | if known |
//! | `request_id` | see below | always |
//! | headers added with `with_captured_header` | e.g. `accept_language` | if sent |
//! | the extractors' fields | e.g. `user_id` | if they succeed |
//!
//! Header values are cut to [`MAX_FIELD_LEN`] bytes. `Authorization`,
//! `Cookie` and the other [`SENSITIVE_HEADERS`] are never captured, and
//! asking for them is a build error.
//!
//! **Client address.** The peer address of the connection, from axum's
//! `ConnectInfo<SocketAddr>` extension (serve with
//! `into_make_service_with_connect_info::<SocketAddr>()`) or a plain
//! `SocketAddr` extension (hyper). Forwarding headers are read only when the
//! peer is a configured trusted proxy, and only the one header your proxy
//! writes (`X-Forwarded-For` by default, or `Forwarded`): the chain is walked
//! from the nearest hop, skipping trusted proxies; the first other address
//! is the client.
//!
//! **Request id.** Taken from the `x-request-id` header (configurable) if it
//! is 1 to [`MAX_REQUEST_ID_LEN`] visible ASCII characters; otherwise a new
//! UUIDv7, which is also set as that request header. Handlers read it as the
//! [`RequestId`] extension; the response carries it in the same header.
//!
//! # Settings
//!
//! | builder method | default | what it sets |
//! |---|---|---|
//! | [`with_context_name`](TrackingContextLayerBuilder::with_context_name) | `"http.request"` | the name of the per-request context |
//! | [`with_request_id_header`](TrackingContextLayerBuilder::with_request_id_header) | `"x-request-id"` | where the request id is read from |
//! | [`with_request_id_in_response`](TrackingContextLayerBuilder::with_request_id_in_response) | `true` | echo the id in the response |
//! | [`with_trusted_proxies`](TrackingContextLayerBuilder::with_trusted_proxies) | none | proxies whose forwarding header is believed |
//! | [`with_forwarded_header`](TrackingContextLayerBuilder::with_forwarded_header) | `X-Forwarded-For` | the header those proxies write |
//! | [`with_captured_header`](TrackingContextLayerBuilder::with_captured_header) | none | more headers to capture |
//! | [`with_extractor`](TrackingContextLayerBuilder::with_extractor) | none | application fields |
//! | [`with_request_event`](TrackingContextLayerBuilder::with_request_event) | off | the name of the per-request event |
//! | [`with_tracker`](TrackingContextLayerBuilder::with_tracker) | the default tracker | where request events go |
//! | [`with_inherited_contexts`](TrackingContextLayerBuilder::with_inherited_contexts) | `false` | start from the caller's contexts instead of an empty stack |
//!
//! **Request events.** With `with_request_event("http.request")`, each
//! request emits that event inside its context when the inner service
//! answers: `{"status": 200, "latency_ms": 1.234}` (latency up to the
//! response head, not the end of a streamed body). If the service fails,
//! `"status": null, "error": true`; if the request future is dropped first
//! (the client went away), `"status": null, "cancelled": true`.
//!
//! [`TrackingContextLayer::stats`] counts requests, extractor failures,
//! request events the tracker refused and recycled context maps.
//!
//! # Allocation
//!
//! A request's context map is shared by every event emitted in it, so it
//! lives until the last of them is delivered, and is then usually freed by
//! the delivery thread: with glibc's allocator, freeing on another thread
//! than the one that allocated is slow, and each of the map's strings is a
//! separate block. Instead each thread keeps its finished requests' maps
//! (at most 1,024); once all of a map's events are dropped, a later request
//! on that thread writes its fields into it in place (`LayerStats::recycled_contexts`
//! counts these). A map is reused only when nothing else holds it, so no
//! request sees another's values. String values longer than 256 bytes are
//! not kept. Maps are not recycled with
//! [`with_inherited_contexts(true)`](TrackingContextLayerBuilder::with_inherited_contexts)
//! (the shared map is then the merge with the inherited contexts).
//!
//! # Feature flags
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `axum` | on | reads the client address from axum's `ConnectInfo<SocketAddr>` (needs `axum` with `tokio`) |
//!
//! In the facade crate `eventtracking`, feature `tower` (off by default)
//! brings this crate in as `eventtracking::tower`.
//!
//! # Runtime
//!
//! The context scope is a tokio task-local: the server must poll services
//! on a tokio runtime (axum and hyper-util do).
//!
//! # MSRV
//!
//! Rust 1.85.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(docsrs, deny(rustdoc::broken_intra_doc_links))]

mod extract;
mod layer;
mod proxy;
mod recycle;
mod request_context;
mod service;

/// The `http` crate this layer works with (for [`http::request::Parts`] in
/// extractors, without a dependency of your own).
pub use http;

pub use extract::{BoxError, ContextExtractor, RequestId, MAX_FIELD_LEN, MAX_REQUEST_ID_LEN};
pub use layer::{
    LayerBuildError, LayerStats, TrackingContextLayer, TrackingContextLayerBuilder,
    DEFAULT_CONTEXT_NAME, DEFAULT_REQUEST_ID_HEADER, SENSITIVE_HEADERS,
};
pub use proxy::{resolve_client_ip, ForwardedHeader, IpNetwork};
pub use service::{ResponseFuture, TrackingContextService};
