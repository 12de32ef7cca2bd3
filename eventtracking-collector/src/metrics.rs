//! `GET /metrics`: the Prometheus text format (version 0.0.4) of the
//! tracker's counters, the collector's event outcomes, and HTTP requests by
//! route and status with a latency histogram. Written by hand: a few
//! counters do not need a metrics crate.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use eventtracking_core::sync::lock;
use http::header::CONTENT_TYPE;
use http::HeaderValue;

use crate::Shared;

/// The routes requests are counted under (anything else is `other`).
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

/// One route's latency histogram.
#[derive(Debug, Default)]
struct Histogram {
    /// Requests at or below each bound (not cumulative; summed when written).
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Relaxed);
    }
}

/// What the collector counts itself.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    /// Requests by (route index, status code).
    requests: Mutex<BTreeMap<(usize, u16), u64>>,
    /// One histogram per route, `other` last.
    latency: [Histogram; ROUTES.len() + 1],
    /// Events answered 202 (queued).
    pub(crate) events_accepted: AtomicU64,
    /// Events refused as invalid (in a 202's or a 422's `rejected`).
    pub(crate) events_rejected: AtomicU64,
    /// Events refused for want of room or during shutdown (503).
    pub(crate) events_unavailable: AtomicU64,
}

fn route_index(path: &str) -> usize {
    ROUTES
        .iter()
        .position(|r| *r == path)
        .unwrap_or(ROUTES.len())
}

fn route_name(index: usize) -> &'static str {
    ROUTES.get(index).copied().unwrap_or("other")
}

/// Times and counts every request.
pub(crate) async fn middleware(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let route = route_index(request.uri().path());
    let start = Instant::now();
    let response = next.run(request).await;
    let metrics = &shared.metrics;
    metrics.latency[route].observe(start.elapsed());
    *lock(&metrics.requests)
        .entry((route, response.status().as_u16()))
        .or_insert(0) += 1;
    response
}

/// The handler.
pub(crate) async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let mut response = Response::new(axum::body::Body::from(render(&shared)));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// A metric's `# HELP` and `# TYPE` lines.
fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value, escaped as the text format wants.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn render(shared: &Shared) -> String {
    let mut out = String::with_capacity(4096);
    let report = shared.tracker.report();
    let tracker = &report.tracker;
    for (name, value, help) in [
        (
            "emitted",
            tracker.emitted,
            "Events emitted into the tracker.",
        ),
        (
            "invalid",
            tracker.invalid,
            "Emits refused: bad name or data.",
        ),
        (
            "filtered",
            tracker.filtered,
            "Events a tracker-level processor dropped on purpose.",
        ),
        (
            "processor_errors",
            tracker.processor_errors,
            "Events dropped because a tracker-level processor failed.",
        ),
        (
            "no_backend",
            tracker.no_backend,
            "Events emitted on a tracker with no backend.",
        ),
        (
            "after_shutdown",
            tracker.after_shutdown,
            "Emits refused because the tracker was shut down.",
        ),
    ] {
        let metric = format!("eventtracking_tracker_{name}_total");
        header(&mut out, &metric, "counter", help);
        let _ = writeln!(out, "{metric} {value}");
    }
    type Field = fn(&eventtracking_engine::BackendStats) -> u64;
    let backend_counters: [(&str, Field, &str); 10] = [
        (
            "accepted",
            |s| s.accepted,
            "Events that entered the backend's queue.",
        ),
        ("delivered", |s| s.delivered, "Events the backend stored."),
        ("retried", |s| s.retried, "Event sends retried."),
        (
            "failed",
            |s| s.failed,
            "Events that could not be delivered.",
        ),
        (
            "dead_lettered",
            |s| s.dead_lettered,
            "Failed events written to the dead-letter file.",
        ),
        (
            "dropped",
            |s| s.dropped,
            "Events dropped, all reasons together.",
        ),
        (
            "dropped_queue_full",
            |s| s.dropped_by_reason.queue_full,
            "Events refused by a full queue.",
        ),
        (
            "batches",
            |s| s.batches,
            "Batches handed to the backend, attempts included.",
        ),
        (
            "flush_errors",
            |s| s.flush_errors,
            "Backend flushes that failed.",
        ),
        (
            "schema_invalid",
            |s| s.schema_invalid,
            "Failed events that broke their type's JSON Schema.",
        ),
    ];
    for (name, field, help) in backend_counters {
        let metric = format!("eventtracking_backend_{name}_total");
        header(&mut out, &metric, "counter", help);
        for (backend, stats) in &report.backends {
            let _ = writeln!(
                out,
                "{metric}{{backend=\"{}\"}} {}",
                label(backend),
                field(stats)
            );
        }
    }
    header(
        &mut out,
        "eventtracking_backend_queued",
        "gauge",
        "Events waiting in the backend's queue.",
    );
    header(
        &mut out,
        "eventtracking_backend_queue_capacity",
        "gauge",
        "The backend's queue capacity.",
    );
    for (backend, capacity) in &shared.capacities {
        let queued = report.backends.get(backend).map_or(0, |s| s.queued);
        let backend = label(backend);
        let _ = writeln!(
            out,
            "eventtracking_backend_queued{{backend=\"{backend}\"}} {queued}"
        );
        let _ = writeln!(
            out,
            "eventtracking_backend_queue_capacity{{backend=\"{backend}\"}} {capacity}"
        );
    }

    let metrics = &shared.metrics;
    let name = "eventtracking_collector_events_total";
    header(&mut out, name, "counter", "Events received by the collector, by outcome: accepted (202), rejected (invalid), unavailable (503).");
    for (outcome, counter) in [
        ("accepted", &metrics.events_accepted),
        ("rejected", &metrics.events_rejected),
        ("unavailable", &metrics.events_unavailable),
    ] {
        let _ = writeln!(
            out,
            "{name}{{outcome=\"{outcome}\"}} {}",
            counter.load(Relaxed)
        );
    }
    let name = "eventtracking_collector_http_requests_total";
    header(
        &mut out,
        name,
        "counter",
        "HTTP requests answered, by route and status.",
    );
    for ((route, status), count) in lock(&metrics.requests).iter() {
        let _ = writeln!(
            out,
            "{name}{{route=\"{}\",status=\"{status}\"}} {count}",
            route_name(*route)
        );
    }
    let name = "eventtracking_collector_http_request_duration_seconds";
    header(
        &mut out,
        name,
        "histogram",
        "Time from the request to the response head, by route.",
    );
    for (index, histogram) in metrics.latency.iter().enumerate() {
        let count = histogram.count.load(Relaxed);
        if count == 0 {
            continue;
        }
        let route = route_name(index);
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS.iter().zip(&histogram.buckets) {
            cumulative += bucket.load(Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{route=\"{route}\",le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{route=\"{route}\",le=\"+Inf\"}} {count}"
        );
        let sum = histogram.sum_micros.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{route=\"{route}\"}} {sum}");
        let _ = writeln!(out, "{name}_count{{route=\"{route}\"}} {count}");
    }
    out
}
