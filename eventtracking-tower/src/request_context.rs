//! The context of one request: its fields written into a new map or into a
//! recycled one (see [`recycle`](crate::recycle)) in place, the request id,
//! the extractors.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::net::IpAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use eventtracking_core::JsonMap;
use http::header::{self, HeaderValue};
use http::request::Parts;
use serde_json::Value;

use crate::extract::{cut, field_str, valid_request_id, RequestId};
use crate::layer::LayerConfig;
use crate::recycle;

/// The keys the layer always writes (when known), in the map's (sorted) order.
const DEFAULT_KEYS: [&str; 7] = [
    "client_ip",
    "host",
    "method",
    "path",
    "referer",
    "request_id",
    "user_agent",
];
const CLIENT_IP: usize = 0;
const HOST: usize = 1;
const METHOD: usize = 2;
const PATH: usize = 3;
const REFERER: usize = 4;
const REQUEST_ID: usize = 5;
const USER_AGENT: usize = 6;

fn default_index(key: &str) -> Option<usize> {
    DEFAULT_KEYS.iter().position(|k| *k == key)
}

impl LayerConfig {
    /// A map for a request's context: a recycled one when this thread has
    /// one free, else a new one.
    pub(crate) fn context_map(&self) -> JsonMap {
        if self.recycle_contexts {
            if let Some(map) = recycle::take() {
                self.counters.recycled_contexts.fetch_add(1, Relaxed);
                return map;
            }
        }
        // A hint: only a map with serde_json's `preserve_order` has a capacity.
        JsonMap::with_capacity(DEFAULT_KEYS.len() + self.captured_headers.len())
    }

    /// Writes the context of a request into `context` (new, or recycled from
    /// an earlier request: every field of it is then overwritten or
    /// removed); sets the request id (header and extension). Returns the
    /// context and the id's header value.
    pub(crate) fn request_context(
        &self,
        parts: &mut Parts,
        mut context: JsonMap,
    ) -> (JsonMap, HeaderValue) {
        self.counters.requests.fetch_add(1, Relaxed);

        // One pass over the headers rather than a hashed lookup for each.
        let (mut host, mut user_agent, mut referer, mut incoming_id) = (None, None, None, None);
        for (name, value) in &parts.headers {
            if *name == header::HOST {
                host.get_or_insert(value);
            } else if *name == header::USER_AGENT {
                user_agent.get_or_insert(value);
            } else if *name == header::REFERER {
                referer.get_or_insert(value);
            } else if *name == self.request_id_header {
                incoming_id.get_or_insert(value);
            }
        }
        let (id_value, generated) = match incoming_id {
            Some(value) if valid_request_id(value.as_bytes()) => (value.clone(), false),
            _ => (new_request_id(), true),
        };
        let ip = self
            .client_addr
            .client_ip(&parts.headers, &parts.extensions)
            .map(IpText::new);

        let mut values: [Option<Cow<'_, str>>; DEFAULT_KEYS.len()] = Default::default();
        values[METHOD] = Some(Cow::Borrowed(parts.method.as_str()));
        values[PATH] = Some(Cow::Borrowed(cut(parts.uri.path())));
        values[HOST] = match host {
            Some(host) => Some(field_str(host.as_bytes())),
            None => parts
                .uri
                .authority()
                .map(|a| Cow::Borrowed(cut(a.as_str()))),
        };
        values[USER_AGENT] = user_agent.map(|v| field_str(v.as_bytes()));
        values[REFERER] = referer.map(|v| field_str(v.as_bytes()));
        values[CLIENT_IP] = ip.as_ref().map(|ip| Cow::Borrowed(ip.as_str()));
        // Checked above (or generated): visible ASCII.
        values[REQUEST_ID] = Some(Cow::Borrowed(id_value.to_str().unwrap_or_default()));

        let recycled = !context.is_empty();
        let present = values.each_ref().map(Option::is_some);
        // Keys of a recycled map that no default field will overwrite: the
        // previous request's extractor fields, and defaults absent this time.
        let (mut leftovers, mut absent) = (0, 0);
        let mut written = [false; DEFAULT_KEYS.len()];
        if recycled {
            for (key, value) in context.iter_mut() {
                match default_index(key) {
                    Some(i) => match &values[i] {
                        Some(text) => {
                            overwrite(value, text);
                            written[i] = true;
                        }
                        None => absent += 1,
                    },
                    None if self.is_captured_key(key) => {}
                    None => leftovers += 1,
                }
            }
        }
        for ((key, value), written) in DEFAULT_KEYS.iter().zip(values).zip(written) {
            if let (Some(text), false) = (value, written) {
                context.insert((*key).to_owned(), Value::String(text.into_owned()));
            }
        }
        for (name, key) in &self.captured_headers {
            match parts.headers.get(name) {
                Some(value) => match context.get_mut(key) {
                    Some(old) => overwrite(old, &field_str(value.as_bytes())),
                    None => {
                        let text = field_str(value.as_bytes()).into_owned();
                        context.insert(key.clone(), Value::String(text));
                    }
                },
                None => {
                    if recycled {
                        context.remove(key);
                    }
                }
            }
        }

        if generated {
            parts
                .headers
                .insert(self.request_id_header.clone(), id_value.clone());
        }
        parts.extensions.insert(RequestId::new(id_value.clone()));

        let extra = self.extract(parts);
        if absent > 0 || leftovers > 0 {
            // Leftovers the extractors set again are overwritten below.
            let again = extra
                .keys()
                .filter(|key| {
                    default_index(key).is_none()
                        && !self.is_captured_key(key)
                        && context.contains_key(*key)
                })
                .count();
            if absent > 0 || again < leftovers {
                context.retain(|key, _| match default_index(key) {
                    Some(i) => present[i],
                    None => self.is_captured_key(key) || extra.contains_key(key),
                });
            }
        }
        context.extend(extra);
        (context, id_value)
    }

    /// The extractors' fields, later ones winning; a failing or panicking
    /// extractor is counted and logged, and adds nothing.
    fn extract(&self, parts: &Parts) -> JsonMap {
        let mut extra = JsonMap::new();
        for extractor in &self.extractors {
            match catch_unwind(AssertUnwindSafe(|| extractor.extract(parts))) {
                // The first map is taken as it is.
                Ok(Ok(fields)) if extra.is_empty() => extra = fields,
                Ok(Ok(fields)) => extra.extend(fields),
                Ok(Err(error)) => {
                    self.counters.extractor_errors.fetch_add(1, Relaxed);
                    tracing::warn!(
                        extractor = extractor.name(),
                        %error,
                        "eventtracking: context extractor failed; its fields are left out"
                    );
                }
                Err(_) => {
                    self.counters.extractor_errors.fetch_add(1, Relaxed);
                    tracing::warn!(
                        extractor = extractor.name(),
                        "eventtracking: context extractor panicked; its fields are left out"
                    );
                }
            }
        }
        extra
    }

    fn is_captured_key(&self, key: &str) -> bool {
        self.captured_headers.iter().any(|(_, k)| k == key)
    }
}

/// Sets a recycled field to `text`, reusing its string unless that one grew
/// long (a rare long value is not kept for good).
fn overwrite(value: &mut Value, text: &str) {
    if let Value::String(old) = value {
        if old.capacity() <= recycle::KEEP_STRING_CAPACITY || text.len() > old.capacity() {
            old.clear();
            old.push_str(text);
            return;
        }
    }
    *value = Value::String(text.to_owned());
}

/// An IP address as text, on the stack (at most 39 bytes: IPv6).
struct IpText {
    buffer: [u8; 48],
    len: usize,
}

impl IpText {
    fn new(ip: IpAddr) -> Self {
        let mut text = IpText {
            buffer: [0; 48],
            len: 0,
        };
        match ip {
            // The usual case, by hand: `Display` goes through the generic
            // formatter (padding, width) for each of the four numbers.
            IpAddr::V4(ip) => {
                for (i, octet) in ip.octets().into_iter().enumerate() {
                    if i > 0 {
                        text.push(b'.');
                    }
                    if octet >= 100 {
                        text.push(b'0' + octet / 100);
                    }
                    if octet >= 10 {
                        text.push(b'0' + octet / 10 % 10);
                    }
                    text.push(b'0' + octet % 10);
                }
            }
            IpAddr::V6(_) => {
                let _ = write!(text, "{ip}");
            }
        }
        text
    }

    fn push(&mut self, byte: u8) {
        self.buffer[self.len] = byte;
        self.len += 1;
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buffer[..self.len]).unwrap_or_default()
    }
}

impl fmt::Write for IpText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        self.buffer
            .get_mut(self.len..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// A new UUIDv7: the time in milliseconds and 74 bits from a fast
/// thread-local generator (no system call per request). Unique for
/// correlation, not a secret. One allocation, shared by the request header,
/// the [`RequestId`] extension and the response header.
fn new_request_id() -> HeaderValue {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let mut random = [0u8; 10];
    random[..8].copy_from_slice(&fastrand::u64(..).to_le_bytes());
    random[8..].copy_from_slice(&fastrand::u16(..).to_le_bytes());
    let id = uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid();
    let mut buffer = [0u8; uuid::fmt::Hyphenated::LENGTH];
    id.hyphenated().encode_lower(&mut buffer);
    HeaderValue::from_maybe_shared(Bytes::from_owner(buffer))
        .unwrap_or_else(|_| unreachable!("a UUID is a valid header value"))
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use serde_json::json;

    use super::*;
    use crate::TrackingContextLayer;

    /// A layer with a captured header and an extractor that adds
    /// `user_id`, and overrides `path` when asked (a clash with a default).
    fn layer() -> TrackingContextLayer {
        TrackingContextLayer::builder()
            .with_captured_header("accept-language")
            .with_extractor(|r: &Parts| {
                let mut fields = JsonMap::new();
                if let Some(user) = r.headers.get("x-user-id") {
                    fields.insert("user_id".into(), user.to_str()?.into());
                }
                if r.headers.contains_key("x-override-path") {
                    fields.insert("path".into(), json!(7));
                }
                if r.headers.contains_key("x-override-language") {
                    fields.insert("accept_language".into(), json!("xx"));
                }
                Ok::<_, http::header::ToStrError>(fields)
            })
            .build()
            .unwrap()
    }

    fn parts(uri: &str, headers: &[(&str, &str)], peer: Option<&str>) -> Parts {
        let mut builder = http::Request::get(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let (mut parts, ()) = builder.body(()).unwrap().into_parts();
        if let Some(peer) = peer {
            parts.extensions.insert(peer.parse::<SocketAddr>().unwrap());
        }
        parts
    }

    /// Requests with every field, with none, with long and non-UTF-8
    /// values, with a clash; each has its request id (deterministic maps).
    fn requests() -> Vec<Parts> {
        let long = "u".repeat(crate::MAX_FIELD_LEN + 50);
        vec![
            parts(
                "http://example.com/full?q=1",
                &[
                    ("x-request-id", "r-1"),
                    ("user-agent", "curl/8"),
                    ("referer", "http://example.com/"),
                    ("accept-language", "fr"),
                    ("x-user-id", "u-1"),
                ],
                Some("192.0.2.1:4000"),
            ),
            parts("/bare", &[("x-request-id", "r-2")], None),
            parts(
                "/clash",
                &[
                    ("x-request-id", "r-3"),
                    ("x-override-path", "1"),
                    ("user-agent", &long),
                ],
                Some("[2001:db8::1]:443"),
            ),
            // Every default field as in the first, no user, and a clash with
            // a captured header.
            parts(
                "http://example.com/language",
                &[
                    ("x-request-id", "r-6"),
                    ("user-agent", "curl/8"),
                    ("referer", "http://example.com/"),
                    ("accept-language", "de"),
                    ("x-override-language", "1"),
                ],
                Some("192.0.2.1:4000"),
            ),
            parts(
                "/short",
                &[
                    ("x-request-id", "r-4"),
                    ("user-agent", "a"),
                    ("host", "h.example"),
                ],
                None,
            ),
            {
                let mut p = parts("/bytes", &[("x-request-id", "r-5")], None);
                p.headers.insert(
                    header::USER_AGENT,
                    HeaderValue::from_bytes(b"caf\xe9").unwrap(),
                );
                p
            },
        ]
    }

    #[test]
    fn a_recycled_map_is_rewritten_to_exactly_the_new_requests_context() {
        let config = &layer().config;
        let fresh: Vec<JsonMap> = requests()
            .into_iter()
            .map(|mut p| config.request_context(&mut p, JsonMap::new()).0)
            .collect();
        assert_eq!(fresh[0]["path"], "/full");
        assert_eq!(fresh[0]["client_ip"], "192.0.2.1");
        assert_eq!(fresh[2]["path"], 7, "the extractor wins a clash");
        assert_eq!(fresh[2]["client_ip"], "2001:db8::1");
        assert_eq!(
            fresh[3]["accept_language"], "xx",
            "the extractor wins a clash"
        );
        assert_eq!(fresh[5]["user_agent"], "caf\u{fffd}");
        // Every request's context written over every other's map.
        for (i, old) in fresh.iter().enumerate() {
            for (j, (mut new, expected)) in requests().into_iter().zip(&fresh).enumerate() {
                let (rewritten, _) = config.request_context(&mut new, old.clone());
                assert_eq!(
                    &rewritten, expected,
                    "request {j} written over request {i}'s map"
                );
            }
        }
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for ip in [
            "0.0.0.0",
            "9.10.99.100",
            "127.0.0.1",
            "255.255.255.255",
            "::1",
            "2001:db8::ff00:42:8329",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(IpText::new(ip).as_str(), ip.to_string());
        }
    }

    #[test]
    fn a_long_value_is_not_kept_in_a_recycled_map() {
        let config = &layer().config;
        let long = "x".repeat(1000);
        let (old, _) = config.request_context(
            &mut parts("/", &[("user-agent", &long)], None),
            JsonMap::new(),
        );
        let (new, _) = config.request_context(&mut parts("/", &[("user-agent", "a")], None), old);
        let Value::String(agent) = &new["user_agent"] else {
            panic!("{new:?}")
        };
        assert_eq!(agent, "a");
        assert!(agent.capacity() < recycle::KEEP_STRING_CAPACITY);
    }
}
