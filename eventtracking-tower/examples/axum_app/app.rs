//! The example application, shared by `main.rs` (which wires environment
//! variables and signals) and the integration tests (which serve it on an
//! ephemeral port with an in-memory backend).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use eventtracking::Tracker;
use eventtracking_tower::TrackingContextLayer;
use http::request::Parts;
use serde_json::json;
use tokio::net::TcpListener;

/// The address used when `EVENTTRACKING_ADDR` is not set.
pub(crate) const DEFAULT_ADDR: &str = "127.0.0.1:3000";

/// The listen address: `EVENTTRACKING_ADDR`'s value if set and not empty,
/// else [`DEFAULT_ADDR`].
pub(crate) fn listen_addr(value: Option<&str>) -> Result<SocketAddr, String> {
    let text = value.filter(|v| !v.is_empty()).unwrap_or(DEFAULT_ADDR);
    text.parse()
        .map_err(|e| format!("EVENTTRACKING_ADDR `{text}` is not an address: {e}"))
}

/// Who the user is: the `X-User-Id` header, as `context.user_id`. A header
/// that is not visible ASCII is an extractor error (logged and counted; the
/// request goes on without a user).
pub(crate) fn user_from_header(request: &Parts) -> Result<serde_json::Value, &'static str> {
    match request.headers.get("x-user-id") {
        None => Ok(serde_json::Value::Null),
        Some(value) => value
            .to_str()
            .map(|user| json!({"user_id": user}))
            .map_err(|_| "X-User-Id is not visible ASCII"),
    }
}

/// The tracking layer of the application.
pub(crate) fn tracking_layer() -> TrackingContextLayer {
    TrackingContextLayer::builder()
        .with_extractor(user_from_header)
        .build()
        .expect("the example's layer settings are valid")
}

/// The application: `GET /courses/{id}` emits `course.view` (`phase`
/// `start`), waits 0–20 ms, emits `course.view` (`phase` `end`), answers 200.
pub(crate) fn router(tracker: Tracker, layer: TrackingContextLayer) -> Router {
    Router::new()
        .route("/courses/{id}", get(course_view))
        .with_state(tracker)
        .layer(layer)
}

async fn course_view(State(tracker): State<Tracker>, Path(id): Path<String>) -> StatusCode {
    if let Err(error) = tracker.emit("course.view", json!({"course_id": id, "phase": "start"})) {
        tracing::warn!(%error, "course.view not emitted");
    }
    tokio::time::sleep(Duration::from_millis(fastrand::u64(0..=20))).await;
    if let Err(error) = tracker.emit("course.view", json!({"course_id": id, "phase": "end"})) {
        tracing::warn!(%error, "course.view not emitted");
    }
    StatusCode::OK
}

/// Serves `app` on `listener` (with the client address of each connection)
/// until `shutdown` completes, then waits for requests in flight.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
