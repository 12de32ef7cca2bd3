//! The server-side context: what the collector knows about a request and
//! writes into every event of it, over anything the client sent.

use std::sync::Arc;
use std::time::SystemTime;

use eventtracking_core::{context, JsonMap};
use serde_json::Value;

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
#[derive(Debug, Clone)]
pub(crate) struct ServerContext {
    /// The receive time, to the microsecond (the events' timestamp).
    pub(crate) received: SystemTime,
    /// Shared as is by the events that bring no context of their own.
    fields: Arc<JsonMap>,
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
        let mut fields = JsonMap::new();
        for key in FROM_REQUEST {
            if let Some(value) = request.get(*key) {
                fields.insert((*key).to_owned(), value.clone());
            }
        }
        fields.insert(
            "received_at".to_owned(),
            Value::String(humantime::format_rfc3339_micros(received).to_string()),
        );
        fields.insert("source".to_owned(), Value::String(source.to_owned()));
        ServerContext {
            received,
            fields: Arc::new(fields),
        }
    }

    /// The client address, if known.
    pub(crate) fn client_ip(&self) -> Option<std::net::IpAddr> {
        self.fields.get("client_ip")?.as_str()?.parse().ok()
    }

    /// An event's context: the client's, without the server keys, then the
    /// server's fields and the client's timestamp (if it sent one).
    pub(crate) fn merge(
        &self,
        client: Option<JsonMap>,
        client_timestamp: Option<String>,
    ) -> Arc<JsonMap> {
        let client = client.filter(|map| !map.is_empty());
        if client.is_none() && client_timestamp.is_none() {
            // Nothing of the client's: the request's one map, not a copy per event.
            return self.fields.clone();
        }
        let mut merged = client.unwrap_or_default();
        for key in SERVER_KEYS {
            merged.remove(*key);
        }
        for (key, value) in self.fields.iter() {
            merged.insert(key.clone(), value.clone());
        }
        if let Some(timestamp) = client_timestamp {
            merged.insert("client_timestamp".to_owned(), Value::String(timestamp));
        }
        Arc::new(merged)
    }
}
