//! What a request contributes to its context: the default fields, the
//! request id, and the application's own [`ContextExtractor`]s.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use eventtracking_core::context::to_context_map;
use eventtracking_core::JsonMap;
use http::request::Parts;
use http::HeaderValue;
use serde::Serialize;
use serde_json::Value;

/// The error type of extractors: anything that can be displayed in a log line.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Adds application fields (the user, the session, the tenant...) to the
/// context of every request.
///
/// An extractor sees the request head before the inner service does: its
/// method, URI, headers and extensions (including those set by layers
/// outside this one, such as an authentication layer). The fields it returns
/// are merged into the request context after the default fields, so they win
/// on a clash.
///
/// # Duties
///
/// - Be quick and never block: it runs on every request, on the async
///   executor, before the handler.
/// - Failing is allowed: an error (or a panic) is logged with `tracing` at
///   `warn`, counted in [`LayerStats::extractor_errors`](crate::LayerStats),
///   and the request goes on without this extractor's fields.
/// - Don't copy credentials (`Authorization`, cookies, tokens) into the
///   context: every event of the request would carry them.
///
/// Closures `Fn(&Parts) -> Result<T, E>` are extractors, where `T` serializes
/// to a JSON object (or `null`/`()` for "nothing to add") and `E` converts
/// into [`BoxError`] (`&str`, `String`, any error type):
///
/// ```
/// use eventtracking_tower::TrackingContextLayer;
/// use http::request::Parts;
/// use serde_json::json;
///
/// let layer = TrackingContextLayer::builder()
///     .with_extractor(|request: &Parts| match request.headers.get("x-user-id") {
///         Some(user) => user.to_str().map(|user| json!({"user_id": user})),
///         None => Ok(json!(null)),
///     })
///     .build()
///     .unwrap();
/// # let _ = layer;
/// ```
///
/// Or implement the trait, e.g. to read what an authentication layer left
/// in the request extensions:
///
/// ```
/// use eventtracking_core::JsonMap;
/// use eventtracking_tower::{BoxError, ContextExtractor, TrackingContextLayer};
/// use http::request::Parts;
///
/// #[derive(Clone)]
/// struct CurrentUser { id: u64, org: String }
///
/// struct UserExtractor;
///
/// impl ContextExtractor for UserExtractor {
///     fn extract(&self, request: &Parts) -> Result<JsonMap, BoxError> {
///         let mut fields = JsonMap::new();
///         if let Some(user) = request.extensions.get::<CurrentUser>() {
///             fields.insert("user_id".into(), user.id.into());
///             fields.insert("org_id".into(), user.org.clone().into());
///         }
///         Ok(fields)
///     }
/// }
///
/// let layer = TrackingContextLayer::builder().with_extractor(UserExtractor).build().unwrap();
/// # let _ = layer;
/// ```
pub trait ContextExtractor: Send + Sync + 'static {
    /// The fields to add to the context of this request.
    fn extract(&self, request: &Parts) -> Result<JsonMap, BoxError>;

    /// A name for log lines (default: the type name).
    fn name(&self) -> &str {
        std::any::type_name::<Self>()
    }
}

impl<F, T, E> ContextExtractor for F
where
    F: Fn(&Parts) -> Result<T, E> + Send + Sync + 'static,
    T: Serialize + 'static,
    E: Into<BoxError>,
{
    fn extract(&self, request: &Parts) -> Result<JsonMap, BoxError> {
        let fields = self(request).map_err(Into::into)?;
        // A JSON value or map is taken as it is, without a serde round trip.
        let mut fields = Some(fields);
        let any = &mut fields as &mut dyn Any;
        let value = if let Some(map) = any.downcast_mut::<Option<JsonMap>>() {
            return Ok(map.take().unwrap_or_default());
        } else if let Some(value) = any.downcast_mut::<Option<Value>>() {
            value.take().unwrap_or_default()
        } else {
            serde_json::to_value(&fields)?
        };
        match value {
            Value::Null => Ok(JsonMap::new()),
            Value::Object(map) => Ok(map),
            other => Err(to_context_map("extractor", other)
                .err()
                .map_or_else(|| "not a JSON object".into(), Into::into)),
        }
    }
}

impl<X: ContextExtractor + ?Sized> ContextExtractor for Arc<X> {
    fn extract(&self, request: &Parts) -> Result<JsonMap, BoxError> {
        (**self).extract(request)
    }

    fn name(&self) -> &str {
        (**self).name()
    }
}

/// The id of the request being handled, as put in its context.
///
/// The layer inserts it into the request extensions, so a handler can read
/// it (with axum: `Extension<RequestId>`), and sets the request id header
/// on the request when it generated the id.
#[derive(Clone)]
pub struct RequestId(HeaderValue);

// By the text alone (a `HeaderValue` also hashes its "sensitive" flag).
impl PartialEq for RequestId {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for RequestId {}

impl Hash for RequestId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl RequestId {
    /// The id.
    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or_default()
    }

    /// `id` is visible ASCII: checked or generated by the layer. It shares
    /// the header value's buffer (no copy).
    pub(crate) fn new(id: HeaderValue) -> Self {
        debug_assert!(id.to_str().is_ok());
        Self(id)
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RequestId").field(&self.as_str()).finish()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Longest request id taken from a request header; longer ones are replaced.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Longest header value put in a context (user agent, referer...); longer
/// values are cut at a character boundary.
pub const MAX_FIELD_LEN: usize = 1024;

/// An incoming request id is kept if it is 1 to [`MAX_REQUEST_ID_LEN`]
/// visible ASCII characters (no spaces).
pub(crate) fn valid_request_id(value: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&value.len()) && value.iter().all(u8::is_ascii_graphic)
}

/// `text` cut to [`MAX_FIELD_LEN`] bytes at a character boundary.
pub(crate) fn cut(text: &str) -> &str {
    if text.len() <= MAX_FIELD_LEN {
        return text;
    }
    let mut end = MAX_FIELD_LEN;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A header value as a context string: lossy UTF-8, cut to [`MAX_FIELD_LEN`]
/// bytes; borrowed in the usual case (short, valid UTF-8).
pub(crate) fn field_str(value: &[u8]) -> Cow<'_, str> {
    if value.len() <= MAX_FIELD_LEN {
        if let Ok(text) = std::str::from_utf8(value) {
            return Cow::Borrowed(text);
        }
    }
    let value = &value[..value.len().min(MAX_FIELD_LEN + 4)];
    let mut text = String::from_utf8_lossy(value).into_owned();
    let len = cut(&text).len();
    text.truncate(len);
    Cow::Owned(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parts() -> Parts {
        http::Request::builder()
            .uri("/x")
            .header("x-user-id", "u1")
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    #[test]
    fn closures_return_objects_or_nothing() {
        let user = |r: &Parts| -> Result<_, &'static str> {
            Ok(json!({"user_id": r.headers["x-user-id"].to_str().unwrap()}))
        };
        assert_eq!(user.extract(&parts()).unwrap()["user_id"], "u1");

        let nothing = |_: &Parts| Ok::<_, String>(());
        assert!(nothing.extract(&parts()).unwrap().is_empty());

        let not_an_object = |_: &Parts| Ok::<_, String>(json!([1, 2]));
        let err = not_an_object.extract(&parts()).unwrap_err().to_string();
        assert!(err.contains("array"), "{err}");

        let failing = |_: &Parts| Err::<(), _>("no session");
        assert_eq!(
            failing.extract(&parts()).unwrap_err().to_string(),
            "no session"
        );
    }

    #[test]
    fn request_ids_must_be_short_visible_ascii() {
        assert!(valid_request_id(b"abc-123"));
        assert!(valid_request_id(&[b'a'; MAX_REQUEST_ID_LEN]));
        assert!(!valid_request_id(&[b'a'; MAX_REQUEST_ID_LEN + 1]));
        assert!(!valid_request_id(b""));
        assert!(!valid_request_id(b"a b"));
        assert!(!valid_request_id("é".as_bytes()));
    }

    #[test]
    fn long_fields_are_cut_at_a_char_boundary() {
        assert!(matches!(field_str(b"curl/8"), Cow::Borrowed("curl/8")));
        let long = "é".repeat(MAX_FIELD_LEN);
        let cut_long = field_str(long.as_bytes());
        assert_eq!(cut_long.len(), MAX_FIELD_LEN);
        assert!(cut_long.chars().all(|c| c == 'é'));
        assert_eq!(field_str(&[b'a', 0xff]), "a\u{fffd}");
        assert_eq!(cut(&long).len(), MAX_FIELD_LEN);
        assert_eq!(cut("/a/b"), "/a/b");
    }
}
