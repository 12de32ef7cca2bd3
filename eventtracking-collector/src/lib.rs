//! # eventtracking-collector
//!
//! An HTTP collector for browser and mobile events (what `eventtracking
//! serve` runs): events POSTed by clients go into the same [`Tracker`] as
//! server events, so they get the same processors, catalog validation and
//! delivery, with a server-side context the client cannot override.
//!
//! ```no_run
//! use eventtracking_collector::{Collector, CollectorConfig};
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = eventtracking_engine::Config::from_path("eventtracking.toml")?;
//! let settings = CollectorConfig::from_table(config.collector())?;
//! let collector = Collector::new(config.build()?, settings.clone())?;
//! let listener = tokio::net::TcpListener::bind(settings.listen).await?;
//! collector.serve(listener, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```
//!
//! # Running it: `eventtracking serve`
//!
//! ```text
//! eventtracking serve --config eventtracking.toml [--listen 127.0.0.1:0] [--timeout 30]
//! ```
//!
//! serves the config's `[collector]` in front of its backends until
//! SIGINT or SIGTERM; then it stops taking requests, finishes those in
//! progress, shuts the tracker down (delivering what was accepted within
//! `--timeout` seconds, dead-lettering the rest; a second signal stops
//! waiting) and prints the delivery report on stderr. Exit code 0 when
//! nothing accepted was dropped or failed, 1 otherwise, 2 for a bad config.
//!
//! # Configuration: the `[collector]` table
//!
//! In the same TOML file as the tracker's `[delivery]` and `[backends]`
//! (the engine's `Config` keeps the table for this crate). An unknown key
//! is an error naming it.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `listen` | `"127.0.0.1:8080"` | address and port |
//! | `write_keys` | `[]` | keys a client must present; required unless `listen` is loopback (an empty list there logs a warning) |
//! | `allowed_origins` | `[]` | origins given CORS headers (`"https://www.example.com"`, or `"*"`) |
//! | `max_body_bytes` | `1048576` (1 MiB) | the largest body, compressed and after gzip decoding |
//! | `max_events_per_request` | `500` | the most events in one request |
//! | `rate_limit_per_key` | off | events a second per write key (a token bucket) |
//! | `rate_limit_per_key_burst` | twice the rate | the bucket's size: events let through at once |
//! | `rate_limit_per_ip` | off | events a second per client address |
//! | `rate_limit_per_ip_burst` | twice the rate | as above, per client address |
//! | `trusted_proxies` | `[]` | addresses or networks (`"10.0.0.0/8"`) whose `X-Forwarded-For` is believed |
//! | `source` | `"browser"` | the `source` context value of every event |
//! | `validate` | `false` | check each event's data against the catalog's JSON Schema of its type (highest version); a name the catalog does not know is refused. Needs the crate feature `validate` |
//! | `max_string_bytes` | `16384` | the longest string (or object key) in `data` or `context` |
//! | `max_object_keys` | `256` | the most keys of one object in `data` or `context` |
//! | `body_timeout_ms` | `30000` | the longest a client may take to send its body (then 408) |
//! | `demo` | `false` | serve the demo page at `GET /demo` |
//!
//! Nesting in `data` and `context` is limited to [`MAX_DEPTH`] (64) levels of
//! arrays and objects. Every backend must keep the delivery default
//! `overflow = "drop_newest"`: `block` would stall the server's threads and
//! `drop_oldest` would drop events already answered 202 ([`Collector::new`]
//! refuses both).
//!
//! ```toml
//! [collector]
//! listen = "0.0.0.0:8080"
//! write_keys = ["wk_live_3f9a"]
//! allowed_origins = ["https://www.example.com"]
//! rate_limit_per_ip = 50          # events/s
//! rate_limit_per_ip_burst = 200
//! trusted_proxies = ["10.0.0.0/8"]
//!
//! [backends.events]
//! engine = "file"
//! path = "events.jsonl"
//! ```
//!
//! # Endpoints
//!
//! **`POST /v1/events`** takes one event `{"name", "data", "context"?, "id"?,
//! "timestamp"?}`, an array of them, or `{"events": [...]}`, as
//! `application/json` or `text/plain` (what `navigator.sendBeacon` sends),
//! optionally `Content-Encoding: gzip`. The write key goes in
//! `Authorization: Bearer KEY`, `X-Eventtracking-Key: KEY` or `?key=KEY`.
//!
//! | status | when | body or headers |
//! |---|---|---|
//! | 202 | accepted | `{"accepted": n, "rejected": [{"index": i, "pointer": "/events/3/name", "error": "..."}]}` |
//! | 400 | malformed JSON, or not one of the three shapes | `{"error": "malformed JSON at line L, column C: ...", "line": L, "column": C}` |
//! | 401 | no key or a bad key | `WWW-Authenticate: Bearer` |
//! | 408 | the body took longer than `body_timeout_ms` to arrive (not in issue 15's table: a slow client must not hold a connection) | |
//! | 413 | body over `max_body_bytes`, more than `max_events_per_request` events, or more than a rate limit's burst | |
//! | 415 | a content type other than JSON or text, a charset other than UTF-8, an encoding other than gzip | |
//! | 422 | every event invalid | `{"accepted": 0, "rejected": [...]}`, each with its JSON pointer |
//! | 429 | over a rate limit | `Retry-After` (seconds) |
//! | 503 | a backend's queue is full, or shutting down | `Retry-After`; `{"accepted": n, "rejected": [...]}` lists what to send again |
//!
//! Every event gets the server-side context, over anything the client sent
//! under the same keys ([`SERVER_KEYS`]): `received_at`, `client_ip` (behind
//! `trusted_proxies`, from `X-Forwarded-For`), `user_agent`, `referer`,
//! `request_id`, `source`, and `client_timestamp` (the client's
//! `timestamp`, if sent). The event's timestamp is the time it was
//! received. A client's `id` (a UUID) is kept, so a retried beacon is
//! idempotent where the backend writes by id; without one the server makes
//! a UUIDv7.
//!
//! An event's `data` is kept as the JSON text the client sent
//! ([`Event::from_parts_raw_data`](eventtracking_core::Event::from_parts_raw_data)):
//! JSON backends write it out as it came (text over several lines is made
//! one line), and the limits are checked on the text, without building a
//! tree of maps per event. Consecutive events of a request that send the
//! same `context` (and no `timestamp`) share one context map.
//!
//! A 202 means every accepted event is in every backend's queue (with
//! `buffer = "disk"`: written to its disk buffer). Events are emitted with
//! [`Tracker::emit_event_checked`]: an event a backend refused for want of
//! room (a full queue or disk buffer) turns into a 503 listing it; before
//! emitting, a request that would not fit in some backend's memory queue
//! is answered 503 as a whole.
//!
//! **`GET /healthz`**: 200 while the process serves. **`GET /readyz`**: 200
//! when not shutting down and every backend's queue (or disk buffer) has room, else 503;
//! with each backend's queue length and counters. The tracker does not
//! probe a backend's store, so a store that is down shows here once its
//! queue fills.
//!
//! **`GET /metrics`**: the OpenMetrics text exposition (Prometheus scrapes it; written by `prometheus-client`): the tracker's counters
//! (`eventtracking_tracker_*_total`), each backend's
//! (`eventtracking_backend_*_total{backend}`, `eventtracking_backend_queued`),
//! the collector's events by outcome
//! (`eventtracking_collector_events_total{outcome="accepted|rejected|unavailable"}`),
//! HTTP requests by route and status
//! (`eventtracking_collector_http_requests_total{route,status}`) and a latency
//! histogram (`eventtracking_collector_http_request_duration_seconds{route}`).
//!
//! **`GET /openapi.json`**: an OpenAPI 3.0 document of these endpoints.
//!
//! **`GET /catalog.json`**: the event types linked into the program (as
//! `eventtracking catalog` prints them), each with its JSON Schema.
//!
//! **`GET /catalog`**: the same catalog as one self-contained web page
//! ([`catalog_html`]; `eventtracking catalog --format html` writes it to a
//! file): each type's name, version, description and field table, the
//! nested types they use, and a search box that shows only the types
//! containing every word typed (in their name, description, Rust type or
//! field names). All catalog text is HTML-escaped.
//!
//! **`GET /v1/tracker.js`**: the browser tracker (below), as
//! `application/javascript`, cacheable for five minutes.
//!
//! **`GET /demo`** (only with `demo = true`): a page that loads
//! `/v1/tracker.js` and emits `demo.clicked` in nested contexts when its
//! button is clicked. Open it as `/demo?key=WRITE_KEY`, adding
//! `&endpoint=https://collector.example.com` to send to another collector
//! (whose `allowed_origins` must list the page's origin). It sends only its
//! origin as `Referer`, so its key does not reach the events' context.
//!
//! `/healthz`, `/readyz`, `/metrics`, `/openapi.json`, `/catalog.json`,
//! `/catalog`, `/v1/tracker.js` and `/demo` need no key: keep them from the
//! public side of your proxy if they should not be seen.
//!
//! CORS: a preflight (`OPTIONS` with `Origin` and
//! `Access-Control-Request-Method`) from an allowed origin gets 204 and the
//! allowed methods and headers; from another origin, 403 and no CORS
//! header. Responses to allowed origins carry `Access-Control-Allow-Origin`.
//!
//! Write keys never appear in logs, errors or `Debug` output.
//!
//! # The browser tracker: `eventtracking.js`
//!
//! Shipped in this crate ([`TRACKER_JS`]) and served at `/v1/tracker.js`;
//! no dependencies, under 10 KB.
//!
//! ```html
//! <script src="https://collector.example.com/v1/tracker.js"></script>
//! <script>
//!   eventtracking.init({endpoint: "https://collector.example.com", key: "wk_live_3f9a",
//!                       context: {app: "shop"}});
//!   eventtracking.enterContext("checkout", {cart_id: "c-17"});
//!   eventtracking.emit("checkout.started", {items: 3});   // returns the event's id
//!   eventtracking.exitContext("checkout");
//!   eventtracking.flush().then(function (r) { console.log(r); }); // {delivered, dropped, pending}
//! </script>
//! ```
//!
//! - `init({endpoint, key, context})`: `endpoint` is the collector's base
//!   URL; `context` goes into every event.
//! - `enterContext(name, obj)` / `exitContext(name)`: a stack, as the Rust
//!   contexts: every event emitted inside gets the merged contexts (inner
//!   wins); exiting a name removes that context.
//! - `emit(name, data)`: the event `{name, data, context, id, timestamp}`
//!   gets a client-side UUIDv7 `id` (`crypto.getRandomValues`) and the
//!   client's time, kept by the collector as `context.client_timestamp`.
//! - Events are POSTed as `{"events": [...]}` with `X-Eventtracking-Key`,
//!   in batches of up to 20, at most 1 s after the first of a batch.
//! - They wait in a `localStorage` queue (1000 events at most; the oldest
//!   dropped first, with a console warning) until the collector answers
//!   202, so they survive a reload: the next page load sends what is left.
//!   Tabs of one origin share the queue.
//! - Network errors, 408, 429 and 5xx are retried with exponential backoff
//!   (1 s to 30 s, jittered), never sooner than `Retry-After`; a 503 that
//!   lists the events it refused has only those sent again. A batch
//!   answered 413 is sent again in halves, down to single events. Other
//!   4xx (a single event answered 413 too), and
//!   the events a 202 or 422 lists as rejected, are dropped with a console
//!   warning.
//! - On `pagehide` and when the page becomes hidden, what is unsent goes by
//!   `navigator.sendBeacon` (`text/plain`, the key as `?key=`). A beacon's
//!   answer cannot be read, so beaconed events stay stored and the next
//!   page load sends them again under the same ids: delivery is at least
//!   once, and idempotent in backends that write by id (MongoDB).
//! - `flush()` sends what is queued now (skipping the backoff, not a
//!   `Retry-After`) and settles once each of those events was answered,
//!   with counts: `pending` are kept for a retry.
//!
//! A page on another origin than the collector needs that origin in
//! `allowed_origins` (the tracker's POSTs are preflighted; beacons are not).
//!
//! # Feature flags
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `validate` | off | `validate = true`: catalog JSON Schema checks (crate `jsonschema`) |
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(docsrs, deny(rustdoc::broken_intra_doc_links))]

mod assets;
mod auth;
mod body;
mod catalog_page;
mod config;
mod context;
mod cors;
mod events;
mod handler;
mod health;
mod limits;
mod metrics;
mod middleware;
mod openapi;
mod rate_limit;
mod response;
mod validate;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use axum::routing::{get, post};
use axum::{Router, ServiceExt as _};
use eventtracking_engine::{BufferKind, Overflow, Tracker};
use eventtracking_tower::TrackingContextLayer;
use tower_layer::Layer as _;

pub use assets::{DEMO_HTML, TRACKER_JS};
pub use auth::{WriteKeys, KEY_HEADER, KEY_PARAMETER};
pub use catalog_page::catalog_html;
pub use config::{
    CollectorConfig, CollectorConfigError, RateLimit, DEFAULT_BODY_TIMEOUT, DEFAULT_LISTEN,
    DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_EVENTS_PER_REQUEST, DEFAULT_MAX_OBJECT_KEYS,
    DEFAULT_MAX_STRING_BYTES, DEFAULT_SOURCE, MAX_DEPTH,
};
pub use context::SERVER_KEYS;
/// Networks for [`CollectorConfig::trusted_proxies`] (from `eventtracking-tower`).
pub use eventtracking_tower::IpNetwork;

/// The collector: a tracker and its settings, served as HTTP endpoints.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct Collector {
    shared: Arc<Shared>,
}

/// What every request handler shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) tracker: Tracker,
    pub(crate) config: CollectorConfig,
    /// The backends with a memory queue, checked for room before emitting.
    /// A disk-buffered backend's memory queue is only its read-ahead: its
    /// disk buffer refuses by itself when full (a 503 through `emit_event_checked`).
    pub(crate) queue_checked: Vec<(String, usize)>,
    /// The disk-buffered backends and their `buffer_max_bytes` (`/readyz`).
    pub(crate) disk_buffers: Vec<(String, u64)>,
    pub(crate) per_key: Option<rate_limit::Limiter<usize>>,
    pub(crate) per_ip: Option<rate_limit::Limiter<IpAddr>>,
    pub(crate) catalog: validate::CatalogCheck,
    pub(crate) metrics: metrics::Metrics,
    draining: AtomicBool,
}

impl Shared {
    /// Whether the server is shutting down (readiness off, new events refused).
    pub(crate) fn draining(&self) -> bool {
        self.draining.load(Relaxed)
    }
}

impl Collector {
    /// A collector for `tracker` with `config` (checked again here). The
    /// tracker needs a backend, and every backend must use `overflow =
    /// "drop_newest"` (the default): see the crate docs.
    pub fn new(tracker: Tracker, config: CollectorConfig) -> Result<Self, CollectorConfigError> {
        config.check()?;
        if tracker.backend_names().is_empty() {
            return Err(CollectorConfigError::Invalid {
                key: "backends".into(),
                reason: "the tracker has no backend: every event would be dropped".into(),
            });
        }
        let mut capacities = Vec::new();
        let mut queue_checked = Vec::new();
        let mut disk_buffers = Vec::new();
        for name in tracker.backend_names() {
            let Some(delivery) = tracker.delivery_config(&name) else {
                continue;
            };
            if delivery.overflow != Overflow::DropNewest {
                return Err(CollectorConfigError::Invalid {
                    key: format!("backends.{name}.delivery.overflow"),
                    reason: "the collector needs \"drop_newest\" (the default): \"block\" would stall its threads, \"drop_oldest\" would drop events already answered 202".into(),
                });
            }
            if delivery.buffer == BufferKind::Disk {
                disk_buffers.push((name.clone(), delivery.buffer_max_bytes));
            } else {
                queue_checked.push((name.clone(), delivery.queue_capacity));
            }
            capacities.push((name, delivery.queue_capacity));
        }
        let metrics = metrics::Metrics::new(tracker.clone(), capacities.clone());
        Ok(Collector {
            shared: Arc::new(Shared {
                per_key: config.rate_limit_per_key.map(rate_limit::Limiter::new),
                per_ip: config.rate_limit_per_ip.map(rate_limit::Limiter::new),
                tracker,
                config,
                queue_checked,
                disk_buffers,
                catalog: validate::CatalogCheck::new(),
                metrics,
                draining: AtomicBool::new(false),
            }),
        })
    }

    /// The settings.
    pub fn config(&self) -> &CollectorConfig {
        &self.shared.config
    }

    /// The tracker events go to.
    pub fn tracker(&self) -> &Tracker {
        &self.shared.tracker
    }

    /// The endpoints as an axum router, inside the tracking layer (each
    /// request in its own context, client address behind the trusted
    /// proxies) and the CORS middleware. Serve it with connect info
    /// (`into_make_service_with_connect_info::<SocketAddr>()`) so the
    /// client address is known. A `Router` layers each route, to be merged
    /// or nested into an application's; [`serve`](Self::serve) instead
    /// wraps the whole router in the two layers once, which spares axum a
    /// boxed service to clone and a boxed future per layer and request.
    pub fn router(&self) -> Router {
        let (routes, tracking, outer) = self.parts();
        routes.layer(tracking).layer(outer)
    }

    /// The endpoints (state applied), the tracking layer and the outer
    /// middleware, for [`router`](Self::router) and [`serve`](Self::serve).
    fn parts(&self) -> (Router, TrackingContextLayer, middleware::Outer) {
        let tracking = TrackingContextLayer::builder()
            .with_context_name("collector.request")
            .with_trusted_proxies(
                self.shared
                    .config
                    .trusted_proxies
                    .iter()
                    .map(|n| n.to_string()),
            )
            .with_tracker(self.shared.tracker.clone())
            .build()
            .unwrap_or_else(|_| {
                // The proxies are parsed networks already; their text parses again.
                tracing::error!(
                    "eventtracking-collector: the trusted proxies were refused; none are trusted"
                );
                TrackingContextLayer::new()
            });
        let cors = Arc::new(cors::Cors::new(&self.shared.config.allowed_origins));
        let mut routes = Router::new()
            .route("/v1/events", post(handler::post_events))
            .route("/v1/tracker.js", get(assets::tracker_js))
            .route("/healthz", get(health::healthz))
            .route("/readyz", get(health::readyz))
            .route("/metrics", get(metrics::metrics))
            .route("/catalog", get(catalog_page::catalog_page))
            .route("/catalog.json", get(health::catalog_json))
            .route("/openapi.json", get(openapi::openapi));
        if self.shared.config.demo {
            routes = routes.route("/demo", get(assets::demo_html));
        }
        let outer = middleware::Outer {
            shared: self.shared.clone(),
            cors,
        };
        (routes.with_state(self.shared.clone()), tracking, outer)
    }

    /// Marks the collector as shutting down: `/readyz` answers 503 and new
    /// events are refused with 503. [`serve`](Self::serve) calls it when its
    /// shutdown future completes.
    pub fn start_draining(&self) {
        self.shared.draining.store(true, Relaxed);
    }

    /// Serves on `listener` until `shutdown` completes, then stops taking
    /// requests and waits for those in progress. The tracker is not shut
    /// down here: the caller does that (and reports) once this returns.
    pub async fn serve<F>(
        self,
        listener: tokio::net::TcpListener,
        shutdown: F,
    ) -> std::io::Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let address = listener.local_addr()?;
        if self.shared.config.write_keys.is_empty() {
            tracing::warn!(%address, "eventtracking-collector: no write_keys: any client that reaches this address can send events");
        }
        tracing::info!(%address, write_keys = self.shared.config.write_keys.len(), "eventtracking-collector: listening");
        let draining = self.clone();
        let signal = async move {
            shutdown.await;
            draining.start_draining();
            tracing::info!("eventtracking-collector: shutting down");
        };
        // The layers wrap the router once, rather than each route as
        // `router()` does (for embedding): no boxed service per layer to
        // clone, and no boxed future, per request.
        let (routes, tracking, outer) = self.parts();
        let app = outer
            .layer(tracking.layer(routes))
            .into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, app)
            .with_graceful_shutdown(signal)
            .await
    }
}
