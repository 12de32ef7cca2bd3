//! CORS: preflights answered for the allowed origins, and their responses
//! marked readable by the page. Another origin gets no CORS header at all
//! (the browser then keeps the response from the page). CORS is not
//! authentication: the write key is.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN,
    VARY,
};
use http::{HeaderValue, Method, StatusCode};

/// The headers a page may send (what the browser tracker sets).
const ALLOWED_HEADERS: &str =
    "content-type, content-encoding, authorization, x-eventtracking-key, x-request-id";
/// The response headers a page may read.
const EXPOSED_HEADERS: &str = "retry-after, x-request-id";
const ALLOWED_METHODS: &str = "POST, GET, OPTIONS";
/// How long a browser may keep a preflight's answer (a day).
const MAX_AGE_SECONDS: u32 = 86_400;

/// The allowed origins.
#[derive(Debug, Clone)]
pub(crate) struct Cors {
    any: bool,
    origins: Vec<String>,
}

impl Cors {
    pub(crate) fn new(origins: &[String]) -> Self {
        Cors {
            any: origins.iter().any(|o| o == "*"),
            // Origins compare without case (scheme and host are case-insensitive).
            origins: origins.iter().map(|o| o.to_ascii_lowercase()).collect(),
        }
    }

    fn allows(&self, origin: &HeaderValue) -> bool {
        self.any
            || origin.to_str().is_ok_and(|o| {
                self.origins
                    .iter()
                    .any(|allowed| allowed.eq_ignore_ascii_case(o))
            })
    }

    fn is_configured(&self) -> bool {
        self.any || !self.origins.is_empty()
    }
}

/// The middleware: preflights answered here, other requests passed on and
/// their responses given the CORS headers when the origin is allowed.
pub(crate) async fn middleware(
    State(cors): State<Arc<Cors>>,
    request: Request,
    next: Next,
) -> Response {
    let origin = request.headers().get(ORIGIN).cloned();
    let allowed = origin.as_ref().filter(|o| cors.allows(o)).cloned();
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = if preflight {
        let mut response = Response::default();
        *response.status_mut() = if allowed.is_some() {
            StatusCode::NO_CONTENT
        } else {
            StatusCode::FORBIDDEN
        };
        if allowed.is_some() {
            let headers = response.headers_mut();
            headers.insert(
                ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(ALLOWED_METHODS),
            );
            headers.insert(
                ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(ALLOWED_HEADERS),
            );
            headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from(MAX_AGE_SECONDS));
        }
        response
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    if cors.is_configured() {
        // Caches must keep one answer per origin.
        headers.append(VARY, HeaderValue::from_static("origin"));
    }
    if let Some(origin) = allowed {
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        if !preflight {
            headers.insert(
                ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSED_HEADERS),
            );
        }
    }
    response
}
