//! `POST /v1/events`: authenticate, read, limit, make the events, emit.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use eventtracking_core::Event;
use eventtracking_engine::Admission;
use http::header::WWW_AUTHENTICATE;
use http::{HeaderValue, StatusCode};

use crate::auth::presented_key;
use crate::context::ServerContext;
use crate::events::{Batch, Made, Pointers};
use crate::limits::Limits;
use crate::metrics::EventOutcome;
use crate::rate_limit::Refusal;
use crate::response::{self, Problem, Rejection};
use crate::Shared;

/// The handler. Every refusal is logged at debug level (401 at info), with
/// its status and message, never the key.
pub(crate) async fn post_events(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    match handle(&shared, request).await {
        Ok(response) => response,
        Err(problem) => {
            let status = problem.status();
            if status == StatusCode::UNAUTHORIZED {
                tracing::info!(
                    status = status.as_u16(),
                    "eventtracking-collector: request refused: {problem}"
                );
                let mut response = problem.into_response();
                response
                    .headers_mut()
                    .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return response;
            }
            tracing::debug!(
                status = status.as_u16(),
                "eventtracking-collector: request refused: {problem}"
            );
            problem.into_response()
        }
    }
}

async fn handle(shared: &Shared, request: Request) -> Result<Response, Problem> {
    let config = &shared.config;
    let (parts, body) = request.into_parts();
    let key = authenticate(shared, &parts)?;
    let gzip = crate::body::check_headers(&parts.headers, config.max_body_bytes)?;
    let reading = crate::body::read(body, gzip, config.max_body_bytes);
    // A slow client must not hold a connection and its buffer for ever.
    let bytes = tokio::time::timeout(config.body_timeout, reading)
        .await
        .map_err(|_| Problem::timeout(config.body_timeout))??;
    let batch = Batch::parse(&bytes)?;
    let n = batch.len();
    if n > config.max_events_per_request {
        return Err(Problem::too_large(format!(
            "{n} events is more than max_events_per_request ({})",
            config.max_events_per_request
        )));
    }
    let server = ServerContext::current(&config.source);
    rate_limit(shared, key, &server, n)?;
    let limits = Limits {
        max_string_bytes: config.max_string_bytes,
        max_object_keys: config.max_object_keys,
    };
    let check = |name: &str, data: &serde_json::value::RawValue| {
        if !config.validate {
            return None;
        }
        match serde_json::from_str(data.get()) {
            Ok(data) => shared.catalog.violation(name, &data),
            // A number too large for a JSON value.
            Err(error) => Some((String::new(), error.to_string())),
        }
    };
    let Made {
        events,
        rejected,
        pointers,
    } = batch.into_events(server, limits, &check);
    if events.is_empty() && !rejected.is_empty() {
        shared
            .metrics
            .count_events(EventOutcome::Rejected, rejected.len());
        return Err(Problem::all_invalid(rejected));
    }
    emit(shared, events, rejected, pointers)
}

/// The index of the write key presented; `None` when no key is configured.
fn authenticate(shared: &Shared, parts: &http::request::Parts) -> Result<Option<usize>, Problem> {
    let keys = &shared.config.write_keys;
    if keys.is_empty() {
        return Ok(None);
    }
    let Some(presented) = presented_key(&parts.headers, parts.uri.query()) else {
        return Err(Problem::unauthorized(
            "no write key: send it as Authorization: Bearer KEY, X-Eventtracking-Key: KEY or ?key=KEY",
        ));
    };
    match keys.find(&presented) {
        Some(index) => Ok(Some(index)),
        None => Err(Problem::unauthorized(
            "the write key is not one of this collector's",
        )),
    }
}

/// Takes `n` events from the client address's bucket, then the key's.
fn rate_limit(
    shared: &Shared,
    key: Option<usize>,
    server: &ServerContext,
    n: usize,
) -> Result<(), Problem> {
    let n = u32::try_from(n).unwrap_or(u32::MAX);
    let now = Instant::now();
    let refused = |what: &str, burst_key: &str, refusal: Refusal| {
        match refusal {
        Refusal::RetryAfter(wait) => Problem::rate_limited(
            format!("rate limited ({what}): retry after {} ms", wait.as_millis()),
            wait,
        ),
        Refusal::LargerThanBurst(burst) => Problem::too_large(format!(
            "{n} events is more than {burst_key} ({burst}) lets through at once: send smaller batches"
        )),
    }
    };
    if let (Some(limiter), Some(ip)) = (&shared.per_ip, server.client_ip()) {
        limiter
            .take(&ip, n, now)
            .map_err(|r| refused("per client address", "rate_limit_per_ip_burst", r))?;
    }
    if let (Some(limiter), Some(key)) = (&shared.per_key, key) {
        limiter
            .take(&key, n, now)
            .map_err(|r| refused("per write key", "rate_limit_per_key_burst", r))?;
    }
    Ok(())
}

/// Hands the events to the tracker. A full queue is answered 503 before
/// any event is emitted when it can be seen coming (every backend's queue
/// must have room for the whole request); an event a backend still drops
/// for want of room (a race with other requests) is listed in a 503 too,
/// so the client retries: never a silent drop.
fn emit(
    shared: &Shared,
    events: Vec<(usize, Arc<Event>)>,
    mut rejected: Vec<Rejection>,
    pointers: Pointers,
) -> Result<Response, Problem> {
    let n = events.len() as u64;
    // The whole request is refused before anything is emitted: counted, then answered 503.
    let refuse_all = |reason: String| {
        let metrics = &shared.metrics;
        metrics.count_events(EventOutcome::Unavailable, events.len());
        metrics.count_events(EventOutcome::Rejected, rejected.len());
        Err(Problem::unavailable(reason, 0, Vec::new()))
    };
    if shared.draining() {
        return refuse_all("the collector is shutting down".to_owned());
    }
    for (name, capacity) in &shared.queue_checked {
        // Not `report()`: that builds every backend's stats, per request.
        let queued = shared.tracker.queued(name).unwrap_or(0) as u64;
        if queued + n > *capacity as u64 {
            return refuse_all(format!(
                "backend {name:?}'s queue is full ({queued} of {capacity} queued): retry later"
            ));
        }
    }
    let mut accepted = 0;
    let mut unavailable = Vec::new();
    for (index, event) in events {
        // No receipt per event: whether each backend took it is known now.
        let refusal = match shared.tracker.emit_event_checked(event) {
            Ok(Admission::Taken | Admission::Filtered) => None,
            Ok(Admission::Refused { backends }) => {
                let refusals: Vec<String> = backends
                    .iter()
                    .map(|(backend, reason)| format!("backend {:?}: {reason}", &**backend))
                    .collect();
                Some((refusals.join("; "), true))
            }
            Ok(Admission::ProcessorError { reason }) => Some((reason, false)),
            // Shut down meanwhile: retry (against this or another instance).
            Err(error) => Some((error.to_string(), true)),
            Ok(other) => Some((format!("{other:?}"), false)),
        };
        match refusal {
            None => accepted += 1,
            // A full queue or disk buffer: 503, the client sends it again.
            Some((error, true)) => unavailable.push(Rejection {
                index,
                pointer: pointers.of(index),
                error,
            }),
            Some((error, false)) => rejected.push(Rejection {
                index,
                pointer: pointers.of(index),
                error,
            }),
        }
    }
    shared
        .metrics
        .count_events(EventOutcome::Accepted, accepted);
    shared
        .metrics
        .count_events(EventOutcome::Rejected, rejected.len());
    shared
        .metrics
        .count_events(EventOutcome::Unavailable, unavailable.len());
    if !unavailable.is_empty() {
        rejected.extend(unavailable);
        rejected.sort_by_key(|r| r.index);
        return Err(Problem::unavailable(
            "some events were not queued (queue full or shutting down): retry those listed",
            accepted,
            rejected,
        ));
    }
    Ok(response::accepted(accepted, &rejected))
}
