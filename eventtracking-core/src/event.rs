//! The event record every backend receives.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::catalog::TrackedEvent;
use crate::error::{InvalidEventName, NewEventError};

mod line_cache;
mod line_parser;
mod uuid_text;

pub use line_parser::EventLineParser;

/// The longest event name accepted, in bytes.
pub const MAX_EVENT_NAME_BYTES: usize = 255;

/// A JSON object: the type of contexts.
pub type JsonMap = Map<String, Value>;

/// One tracked event: `{"id", "name", "timestamp", "context", "data"}`, plus
/// `"schema": "NAME@VERSION"` after the name when it was emitted as a typed
/// event (see [`catalog`](mod@crate::catalog)).
///
/// Events travel as `Arc<Event>`: every backend sees the same allocation, and
/// its JSON form is computed at most once ([`Event::to_json_bytes`]).
/// Processors that change an event use [`Arc::make_mut`], which copies only
/// when the event is shared.
///
/// ```
/// use eventtracking_core::Event;
/// use serde_json::json;
///
/// let event = Event::new("navigation.request", json!({"url": "/a"})).unwrap();
/// let line: serde_json::Value = serde_json::from_slice(event.to_json_bytes()).unwrap();
/// assert_eq!(line["name"], "navigation.request");
/// assert_eq!(line["data"]["url"], "/a");
/// assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
/// ```
#[derive(Debug)]
pub struct Event {
    id: Uuid,
    name: Arc<str>,
    schema: Option<Cow<'static, str>>,
    timestamp: SystemTime,
    context: Arc<JsonMap>,
    data: Data,
    json: OnceLock<Vec<u8>>,
}

/// The payload: as emitted, either already-serialized JSON (what `emit` of a
/// typed payload makes: one small allocation, written out verbatim) or a
/// `Value`. The `Value` of serialized JSON is parsed only if someone asks.
#[derive(Debug, Clone)]
struct Data {
    raw: Option<Box<str>>,
    value: OnceLock<Value>,
}

impl Data {
    fn from_value(value: Value) -> Self {
        Data {
            raw: None,
            value: OnceLock::from(value),
        }
    }

    fn from_raw(raw: Box<str>) -> Self {
        Data {
            raw: Some(raw),
            value: OnceLock::new(),
        }
    }

    fn value(&self) -> &Value {
        self.value.get_or_init(|| match &self.raw {
            // The raw JSON was written by serde_json, so it parses.
            Some(raw) => serde_json::from_str(raw).unwrap_or(Value::Null),
            None => Value::Null,
        })
    }

    fn value_mut(&mut self) -> &mut Value {
        self.value();
        self.raw = None;
        match self.value.get_mut() {
            Some(value) => value,
            None => unreachable!("initialized just above"),
        }
    }
}

impl Clone for Event {
    fn clone(&self) -> Self {
        // The JSON cache is not copied: a clone exists to be changed.
        Event {
            id: self.id,
            name: self.name.clone(),
            schema: self.schema.clone(),
            timestamp: self.timestamp,
            context: self.context.clone(),
            data: self.data.clone(),
            json: OnceLock::new(),
        }
    }
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.name == other.name
            && self.schema == other.schema
            && self.timestamp == other.timestamp
            && self.context == other.context
            && self.data() == other.data()
    }
}

impl Event {
    /// A new event with a fresh UUIDv7 id, the current time and an empty context.
    ///
    /// Fails when the name breaks the rules of [`validate_event_name`].
    pub fn new(name: &str, data: Value) -> Result<Self, InvalidEventName> {
        let name = intern_event_name(name)?;
        let (id, timestamp) = new_id_and_timestamp();
        Ok(Self::from_parts_exact(
            id,
            name,
            timestamp,
            Arc::default(),
            data,
        ))
    }

    /// An event from all of its parts, as read back from storage. The name is
    /// not validated here.
    pub fn from_parts(
        id: Uuid,
        name: Arc<str>,
        timestamp: SystemTime,
        context: Arc<JsonMap>,
        data: Value,
    ) -> Self {
        Self::from_parts_exact(id, name, truncate_to_micros(timestamp), context, data)
    }

    /// `from_parts` for a timestamp already truncated to microseconds.
    #[inline]
    pub(crate) fn from_parts_exact(
        id: Uuid,
        name: Arc<str>,
        timestamp: SystemTime,
        context: Arc<JsonMap>,
        data: Value,
    ) -> Self {
        Event {
            id,
            name,
            schema: None,
            timestamp,
            context,
            data: Data::from_value(data),
            json: OnceLock::new(),
        }
    }

    /// `from_parts_exact` with a payload that is already JSON text.
    #[inline]
    pub(crate) fn from_parts_raw(
        id: Uuid,
        name: Arc<str>,
        timestamp: SystemTime,
        context: Arc<JsonMap>,
        data: Box<str>,
        schema: Option<Cow<'static, str>>,
    ) -> Self {
        Event {
            id,
            name,
            schema,
            timestamp,
            context,
            data: Data::from_raw(data),
            json: OnceLock::new(),
        }
    }

    /// A new event as the emit path makes it, ready to share: the name
    /// validated (and shared per thread), a fresh UUIDv7 id and the current
    /// time, `context`, and `data` serialized to JSON text once (JSON
    /// backends write it verbatim).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use eventtracking_core::Event;
    ///
    /// let event = Event::emitted("page.view", Arc::default(), &[1, 2]).unwrap();
    /// assert_eq!(event.data(), &serde_json::json!([1, 2]));
    /// assert!(Event::emitted("bad name", Arc::default(), &()).is_err());
    /// ```
    pub fn emitted<T: Serialize + ?Sized>(
        name: &str,
        context: Arc<JsonMap>,
        data: &T,
    ) -> Result<Arc<Self>, NewEventError> {
        let interned = intern_event_name(name)?;
        let data = payload_json(data).map_err(|error| NewEventError::invalid_data(name, &error))?;
        let (id, timestamp) = new_id_and_timestamp();
        // Built in place in its shared allocation (no copy of the event).
        Ok(Arc::new(Self::from_parts_raw(
            id, interned, timestamp, context, data, None,
        )))
    }

    /// [`emitted`](Self::emitted) for data that is already a JSON value (no conversion).
    pub fn emitted_value(
        name: &str,
        context: Arc<JsonMap>,
        data: Value,
    ) -> Result<Arc<Self>, InvalidEventName> {
        let interned = intern_event_name(name)?;
        let (id, timestamp) = new_id_and_timestamp();
        Ok(Arc::new(Self::from_parts_exact(
            id, interned, timestamp, context, data,
        )))
    }

    /// A typed event (see [`TrackedEvent`]): its data fields as the payload,
    /// its context fields merged over `context`, and its schema reference
    /// (`NAME@VERSION`) in the event's `schema` field.
    pub fn emitted_typed<E: TrackedEvent>(
        event: &E,
        mut context: Arc<JsonMap>,
    ) -> Result<Arc<Self>, NewEventError> {
        let interned = match E::__shared_name() {
            Some(name) => name,
            None => intern_event_name(E::NAME)?,
        };
        let invalid = |error: serde_json::Error| NewEventError::invalid_data(E::NAME, &error);
        let data = payload_json_with(|out| event.write_data_json(out)).map_err(invalid)?;
        if E::HAS_CONTEXT_FIELDS {
            event
                .context_fields(Arc::make_mut(&mut context))
                .map_err(invalid)?;
        }
        let (id, timestamp) = new_id_and_timestamp();
        Ok(Arc::new(Self::from_parts_raw(
            id,
            interned,
            timestamp,
            context,
            data,
            Some(Cow::Borrowed(E::SCHEMA)),
        )))
    }

    /// A fresh UUIDv7, made as every new event's id is: for a caller that
    /// builds an event from parts ([`from_parts`](Self::from_parts)). Cheaper
    /// than `Uuid::now_v7()`, which asks the kernel for randomness each time.
    ///
    /// ```
    /// use eventtracking_core::Event;
    ///
    /// let (first, second) = (Event::new_id(), Event::new_id());
    /// assert_eq!(first.get_version_num(), 7);
    /// assert!(first < second, "ordered on one thread");
    /// ```
    pub fn new_id() -> Uuid {
        new_id_and_timestamp().0
    }

    /// The event's unique id (a UUIDv7, so ids sort by creation time).
    #[inline]
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// The event name, such as `navigation.request`.
    #[inline]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The event name as a shared string (cheap to clone).
    #[inline]
    pub fn shared_name(&self) -> Arc<str> {
        self.name.clone()
    }

    /// The schema reference of a typed event, `NAME@VERSION` (the key of
    /// its [`CatalogEntry`](crate::CatalogEntry)); `None` for untyped events.
    #[inline]
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// Sets (or clears) the schema reference.
    ///
    /// ```
    /// use eventtracking_core::Event;
    /// let event = Event::new("address.create", serde_json::json!({})).unwrap()
    ///     .with_schema(Some("address.create@1".into()));
    /// assert!(std::str::from_utf8(event.to_json_bytes()).unwrap()
    ///     .contains(r#""name":"address.create","schema":"address.create@1","#));
    /// ```
    pub fn with_schema(mut self, schema: Option<Cow<'static, str>>) -> Self {
        self.schema = schema;
        self.json = OnceLock::new();
        self
    }

    /// When the event was emitted.
    #[inline]
    pub fn timestamp(&self) -> SystemTime {
        self.timestamp
    }

    /// The timestamp as RFC 3339 in UTC with microseconds, e.g. `2026-11-29T01:52:39.123456Z`.
    pub fn timestamp_rfc3339(&self) -> String {
        format_timestamp(self.timestamp)
    }

    /// The merged context the event was emitted in.
    #[inline]
    pub fn context(&self) -> &JsonMap {
        &self.context
    }

    /// The shared context map (cheap to clone).
    #[inline]
    pub fn shared_context(&self) -> &Arc<JsonMap> {
        &self.context
    }

    /// The event's payload.
    pub fn data(&self) -> &Value {
        self.data.value()
    }

    /// The payload's JSON text when it was emitted as a typed payload (and
    /// not changed since): what JSON backends write verbatim.
    #[inline]
    pub fn raw_data(&self) -> Option<&str> {
        self.data.raw.as_deref()
    }

    /// Mutable access to the context (copied first if shared with other events).
    pub fn context_mut(&mut self) -> &mut JsonMap {
        self.json = OnceLock::new();
        Arc::make_mut(&mut self.context)
    }

    /// Mutable access to the payload.
    pub fn data_mut(&mut self) -> &mut Value {
        self.json = OnceLock::new();
        self.data.value_mut()
    }

    /// The event as one line of compact JSON (without the newline), computed
    /// once and shared by every backend that asks.
    pub fn to_json_bytes(&self) -> &[u8] {
        self.json.get_or_init(|| {
            let mut out = Vec::with_capacity(256);
            self.write_json_uncached(&mut out);
            out
        })
    }

    /// Appends the event's one-line JSON to `out`: the cached bytes when
    /// another backend already asked for them, else serialized straight into
    /// `out` (no intermediate allocation, nothing cached).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match self.json.get() {
            Some(bytes) => out.extend_from_slice(bytes),
            None => self.write_json_uncached(out),
        }
    }

    fn write_json_uncached(&self, out: &mut Vec<u8>) {
        let start = out.len();
        // The five fields in order, as serde_json would write them; the
        // payload verbatim when it is already JSON text.
        out.extend_from_slice(b"{\"id\":\"");
        uuid_text::write_lower_hyphenated(out, self.id);
        out.extend_from_slice(b"\",\"name\":");
        let written = crate::json_text::write_json_str(out, &self.name)
            .map_err(std::io::Error::from)
            .and_then(|()| match &self.schema {
                Some(schema) => {
                    out.extend_from_slice(b",\"schema\":");
                    crate::json_text::write_json_str(out, schema).map_err(Into::into)
                }
                None => Ok(()),
            })
            .and_then(|()| {
                out.extend_from_slice(b",\"timestamp\":\"");
                line_cache::write_timestamp(self.timestamp, out)?;
                out.extend_from_slice(b"\",\"context\":");
                line_cache::write_context(&self.context, out)
            })
            .and_then(|()| {
                out.extend_from_slice(b",\"data\":");
                match &self.data.raw {
                    Some(raw) => {
                        out.extend_from_slice(raw.as_bytes());
                        Ok(())
                    }
                    None => crate::json_text::write_json_tree(out, self.data.value())
                        .map_err(Into::into),
                }
            });
        // Writing string-keyed JSON into a Vec cannot fail; if it ever did,
        // drop the partial bytes rather than leave a torn line.
        match written {
            Ok(()) => out.push(b'}'),
            Err(_) => {
                out.truncate(start);
                out.extend_from_slice(b"{}");
            }
        }
    }

    /// The event as a `serde_json::Value`.
    pub fn to_value(&self) -> Value {
        let mut value = serde_json::json!({
            "id": self.id.to_string(),
            "name": &*self.name,
            "timestamp": self.timestamp_rfc3339(),
            "context": &*self.context,
            "data": self.data(),
        });
        if let Some(schema) = &self.schema {
            value["schema"] = Value::from(&**schema);
        }
        value
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Event", 5 + usize::from(self.schema.is_some()))?;
        s.serialize_field("id", &self.id)?;
        s.serialize_field("name", &*self.name)?;
        if let Some(schema) = &self.schema {
            s.serialize_field("schema", &**schema)?;
        } else {
            s.skip_field("schema")?;
        }
        s.serialize_field(
            "timestamp",
            &format_args!("{}", humantime::format_rfc3339_micros(self.timestamp)),
        )?;
        s.serialize_field("context", &*self.context)?;
        s.serialize_field("data", self.data.value())?;
        s.end()
    }
}

/// An event as stored, before its name and timestamp are checked; `Data`
/// is a `Value` or the payload's raw JSON text.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Record<Data> {
    id: Uuid,
    name: String,
    #[serde(default)]
    schema: Option<String>,
    timestamp: String,
    #[serde(default)]
    context: JsonMap,
    #[serde(default)]
    data: Data,
}

impl<Data> Record<Data> {
    /// Checks the name and timestamp; builds the event from the payload.
    fn into_event<E: serde::de::Error>(
        self,
        payload: impl FnOnce(Uuid, Arc<str>, SystemTime, Arc<JsonMap>, Data) -> Result<Event, E>,
    ) -> Result<Event, E> {
        validate_event_name(&self.name).map_err(E::custom)?;
        let timestamp = parse_timestamp(&self.timestamp).map_err(E::custom)?;
        let event = payload(
            self.id,
            Arc::from(self.name),
            truncate_to_micros(timestamp),
            Arc::new(self.context),
            self.data,
        )?;
        Ok(event.with_schema(self.schema.map(Cow::Owned)))
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Record::<Value>::deserialize(deserializer)?.into_event(|id, name, at, context, data| {
            Ok(Event::from_parts_exact(id, name, at, context, data))
        })
    }
}

impl Event {
    /// Parses one event from its JSON line (what [`Event::to_json_bytes`]
    /// writes), like its `Deserialize` impl, but keeps the payload's JSON
    /// text as it was read ([`Event::raw_data`]): the event is written out
    /// again byte for byte, key order included, and its payload is never
    /// parsed unless someone asks for [`Event::data`]. For relays and replays.
    ///
    /// ```
    /// use eventtracking_core::Event;
    /// let line = br#"{"id":"01a225b4-d94a-7000-b9f9-c37f702a909a","name":"a.b","timestamp":"2026-11-29T05:08:58.826649Z","context":{},"data":{"z":1,"a":[2]}}"#;
    /// let event = Event::from_json_slice(line).unwrap();
    /// assert_eq!(event.raw_data(), Some(r#"{"z":1,"a":[2]}"#));
    /// assert_eq!(event.to_json_bytes(), line);
    /// ```
    pub fn from_json_slice(bytes: &[u8]) -> Result<Event, serde_json::Error> {
        use serde_json::value::RawValue;
        let record: Record<Option<&RawValue>> = serde_json::from_slice(bytes)?;
        record.into_event(|id, name, at, context, data| match data {
            Some(raw) => Event::with_raw_payload(id, name, at, context, raw),
            None => Ok(Event::from_parts_exact(id, name, at, context, Value::Null)),
        })
    }

    /// An event from its parts (as [`from_parts`](Self::from_parts)) whose
    /// payload is JSON text as received, e.g. by an HTTP collector: kept as
    /// it is, written out verbatim by JSON backends ([`Event::raw_data`]),
    /// and parsed into a [`Value`] only if someone asks for
    /// [`Event::data`]. Text over several lines is parsed instead, so that
    /// the event stays one line. Fails when the text does not read into a
    /// `Value` (a number out of range), which `RawValue` does not check.
    ///
    /// ```
    /// use std::{sync::Arc, time::SystemTime};
    /// use eventtracking_core::{serde_json::value::RawValue, Event};
    ///
    /// let make = |text: &str| {
    ///     let data: Box<RawValue> = serde_json::from_str(text).unwrap();
    ///     Event::from_parts_raw_data(Event::new_id(), Arc::from("page.view"), SystemTime::now(), Arc::default(), &data)
    /// };
    /// let event = make(r#"{"url": "/a"}"#).unwrap();
    /// assert_eq!(event.raw_data(), Some(r#"{"url": "/a"}"#));
    /// assert_eq!(event.data()["url"], "/a");
    /// // Over two lines: parsed, so that the event's JSON stays one line.
    /// let event = make("{\"url\":\n\"/b\"}").unwrap();
    /// assert_eq!(event.raw_data(), None);
    /// assert!(!event.to_json_bytes().contains(&b'\n'));
    /// assert!(make(r#"{"n": 1e400}"#).is_err(), "out of range for a Value");
    /// ```
    pub fn from_parts_raw_data(
        id: Uuid,
        name: Arc<str>,
        timestamp: SystemTime,
        context: Arc<JsonMap>,
        data: &serde_json::value::RawValue,
    ) -> Result<Self, serde_json::Error> {
        Self::with_raw_payload(id, name, truncate_to_micros(timestamp), context, data)
    }

    fn with_raw_payload(
        id: Uuid,
        name: Arc<str>,
        timestamp: SystemTime,
        context: Arc<JsonMap>,
        data: &serde_json::value::RawValue,
    ) -> Result<Self, serde_json::Error> {
        let raw = data.get();
        // Pretty-printed input keeps its line breaks in raw text: parse it,
        // so that the event is still one line.
        if has_line_break(raw) {
            let value = serde_json::from_str(raw)?;
            return Ok(Event::from_parts_exact(id, name, timestamp, context, value));
        }
        // Skipping the payload (RawValue) does not check that its numbers
        // fit a `Value`; reading it later must not fail.
        if !reads_into_value(raw) {
            serde_json::from_str::<Readable>(raw)?;
        }
        Ok(Event::from_parts_raw(
            id,
            name,
            timestamp,
            context,
            raw.into(),
            None,
        ))
    }
}

/// Whether JSON text that `RawValue` took (its syntax checked) surely
/// reads into a [`Value`], without reading it. Reading fails where skipping
/// did not only for a number out of `f64`'s range (which needs an exponent,
/// or over 300 digits), nesting past serde_json's 128 levels (over 256
/// bytes) or a lone surrogate in a `\u` escape; a short text without an
/// exponent or a `\u` has none of them.
fn reads_into_value(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    // `memchr` looks for the rare bytes a word at a time; each hit is then
    // checked with the byte around it.
    bytes.len() < 256
        && !memchr::memchr_iter(b'\\', bytes).any(|at| bytes.get(at + 1) == Some(&b'u'))
        && !memchr::memchr2_iter(b'e', b'E', bytes)
            .any(|at| at > 0 && bytes[at - 1].is_ascii_digit())
}

/// Whether `text` holds a line break.
fn has_line_break(text: &str) -> bool {
    memchr::memchr2(b'\n', b'\r', text.as_bytes()).is_some()
}

/// JSON text checked as reading it into a [`Value`] would check it (numbers
/// in range included), without building anything.
struct Readable;

impl<'de> Deserialize<'de> for Readable {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(Readable)
    }
}

impl<'de> serde::de::Visitor<'de> for Readable {
    type Value = Readable;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Readable, E> {
        Ok(Readable)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Readable, E> {
        Ok(Readable)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Readable, E> {
        Ok(Readable)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Readable, E> {
        Ok(Readable)
    }
    fn visit_str<E>(self, _: &str) -> Result<Readable, E> {
        Ok(Readable)
    }
    fn visit_unit<E>(self) -> Result<Readable, E> {
        Ok(Readable)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Readable, A::Error> {
        while seq.next_element::<Readable>()?.is_some() {}
        Ok(Readable)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Readable, A::Error> {
        while map.next_key::<serde::de::IgnoredAny>()?.is_some() {
            map.next_value::<Readable>()?;
        }
        Ok(Readable)
    }
}

/// A fresh UUIDv7 and the timestamp it encodes. Ids made on one thread are
/// strictly increasing: within a millisecond a per-thread 12-bit counter
/// (RFC 9562, method 1) orders them, then 62 random bits; across threads they
/// are unique and ordered by millisecond.
pub(crate) fn new_id_and_timestamp() -> (Uuid, SystemTime) {
    use std::cell::Cell;
    thread_local! {
        /// The last millisecond used and the counter within it.
        static LAST: Cell<(u64, u16)> = const { Cell::new((0, 0)) };
    }
    let since = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let since = std::time::Duration::new(since.as_secs(), since.subsec_micros() * 1_000);
    let now = SystemTime::UNIX_EPOCH + since;
    // In u64 (as_millis is u128): overflows in 584 million years.
    let now_ms = since
        .as_secs()
        .wrapping_mul(1_000)
        .wrapping_add(u64::from(since.subsec_millis()));
    let (millis, counter) = LAST
        .try_with(|last| {
            let (last_ms, counter) = last.get();
            let next = if now_ms > last_ms {
                (now_ms, 0)
            } else if counter < 0x0FFF {
                (last_ms, counter + 1)
            } else {
                // 4096 ids in one millisecond: borrow the next one.
                (last_ms + 1, 0)
            };
            last.set(next);
            next
        })
        .unwrap_or((now_ms, 0));
    let random = fastrand::u64(..).to_le_bytes();
    let mut bytes = [0u8; 10];
    // The builder keeps the low 12 bits of the first two bytes (rand_a).
    bytes[0] = (counter >> 8) as u8;
    bytes[1] = counter as u8;
    bytes[2..].copy_from_slice(&random);
    let id = uuid::Builder::from_unix_timestamp_millis(millis, &bytes).into_uuid();
    (id, now)
}

/// Serializes a payload to JSON text: into a per-thread scratch buffer,
/// then one exact-size allocation.
pub(crate) fn payload_json<T: Serialize + ?Sized>(data: &T) -> Result<Box<str>, serde_json::Error> {
    with_scratch(|buffer: &mut Vec<u8>| {
        buffer.clear();
        serde_json::to_writer(&mut *buffer, data)?;
        // serde_json writes UTF-8; checking is cheap and keeps this safe code.
        let text = std::str::from_utf8(buffer)
            .map_err(<serde_json::Error as serde::ser::Error>::custom)?;
        Ok(Box::from(text))
    })
}

/// [`payload_json`] for a payload that writes its own JSON text (as a
/// `String`, so that it needs no UTF-8 check).
pub(crate) fn payload_json_with(
    write: impl Fn(&mut String) -> Result<(), serde_json::Error>,
) -> Result<Box<str>, serde_json::Error> {
    with_scratch(|buffer: &mut String| {
        buffer.clear();
        write(&mut *buffer)?;
        Ok(Box::from(buffer.as_str()))
    })
}

/// A per-thread scratch buffer for [`payload_json`] and [`payload_json_with`].
trait Scratch: Default + 'static {
    fn with<R>(f: impl FnOnce(&mut Self) -> R) -> Option<R>;
}

macro_rules! scratch {
    ($ty:ty, $name:ident) => {
        impl Scratch for $ty {
            fn with<R>(f: impl FnOnce(&mut Self) -> R) -> Option<R> {
                use std::cell::RefCell;
                thread_local! {
                    static $name: RefCell<$ty> = RefCell::new(<$ty>::with_capacity(1024));
                }
                let mut f = Some(f);
                let result = $name
                    .try_with(|scratch| {
                        let mut buffer = scratch.try_borrow_mut().ok()?;
                        let result = f.take().map(|f| f(&mut buffer));
                        // Don't keep a huge payload's buffer around.
                        if buffer.capacity() > 64 * 1024 {
                            *buffer = <$ty>::with_capacity(1024);
                        }
                        result
                    })
                    .ok()
                    .flatten();
                // Re-entered from a payload's own Serialize impl, or the
                // thread is exiting: a fresh buffer.
                result.or_else(|| f.take().map(|f| f(&mut Self::default())))
            }
        }
    };
}
scratch!(Vec<u8>, BYTES_SCRATCH);
scratch!(String, TEXT_SCRATCH);

fn with_scratch<B: Scratch>(
    f: impl FnOnce(&mut B) -> Result<Box<str>, serde_json::Error>,
) -> Result<Box<str>, serde_json::Error> {
    B::with(f).unwrap_or_else(|| {
        Err(<serde_json::Error as serde::ser::Error>::custom(
            "no buffer",
        ))
    })
}

/// An event name checked by [`validate_event_name`], as one allocation
/// shared by every event of that name: names repeat, so each thread keeps
/// one `Arc<str>` per name it has accepted (up to 4,096 names; past that,
/// names are still checked but each gets its own allocation) and does not
/// check a name it already holds again.
///
/// ```
/// use eventtracking_core::intern_event_name;
/// let first = intern_event_name("navigation.request").unwrap();
/// let second = intern_event_name(&String::from("navigation.request")).unwrap();
/// assert!(std::sync::Arc::ptr_eq(&first, &second));
/// assert!(intern_event_name("has space").is_err());
/// ```
pub fn intern_event_name(name: &str) -> Result<Arc<str>, InvalidEventName> {
    use std::cell::RefCell;
    use std::collections::HashMap;
    const MAX_INTERNED: usize = 4096;
    const SLOTS: usize = 32;

    /// FNV-1a: names are short and each thread's table is its own and
    /// bounded, so a fast non-keyed hash is fine here.
    #[derive(Default)]
    struct Fnv(u64);
    impl std::hash::Hasher for Fnv {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            let mut hash = if self.0 == 0 {
                0xcbf2_9ce4_8422_2325
            } else {
                self.0
            };
            for byte in bytes {
                hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
            }
            self.0 = hash;
        }
    }
    type Names = HashMap<Box<str>, Arc<str>, std::hash::BuildHasherDefault<Fnv>>;
    /// Names are usually string literals, so the address of the text finds
    /// the slot; the bytes are still compared, as addresses get reused.
    struct Interner {
        slots: [Option<Arc<str>>; SLOTS],
        names: Names,
    }
    thread_local! {
        static INTERNER: RefCell<Interner> = RefCell::new(Interner {
            slots: Default::default(),
            names: Names::default(),
        });
    }
    let slot = (name.as_ptr() as usize >> 3) % SLOTS;
    let found = INTERNER.try_with(|interner| {
        let mut interner = interner.borrow_mut();
        if let Some(shared) = &interner.slots[slot] {
            if **shared == *name {
                return Ok(shared.clone());
            }
        }
        let shared = match interner.names.get(name) {
            Some(shared) => shared.clone(),
            None => {
                validate_event_name(name)?;
                let shared: Arc<str> = Arc::from(name);
                if interner.names.len() < MAX_INTERNED {
                    interner.names.insert(Box::from(name), shared.clone());
                }
                shared
            }
        };
        interner.slots[slot] = Some(shared.clone());
        Ok(shared)
    });
    match found {
        Ok(result) => result,
        // The thread is exiting: no cache, but still validated.
        Err(_) => validate_event_name(name).map(|()| Arc::from(name)),
    }
}

/// Timestamps keep microseconds (what the RFC 3339 form carries), so an
/// event read back from its JSON line equals the one written. (BSON dates
/// hold milliseconds; the MongoDB backend also stores the exact text.)
fn truncate_to_micros(time: SystemTime) -> SystemTime {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(since) => {
            SystemTime::UNIX_EPOCH
                + std::time::Duration::new(since.as_secs(), since.subsec_micros() * 1_000)
        }
        Err(_) => time,
    }
}

/// A time as events carry it: RFC 3339 in UTC with microseconds, e.g.
/// `2026-11-29T01:52:39.123456Z` (what [`parse_timestamp`] reads). The
/// date and time of day are formatted once per second on each thread.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use eventtracking_core::format_timestamp;
/// let time = SystemTime::UNIX_EPOCH + Duration::new(1_764_000_000, 123_456_789);
/// assert_eq!(format_timestamp(time), "2025-11-24T16:00:00.123456Z");
/// ```
pub fn format_timestamp(time: SystemTime) -> String {
    let mut text = Vec::with_capacity(27);
    if line_cache::write_timestamp(time, &mut text).is_err() {
        return humantime::format_rfc3339_micros(time).to_string();
    }
    // ASCII digits and separators only.
    String::from_utf8(text).unwrap_or_else(|_| humantime::format_rfc3339_micros(time).to_string())
}

/// Parses an RFC 3339 timestamp in UTC (`Z` or `+00:00`).
pub fn parse_timestamp(text: &str) -> Result<SystemTime, String> {
    // The `Z` form (what events are written with) is parsed in place, without a copy.
    let parsed = match text.strip_suffix("+00:00") {
        Some(prefix) => humantime::parse_rfc3339(&format!("{prefix}Z")),
        None => humantime::parse_rfc3339(text),
    };
    parsed.map_err(|e| format!("timestamp {text:?} is not RFC 3339 in UTC: {e}"))
}

/// Checks an event name: non-empty, at most 255 bytes, no whitespace or control characters.
///
/// ```
/// use eventtracking_core::validate_event_name;
/// assert!(validate_event_name("navigation.request").is_ok());
/// assert!(validate_event_name("").is_err());
/// assert!(validate_event_name("has space").is_err());
/// ```
pub fn validate_event_name(name: &str) -> Result<(), InvalidEventName> {
    match name_problem(name) {
        None => Ok(()),
        Some(NameProblem::Empty) => Err(InvalidEventName::Empty),
        Some(NameProblem::TooLong) => Err(InvalidEventName::TooLong {
            prefix: name.chars().take(32).collect(),
            len: name.len(),
        }),
        Some(NameProblem::BadCharacter { position }) => Err(InvalidEventName::BadCharacter {
            name: name.to_owned(),
            character: name[position..].chars().next().unwrap_or_default(),
            position,
        }),
    }
}

/// What is wrong with an event name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameProblem {
    Empty,
    TooLong,
    BadCharacter { position: usize },
}

/// The one event-name rule, as a `const fn` so that `#[derive(TrackedEvent)]`
/// checks a typed event's name at compile time with exactly the rule
/// [`validate_event_name`] applies at run time: not empty, at most
/// [`MAX_EVENT_NAME_BYTES`], no whitespace or control character (as
/// `char::is_whitespace` and `char::is_control` define them).
const fn name_problem(name: &str) -> Option<NameProblem> {
    let bytes = name.as_bytes();
    if bytes.is_empty() {
        return Some(NameProblem::Empty);
    }
    if bytes.len() > MAX_EVENT_NAME_BYTES {
        return Some(NameProblem::TooLong);
    }
    let mut at = 0;
    while at < bytes.len() {
        let (code, width) = decode_utf8(bytes, at);
        if is_whitespace_or_control(code) {
            return Some(NameProblem::BadCharacter { position: at });
        }
        at += width;
    }
    None
}

/// The code point starting at `at` of valid UTF-8, and its width in bytes.
const fn decode_utf8(bytes: &[u8], at: usize) -> (u32, usize) {
    let lead = bytes[at] as u32;
    if lead < 0x80 {
        return (lead, 1);
    }
    let width = if lead < 0xE0 {
        2
    } else if lead < 0xF0 {
        3
    } else {
        4
    };
    // The lead byte keeps 7 - width bits; each continuation byte adds 6.
    let mut code = lead & (0x7F >> width);
    let mut i = 1;
    while i < width {
        code = code << 6 | (bytes[at + i] & 0x3F) as u32;
        i += 1;
    }
    (code, width)
}

/// `char::is_whitespace(c) || char::is_control(c)`, in a `const fn`: the
/// Unicode `White_Space` characters and the `Cc` controls.
const fn is_whitespace_or_control(code: u32) -> bool {
    matches!(
        code,
        0x00..=0x20
            | 0x7F..=0xA0
            | 0x1680
            | 0x2000..=0x200A
            | 0x2028
            | 0x2029
            | 0x202F
            | 0x205F
            | 0x3000
    )
}

/// The compile-time side of the rule: `#[derive(TrackedEvent)]` evaluates
/// this in a constant, so a bad name fails the build with the rule's reason.
#[doc(hidden)]
pub const fn check_event_name_const(name: &str) {
    match name_problem(name) {
        None => {}
        Some(NameProblem::Empty) => panic!("invalid event name: the name is empty"),
        Some(NameProblem::TooLong) => {
            panic!("invalid event name: longer than MAX_EVENT_NAME_BYTES (255 bytes)")
        }
        Some(NameProblem::BadCharacter { .. }) => {
            panic!("invalid event name: it holds whitespace or a control character")
        }
    }
}

/// The JSON kind of a value, for error messages.
pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn has_line_break_finds_a_break_at_any_position() {
        for len in 0..40 {
            let plain = "a\u{e9}".repeat(len);
            assert!(!has_line_break(&plain), "{len}");
            for at in 0..=plain.len() {
                if !plain.is_char_boundary(at) {
                    continue;
                }
                for brk in ["\n", "\r"] {
                    let text = format!("{}{brk}{}", &plain[..at], &plain[at..]);
                    assert!(has_line_break(&text), "{text:?}");
                }
            }
        }
        // Bytes near the break's values are no break.
        assert!(!has_line_break("\u{b}\u{c}\u{e}\t\u{8a}\u{8d}\u{10a}"));
    }

    #[test]
    fn raw_data_that_would_not_read_into_a_value_is_refused() {
        let make = |text: &str| {
            let raw: Box<serde_json::value::RawValue> = serde_json::from_str(text).unwrap();
            Event::from_parts_raw_data(
                Event::new_id(),
                Arc::from("a.b"),
                SystemTime::now(),
                Arc::default(),
                &raw,
            )
        };
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let long_number = format!("[{}]", "9".repeat(400));
        for bad in [
            "[1e400]",
            "[-1E+400]",
            r#"{"a": "\ud800"}"#,
            deep.as_str(),
            long_number.as_str(),
        ] {
            assert!(make(bad).is_err(), "{bad:.40}");
        }
        for good in [
            "[1e5, 2E-3]",
            r#"{"e": "1e400 as text", "u": "\u00e9"}"#,
            "[]",
        ] {
            let event = make(good).unwrap();
            assert_eq!(event.raw_data(), Some(good));
            assert_eq!(event.data(), &serde_json::from_str::<Value>(good).unwrap());
        }
        // The shortcut only skips what it may: whatever it passes reads.
        for text in ["[1, 2.5, -3]", r#"{"a": [true, null, "x"]}"#, "\"plain\""] {
            assert!(reads_into_value(text));
            assert!(serde_json::from_str::<Value>(text).is_ok());
        }
        assert!(!reads_into_value("[1e400]"));
        assert!(!reads_into_value(r#""\ud800""#));
    }

    #[test]
    fn json_has_the_five_fields_in_order() {
        let event = Event::new("a.b", json!({"x": {"y": [1, 2]}})).unwrap();
        let text = std::str::from_utf8(event.to_json_bytes())
            .unwrap()
            .to_owned();
        let id_at = text.find("\"id\"").unwrap();
        let name_at = text.find("\"name\"").unwrap();
        let ts_at = text.find("\"timestamp\"").unwrap();
        let ctx_at = text.find("\"context\"").unwrap();
        let data_at = text.find("\"data\"").unwrap();
        assert!(id_at < name_at && name_at < ts_at && ts_at < ctx_at && ctx_at < data_at);
        let back: Event = serde_json::from_str(&text).unwrap();
        assert_eq!(back, event);
        assert_eq!(back.id().get_version_num(), 7);
    }

    #[test]
    fn from_json_slice_keeps_the_payload_and_agrees_with_deserialize() {
        let typed = Event::new("a.b", json!({"k": "v"}))
            .unwrap()
            .with_schema(Some("a.b@2".into()));
        for line in [
            typed.to_json_bytes().to_vec(),
            br#"{"id":"01a225b4-d94a-7000-b9f9-c37f702a909a","name":"x","timestamp":"2026-11-29T05:08:58.826649Z","context":{"u":1},"data":{"b":"\n","a":1}}"#.to_vec(),
            br#"{"id":"01a225b4-d94a-7000-b9f9-c37f702a909a","name":"x","timestamp":"2026-11-29T05:08:58.826649Z"}"#.to_vec(),
        ] {
            let fast = Event::from_json_slice(&line).unwrap();
            let slow: Event = serde_json::from_slice(&line).unwrap();
            assert_eq!(fast, slow);
            if line.ends_with(b"}}") {
                assert_eq!(fast.to_json_bytes(), &line[..], "written back byte for byte");
            }
        }
        // Pretty-printed input still makes one line.
        let pretty = "{\"id\":\"01a225b4-d94a-7000-b9f9-c37f702a909a\",\"name\":\"x\",\"timestamp\":\"2026-11-29T05:08:58.826649Z\",\"data\":{\n  \"a\": 1\n}}";
        let event = Event::from_json_slice(pretty.as_bytes()).unwrap();
        assert!(!event.to_json_bytes().contains(&b'\n'));
        assert_eq!(event.data(), &json!({"a": 1}));
        for bad in [
            &b"{}"[..],
            b"not json",
            br#"{"id":"x","name":"a","timestamp":"t"}"#,
        ] {
            assert!(Event::from_json_slice(bad).is_err());
        }
        let err = Event::from_json_slice(br#"{"id":"01a225b4-d94a-7000-b9f9-c37f702a909a","name":"has space","timestamp":"2026-11-29T05:08:58.826649Z"}"#).unwrap_err();
        assert!(err.to_string().contains("has space"), "{err}");
    }

    /// Found writing the round-trip check of `fuzz/fuzz_targets/event_json.rs`: a payload that
    /// `serde_json` can skip but not read (a number beyond `f64`, `1e400`)
    /// was kept as raw text, and read later as `null`: a processor then
    /// replaced the payload with `null`, and `Deserialize` refused the event
    /// that `from_json_slice` had accepted.
    #[test]
    fn from_json_slice_refuses_what_deserialize_refuses() {
        let line = |data: &str| {
            format!(
                r#"{{"id":"01a225b4-d94a-7000-b9f9-c37f702a909a","name":"x","timestamp":"2026-11-29T05:08:58.826649Z","context":{{}},"data":{data}}}"#
            )
        };
        for data in ["1e400", r#"{"a":[1,-1e999]}"#, r#"{"a":1e400}"#] {
            let text = line(data);
            let err = Event::from_json_slice(text.as_bytes()).unwrap_err();
            assert!(err.to_string().contains("out of range"), "{data}: {err}");
            assert!(serde_json::from_str::<Event>(&text).is_err(), "{data}");
        }
        for data in [
            "1e300",
            r#"{"a":[1,-1.5e-400,"1e400"]}"#,
            "18446744073709551616",
        ] {
            let text = line(data);
            let fast = Event::from_json_slice(text.as_bytes()).unwrap();
            let slow: Event = serde_json::from_str(&text).unwrap();
            assert_eq!(fast, slow, "{data}");
            assert_eq!(fast.to_json_bytes(), text.as_bytes());
        }
    }

    /// Found by the `event_json` fuzz target: a number read as a float was
    /// written back as text that read as another float, so every hop (relay,
    /// replay) could change it. serde_json's `float_roundtrip` (a workspace
    /// feature) reads floats exactly. This crate's own tests get it from the
    /// `jsonschema` dev-dependency anyway; the fuzz build (no `validate`)
    /// failed without it, and replays the input, `fuzz/corpus/event_json/seed-float-roundtrip.json`.
    #[test]
    fn floats_survive_being_written_and_read_again() {
        let big = "7".repeat(115) + "2";
        for number in [
            big.as_str(),
            "7.777777777777779e+115",
            "0.1",
            "-2.5e-300",
            "1e300",
        ] {
            let text = format!(
                "{{\"id\":\"01a225b4-d94a-7000-b9f9-c37f702a909a\",\"name\":\"x\",\"timestamp\":\"2026-11-29T05:08:58.826649Z\",\"data\":{{\n\"n\": {number}}}}}"
            );
            let first = Event::from_json_slice(text.as_bytes()).unwrap();
            let again = Event::from_json_slice(first.to_json_bytes()).unwrap();
            assert_eq!(again, first, "{number}");
            let third: Event = serde_json::from_slice(again.to_json_bytes()).unwrap();
            assert_eq!(third.to_json_bytes(), first.to_json_bytes(), "{number}");
        }
    }

    #[test]
    fn timestamp_is_utc_with_microseconds() {
        let event = Event::new("a", Value::Null).unwrap();
        let ts = event.timestamp_rfc3339();
        // 2026-11-29T01:52:39.123456Z
        assert_eq!(ts.len(), 27, "{ts}");
        assert!(ts.ends_with('Z'));
        assert_eq!(&ts[19..20], ".");
        assert_eq!(parse_timestamp(&ts).unwrap(), event.timestamp());
        let plus = format!("{}+00:00", &ts[..26]);
        assert_eq!(parse_timestamp(&plus).unwrap(), event.timestamp());
    }

    #[test]
    fn names_are_validated() {
        assert_eq!(validate_event_name(""), Err(InvalidEventName::Empty));
        assert!(matches!(
            validate_event_name(&"a".repeat(256)),
            Err(InvalidEventName::TooLong { len: 256, .. })
        ));
        assert!(validate_event_name(&"a".repeat(255)).is_ok());
        for bad in ["a b", "a\tb", "a\nb", "a\u{7}b", "a\u{a0}b"] {
            let err = validate_event_name(bad).unwrap_err();
            assert!(err.to_string().contains("byte 1"), "{err}");
        }
        assert!(validate_event_name("navigation.request/ünïcode").is_ok());
    }

    #[test]
    fn ids_from_one_thread_strictly_increase_even_within_a_millisecond() {
        let ids: Vec<Uuid> = (0..20_000).map(|_| new_id_and_timestamp().0).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert!(ids.iter().all(|id| id.get_version_num() == 7));
        assert!(ids
            .iter()
            .all(|id| id.get_variant() == uuid::Variant::RFC4122));
        let (id, timestamp) = new_id_and_timestamp();
        let (secs, nanos) = id.get_timestamp().unwrap().to_unix();
        let millis = secs * 1000 + u64::from(nanos) / 1_000_000;
        let ts_millis = timestamp
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        assert!(
            millis >= ts_millis && millis < ts_millis + 100,
            "{millis} vs {ts_millis}"
        );
    }

    #[test]
    fn interning_validates_and_shares() {
        let a = intern_event_name("page.view").unwrap();
        let owned = String::from("page.view");
        let b = intern_event_name(&owned).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(intern_event_name("bad name").is_err());
        assert!(
            intern_event_name("bad name").is_err(),
            "a refused name is not cached"
        );
        let other = String::from("page.leave");
        assert_eq!(&*intern_event_name(&other).unwrap(), "page.leave");
    }

    #[test]
    fn mutation_invalidates_the_json_cache() {
        let mut event = Event::new("a", json!({"k": 1})).unwrap();
        let before = event.to_json_bytes().to_vec();
        event.data_mut()["k"] = json!(2);
        assert_ne!(before, event.to_json_bytes());
        event.context_mut().insert("host".into(), json!("h"));
        let v: Value = serde_json::from_slice(event.to_json_bytes()).unwrap();
        assert_eq!(v["context"]["host"], "h");
        assert_eq!(v["data"]["k"], 2);
    }

    #[test]
    fn deserialize_rejects_bad_records() {
        let bad_name = r#"{"id":"0190c4b4-4f5e-7c3a-8b4e-1a2b3c4d5e6f","name":"","timestamp":"2026-01-01T00:00:00Z","context":{},"data":1}"#;
        assert!(serde_json::from_str::<Event>(bad_name).is_err());
        let bad_ts = r#"{"id":"0190c4b4-4f5e-7c3a-8b4e-1a2b3c4d5e6f","name":"a","timestamp":"yesterday","context":{},"data":1}"#;
        let err = serde_json::from_str::<Event>(bad_ts)
            .unwrap_err()
            .to_string();
        assert!(err.contains("yesterday"), "{err}");
    }

    #[test]
    fn the_const_rule_agrees_with_char_methods_on_every_char() {
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            let expected = c.is_whitespace() || c.is_control();
            assert_eq!(is_whitespace_or_control(c as u32), expected, "{c:?}");
            let mut buffer = [0u8; 4];
            let text = c.encode_utf8(&mut buffer);
            assert_eq!(decode_utf8(text.as_bytes(), 0), (c as u32, c.len_utf8()));
        }
    }
}
