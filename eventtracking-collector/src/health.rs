//! `GET /healthz` (the process answers), `GET /readyz` (it can take events)
//! and `GET /catalog.json` (the event types it knows).

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use http::StatusCode;
use serde_json::json;

use crate::response::json_response;
use crate::Shared;

/// Always 200 while the server runs.
pub(crate) async fn healthz() -> Response {
    json_response(StatusCode::OK, &json!({ "status": "ok" }))
}

/// 200 when the collector is not shutting down and every backend's queue
/// (or disk buffer, with `buffer = "disk"`) has room; 503 otherwise. The
/// tracker does not probe a backend's store: a store that is down shows
/// here once its queue (or disk buffer) fills up.
pub(crate) async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    let report = shared.tracker.report();
    let mut ready = !shared.draining();
    let mut backends = serde_json::Map::new();
    for (name, capacity) in &shared.queue_checked {
        let stats = report.backends.get(name);
        let queued = stats.map_or(0, |s| s.queued);
        let room = queued < *capacity as u64;
        ready &= room;
        backends.insert(
            name.clone(),
            json!({
                "ready": room,
                "queued": queued,
                "queue_capacity": capacity,
                "delivered": stats.map_or(0, |s| s.delivered),
                "dead_lettered": stats.map_or(0, |s| s.dead_lettered),
                "dropped": stats.map_or(0, |s| s.dropped),
            }),
        );
    }
    for (name, max_bytes) in &shared.disk_buffers {
        let stats = report.backends.get(name);
        let buffered_bytes = stats.map_or(0, |s| s.buffered_bytes);
        let room = buffered_bytes < *max_bytes;
        ready &= room;
        backends.insert(
            name.clone(),
            json!({
                "ready": room,
                "buffered_events": stats.map_or(0, |s| s.buffered_events),
                "buffered_bytes": buffered_bytes,
                "buffer_max_bytes": max_bytes,
                "delivered": stats.map_or(0, |s| s.delivered),
                "dead_lettered": stats.map_or(0, |s| s.dead_lettered),
                "dropped": stats.map_or(0, |s| s.dropped),
            }),
        );
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(
        status,
        &json!({ "ready": ready, "shutting_down": shared.draining(), "backends": backends }),
    )
}

/// The catalog of the event types linked into the program, as `eventtracking
/// catalog` prints it: `{"event_types": [...]}`; 500 if two types clash.
pub(crate) async fn catalog_json() -> Response {
    match eventtracking_core::catalog::catalog() {
        Ok(catalog) => json_response(StatusCode::OK, &catalog.to_json()),
        Err(error) => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({ "error": error.to_string() }),
        ),
    }
}
