//! `GET /metrics`: the OpenMetrics text exposition (which Prometheus
//! scrapes) of the tracker's counters, the collector's event outcomes, and
//! HTTP requests by route and status with a latency histogram, through
//! `prometheus-client`.

use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use eventtracking_engine::{BackendStats, Tracker};
use http::header::CONTENT_TYPE;
use http::{HeaderValue, StatusCode};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::Shared;

/// The routes requests are counted under (anything else is `other`, so a
/// scan of random paths cannot grow the label set).
const ROUTES: &[&str] = &[
    "/v1/events",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/catalog.json",
    "/catalog",
    "/v1/tracker.js",
    "/demo",
];

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

const CONTENT_TYPE_OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// What happened to events the collector received.
#[derive(Debug, Clone, Copy)]
pub(crate) enum EventOutcome {
    /// Answered 202 (queued).
    Accepted,
    /// Refused as invalid (in a 202's or a 422's `rejected`).
    Rejected,
    /// Refused for want of room or during shutdown (503).
    Unavailable,
}

/// The collector's metrics and the registry they are written from.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    events: Family<OutcomeLabels, Counter>,
    /// Handles into the families above, taken on first use: a family's
    /// lookup locks and hashes the labels, twice per request otherwise.
    cached: Cached,
}

/// Per route (the index in `ROUTES`, then `other`): its latency histogram
/// and its 200 and 202 counters; per event outcome: its counter.
#[derive(Debug, Default)]
struct Cached {
    latency: [OnceLock<Histogram>; ROUTES.len() + 1],
    ok: [[OnceLock<Counter>; 2]; ROUTES.len() + 1],
    outcomes: [OnceLock<Counter>; 3],
}

fn latency_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

impl Metrics {
    /// The collector's own metrics, and the tracker's counters read at each scrape.
    pub(crate) fn new(tracker: Tracker, capacities: Vec<(String, usize)>) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "eventtracking_collector_http_requests",
            "HTTP requests answered, by route and status",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "eventtracking_collector_http_request_duration_seconds",
            "Time from the request to the response head, by route",
            latency.clone(),
        );
        let events = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "eventtracking_collector_events",
            "Events received by the collector, by outcome: accepted (202), rejected (invalid), unavailable (503)",
            events.clone(),
        );
        registry.register_collector(Box::new(TrackerCounters {
            tracker,
            capacities,
        }));
        Metrics {
            registry,
            requests,
            latency,
            events,
            cached: Cached::default(),
        }
    }

    /// Counts `n` events with this outcome.
    pub(crate) fn count_events(&self, outcome: EventOutcome, n: usize) {
        if n == 0 {
            return;
        }
        let (slot, outcome) = match outcome {
            EventOutcome::Accepted => (0, "accepted"),
            EventOutcome::Rejected => (1, "rejected"),
            EventOutcome::Unavailable => (2, "unavailable"),
        };
        self.cached.outcomes[slot]
            .get_or_init(|| {
                self.events
                    .get_or_create(&OutcomeLabels { outcome })
                    .clone()
            })
            .inc_by(n as u64);
    }

    /// Records one request's latency and status.
    pub(crate) fn count_request(&self, route: usize, status: StatusCode, seconds: f64) {
        let label = ROUTES.get(route).copied().unwrap_or("other");
        self.cached.latency[route]
            .get_or_init(|| {
                self.latency
                    .get_or_create(&RouteLabels { route: label })
                    .clone()
            })
            .observe(seconds);
        let status = status.as_u16();
        let counter = |status| {
            self.requests
                .get_or_create(&RequestLabels {
                    route: label,
                    status,
                })
                .clone()
        };
        match status {
            200 => self.cached.ok[route][0].get_or_init(|| counter(200)).inc(),
            202 => self.cached.ok[route][1].get_or_init(|| counter(202)).inc(),
            _ => counter(status).inc(),
        };
    }
}

/// The index of `path` in `ROUTES`, or `ROUTES.len()` for `other`.
pub(crate) fn route_index(path: &str) -> usize {
    ROUTES
        .iter()
        .position(|route| *route == path)
        .unwrap_or(ROUTES.len())
}

/// The handler.
pub(crate) async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let mut text = String::with_capacity(8192);
    if let Err(error) =
        prometheus_client::encoding::text::encode(&mut text, &shared.metrics.registry)
    {
        tracing::error!(%error, "eventtracking collector: encoding the metrics failed");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let mut response = Response::new(axum::body::Body::from(text));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(CONTENT_TYPE_OPENMETRICS),
    );
    response
}

/// The tracker's and its backends' counters, read at each scrape.
#[derive(Debug)]
struct TrackerCounters {
    tracker: Tracker,
    capacities: Vec<(String, usize)>,
}

type BackendField = fn(&BackendStats) -> u64;

/// The backends' counters: name (without `_total`), value, help.
const BACKEND_COUNTERS: [(&str, BackendField, &str); 10] = [
    (
        "accepted",
        |s| s.accepted,
        "Events that entered the backend's queue",
    ),
    ("delivered", |s| s.delivered, "Events the backend stored"),
    ("retried", |s| s.retried, "Event sends retried"),
    ("failed", |s| s.failed, "Events that could not be delivered"),
    (
        "dead_lettered",
        |s| s.dead_lettered,
        "Failed events written to the dead-letter file",
    ),
    (
        "dropped",
        |s| s.dropped,
        "Events dropped, all reasons together",
    ),
    (
        "dropped_queue_full",
        |s| s.dropped_by_reason.queue_full,
        "Events refused by a full queue",
    ),
    (
        "batches",
        |s| s.batches,
        "Batches handed to the backend, attempts included",
    ),
    (
        "flush_errors",
        |s| s.flush_errors,
        "Backend flushes that failed",
    ),
    (
        "schema_invalid",
        |s| s.schema_invalid,
        "Failed events that broke their type's JSON Schema",
    ),
];

impl Collector for TrackerCounters {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let report = self.tracker.report();
        let tracker = &report.tracker;
        for (name, value, help) in [
            (
                "emitted",
                tracker.emitted,
                "Events emitted into the tracker",
            ),
            (
                "invalid",
                tracker.invalid,
                "Emits refused: bad name or data",
            ),
            (
                "filtered",
                tracker.filtered,
                "Events a tracker-level processor dropped on purpose",
            ),
            (
                "processor_errors",
                tracker.processor_errors,
                "Events dropped because a tracker-level processor failed",
            ),
            (
                "no_backend",
                tracker.no_backend,
                "Events emitted on a tracker with no backend",
            ),
            (
                "after_shutdown",
                tracker.after_shutdown,
                "Emits refused because the tracker was shut down",
            ),
        ] {
            let counter = ConstCounter::new(value);
            let full_name = format!("eventtracking_tracker_{name}");
            let metric =
                encoder.encode_descriptor(&full_name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        for (name, field, help) in BACKEND_COUNTERS {
            let full_name = format!("eventtracking_backend_{name}");
            let mut metric =
                encoder.encode_descriptor(&full_name, help, None, MetricType::Counter)?;
            for (backend, stats) in &report.backends {
                let labels = [("backend", backend.as_str())];
                ConstCounter::new(field(stats)).encode(metric.encode_family(&labels)?)?;
            }
        }
        let mut queued = encoder.encode_descriptor(
            "eventtracking_backend_queued",
            "Events waiting in the backend's queue",
            None,
            MetricType::Gauge,
        )?;
        for (backend, _) in &self.capacities {
            let value = report.backends.get(backend).map_or(0, |s| s.queued);
            let labels = [("backend", backend.as_str())];
            ConstGauge::new(value as i64).encode(queued.encode_family(&labels)?)?;
        }
        let mut capacity = encoder.encode_descriptor(
            "eventtracking_backend_queue_capacity",
            "The backend's queue capacity",
            None,
            MetricType::Gauge,
        )?;
        for (backend, value) in &self.capacities {
            let labels = [("backend", backend.as_str())];
            ConstGauge::new(*value as i64).encode(capacity.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
