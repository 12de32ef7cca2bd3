//! Events as BSON documents, and back.
//!
//! The encoder writes BSON bytes directly (no intermediate `bson::Document`):
//! a typed payload, which the event keeps as JSON text, is streamed from that
//! text into BSON without building a `serde_json::Value` first.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use eventtracking_core::{Event, JsonMap};
use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{RawBsonRef, RawDocument, RawDocumentBuf};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// The largest document MongoDB stores: 16 MiB (`maxBsonObjectSize`).
pub const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;

/// The deepest nesting MongoDB accepts: 100 levels, the event document itself
/// being the first (so `data` is the second, `data.a` the third...).
pub const MAX_DEPTH: usize = 100;

// BSON element types this crate writes.
const DOUBLE: u8 = 0x01;
const STRING: u8 = 0x02;
const DOCUMENT: u8 = 0x03;
const ARRAY: u8 = 0x04;
const BINARY: u8 = 0x05;
const BOOLEAN: u8 = 0x08;
const DATE_TIME: u8 = 0x09;
const NULL: u8 = 0x0A;
const INT64: u8 = 0x12;

/// Why an event cannot be a MongoDB document (or a document an event).
///
/// An event that cannot be encoded fails on its own, permanently: the rest of
/// its batch is still stored and the event goes to the dead-letter file with
/// this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DocumentError {
    /// The document is larger than MongoDB's 16 MiB.
    #[error("the document is {bytes} bytes, larger than MongoDB's limit of {MAX_DOCUMENT_BYTES} bytes (16 MiB)")]
    TooLarge {
        /// The size of the encoded document.
        bytes: usize,
    },
    /// A value has no BSON form: an integer above `i64::MAX`, a key holding a
    /// NUL character, nesting deeper than [`MAX_DEPTH`].
    #[error("`{path}`: {reason}")]
    Unrepresentable {
        /// Where, as a dotted path (`data.items.3.count`).
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A document read back is not in this crate's layout.
    #[error("not an event document: {0}")]
    Malformed(String),
}

/// How events are laid out as documents.
///
/// ```
/// use eventtracking_core::Event;
/// use eventtracking_mongo::DocumentLayout;
/// use mongodb::bson::spec::BinarySubtype;
///
/// let event = Event::new("page.view", serde_json::json!({"n": 7})).unwrap();
/// let doc = DocumentLayout::default().encode(&event).unwrap();
/// let id = doc.get_binary("_id").unwrap();
/// assert_eq!(id.subtype, BinarySubtype::Uuid);
/// assert_eq!(id.bytes, event.id().as_bytes());
/// assert_eq!(doc.get_str("name").unwrap(), "page.view");
/// assert!(doc.get_datetime("timestamp").is_ok());
/// assert_eq!(doc.get_str("timestamp_rfc3339").unwrap(), event.timestamp_rfc3339());
/// assert_eq!(doc.get_document("data").unwrap().get_i64("n").unwrap(), 7);
///
/// let back = eventtracking_mongo::event_from_document(&doc).unwrap();
/// assert_eq!(back, event);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocumentLayout {
    /// Also store `timestamp_rfc3339`, the exact timestamp (microseconds) as
    /// RFC 3339 text, next to the BSON date `timestamp` (milliseconds).
    /// Default true.
    pub rfc3339_timestamp: bool,
}

impl Default for DocumentLayout {
    fn default() -> Self {
        DocumentLayout {
            rfc3339_timestamp: true,
        }
    }
}

impl DocumentLayout {
    /// The event as a BSON document, at most [`MAX_DOCUMENT_BYTES`] long.
    pub fn encode(&self, event: &Event) -> Result<RawDocumentBuf, DocumentError> {
        let data_hint = event.raw_data().map_or(64, str::len);
        let mut encoder = Encoder::with_capacity(160 + data_hint + 32 * event.context().len());
        self.encode_into(event, &mut encoder)?;
        let bytes = encoder.out;
        if bytes.len() > MAX_DOCUMENT_BYTES {
            return Err(DocumentError::TooLarge { bytes: bytes.len() });
        }
        RawDocumentBuf::from_bytes(bytes).map_err(|e| DocumentError::Malformed(e.to_string()))
    }

    fn encode_into(&self, event: &Event, enc: &mut Encoder) -> Result<(), DocumentError> {
        let top = enc.begin_document();
        enc.depth = 1;

        // _id: the event's UUID, binary subtype 4.
        enc.element_header(BINARY, "_id");
        enc.out.extend_from_slice(&16i32.to_le_bytes());
        enc.out.push(u8::from(BinarySubtype::Uuid));
        enc.out.extend_from_slice(event.id().as_bytes());

        enc.element_header(STRING, "name");
        enc.string(event.name())?;

        if let Some(schema) = event.schema() {
            enc.element_header(STRING, "schema");
            enc.string(schema)?;
        }

        enc.element_header(DATE_TIME, "timestamp");
        enc.out
            .extend_from_slice(&millis_since_epoch(event.timestamp()).to_le_bytes());
        if self.rfc3339_timestamp {
            enc.element_header(STRING, "timestamp_rfc3339");
            enc.string(&event.timestamp_rfc3339())?;
        }

        enc.element_header(DOCUMENT, "context");
        enc.context(event.context())
            .map_err(|e| enc.error("context", e))?;

        let at = enc.out.len();
        enc.element_header(0, "data");
        let kind = match event.raw_data() {
            Some(raw) => {
                let mut de = serde_json::Deserializer::from_str(raw);
                ValueSeed { enc: &mut *enc }
                    .deserialize(&mut de)
                    .and_then(|kind| de.end().map(|()| kind))
            }
            None => ValueSeed { enc: &mut *enc }.deserialize(event.data()),
        }
        .map_err(|e| enc.error("data", e))?;
        enc.out[at] = kind;

        enc.end_document(top)
    }
}

/// The event as a document in the default [`DocumentLayout`].
pub fn event_to_document(event: &Event) -> Result<RawDocumentBuf, DocumentError> {
    DocumentLayout::default().encode(event)
}

/// Milliseconds since the Unix epoch (negative before it), as BSON dates count.
fn millis_since_epoch(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_millis()).unwrap_or(i64::MAX),
        Err(before) => {
            let before = before.duration();
            // Round towards minus infinity, as a date's millisecond does.
            let millis = i64::try_from(before.as_millis()).unwrap_or(i64::MAX);
            if before.subsec_nanos() % 1_000_000 == 0 {
                -millis
            } else {
                -millis - 1
            }
        }
    }
}

/// Writes BSON into one buffer; nested documents patch their length in place.
struct Encoder {
    out: Vec<u8>,
    depth: usize,
    /// Keys from the failing value outwards, filled while an error unwinds.
    path: Vec<String>,
    /// The reason of an error this encoder raised (serde_json would append a
    /// position to it).
    reason: Option<String>,
}

impl Encoder {
    fn with_capacity(capacity: usize) -> Self {
        Encoder {
            out: Vec::with_capacity(capacity),
            depth: 0,
            path: Vec::new(),
            reason: None,
        }
    }

    fn begin_document(&mut self) -> usize {
        let start = self.out.len();
        self.out.extend_from_slice(&[0; 4]);
        start
    }

    fn end_document(&mut self, start: usize) -> Result<(), DocumentError> {
        self.out.push(0);
        let len = i32::try_from(self.out.len() - start).map_err(|_| DocumentError::TooLarge {
            bytes: self.out.len(),
        })?;
        self.out[start..start + 4].copy_from_slice(&len.to_le_bytes());
        Ok(())
    }

    /// Type byte and key of a key known to hold no NUL.
    fn element_header(&mut self, kind: u8, key: &str) {
        self.out.push(kind);
        self.out.extend_from_slice(key.as_bytes());
        self.out.push(0);
    }

    /// A placeholder type byte and the key; returns where the type byte goes.
    fn key(&mut self, key: &str) -> Result<usize, String> {
        if key.as_bytes().contains(&0) {
            return Err(format!(
                "key {key:?} holds a NUL character, which BSON keys cannot"
            ));
        }
        let at = self.out.len();
        self.element_header(0, key);
        Ok(at)
    }

    fn string(&mut self, text: &str) -> Result<(), DocumentError> {
        let len = i32::try_from(text.len() + 1)
            .map_err(|_| DocumentError::TooLarge { bytes: text.len() })?;
        self.out.extend_from_slice(&len.to_le_bytes());
        self.out.extend_from_slice(text.as_bytes());
        self.out.push(0);
        Ok(())
    }

    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            Err(format!(
                "nested more than {MAX_DEPTH} levels deep, MongoDB's limit"
            ))
        } else {
            Ok(())
        }
    }

    fn context(&mut self, context: &JsonMap) -> Result<(), serde_json::Error> {
        self.enter().map_err(|r| self.fail(r))?;
        let start = self.begin_document();
        for (key, value) in context {
            let at = self.key(key).map_err(|r| self.fail(r))?;
            match (ValueSeed { enc: &mut *self }).deserialize(value) {
                Ok(kind) => self.out[at] = kind,
                Err(e) => {
                    self.path.push(key.clone());
                    return Err(e);
                }
            }
        }
        self.end_document(start)
            .map_err(|e| self.fail(e.to_string()))?;
        self.depth -= 1;
        Ok(())
    }

    fn fail<E: de::Error>(&mut self, reason: String) -> E {
        let error = E::custom(&reason);
        self.reason = Some(reason);
        error
    }

    /// The error of field `field` (`context` or `data`), with the path to the bad value.
    fn error(&mut self, field: &str, error: serde_json::Error) -> DocumentError {
        let mut path = vec![field.to_owned()];
        path.extend(self.path.drain(..).rev());
        DocumentError::Unrepresentable {
            path: path.join("."),
            reason: self.reason.take().unwrap_or_else(|| error.to_string()),
        }
    }

    fn end_nested(&mut self, start: usize) -> Result<(), String> {
        self.end_document(start).map_err(|e| e.to_string())?;
        self.depth -= 1;
        Ok(())
    }
}

/// Deserializes one JSON value into the encoder as BSON; yields its type byte.
struct ValueSeed<'e> {
    enc: &'e mut Encoder,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = u8;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<u8, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = u8;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<u8, E> {
        self.enc.out.push(u8::from(v));
        Ok(BOOLEAN)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u8, E> {
        self.enc.out.extend_from_slice(&v.to_le_bytes());
        Ok(INT64)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u8, E> {
        match i64::try_from(v) {
            Ok(v) => self.visit_i64(v),
            Err(_) => Err(self.enc.fail(format!(
                "integer {v} is larger than BSON's largest integer (Int64, at most {})",
                i64::MAX
            ))),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<u8, E> {
        self.enc.out.extend_from_slice(&v.to_le_bytes());
        Ok(DOUBLE)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<u8, E> {
        self.enc
            .string(v)
            .map_err(|e| self.enc.fail(e.to_string()))?;
        Ok(STRING)
    }

    fn visit_unit<E: de::Error>(self) -> Result<u8, E> {
        Ok(NULL)
    }

    fn visit_none<E: de::Error>(self) -> Result<u8, E> {
        Ok(NULL)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<u8, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<u8, A::Error> {
        let enc = self.enc;
        enc.enter().map_err(|r| enc.fail(r))?;
        let start = enc.begin_document();
        let mut index = 0usize;
        let mut digits = [0u8; 20];
        loop {
            let at = enc.out.len();
            enc.element_header(0, decimal(index, &mut digits));
            match seq.next_element_seed(ValueSeed { enc: &mut *enc }) {
                Ok(Some(kind)) => enc.out[at] = kind,
                Ok(None) => {
                    enc.out.truncate(at);
                    break;
                }
                Err(e) => {
                    enc.path.push(index.to_string());
                    return Err(e);
                }
            }
            index += 1;
        }
        enc.end_nested(start).map_err(|r| enc.fail(r))?;
        Ok(ARRAY)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<u8, A::Error> {
        let enc = self.enc;
        enc.enter().map_err(|r| enc.fail(r))?;
        let start = enc.begin_document();
        while let Some(at) = map.next_key_seed(KeySeed { enc: &mut *enc })? {
            match map.next_value_seed(ValueSeed { enc: &mut *enc }) {
                Ok(kind) => enc.out[at] = kind,
                Err(e) => {
                    let key_start = at + 1;
                    let key_end = enc.out[key_start..]
                        .iter()
                        .position(|b| *b == 0)
                        .map_or(enc.out.len(), |n| key_start + n);
                    let key = String::from_utf8_lossy(&enc.out[key_start..key_end]).into_owned();
                    enc.path.push(key);
                    return Err(e);
                }
            }
        }
        enc.end_nested(start).map_err(|r| enc.fail(r))?;
        Ok(DOCUMENT)
    }
}

/// Writes a map key (after a placeholder type byte); yields the placeholder's offset.
struct KeySeed<'e> {
    enc: &'e mut Encoder,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<usize, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<usize, E> {
        self.enc.key(v).map_err(|reason| {
            self.enc.path.push(v.replace('\0', "\\0"));
            self.enc.fail(reason)
        })
    }
}

/// `n` in decimal, without allocating.
fn decimal(mut n: usize, buffer: &mut [u8; 20]) -> &str {
    let mut i = buffer.len();
    loop {
        i -= 1;
        buffer[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    std::str::from_utf8(&buffer[i..]).unwrap_or("0")
}

// ---------------------------------------------------------------------------
// Reading back
// ---------------------------------------------------------------------------

/// Reads an event back from a document this crate wrote (e.g. to replay or
/// export it): `_id` (UUID binary, or its text), `name`, and the exact
/// `timestamp_rfc3339` when present, else the BSON date `timestamp`
/// (milliseconds); `context` and `data` become JSON again (Int32 and Int64 as
/// integers, Double as a float, dates as RFC 3339 text; other BSON types are
/// refused).
///
/// ```
/// use eventtracking_core::Event;
/// use eventtracking_mongo::{event_from_document, event_to_document};
///
/// let event = Event::new("a", serde_json::json!({"list": [1, 2.5, "x", null, {"k": true}]})).unwrap();
/// let back = event_from_document(&event_to_document(&event).unwrap()).unwrap();
/// assert_eq!(back, event);
/// ```
pub fn event_from_document(document: &RawDocument) -> Result<Event, DocumentError> {
    let malformed = |what: String| DocumentError::Malformed(what);
    let get = |key: &str| {
        document
            .get(key)
            .map_err(|e| malformed(format!("`{key}`: {e}")))
    };
    let id = match get("_id")? {
        Some(RawBsonRef::Binary(binary))
            if matches!(binary.subtype, BinarySubtype::Uuid | BinarySubtype::UuidOld) =>
        {
            uuid::Uuid::from_slice(binary.bytes).map_err(|e| malformed(format!("`_id`: {e}")))?
        }
        Some(RawBsonRef::String(text)) => {
            uuid::Uuid::parse_str(text).map_err(|e| malformed(format!("`_id`: {e}")))?
        }
        other => return Err(malformed(format!("`_id` is not a UUID: {other:?}"))),
    };
    let name = match get("name")? {
        Some(RawBsonRef::String(name)) => name,
        other => return Err(malformed(format!("`name` is not a string: {other:?}"))),
    };
    let schema = match get("schema")? {
        Some(RawBsonRef::String(schema)) => Some(schema.to_owned()),
        None => None,
        other => return Err(malformed(format!("`schema` is not a string: {other:?}"))),
    };
    let timestamp = match (get("timestamp_rfc3339")?, get("timestamp")?) {
        (Some(RawBsonRef::String(text)), _) => {
            eventtracking_core::parse_timestamp(text).map_err(malformed)?
        }
        (_, Some(RawBsonRef::DateTime(date))) => {
            // An event's timestamp is RFC 3339 text in its JSON form, which
            // holds the years 1970 to 9999 only.
            let millis = date.timestamp_millis();
            if !(0..MAX_EVENT_MILLIS).contains(&millis) {
                return Err(malformed(format!(
                    "`timestamp` {date} is outside the years 1970 to 9999 that an event can hold"
                )));
            }
            date_to_system_time(millis)
        }
        (_, other) => return Err(malformed(format!("`timestamp` is not a date: {other:?}"))),
    };
    let context = match get("context")? {
        Some(RawBsonRef::Document(doc)) => document_to_json(doc, 1)?,
        None => JsonMap::new(),
        other => return Err(malformed(format!("`context` is not a document: {other:?}"))),
    };
    let data = match get("data")? {
        Some(value) => bson_to_json(value, 1)?,
        None => Value::Null,
    };
    Ok(
        Event::from_parts(id, Arc::from(name), timestamp, Arc::new(context), data)
            .with_schema(schema.map(std::borrow::Cow::Owned)),
    )
}

/// 10000-01-01T00:00:00Z, in milliseconds since the epoch.
const MAX_EVENT_MILLIS: i64 = 253_402_300_800_000;

fn date_to_system_time(millis: i64) -> SystemTime {
    let magnitude = Duration::from_millis(millis.unsigned_abs());
    if millis >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

fn document_to_json(document: &RawDocument, depth: usize) -> Result<JsonMap, DocumentError> {
    let mut map = JsonMap::new();
    for element in document {
        let (key, value) = element.map_err(|e| DocumentError::Malformed(e.to_string()))?;
        map.insert(key.to_owned(), bson_to_json(value, depth + 1)?);
    }
    Ok(map)
}

fn bson_to_json(value: RawBsonRef<'_>, depth: usize) -> Result<Value, DocumentError> {
    if depth > MAX_DEPTH + 1 {
        return Err(DocumentError::Malformed("nested too deep".into()));
    }
    Ok(match value {
        RawBsonRef::Null => Value::Null,
        RawBsonRef::Boolean(b) => Value::Bool(b),
        RawBsonRef::Int32(i) => Value::from(i),
        RawBsonRef::Int64(i) => Value::from(i),
        RawBsonRef::Double(f) => serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        RawBsonRef::String(s) => Value::String(s.to_owned()),
        RawBsonRef::DateTime(date) => Value::String(
            date.try_to_rfc3339_string()
                .map_err(|e| DocumentError::Malformed(format!("date {date}: {e}")))?,
        ),
        RawBsonRef::Document(doc) => Value::Object(document_to_json(doc, depth)?),
        RawBsonRef::Array(array) => {
            let mut items = Vec::new();
            for item in array {
                let item = item.map_err(|e| DocumentError::Malformed(e.to_string()))?;
                items.push(bson_to_json(item, depth + 1)?);
            }
            Value::Array(items)
        }
        other => {
            return Err(DocumentError::Malformed(format!(
                "BSON {:?} has no JSON form here",
                other.element_type()
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::{Bson, Document};
    use serde_json::json;

    fn with_context(data: Value, context: Value) -> Event {
        let mut event = Event::new("a.b", data).unwrap();
        *event.context_mut() = context.as_object().unwrap().clone();
        event
    }

    fn parsed(doc: &RawDocumentBuf) -> Document {
        doc.to_document().unwrap()
    }

    #[test]
    fn layout_and_types_match_the_bson_crate() {
        let event = with_context(
            json!({"s": "x\u{0}y", "i": -5, "u": 7, "big": i64::MAX, "f": 1.5, "t": true,
                   "n": null, "a": [1, "two", [3], {"four": 4}], "o": {"p": {"q": []}}, "e": {}}),
            json!({"user_id": 10938, "session": {"id": "s1"}}),
        );
        let doc = event_to_document(&event).unwrap();
        let d = parsed(&doc);
        let keys: Vec<_> = d.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "_id",
                "name",
                "timestamp",
                "timestamp_rfc3339",
                "context",
                "data"
            ]
        );
        match d.get("_id").unwrap() {
            Bson::Binary(b) => {
                assert_eq!(b.subtype, BinarySubtype::Uuid);
                assert_eq!(b.bytes, event.id().as_bytes());
            }
            other => panic!("{other:?}"),
        }
        let millis = millis_since_epoch(event.timestamp());
        assert_eq!(
            d.get_datetime("timestamp").unwrap().timestamp_millis(),
            millis
        );
        let ctx = d.get_document("context").unwrap();
        assert_eq!(ctx.get("user_id"), Some(&Bson::Int64(10938)));
        assert_eq!(
            ctx.get_document("session").unwrap().get_str("id").unwrap(),
            "s1"
        );
        let data = d.get_document("data").unwrap();
        assert_eq!(data.get("s"), Some(&Bson::String("x\u{0}y".into())));
        assert_eq!(data.get("i"), Some(&Bson::Int64(-5)));
        assert_eq!(data.get("u"), Some(&Bson::Int64(7)));
        assert_eq!(data.get("big"), Some(&Bson::Int64(i64::MAX)));
        assert_eq!(data.get("f"), Some(&Bson::Double(1.5)));
        assert_eq!(data.get("t"), Some(&Bson::Boolean(true)));
        assert_eq!(data.get("n"), Some(&Bson::Null));
        assert_eq!(
            data.get("a"),
            Some(&Bson::Array(vec![
                Bson::Int64(1),
                Bson::String("two".into()),
                Bson::Array(vec![Bson::Int64(3)]),
                Bson::Document(mongodb::bson::doc! {"four": 4i64}),
            ]))
        );
        assert_eq!(
            data.get_document("o").unwrap(),
            &mongodb::bson::doc! {"p": {"q": []}}
        );
        assert_eq!(data.get_document("e").unwrap(), &Document::new());
        // The bytes are exactly what the bson crate writes for the same document.
        let mut again = Vec::new();
        d.to_writer(&mut again).unwrap();
        assert_eq!(again, doc.as_bytes());
        assert_eq!(event_from_document(&doc).unwrap(), event);
    }

    #[test]
    fn typed_payloads_stream_from_their_json_text() {
        #[derive(serde::Serialize)]
        struct Page<'a> {
            url: &'a str,
            n: u64,
            tags: [&'a str; 2],
            nested: Option<Vec<f64>>,
        }
        // `emit` of a typed payload keeps it as JSON text (`Event::emitted`
        // is how the tracker makes it).
        let page = Page {
            url: "/a",
            n: 3,
            tags: ["x", "y"],
            nested: Some(vec![0.5]),
        };
        #[derive(serde::Serialize)]
        struct Big {
            n: u64,
        }
        let events = [
            eventtracking_core::Event::emitted("p", Default::default(), &page).unwrap(),
            eventtracking_core::Event::emitted("q", Default::default(), &Big { n: u64::MAX })
                .unwrap(),
        ];
        let event = &events[0];
        assert!(event.raw_data().is_some());
        let doc = event_to_document(event).unwrap();
        let data = parsed(&doc).get_document("data").unwrap().clone();
        assert_eq!(
            data,
            mongodb::bson::doc! {"url": "/a", "n": 3i64, "tags": ["x", "y"], "nested": [0.5]}
        );
        assert!(events[1].raw_data().is_some());
        let err = event_to_document(&events[1]).unwrap_err();
        assert!(
            matches!(&err, DocumentError::Unrepresentable { path, .. } if path == "data.n"),
            "{err:?}"
        );
        assert!(!err.to_string().contains("line"), "{err}");
    }

    #[test]
    fn scalars_and_arrays_as_data() {
        for (data, expected) in [
            (json!(5), Bson::Int64(5)),
            (json!("s"), Bson::String("s".into())),
            (json!(null), Bson::Null),
            (json!([true]), Bson::Array(vec![Bson::Boolean(true)])),
        ] {
            let doc = event_to_document(&Event::new("a", data.clone()).unwrap()).unwrap();
            assert_eq!(parsed(&doc).get("data"), Some(&expected), "{data}");
        }
    }

    #[test]
    fn unrepresentable_values_name_their_path() {
        let err = event_to_document(&Event::new("a", json!({"x": [{"y": u64::MAX}]})).unwrap())
            .unwrap_err();
        match &err {
            DocumentError::Unrepresentable { path, reason } => {
                assert_eq!(path, "data.x.0.y");
                assert!(reason.contains("18446744073709551615"), "{reason}");
                assert!(reason.contains("Int64"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let err = event_to_document(&with_context(json!({}), json!({"k": {"a\u{0}b": 1}})))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`context.k.a\\0b`") && err.contains("NUL"),
            "{err}"
        );

        let mut deep = json!(1);
        for _ in 0..150 {
            deep = json!({ "d": deep });
        }
        let err = event_to_document(&Event::new("a", deep).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("100 levels"), "{err}");
        // Ninety-eight levels inside `data` (the event is the first, `data` the second) fit.
        let mut deep = json!(1);
        for _ in 0..98 {
            deep = json!({ "d": deep });
        }
        assert!(event_to_document(&Event::new("a", deep).unwrap()).is_ok());
    }

    #[test]
    fn documents_over_16_mib_are_refused() {
        let event = Event::new("a", json!({"pad": "x".repeat(MAX_DOCUMENT_BYTES)})).unwrap();
        match event_to_document(&event).unwrap_err() {
            DocumentError::TooLarge { bytes } => assert!(bytes > MAX_DOCUMENT_BYTES),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_exact_timestamp_is_optional() {
        let event = Event::new("a", json!({})).unwrap();
        let doc = DocumentLayout {
            rfc3339_timestamp: false,
        }
        .encode(&event)
        .unwrap();
        assert!(doc.get("timestamp_rfc3339").unwrap().is_none());
        let back = event_from_document(&doc).unwrap();
        let millis = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_millis();
        assert_eq!(millis(back.timestamp()), millis(event.timestamp()));
    }

    #[test]
    fn dates_before_the_epoch() {
        let t = UNIX_EPOCH - Duration::from_micros(1_500);
        assert_eq!(millis_since_epoch(t), -2);
        assert_eq!(
            millis_since_epoch(UNIX_EPOCH - Duration::from_millis(3)),
            -3
        );
        assert_eq!(
            date_to_system_time(-3),
            UNIX_EPOCH - Duration::from_millis(3)
        );
    }

    /// Found writing `fuzz/fuzz_targets/bson.rs` (an event read back is written
    /// as JSON): a document with a BSON
    /// date before 1970 or after 9999 and no `timestamp_rfc3339` gave an
    /// event whose JSON form (or re-encoding) panicked.
    #[test]
    fn dates_an_event_cannot_hold_are_refused() {
        let event = Event::new("a", json!(1)).unwrap();
        let layout = DocumentLayout {
            rfc3339_timestamp: false,
        };
        let mut doc = parsed(&layout.encode(&event).unwrap());
        for (millis, ok) in [
            (-1, false),
            (i64::MIN, false),
            (MAX_EVENT_MILLIS, false),
            (i64::MAX, false),
            (0, true),
            (MAX_EVENT_MILLIS - 1, true),
        ] {
            doc.insert("timestamp", mongodb::bson::DateTime::from_millis(millis));
            let raw = RawDocumentBuf::from_document(&doc).unwrap();
            match event_from_document(&raw) {
                Ok(back) => {
                    assert!(ok, "{millis}: {back:?}");
                    assert!(!back.to_json_bytes().is_empty());
                    assert_eq!(
                        event_from_document(&event_to_document(&back).unwrap()).unwrap(),
                        back
                    );
                }
                Err(error) => {
                    assert!(!ok, "{millis}: {error}");
                    assert!(error.to_string().contains("1970 to 9999"), "{error}");
                }
            }
        }
    }

    #[test]
    fn decimal_keys() {
        let mut b = [0u8; 20];
        assert_eq!(decimal(0, &mut b), "0");
        assert_eq!(decimal(1234, &mut b), "1234");
        assert_eq!(decimal(usize::MAX, &mut b), usize::MAX.to_string());
    }
}
