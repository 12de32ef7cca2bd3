//! CORS: preflights answered for the allowed origins, and their responses
//! marked readable by the page. Another origin gets no CORS header at all
//! (the browser then keeps the response from the page). CORS is not
//! authentication: the write key is.

use axum::extract::Request;
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

/// What CORS makes of one request, decided before it is handled.
#[derive(Debug)]
pub(crate) struct Decision {
    /// The request's origin, when it is allowed.
    allowed: Option<HeaderValue>,
    preflight: bool,
}

impl Cors {
    /// Reads the request's origin; a preflight is answered at once (204
    /// for an allowed origin, 403 otherwise), anything else passes on.
    pub(crate) fn decide(&self, request: &Request) -> (Decision, Option<Response>) {
        let allowed = request
            .headers()
            .get(ORIGIN)
            .filter(|o| self.allows(o))
            .cloned();
        let preflight = request.method() == Method::OPTIONS
            && request
                .headers()
                .contains_key(ACCESS_CONTROL_REQUEST_METHOD);
        if !preflight {
            return (Decision { allowed, preflight }, None);
        }
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
        (Decision { allowed, preflight }, Some(response))
    }

    /// Marks the response readable by an allowed origin's page.
    pub(crate) fn finish(&self, decision: Decision, response: &mut Response) {
        let headers = response.headers_mut();
        if self.is_configured() {
            // Caches must keep one answer per origin.
            headers.append(VARY, HeaderValue::from_static("origin"));
        }
        if let Some(origin) = decision.allowed {
            headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            if !decision.preflight {
                headers.insert(
                    ACCESS_CONTROL_EXPOSE_HEADERS,
                    HeaderValue::from_static(EXPOSED_HEADERS),
                );
            }
        }
    }
}
