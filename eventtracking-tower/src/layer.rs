//! [`TrackingContextLayer`], its builder and its counters.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use eventtracking_core::context::ContextSnapshot;
use eventtracking_core::{validate_event_name, InvalidEventName};
use eventtracking_engine::Tracker;
use http::header::HeaderName;
use tower_layer::Layer;

use crate::extract::ContextExtractor;
use crate::proxy::{ClientAddrPolicy, ForwardedHeader, IpNetwork};
use crate::service::TrackingContextService;

/// The default name of the per-request context.
pub const DEFAULT_CONTEXT_NAME: &str = "http.request";

/// The default header a request id is read from (and echoed in).
pub const DEFAULT_REQUEST_ID_HEADER: &str = "x-request-id";

/// Headers that can never be captured into a context.
pub const SENSITIVE_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "x-auth-token",
    "x-csrf-token",
    "x-xsrf-token",
];

/// A [`tower_layer::Layer`] that runs every request in its own eventtracking
/// context; see the [crate docs](crate) for the fields and settings.
///
/// Cheap to clone: the settings and counters are shared.
///
/// ```
/// use eventtracking_tower::TrackingContextLayer;
///
/// let layer = TrackingContextLayer::builder()
///     .with_request_id_header("x-correlation-id")
///     .with_trusted_proxies(["10.0.0.0/8"])
///     .with_request_event("http.request")
///     .build()
///     .unwrap();
/// assert_eq!(layer.stats().requests, 0);
/// ```
#[derive(Clone, Debug)]
pub struct TrackingContextLayer {
    pub(crate) config: Arc<LayerConfig>,
}

impl TrackingContextLayer {
    /// A layer with the default settings: context `http.request`, request
    /// ids from `x-request-id` (or generated), no trusted proxies, no
    /// extractors, no request events.
    pub fn new() -> Self {
        Self::builder()
            .build()
            .unwrap_or_else(|_| unreachable!("the default settings are valid"))
    }

    /// Starts building a layer.
    pub fn builder() -> TrackingContextLayerBuilder {
        TrackingContextLayerBuilder::default()
    }

    /// The counters of this layer and every service it made.
    pub fn stats(&self) -> LayerStats {
        self.config.counters.snapshot()
    }
}

impl Default for TrackingContextLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for TrackingContextLayer {
    type Service = TrackingContextService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TrackingContextService::new(inner, self.config.clone())
    }
}

/// Counters of a [`TrackingContextLayer`] (see [`TrackingContextLayer::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LayerStats {
    /// Requests that entered the layer.
    pub requests: u64,
    /// Extractor calls that failed or panicked (their fields were left out).
    pub extractor_errors: u64,
    /// Request events that the tracker refused (see the tracker's own report
    /// for events dropped later).
    pub request_event_errors: u64,
    /// Requests whose context was written into an earlier request's map
    /// (once every event of that request was delivered and dropped) instead
    /// of a new one: see the crate docs, "Allocation".
    pub recycled_contexts: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) requests: AtomicU64,
    pub(crate) extractor_errors: AtomicU64,
    pub(crate) request_event_errors: AtomicU64,
    pub(crate) recycled_contexts: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> LayerStats {
        LayerStats {
            requests: self.requests.load(Relaxed),
            extractor_errors: self.extractor_errors.load(Relaxed),
            request_event_errors: self.request_event_errors.load(Relaxed),
            recycled_contexts: self.recycled_contexts.load(Relaxed),
        }
    }
}

/// Why a [`TrackingContextLayerBuilder`] refused its settings.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayerBuildError {
    /// A header name is not a valid HTTP header name.
    #[error("`{name}` is not a valid header name")]
    InvalidHeaderName {
        /// The name given.
        name: String,
    },
    /// A header that carries credentials was asked to be captured.
    #[error("header `{name}` carries credentials and is never captured into a context")]
    SensitiveHeader {
        /// The name given.
        name: String,
    },
    /// A trusted proxy is not an IP address or network.
    #[error("trusted proxy `{value}`: {reason}")]
    InvalidProxy {
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The request event name is not a valid event name.
    #[error(transparent)]
    InvalidEventName(#[from] InvalidEventName),
    /// The context name is empty.
    #[error("the context name must not be empty")]
    EmptyContextName,
}

/// Builds a [`TrackingContextLayer`]: `TrackingContextLayer::builder()`,
/// `with_*` settings, then [`build`](Self::build).
///
/// ```
/// use eventtracking_tower::{ForwardedHeader, TrackingContextLayer};
/// use http::request::Parts;
///
/// let layer = TrackingContextLayer::builder()
///     .with_context_name("request")
///     .with_request_id_header("x-correlation-id")
///     .with_request_id_in_response(false)
///     .with_trusted_proxies(["127.0.0.1", "10.0.0.0/8"])
///     .with_forwarded_header(ForwardedHeader::Forwarded)
///     .with_captured_header("accept-language")
///     .with_extractor(|r: &Parts| Ok::<_, &str>(serde_json::json!({"tenant": r.uri.host()})))
///     .with_request_event("http.request")
///     .build()
///     .unwrap();
/// # let _ = layer;
///
/// let err = TrackingContextLayer::builder().with_captured_header("Cookie").build().unwrap_err();
/// assert!(err.to_string().contains("never captured"));
/// ```
#[derive(Default)]
pub struct TrackingContextLayerBuilder {
    context_name: Option<String>,
    request_id_header: Option<String>,
    request_id_in_response: Option<bool>,
    trusted_proxies: Vec<String>,
    forwarded_header: ForwardedHeader,
    captured_headers: Vec<String>,
    extractors: Vec<Arc<dyn ContextExtractor>>,
    request_event: Option<String>,
    tracker: Option<Tracker>,
    inherit_contexts: bool,
}

impl fmt::Debug for TrackingContextLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrackingContextLayerBuilder")
            .field("context_name", &self.context_name)
            .field("request_id_header", &self.request_id_header)
            .field("request_id_in_response", &self.request_id_in_response)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("forwarded_header", &self.forwarded_header)
            .field("captured_headers", &self.captured_headers)
            .field(
                "extractors",
                &self.extractors.iter().map(|e| e.name()).collect::<Vec<_>>(),
            )
            .field("request_event", &self.request_event)
            .field("tracker", &self.tracker.is_some())
            .field("inherit_contexts", &self.inherit_contexts)
            .finish()
    }
}

impl TrackingContextLayerBuilder {
    /// The name of the per-request context (default [`DEFAULT_CONTEXT_NAME`]).
    pub fn with_context_name(mut self, name: impl Into<String>) -> Self {
        self.context_name = Some(name.into());
        self
    }

    /// The header a request id is taken from (default
    /// [`DEFAULT_REQUEST_ID_HEADER`]). A request without a usable id (1 to
    /// [`MAX_REQUEST_ID_LEN`](crate::MAX_REQUEST_ID_LEN) visible ASCII
    /// characters) gets a new UUIDv7, also set in this request header.
    pub fn with_request_id_header(mut self, name: impl Into<String>) -> Self {
        self.request_id_header = Some(name.into());
        self
    }

    /// Whether the response carries the request id header (default `true`;
    /// a header the handler set itself is kept).
    pub fn with_request_id_in_response(mut self, echo: bool) -> Self {
        self.request_id_in_response = Some(echo);
        self
    }

    /// Trusts the forwarding header of proxies at these addresses or
    /// networks (`"127.0.0.1"`, `"10.0.0.0/8"`, `"::1"`; `"0.0.0.0/0"` and
    /// `"::/0"` trust everyone, for servers only reachable through a proxy).
    /// Adds to the list. Without any, forwarding headers are ignored and the
    /// client address is that of the connection.
    pub fn with_trusted_proxies<I>(mut self, proxies: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.trusted_proxies
            .extend(proxies.into_iter().map(Into::into));
        self
    }

    /// Which header the trusted proxies write (default
    /// [`ForwardedHeader::XForwardedFor`]). Only that one is read.
    pub fn with_forwarded_header(mut self, header: ForwardedHeader) -> Self {
        self.forwarded_header = header;
        self
    }

    /// Also captures this request header, under its lower-case name with
    /// `-` replaced by `_` (`accept-language` → `accept_language`).
    /// Credential headers ([`SENSITIVE_HEADERS`]) are refused by
    /// [`build`](Self::build).
    pub fn with_captured_header(mut self, name: impl Into<String>) -> Self {
        self.captured_headers.push(name.into());
        self
    }

    /// Adds an extractor of application fields (run in the order added).
    pub fn with_extractor(mut self, extractor: impl ContextExtractor) -> Self {
        self.extractors.push(Arc::new(extractor));
        self
    }

    /// Emits an event with this name when a request completes (off by
    /// default): `{"status": 200, "latency_ms": 1.234}`, in the request's
    /// context. See the crate docs for errors and cancelled requests.
    pub fn with_request_event(mut self, name: impl Into<String>) -> Self {
        self.request_event = Some(name.into());
        self
    }

    /// The tracker request events go to (default: the default tracker at
    /// the time of the event, see [`eventtracking_engine::default_tracker`]).
    /// Events emitted by handlers go wherever the handler sends them.
    pub fn with_tracker(mut self, tracker: Tracker) -> Self {
        self.tracker = Some(tracker);
        self
    }

    /// Whether a request context starts from the contexts of the task that
    /// calls the service (default `false`: every request starts from an
    /// empty stack, so nothing entered outside can leak into it). Use
    /// `true` to carry app-wide contexts entered around the server, e.g.
    /// with `ContextSnapshot::scope`.
    pub fn with_inherited_contexts(mut self, inherit: bool) -> Self {
        self.inherit_contexts = inherit;
        self
    }

    /// Checks the settings and makes the layer.
    pub fn build(self) -> Result<TrackingContextLayer, LayerBuildError> {
        let context_name = self
            .context_name
            .unwrap_or_else(|| DEFAULT_CONTEXT_NAME.to_owned());
        if context_name.is_empty() {
            return Err(LayerBuildError::EmptyContextName);
        }
        let request_id_header = header_name(
            self.request_id_header
                .as_deref()
                .unwrap_or(DEFAULT_REQUEST_ID_HEADER),
        )?;
        let trusted = self
            .trusted_proxies
            .iter()
            .map(|value| {
                value
                    .parse::<IpNetwork>()
                    .map_err(|reason| LayerBuildError::InvalidProxy {
                        value: value.clone(),
                        reason,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let captured_headers = self
            .captured_headers
            .iter()
            .map(|name| {
                let header = header_name(name)?;
                if SENSITIVE_HEADERS.contains(&header.as_str()) {
                    return Err(LayerBuildError::SensitiveHeader { name: name.clone() });
                }
                let key = header.as_str().replace('-', "_");
                Ok((header, key))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let request_event = match self.request_event {
            Some(name) => {
                validate_event_name(&name)?;
                Some(Arc::from(name))
            }
            None => None,
        };
        Ok(TrackingContextLayer {
            config: Arc::new(LayerConfig {
                context_name: Arc::from(context_name),
                request_id_header,
                request_id_in_response: self.request_id_in_response.unwrap_or(true),
                client_addr: ClientAddrPolicy {
                    trusted,
                    header: self.forwarded_header,
                },
                captured_headers,
                extractors: self.extractors,
                request_event,
                tracker: self.tracker,
                inherit_contexts: self.inherit_contexts,
                recycle_contexts: !self.inherit_contexts,
                empty_stack: ContextSnapshot::default(),
                counters: Counters::default(),
            }),
        })
    }
}

fn header_name(name: &str) -> Result<HeaderName, LayerBuildError> {
    HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| LayerBuildError::InvalidHeaderName {
        name: name.to_owned(),
    })
}

/// The settings shared by a layer and its services.
pub(crate) struct LayerConfig {
    pub(crate) context_name: Arc<str>,
    pub(crate) request_id_header: HeaderName,
    pub(crate) request_id_in_response: bool,
    pub(crate) client_addr: ClientAddrPolicy,
    pub(crate) captured_headers: Vec<(HeaderName, String)>,
    pub(crate) extractors: Vec<Arc<dyn ContextExtractor>>,
    pub(crate) request_event: Option<Arc<str>>,
    pub(crate) tracker: Option<Tracker>,
    pub(crate) inherit_contexts: bool,
    /// Recycle request context maps (see [`recycle`](crate::recycle)): only
    /// when the request's frame is alone on its stack, so that the map the
    /// events share is exactly the request's fields.
    pub(crate) recycle_contexts: bool,
    /// Each request's stack starts as a clone of this one (unless inherited).
    pub(crate) empty_stack: ContextSnapshot,
    pub(crate) counters: Counters,
}

impl fmt::Debug for LayerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LayerConfig")
            .field("context_name", &self.context_name)
            .field("request_id_header", &self.request_id_header)
            .field("request_id_in_response", &self.request_id_in_response)
            .field("client_addr", &self.client_addr)
            .field("captured_headers", &self.captured_headers)
            .field(
                "extractors",
                &self.extractors.iter().map(|e| e.name()).collect::<Vec<_>>(),
            )
            .field("request_event", &self.request_event)
            .field("inherit_contexts", &self.inherit_contexts)
            .field("stats", &self.counters.snapshot())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventtracking_core::JsonMap;

    #[test]
    fn bad_settings_are_refused_with_their_value() {
        let err = |b: TrackingContextLayerBuilder| b.build().unwrap_err().to_string();
        let b = TrackingContextLayer::builder;
        assert!(err(b().with_request_id_header("bad header")).contains("bad header"));
        assert!(err(b().with_captured_header("Authorization")).contains("Authorization"));
        assert!(err(b().with_captured_header("set-cookie")).contains("never captured"));
        assert!(err(b().with_trusted_proxies(["10.0.0.0/40"])).contains("10.0.0.0/40"));
        assert!(err(b().with_request_event("has space")).contains("has space"));
        assert!(matches!(
            b().with_context_name("").build(),
            Err(LayerBuildError::EmptyContextName)
        ));
    }

    #[test]
    fn captured_headers_get_snake_case_keys() {
        let layer = TrackingContextLayer::builder()
            .with_captured_header("Accept-Language")
            .build()
            .unwrap();
        let (mut parts, ()) = http::Request::builder()
            .uri("http://example.com/a/b?secret=1")
            .header("accept-language", "fr")
            .body(())
            .unwrap()
            .into_parts();
        let (context, _) = layer.config.request_context(&mut parts, JsonMap::new());
        assert_eq!(context["accept_language"], "fr");
        assert_eq!(
            context["path"], "/a/b",
            "the query string is never captured"
        );
        assert_eq!(
            context["host"], "example.com",
            "from the URI without a Host header"
        );
        assert_eq!(context["method"], "GET");
    }
}
