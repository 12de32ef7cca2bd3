//! The files the collector ships for browsers: the tracker
//! (`GET /v1/tracker.js`) and the demo page (`GET /demo`, when `demo = true`).

use axum::body::Body;
use axum::response::Response;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, StatusCode};

/// The browser tracker, `eventtracking.js`: what `GET /v1/tracker.js` serves.
/// No dependencies; it defines `window.eventtracking` (see the crate docs).
pub const TRACKER_JS: &str = include_str!("../assets/eventtracking.js");

/// The demo page `GET /demo` serves: it loads `/v1/tracker.js` and emits
/// events in nested contexts when its button is clicked.
pub const DEMO_HTML: &str = include_str!("../assets/demo.html");

/// Browsers and proxies may keep the tracker this long: an upgrade reaches
/// pages within five minutes.
const TRACKER_CACHE: &str = "public, max-age=300";

/// `GET /v1/tracker.js`.
pub(crate) async fn tracker_js() -> Response {
    static_response(
        "application/javascript; charset=utf-8",
        TRACKER_CACHE,
        TRACKER_JS,
    )
}

/// `GET /demo`.
pub(crate) async fn demo_html() -> Response {
    static_response("text/html; charset=utf-8", "no-cache", DEMO_HTML)
}

/// A fixed body with its content type and cache policy.
pub(crate) fn static_response(
    content_type: &'static str,
    cache: &'static str,
    body: impl Into<Body>,
) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tracker_stays_under_10_kib() {
        assert!(
            TRACKER_JS.len() < 10 * 1024,
            "eventtracking.js is {} bytes; issue 15 asks for under 10 KB",
            TRACKER_JS.len()
        );
    }

    #[test]
    fn the_tracker_defines_the_api() {
        for name in ["init:", "emit:", "enterContext:", "exitContext:", "flush:"] {
            assert!(TRACKER_JS.contains(name), "eventtracking.js lacks {name}");
        }
        assert!(DEMO_HTML.contains("src=\"/v1/tracker.js\""));
    }
}
