//! The input of `eventtracking import`: lines written by other event
//! trackers, parsed by pure functions into [`Event`]s (for tests and fuzzing).
//!
//! One format so far, [`parse_python_eventtracking_line`]: the JSON lines of
//! the Python original (edX `event-tracking`), as its `LoggerBackend` writes
//! them or as `mongoexport` exports what its `MongoBackend` stored.
//!
//! | field of the line | becomes | rule |
//! |---|---|---|
//! | `name` | the event name | required, a string following the event-name rule |
//! | `timestamp` | the event time | required: ISO 8601 / RFC 3339 text with any offset (`+00:00`, `Z`, `-05:00`; none = UTC, as the original's encoder assumes) and any fraction (kept to the microsecond, finer digits dropped), or `{"$date": ...}` of a MongoDB export (text, or `{"$numberLong": ms}`); between 1970 and 9999 |
//! | `context` | the context | an object; absent or `null` = `{}` |
//! | `data` | the payload | an object; absent or `null` = `{}` (the original's `data or {}`) |
//! | `_id` | nothing | a MongoDB export's ObjectId, ignored (it is part of the hashed line) |
//! | any other key | | refused, naming the key (nothing is dropped silently) |
//!
//! The event id is a UUIDv8 made from the SHA-256 of the line's canonical
//! JSON ([`canonical_json`]: keys sorted, no whitespace), so importing a
//! line twice gives the same id and a store that keys on the id (MongoDB's
//! `_id`) keeps one copy; lines that differ only in key order or spacing get
//! the same id.

use std::time::{Duration, SystemTime};

use eventtracking::uuid::{self, Uuid};
use eventtracking::{validate_event_name, Event, JsonMap};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Why an import line was refused. The caller adds the file and line number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// Not UTF-8.
    #[error("not UTF-8 (invalid byte at offset {offset})")]
    NotUtf8 {
        /// Where the first invalid byte is.
        offset: usize,
    },
    /// Not JSON.
    #[error("not JSON: {0}")]
    NotJson(String),
    /// JSON, but not an object.
    #[error("not a JSON object but {0}")]
    NotAnObject(&'static str),
    /// No `name`.
    #[error("missing name")]
    MissingName,
    /// `name` is not a string, or breaks the event-name rule.
    #[error("bad name: {0}")]
    BadName(String),
    /// No `timestamp`.
    #[error("missing timestamp")]
    MissingTimestamp,
    /// A `timestamp` that cannot be read.
    #[error("bad timestamp {value}: {reason}")]
    BadTimestamp {
        /// The value, as JSON.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `data` is not an object.
    #[error("data is not an object but {0}")]
    DataNotAnObject(&'static str),
    /// `context` is not an object.
    #[error("context is not an object but {0}")]
    ContextNotAnObject(&'static str),
    /// A key the format does not have.
    #[error("unknown key `{0}` (expected name, timestamp, context, data, _id)")]
    UnknownKey(String),
}

/// The JSON type of a value, for error messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parses one line of the Python original's JSON logs (see the [module
/// docs](self) for the mapping); `None` for a blank line.
///
/// ```
/// use eventtracking_cli::import::{parse_python_eventtracking_line, ImportError};
/// let line = br#"{"name": "navigation.request", "timestamp": "2026-11-29T01:52:39.1234+01:00", "context": {"user_id": 10938}, "data": {"url": "/1"}}"#;
/// let event = parse_python_eventtracking_line(line).unwrap().unwrap();
/// assert_eq!(event.timestamp_rfc3339(), "2026-11-29T00:52:39.123400Z");
/// assert_eq!(event.id().get_version_num(), 8);
/// assert_eq!(parse_python_eventtracking_line(line).unwrap().unwrap().id(), event.id());
/// assert_eq!(parse_python_eventtracking_line(br#"{"timestamp": "2026-01-01T00:00:00Z"}"#).unwrap_err(), ImportError::MissingName);
/// ```
pub fn parse_python_eventtracking_line(line: &[u8]) -> Result<Option<Event>, ImportError> {
    let text = std::str::from_utf8(line).map_err(|e| ImportError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    let value: Value =
        serde_json::from_str(text).map_err(|e| ImportError::NotJson(e.to_string()))?;
    let Value::Object(fields) = &value else {
        return Err(ImportError::NotAnObject(kind(&value)));
    };
    if let Some(key) = fields.keys().find(|key| {
        !matches!(
            key.as_str(),
            "name" | "timestamp" | "context" | "data" | "_id"
        )
    }) {
        return Err(ImportError::UnknownKey(key.clone()));
    }
    let name = match fields.get("name") {
        None | Some(Value::Null) => return Err(ImportError::MissingName),
        Some(Value::String(name)) => name,
        Some(other) => {
            return Err(ImportError::BadName(format!(
                "{} is not a string",
                kind(other)
            )))
        }
    };
    validate_event_name(name).map_err(|e| ImportError::BadName(e.to_string()))?;
    let timestamp = match fields.get("timestamp") {
        None | Some(Value::Null) => return Err(ImportError::MissingTimestamp),
        Some(value) => json_timestamp(value).map_err(|reason| ImportError::BadTimestamp {
            value: value.to_string(),
            reason,
        })?,
    };
    let context = match fields.get("context") {
        None | Some(Value::Null) => JsonMap::new(),
        Some(Value::Object(context)) => context.clone(),
        Some(other) => return Err(ImportError::ContextNotAnObject(kind(other))),
    };
    let data = match fields.get("data") {
        None | Some(Value::Null) => Value::Object(JsonMap::new()),
        Some(data @ Value::Object(_)) => data.clone(),
        Some(other) => return Err(ImportError::DataNotAnObject(kind(other))),
    };
    Ok(Some(Event::from_parts(
        deterministic_id(&value),
        name.as_str().into(),
        timestamp,
        context.into(),
        data,
    )))
}

/// The id of an imported line: a UUIDv8 (RFC 9562) whose 122 free bits are
/// the first bits of the SHA-256 of the line's [`canonical_json`].
///
/// ```
/// use eventtracking_cli::import::deterministic_id;
/// let a = deterministic_id(&serde_json::json!({"b": 1, "a": [1.5, "x"]}));
/// let b = deterministic_id(&serde_json::from_str(r#"{ "a": [1.5, "x"], "b": 1 }"#).unwrap());
/// assert_eq!(a, b);
/// assert_eq!(a.get_version_num(), 8);
/// ```
pub fn deterministic_id(line: &Value) -> Uuid {
    let mut text = Vec::new();
    canonical_json(line, &mut text);
    let digest = Sha256::digest(&text);
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    // `Uuid::new_v8` (uuid's `v8` feature) is this builder; the builder
    // needs no feature, so turning one on does not rebuild every crate using uuid.
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// Writes `value` as canonical JSON: object keys sorted by their UTF-8
/// bytes, no whitespace, strings and numbers as `serde_json` writes them
/// (numbers read with `float_roundtrip`, so a float keeps its value).
///
/// ```
/// let mut out = Vec::new();
/// eventtracking_cli::import::canonical_json(&serde_json::json!({"b": {"y": 1, "x": null}, "a": "é"}), &mut out);
/// assert_eq!(out, r#"{"a":"é","b":{"x":null,"y":1}}"#.as_bytes());
/// ```
pub fn canonical_json(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(&Value::String(key.clone()), out);
                out.push(b':');
                canonical_json(value, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical_json(item, out);
            }
            out.push(b']');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar(value: &Value, out: &mut Vec<u8>) {
    // Writing a scalar `Value` into a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

/// The latest time an event can carry: 9999-12-31T23:59:59.999999Z.
const MAX_SECONDS: u64 = 253_402_300_799;

/// A `timestamp` field: text, or a MongoDB export's `{"$date": ...}`.
fn json_timestamp(value: &Value) -> Result<SystemTime, String> {
    match value {
        Value::String(text) => parse_iso8601(text),
        Value::Object(date) if date.len() == 1 => match date.get("$date") {
            Some(Value::String(text)) => parse_iso8601(text),
            Some(Value::Object(long)) if long.len() == 1 => match long.get("$numberLong") {
                Some(Value::String(ms)) => {
                    let ms: i64 = ms
                        .parse()
                        .map_err(|e| format!("$numberLong {ms:?} is not an integer: {e}"))?;
                    from_unix_millis(ms)
                }
                _ => Err("expected {\"$date\": {\"$numberLong\": \"MILLISECONDS\"}}".into()),
            },
            Some(Value::Number(ms)) => match ms.as_i64() {
                Some(ms) => from_unix_millis(ms),
                None => Err("$date is not an integer number of milliseconds".into()),
            },
            _ => Err("expected text or {\"$date\": ...}".into()),
        },
        _ => Err(format!(
            "expected ISO 8601 text or {{\"$date\": ...}}, not {}",
            kind(value)
        )),
    }
}

fn from_unix_millis(ms: i64) -> Result<SystemTime, String> {
    let ms = u64::try_from(ms).map_err(|_| "before 1970".to_owned())?;
    if ms / 1000 > MAX_SECONDS {
        return Err("after 9999".into());
    }
    Ok(SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
}

/// Parses an ISO 8601 date and time as Python's `datetime.isoformat()`
/// writes it (and RFC 3339): `YYYY-MM-DDTHH:MM:SS`, an optional fraction of
/// any length (kept to the microsecond), and an optional offset (`Z`,
/// `±HH:MM`; none = UTC). A space may stand for the `T`. Times before 1970
/// or after 9999 (in UTC) are refused.
///
/// ```
/// use eventtracking_cli::import::parse_iso8601;
/// let utc = parse_iso8601("2026-11-29T01:52:39.123456+00:00").unwrap();
/// assert_eq!(parse_iso8601("2026-11-28T20:52:39.123456789-05:00").unwrap(), utc);
/// assert_eq!(parse_iso8601("2026-11-29 01:52:39.123456").unwrap(), utc);
/// assert!(parse_iso8601("2026-02-30T00:00:00Z").is_err());
/// assert!(parse_iso8601("1970-01-01T00:30:00+01:00").is_err());
/// ```
pub fn parse_iso8601(text: &str) -> Result<SystemTime, String> {
    let bytes = text.as_bytes();
    if bytes.len() < 19 || !text.is_char_boundary(10) || !text.is_char_boundary(19) {
        return Err("expected YYYY-MM-DDTHH:MM:SS[.fraction][offset]".into());
    }
    if !matches!(bytes[10], b'T' | b't' | b' ') {
        return Err("expected `T` or a space between the date and the time".into());
    }
    let mut normalized = String::with_capacity(text.len() + 6);
    normalized.push_str(&text[..10]);
    normalized.push('T');
    normalized.push_str(&text[11..]);
    let has_offset = text[19..].contains(['Z', 'z', '+', '-']);
    if !has_offset {
        normalized.push_str("+00:00");
    }
    parse_rfc3339(&normalized)
}

/// Parses RFC 3339 text (an offset is required; any offset, any fraction,
/// kept to the microsecond); times before 1970 or after 9999 (in UTC) are
/// refused. What `send` accepts as a `timestamp`.
///
/// ```
/// use eventtracking_cli::import::parse_rfc3339;
/// assert!(parse_rfc3339("2026-11-29T01:52:39.5-08:00").is_ok());
/// assert!(parse_rfc3339("2026-11-29T01:52:39").is_err());
/// assert!(parse_rfc3339("2026-11-29X01:52:39Z").is_err());
/// ```
pub fn parse_rfc3339(text: &str) -> Result<SystemTime, String> {
    use time::format_description::well_known::Rfc3339;
    // `time` takes any character between the date and the time.
    if !matches!(text.as_bytes().get(10), Some(b'T' | b't')) {
        return Err("expected YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)".into());
    }
    let parsed = time::OffsetDateTime::parse(text, &Rfc3339).map_err(|e| e.to_string())?;
    let seconds = parsed.unix_timestamp();
    let seconds = u64::try_from(seconds).map_err(|_| "before 1970-01-01T00:00:00Z".to_owned())?;
    if seconds > MAX_SECONDS {
        return Err("after 9999-12-31T23:59:59Z".into());
    }
    let micros = parsed.nanosecond() / 1_000;
    Ok(SystemTime::UNIX_EPOCH + Duration::new(seconds, micros * 1_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Option<Event>, ImportError> {
        parse_python_eventtracking_line(line.as_bytes())
    }

    #[test]
    fn a_line_of_the_original_becomes_an_event_with_its_time_and_a_stable_id() {
        let line = r#"{"name": "address.create", "timestamp": "2026-11-29T01:52:39.5+00:00", "data": {"name": "foo"}, "context": {"user_id": 10938}}"#;
        let event = parse(line).unwrap().unwrap();
        assert_eq!(event.name(), "address.create");
        assert_eq!(event.timestamp_rfc3339(), "2026-11-29T01:52:39.500000Z");
        assert_eq!(event.context()["user_id"], 10938);
        assert_eq!(event.data()["name"], "foo");
        // Key order and spacing do not change the id; any value does.
        let reordered = r#"{"context":{"user_id":10938},"data":{"name":"foo"},"timestamp":"2026-11-29T01:52:39.5+00:00","name":"address.create"}"#;
        assert_eq!(parse(reordered).unwrap().unwrap().id(), event.id());
        let other = line.replace("10938", "10939");
        assert_ne!(parse(&other).unwrap().unwrap().id(), event.id());
        assert_eq!(event.id().get_version_num(), 8);
        assert_eq!(event.id().get_variant(), uuid::Variant::RFC4122);
    }

    #[test]
    fn absent_or_null_data_and_context_are_empty_objects() {
        let event =
            parse(r#"{"name": "a", "timestamp": "2026-11-29T01:52:39+00:00", "data": null}"#)
                .unwrap()
                .unwrap();
        assert_eq!(event.data(), &serde_json::json!({}));
        assert!(event.context().is_empty());
        assert_eq!(event.timestamp_rfc3339(), "2026-11-29T01:52:39.000000Z");
    }

    #[test]
    fn a_mongodb_export_line_is_read() {
        let relaxed = r#"{"_id": {"$oid": "656e0b0f5f1e4a0b8c0d0e0f"}, "name": "a", "timestamp": {"$date": "2026-11-29T01:52:39.123Z"}, "context": {}, "data": {}}"#;
        assert_eq!(
            parse(relaxed).unwrap().unwrap().timestamp_rfc3339(),
            "2026-11-29T01:52:39.123000Z"
        );
        let canonical =
            r#"{"name": "a", "timestamp": {"$date": {"$numberLong": "1764381159123"}}}"#;
        assert_eq!(
            parse(canonical).unwrap().unwrap().timestamp_rfc3339(),
            "2025-11-29T01:52:39.123000Z"
        );
    }

    #[test]
    fn bad_lines_are_refused_saying_why() {
        let cases: [(&str, ImportError); 9] = [
            (
                r#"{"timestamp": "2026-01-01T00:00:00Z"}"#,
                ImportError::MissingName,
            ),
            (r#"{"name": "a"}"#, ImportError::MissingTimestamp),
            (
                r#"{"name": "a", "timestamp": "2026-01-01T00:00:00Z", "data": [1]}"#,
                ImportError::DataNotAnObject("an array"),
            ),
            (
                r#"{"name": "a", "timestamp": "2026-01-01T00:00:00Z", "context": "x"}"#,
                ImportError::ContextNotAnObject("a string"),
            ),
            (
                r#"{"name": "a", "timestamp": "2026-01-01T00:00:00Z", "event_type": "x"}"#,
                ImportError::UnknownKey("event_type".into()),
            ),
            (r#"[1]"#, ImportError::NotAnObject("an array")),
            (
                r#"{"name": 5, "timestamp": "2026-01-01T00:00:00Z"}"#,
                ImportError::BadName("a number is not a string".into()),
            ),
            (
                r#"{"name": "has space", "timestamp": "2026-01-01T00:00:00Z"}"#,
                ImportError::BadName(
                    eventtracking::validate_event_name("has space")
                        .unwrap_err()
                        .to_string(),
                ),
            ),
            (
                "\u{1}",
                ImportError::NotJson("expected value at line 1 column 1".into()),
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(parse(line).unwrap_err(), expected, "{line}");
        }
        for timestamp in [
            "\"yesterday\"",
            "\"2026-13-01T00:00:00Z\"",
            "\"1969-12-31T23:59:59Z\"",
            "\"9999-12-31T23:59:59-01:00\"",
            "12",
            "{\"$date\": -1}",
        ] {
            let line = format!(r#"{{"name": "a", "timestamp": {timestamp}}}"#);
            match parse(&line) {
                Err(ImportError::BadTimestamp { value, .. }) => {
                    assert_eq!(
                        value,
                        serde_json::from_str::<Value>(timestamp)
                            .unwrap()
                            .to_string()
                    )
                }
                other => panic!("{line}: {other:?}"),
            }
        }
        assert!(parse("  ").unwrap().is_none());
        assert!(matches!(
            parse_python_eventtracking_line(b"\xff"),
            Err(ImportError::NotUtf8 { offset: 0 })
        ));
    }

    #[test]
    fn timestamps_keep_any_offset_and_fraction_to_the_microsecond() {
        let at = |text: &str| {
            let time = parse_iso8601(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            Event::from_parts(
                Uuid::nil(),
                "a".into(),
                time,
                Default::default(),
                Value::Null,
            )
            .timestamp_rfc3339()
        };
        assert_eq!(
            at("2026-11-29T01:52:39+00:00"),
            "2026-11-29T01:52:39.000000Z"
        );
        assert_eq!(
            at("2026-11-29T01:52:39.1+05:30"),
            "2026-11-28T20:22:39.100000Z"
        );
        assert_eq!(
            at("2026-11-29T01:52:39.123456789Z"),
            "2026-11-29T01:52:39.123456Z"
        );
        assert_eq!(
            at("2026-11-29T01:52:39.000001-01:00"),
            "2026-11-29T02:52:39.000001Z"
        );
        assert_eq!(
            at("9999-12-31T23:59:59.999999Z"),
            "9999-12-31T23:59:59.999999Z"
        );
        for bad in [
            "2026-11-29",
            "2026-11-29X01:52:39Z",
            "2026-11-29T25:00:00Z",
            "2026-11-29T01:52:39+24:00",
            "é026-11-29T01:52:39",
        ] {
            assert!(parse_iso8601(bad).is_err(), "{bad}");
        }
    }
}
