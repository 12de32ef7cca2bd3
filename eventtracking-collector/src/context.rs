//! The server-side context: what the collector knows about a request and
//! writes into every event of it, over anything the client sent.

use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use eventtracking_core::{context, JsonMap};
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

use crate::limits::KeyText;

/// The context keys the server sets. A client's values for them are
/// removed (even when the server has no value of its own to put there), so
/// an event never carries a client's claim under one of these names.
pub const SERVER_KEYS: &[&str] = &[
    "received_at",
    "client_ip",
    "user_agent",
    "referer",
    "source",
    "request_id",
    "client_timestamp",
];

/// Keys taken from the tower layer's request context, as it names them.
const FROM_REQUEST: &[&str] = &["client_ip", "user_agent", "referer", "request_id"];

/// What the server knows of one request, shared by its events.
#[derive(Debug)]
pub(crate) struct ServerContext {
    /// The receive time, to the microsecond (the events' timestamp).
    pub(crate) received: SystemTime,
    /// The fields the server sets, in the order events carry them.
    pairs: Vec<(&'static str, Value)>,
    /// Shared as is by the events that bring no context of their own
    /// (made when the first of them needs it).
    fields: OnceLock<Arc<JsonMap>>,
}

impl ServerContext {
    /// Reads the request context the tracking layer entered for this
    /// request (client address behind trusted proxies, user agent, referer,
    /// request id), and adds `received_at` and `source`.
    pub(crate) fn current(source: &str) -> Self {
        let since = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        // Microseconds: what an event's timestamp keeps.
        let received = SystemTime::UNIX_EPOCH
            + std::time::Duration::new(since.as_secs(), since.subsec_micros() * 1_000);
        let request = context::current();
        // One pass over the request's few keys (no hashed lookup per key).
        let mut found: [Option<&Value>; FROM_REQUEST.len()] = Default::default();
        for (key, value) in request.iter() {
            if let Some(i) = FROM_REQUEST.iter().position(|k| k == key) {
                found[i] = Some(value);
            }
        }
        let mut pairs = Vec::with_capacity(FROM_REQUEST.len() + 2);
        for (key, value) in FROM_REQUEST.iter().zip(found) {
            if let Some(value) = value {
                pairs.push((*key, value.clone()));
            }
        }
        pairs.push((
            "received_at",
            Value::String(eventtracking_core::format_timestamp(received)),
        ));
        pairs.push(("source", Value::String(source.to_owned())));
        ServerContext {
            received,
            pairs,
            fields: OnceLock::new(),
        }
    }

    /// The client address, if known.
    pub(crate) fn client_ip(&self) -> Option<std::net::IpAddr> {
        let (_, value) = self.pairs.iter().find(|(key, _)| *key == "client_ip")?;
        value.as_str()?.parse().ok()
    }

    /// The request's one map of server fields.
    fn fields(&self) -> &Arc<JsonMap> {
        self.fields.get_or_init(|| {
            let mut fields = JsonMap::new();
            for (key, value) in &self.pairs {
                fields.insert((*key).to_owned(), value.clone());
            }
            Arc::new(fields)
        })
    }

    /// An event's context: the client's (read without the server keys),
    /// then the server's fields and the client's timestamp (if it sent one).
    /// `last`: no event of the request needs the server's fields after this
    /// one, so they are moved in, not copied.
    pub(crate) fn merge(
        &mut self,
        client: Option<ClientContext>,
        client_timestamp: Option<&str>,
        last: bool,
    ) -> Arc<JsonMap> {
        let client = client.filter(|client| !client.0.is_empty());
        if client.is_none() && client_timestamp.is_none() {
            // Nothing of the client's: the request's one map, not a copy per event.
            return self.fields().clone();
        }
        let mut merged = client.map(|client| client.0).unwrap_or_default();
        if last {
            for (key, value) in self.pairs.drain(..) {
                merged.insert(key.to_owned(), value);
            }
        } else {
            for (key, value) in &self.pairs {
                merged.insert((*key).to_owned(), value.clone());
            }
        }
        if let Some(timestamp) = client_timestamp {
            merged.insert(
                "client_timestamp".to_owned(),
                Value::String(timestamp.to_owned()),
            );
        }
        Arc::new(merged)
    }
}

/// A client's `context` object as read, without the keys the server sets
/// (a client's values for them are dropped while reading).
#[derive(Debug, Default)]
pub(crate) struct ClientContext(JsonMap);

impl ClientContext {
    /// The client's fields.
    pub(crate) fn fields(&self) -> &JsonMap {
        &self.0
    }
}

impl<'de> Deserialize<'de> for ClientContext {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ClientContextVisitor)
    }
}

struct ClientContextVisitor;

impl<'de> Visitor<'de> for ClientContextVisitor {
    type Value = ClientContext;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a context object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ClientContext, A::Error> {
        // Room for the server's fields too, which the merge adds.
        let mut context = JsonMap::with_capacity(FROM_REQUEST.len() + 4);
        while let Some(key) = map.next_key_seed(KeyText)? {
            if SERVER_KEYS.contains(&&*key) {
                map.next_value::<IgnoredAny>()?;
            } else {
                let value = map.next_value::<Value>()?;
                context.insert(key.into_owned(), value);
            }
        }
        Ok(ClientContext(context))
    }
}
