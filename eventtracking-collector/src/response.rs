//! The answers: JSON bodies with their status codes and headers.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::{IntoResponse, Response};
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, StatusCode};
use serde::Serialize;
use serde_json::json;

/// One event refused: its index in the request, where in the body, and why.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Rejection {
    pub(crate) index: usize,
    /// A JSON pointer into the request body, e.g. `/events/3/name`.
    pub(crate) pointer: String,
    pub(crate) error: String,
}

/// A request refused as a whole.
#[derive(Debug)]
pub(crate) struct Problem {
    status: StatusCode,
    body: serde_json::Value,
    retry_after: Option<Duration>,
}

impl Problem {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Problem {
            status,
            body: json!({ "error": message.into() }),
            retry_after: None,
        }
    }

    /// 400: the body could not be read or is not one of the accepted shapes.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 400: the JSON is malformed at `line`, `column`.
    pub(crate) fn malformed(message: String, line: usize, column: usize) -> Self {
        Problem {
            status: StatusCode::BAD_REQUEST,
            body: json!({ "error": message, "line": line, "column": column }),
            retry_after: None,
        }
    }

    /// 401: no key, or one that is not a write key. Never says which key.
    pub(crate) fn unauthorized(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    /// 408: the body did not arrive within `limit`.
    pub(crate) fn timeout(limit: Duration) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the body did not arrive within body_timeout_ms ({} ms)",
                limit.as_millis()
            ),
        )
    }

    /// 413: the body or the batch is too large.
    pub(crate) fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, message)
    }

    /// 415: a content type or encoding the collector does not read.
    pub(crate) fn unsupported(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, message)
    }

    /// 422: every event was refused.
    pub(crate) fn all_invalid(rejected: Vec<Rejection>) -> Self {
        Problem {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: json!({
                "error": "every event was refused",
                "accepted": 0,
                "rejected": rejected,
            }),
            retry_after: None,
        }
    }

    /// 429: over a rate limit; try again after `wait`.
    pub(crate) fn rate_limited(message: impl Into<String>, wait: Duration) -> Self {
        let mut problem = Self::new(StatusCode::TOO_MANY_REQUESTS, message);
        problem.retry_after = Some(wait);
        problem
    }

    /// 503: the tracker cannot take the events now (queue full, shutting
    /// down); `accepted` of them were taken anyway, the `rejected` were not.
    pub(crate) fn unavailable(
        message: impl Into<String>,
        accepted: usize,
        rejected: Vec<Rejection>,
    ) -> Self {
        Problem {
            status: StatusCode::SERVICE_UNAVAILABLE,
            body: json!({ "error": message.into(), "accepted": accepted, "rejected": rejected }),
            retry_after: Some(Duration::from_secs(1)),
        }
    }

    /// The status code.
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut response = json_response(self.status, &self.body);
        if let Some(wait) = self.retry_after {
            // Whole seconds, rounded up, at least one.
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        response
    }
}

/// 202: `{"accepted": n, "rejected": [...]}`.
pub(crate) fn accepted(accepted: usize, rejected: &[Rejection]) -> Response {
    if rejected.is_empty() {
        // The usual answers, written without building a JSON value; a
        // single event's (a beacon's) without even formatting.
        if accepted == 1 {
            let body = Bytes::from_static(b"{\"accepted\":1,\"rejected\":[]}");
            return with_json_type(StatusCode::ACCEPTED, body);
        }
        let body = format!("{{\"accepted\":{accepted},\"rejected\":[]}}");
        return with_json_type(StatusCode::ACCEPTED, body.into_bytes());
    }
    json_response(
        StatusCode::ACCEPTED,
        &json!({ "accepted": accepted, "rejected": rejected }),
    )
}

/// A JSON body with its content type.
pub(crate) fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    with_json_type(status, bytes)
}

fn with_json_type(status: StatusCode, bytes: impl Into<Body>) -> Response {
    let mut response = Response::new(bytes.into());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.body.get("error").and_then(|e| e.as_str()) {
            Some(message) => write!(f, "{} {message}", self.status.as_u16()),
            None => write!(f, "{}", self.status.as_u16()),
        }
    }
}
