//! The server-side context: what the collector knows about a request and
//! writes into every event of it, over anything the client sent.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use eventtracking_core::context::{self, MapPool};
use eventtracking_core::JsonMap;
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
    ///
    /// The map is one this thread made for an earlier request whose events
    /// are all delivered, when there is one (see [`MapPool`]): when its keys
    /// are these, in this order (the same client sending the same context
    /// keys), only its values are replaced; else it is emptied and filled.
    /// Either way nothing is allocated for the keys or freed on the
    /// delivery thread.
    pub(crate) fn merge(
        &mut self,
        client: Option<ClientContext<'_>>,
        client_timestamp: Option<&str>,
        last: bool,
    ) -> Arc<JsonMap> {
        let client = client.map(|client| client.0).unwrap_or_default();
        if client.is_empty() && client_timestamp.is_none() {
            // Nothing of the client's: the request's one map, not a copy per event.
            return self.fields().clone();
        }
        let mut client = client;
        let mut merged = MERGED
            .try_with(|pool| pool.try_borrow_mut().ok()?.take())
            .ok()
            .flatten()
            .unwrap_or_default();
        if !self.rewrite(&mut merged, &mut client, client_timestamp, last) {
            merged.clear();
            for (key, value) in client {
                merged.insert(key.into_owned(), value);
            }
            for (key, value) in &mut self.pairs {
                let value = if last {
                    std::mem::take(value)
                } else {
                    value.clone()
                };
                merged.insert((*key).to_owned(), value);
            }
            if let Some(timestamp) = client_timestamp {
                merged.insert(
                    "client_timestamp".to_owned(),
                    Value::String(timestamp.to_owned()),
                );
            }
        }
        let merged = Arc::new(merged);
        let _ = MERGED.try_with(|pool| {
            if let Ok(mut pool) = pool.try_borrow_mut() {
                pool.give_back(merged.clone());
            }
        });
        merged
    }

    /// Writes this event's values into `map` when its keys are exactly
    /// the client's, the server's and `client_timestamp` (when sent), in any
    /// order (a map without serde_json's `preserve_order` sorts them); false,
    /// with nothing taken from `client`, when they are not.
    fn rewrite(
        &mut self,
        map: &mut JsonMap,
        client: &mut [(Cow<'_, str>, Value)],
        timestamp: Option<&str>,
        last: bool,
    ) -> bool {
        let ours = client.len() + self.pairs.len() + usize::from(timestamp.is_some());
        if map.is_empty() || map.len() != ours {
            return false;
        }
        // Each of the map's (distinct) keys one of ours, as many as ours:
        // then ours are distinct too, and each slot gets exactly one value.
        let has_timestamp = timestamp.is_some();
        if !map
            .keys()
            .all(|key| Slot::find(key, client, &self.pairs, has_timestamp).is_some())
        {
            return false;
        }
        for (key, value) in map.iter_mut() {
            let Some(slot) = Slot::find(key, client, &self.pairs, has_timestamp) else {
                continue;
            };
            match slot {
                Slot::Client(i) => *value = std::mem::take(&mut client[i].1),
                Slot::Server(i) if last => *value = std::mem::take(&mut self.pairs[i].1),
                Slot::Server(i) => overwrite(value, &self.pairs[i].1),
                Slot::Timestamp => match value {
                    Value::String(old) => {
                        old.clear();
                        old.push_str(timestamp.unwrap_or_default());
                    }
                    value => *value = Value::String(timestamp.unwrap_or_default().to_owned()),
                },
            }
        }
        true
    }
}

/// Where a merged map's value comes from.
#[derive(Clone, Copy)]
enum Slot {
    Client(usize),
    Server(usize),
    Timestamp,
}

impl Slot {
    fn find(
        key: &str,
        client: &[(Cow<'_, str>, Value)],
        server: &[(&'static str, Value)],
        timestamp: bool,
    ) -> Option<Slot> {
        if let Some(i) = client.iter().position(|(k, _)| k == key) {
            return Some(Slot::Client(i));
        }
        if let Some(i) = server.iter().position(|(k, _)| *k == key) {
            return Some(Slot::Server(i));
        }
        (timestamp && key == "client_timestamp").then_some(Slot::Timestamp)
    }
}

thread_local! {
    /// Merged contexts this thread made, for later requests to rewrite.
    static MERGED: RefCell<MapPool> = const { RefCell::new(MapPool::new(MERGED_POOL)) };
}

/// Most merged contexts kept per thread: events are delivered in batches
/// (512 by default), so a map waits about a batch behind before it is free.
const MERGED_POOL: usize = 1024;

/// Writes `value` into `slot`, reusing the slot's string when both are
/// strings (no allocation).
fn overwrite(slot: &mut Value, value: &Value) {
    match (slot, value) {
        (Value::String(old), Value::String(new)) if new.len() <= old.capacity() => {
            old.clear();
            old.push_str(new);
        }
        (slot, value) => *slot = value.clone(),
    }
}

/// A client's `context` object as read, in its order, without the keys the
/// server sets (a client's values for them are dropped while reading). Keys
/// are borrowed from the body unless they hold escapes; a repeated key is
/// kept each time (the merge keeps its last value, as a JSON map does).
#[derive(Debug, Default)]
pub(crate) struct ClientContext<'a>(Vec<(Cow<'a, str>, Value)>);

impl<'a> ClientContext<'a> {
    /// The client's fields.
    pub(crate) fn fields(&self) -> &[(Cow<'a, str>, Value)] {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for ClientContext<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ClientContextVisitor(std::marker::PhantomData))
    }
}

struct ClientContextVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for ClientContextVisitor<'a> {
    type Value = ClientContext<'a>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a context object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ClientContext<'a>, A::Error> {
        let mut context = Vec::with_capacity(map.size_hint().unwrap_or(4));
        while let Some(key) = map.next_key_seed(KeyText)? {
            if SERVER_KEYS.contains(&&*key) {
                map.next_value::<IgnoredAny>()?;
            } else {
                context.push((key, map.next_value::<Value>()?));
            }
        }
        Ok(ClientContext(context))
    }
}
