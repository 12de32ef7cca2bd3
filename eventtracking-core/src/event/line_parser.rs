//! Many event lines in a row: [`EventLineParser`].

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime};

use serde::de::Error as _;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use uuid::Uuid;

use super::uuid_text::lower_hyphenated_uuid;
use super::{
    has_line_break, intern_event_name, parse_timestamp, truncate_to_micros, Event, JsonMap,
    Readable,
};
use crate::error::InvalidEventName;
use crate::json_text::first_escaped;

/// Parses event lines one after another, each exactly as
/// [`Event::from_json_slice`] would, for a reader of many lines (a disk
/// buffer's delivery worker). Lines written in a row usually carry the same
/// context: when a line's context is the same JSON text, byte for byte, as
/// the previous line's, its event shares the previous event's context map
/// (one `Arc`) instead of parsing a new one. Sharing is safe: changing an
/// event's context ([`Event::context_mut`]) copies it first.
///
/// A line laid out as [`Event::to_json_bytes`] writes it, with the
/// previous line's context, is read by position: only its payload goes
/// through a JSON parser. The event is the same either way.
///
/// ```
/// use eventtracking_core::{Event, EventLineParser};
///
/// let line = |n: u32| format!(r#"{{"id":"01a225b4-d94a-7000-b9f9-c37f702a909a","name":"a.b","timestamp":"2026-11-29T05:08:58.826649Z","context":{{"user_id":10938}},"data":{n}}}"#);
/// let mut parser = EventLineParser::new();
/// let first = parser.parse(line(1).as_bytes()).unwrap();
/// let second = parser.parse(line(2).as_bytes()).unwrap();
/// assert!(std::sync::Arc::ptr_eq(first.shared_context(), second.shared_context()));
/// assert_eq!(second, Event::from_json_slice(line(2).as_bytes()).unwrap());
/// assert_eq!(second.to_json_bytes(), line(2).as_bytes());
/// ```
#[derive(Debug, Default)]
pub struct EventLineParser {
    /// The last context parsed: its JSON text and its map.
    last_context: Option<(Box<str>, Arc<JsonMap>)>,
    /// The last names interned (valid ones only), replaced in turn.
    names: [Option<Arc<str>>; NAMES],
    /// The slot of `names` the next new name takes.
    next_name: usize,
    /// The date and time to the second (`YYYY-MM-DDTHH:MM:SS`) of the last
    /// timestamp read with six fraction digits, and its seconds since the
    /// epoch: lines written in a row share their second, and reading it
    /// again through humantime was a fortieth of a disk route's delivery.
    last_second: Option<([u8; SECOND_TEXT], u64)>,
}

/// The length of `YYYY-MM-DDTHH:MM:SS`.
const SECOND_TEXT: usize = 19;

/// The microseconds of a timestamp's `.ffffffZ` ending (the layout events
/// are written with), or `None` for any other ending.
fn micros_of(ending: &[u8]) -> Option<u32> {
    let digits = ending.strip_prefix(b".")?.strip_suffix(b"Z")?;
    if digits.len() != 6 {
        return None;
    }
    digits.iter().try_fold(0u32, |micros, &digit| {
        digit
            .is_ascii_digit()
            .then(|| micros * 10 + u32::from(digit - b'0'))
    })
}

/// How many names [`EventLineParser`] keeps: a stream mixes a few types.
/// The interner finds a name by the address of its text, which in a read
/// buffer differs line after line, and then hashes it: comparing a few
/// short names costs less (the interner was a twentieth of a disk route's
/// delivery time).
const NAMES: usize = 8;

/// A line as stored, borrowing its strings and its context's and payload's
/// text (the fields and rules of `Record`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line<'a> {
    id: Uuid,
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(default)]
    schema: Option<String>,
    #[serde(borrow)]
    timestamp: Cow<'a, str>,
    #[serde(default = "empty_object", borrow)]
    context: &'a RawValue,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
}

/// A missing context is an empty one.
fn empty_object() -> &'static RawValue {
    static EMPTY: LazyLock<Box<RawValue>> = LazyLock::new(|| {
        RawValue::from_string("{}".to_owned()).unwrap_or_else(|_| unreachable!("valid JSON"))
    });
    &EMPTY
}

impl EventLineParser {
    /// A parser that has seen no line yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses one event from its JSON line: the result (and the error, if
    /// any) of [`Event::from_json_slice`], its context shared with the
    /// previous line's event when their context text is the same.
    pub fn parse(&mut self, bytes: &[u8]) -> Result<Event, serde_json::Error> {
        if let Some(event) = self.parse_as_written(bytes, true) {
            return Ok(event);
        }
        self.parse_general(bytes)
    }

    /// [`parse`](Self::parse) of a line known to be exactly what
    /// [`Event::to_json_bytes`] wrote, unchanged: a checksummed record of
    /// one, as a disk buffer's delivery worker reads it. Its payload is
    /// taken as written, without validating its JSON again (a third of a
    /// parse); the rest is read as `parse` reads it.
    ///
    /// The caller vouches for the line: given a line whose payload is not
    /// valid JSON, the event holds that text (written out verbatim by JSON
    /// backends; read as `null` by [`Event::data`]). Use `parse` for any
    /// line of unknown origin.
    ///
    /// ```
    /// use eventtracking_core::{Event, EventLineParser};
    /// use serde_json::json;
    ///
    /// let event = Event::new("a.b", json!({"k": [1, 2]})).unwrap();
    /// let mut parser = EventLineParser::new();
    /// let read = parser.parse_written(event.to_json_bytes()).unwrap();
    /// assert_eq!(read, event);
    /// assert_eq!(read.to_json_bytes(), event.to_json_bytes());
    /// ```
    pub fn parse_written(&mut self, bytes: &[u8]) -> Result<Event, serde_json::Error> {
        if let Some(event) = self.parse_as_written(bytes, false) {
            return Ok(event);
        }
        self.parse_general(bytes)
    }

    /// Any line, through serde_json.
    fn parse_general(&mut self, bytes: &[u8]) -> Result<Event, serde_json::Error> {
        let line: Line<'_> = serde_json::from_slice(bytes)?;
        let name = self.name(&line.name).map_err(serde_json::Error::custom)?;
        let timestamp = parse_timestamp(&line.timestamp).map_err(serde_json::Error::custom)?;
        let context = self.context(line.context.get())?;
        let at = truncate_to_micros(timestamp);
        let event = match line.data {
            Some(raw) => Event::with_raw_payload(line.id, name, at, context, raw)?,
            None => Event::from_parts_exact(line.id, name, at, context, Value::Null),
        };
        Ok(event.with_schema(line.schema.map(Cow::Owned)))
    }

    /// What `truncate_to_micros(parse_timestamp(text))` gives, from the
    /// last second read when the text has its date and time: humantime read
    /// that second from the same characters, and six digits of fraction add
    /// exactly their microseconds to it. Bytes that start with the last
    /// second need no UTF-8 check (they are that second's ASCII and digits).
    fn timestamp(&mut self, bytes: &[u8]) -> Option<SystemTime> {
        let (second_text, ending) = bytes.split_at_checked(SECOND_TEXT)?;
        if let Some((known, second)) = &self.last_second {
            if known.as_slice() == second_text {
                if let Some(micros) = micros_of(ending) {
                    let since = Duration::new(*second, micros * 1_000);
                    return SystemTime::UNIX_EPOCH.checked_add(since);
                }
            }
        }
        let text = std::str::from_utf8(bytes).ok()?;
        let time = truncate_to_micros(parse_timestamp(text).ok()?);
        if micros_of(ending).is_some() {
            if let (Ok(since), Ok(known)) = (
                time.duration_since(SystemTime::UNIX_EPOCH),
                <[u8; SECOND_TEXT]>::try_from(second_text),
            ) {
                self.last_second = Some((known, since.as_secs()));
            }
        }
        Some(time)
    }

    /// The interned name: one of the last names if it is one of them.
    fn name(&mut self, text: &str) -> Result<Arc<str>, InvalidEventName> {
        if let Some(known) = self.known_name(text.as_bytes()) {
            return Ok(known);
        }
        let name = intern_event_name(text)?;
        self.names[self.next_name] = Some(name.clone());
        self.next_name = (self.next_name + 1) % NAMES;
        Ok(name)
    }

    /// One of the last names, found by its bytes: equal to a valid name's,
    /// they need no UTF-8 check of their own.
    fn known_name(&self, bytes: &[u8]) -> Option<Arc<str>> {
        self.names
            .iter()
            .flatten()
            .find(|known| known.as_bytes() == bytes)
            .cloned()
    }

    /// The map of a context's JSON text: the previous one's if the text is
    /// the same.
    fn context(&mut self, text: &str) -> Result<Arc<JsonMap>, serde_json::Error> {
        if let Some((last, map)) = &self.last_context {
            if **last == *text {
                return Ok(map.clone());
            }
        }
        let map: Arc<JsonMap> = Arc::new(serde_json::from_str(text)?);
        self.last_context = Some((text.into(), map.clone()));
        Ok(map)
    }

    /// The event of a line laid out as [`Event::to_json_bytes`] writes it
    /// (fields in order, no blanks, no escape in the id, name, schema or
    /// timestamp) whose context is the previous line's, byte for byte: read
    /// by position, only its payload's text going through serde_json, once
    /// (the general path scans it, then checks it again). `None` for
    /// anything else; the general path then decides, errors included. This
    /// path accepts only lines that the general path turns into the same
    /// event, and, unless `validate` is false (the caller vouches for the
    /// payload: see [`parse_written`](Self::parse_written)), only a payload
    /// the general path would accept.
    fn parse_as_written(&mut self, bytes: &[u8], validate: bool) -> Option<Event> {
        let (context_text, context) = self.last_context.as_ref()?;
        let mut rest = bytes.strip_prefix(b"{\"id\":\"")?;
        let id = lower_hyphenated_uuid(rest.get(..36)?)?;
        rest = rest[36..].strip_prefix(b"\",\"name\":")?;
        let (name, after) = plain_string(rest)?;
        rest = after;
        let schema = match rest.strip_prefix(b",\"schema\":") {
            Some(after) => {
                let (schema, after) = plain_string(after)?;
                rest = after;
                Some(std::str::from_utf8(schema).ok()?)
            }
            None => None,
        };
        rest = rest.strip_prefix(b",\"timestamp\":")?;
        let (stamp, after) = plain_string(rest)?;
        // A JSON value ends where its text ends: a line that starts with
        // the previous context's whole text there has that context.
        rest = after
            .strip_prefix(b",\"context\":")?
            .strip_prefix(context_text.as_bytes())?;
        // Its own handle: the names below need the parser.
        let context = context.clone();
        let data = rest.strip_prefix(b",\"data\":")?.strip_suffix(b"}")?;
        let data = std::str::from_utf8(data).ok()?;
        // As the general path keeps it raw: one value, without the blanks
        // around it (RawValue leaves them out), on one line; `null` is no
        // raw payload there.
        let blank = |c: Option<char>| c.is_none_or(|c| matches!(c, ' ' | '\t' | '\n' | '\r'));
        // A line the caller vouches for was written on one line by
        // `to_json_bytes`: its payload holds no line break to look for.
        if blank(data.chars().next())
            || blank(data.chars().next_back())
            || (validate && has_line_break(data))
            || data == "null"
        {
            return None;
        }
        if validate {
            serde_json::from_str::<Readable>(data).ok()?;
        }
        let name = match self.known_name(name) {
            Some(name) => name,
            None => self.name(std::str::from_utf8(name).ok()?).ok()?,
        };
        let timestamp = self.timestamp(stamp)?;
        Some(Event::from_parts_raw(
            id,
            name,
            timestamp,
            context,
            data.into(),
            schema.map(|schema| Cow::Owned(schema.to_owned())),
        ))
    }
}

/// A JSON string at the start of `bytes` that holds nothing serde_json
/// escapes (so its text is its value, written back the same), and the
/// bytes after it. Its bytes are not checked for UTF-8: the caller checks
/// those it keeps as text.
fn plain_string(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let rest = bytes.strip_prefix(b"\"")?;
    // One pass for the closing quote and anything escaped before it: the
    // first byte serde_json escapes must be that quote.
    let end = first_escaped(rest)?;
    if rest[end] != b'"' {
        return None;
    }
    Some((&rest[..end], &rest[end + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line(context: &str, data: &str) -> String {
        format!(
            r#"{{"id":"01a225b4-d94a-7000-b9f9-c37f702a909a","name":"x","timestamp":"2026-11-29T05:08:58.826649Z","context":{context},"data":{data}}}"#
        )
    }

    #[test]
    fn agrees_with_from_json_slice_on_good_and_bad_lines() {
        let typed = Event::new("a.b", json!({"k": "v"}))
            .unwrap()
            .with_schema(Some("a.b@2".into()));
        let mut parser = EventLineParser::new();
        for text in [
            String::from_utf8(typed.to_json_bytes().to_vec()).unwrap(),
            line(r#"{"u":1}"#, r#"{"b":"\n","a":1}"#),
            line(r#"{"u":1}"#, "{\n\"a\": 1}"),
            line(r#"{"u":"\u00e9","u":2}"#, "null"),
            line("{}", "1e300"),
            r#"{"id":"01a225b4-d94a-7000-b9f9-c37f702a909a","name":"x","timestamp":"2026-11-29T05:08:58.826649+00:00"}"#.to_owned(),
            r#"{"id":"01a225b4-d94a-7000-b9f9-c37f702a909a","name":"x\u0041","timestamp":"2026-11-29T05:08:58.826649Z"}"#.to_owned(),
        ] {
            let fast = parser.parse(text.as_bytes()).unwrap();
            let slow = Event::from_json_slice(text.as_bytes()).unwrap();
            assert_eq!(fast, slow, "{text}");
            assert_eq!(fast.to_json_bytes(), slow.to_json_bytes(), "{text}");
        }
        for bad in [
            "{}".to_owned(),
            "not json".to_owned(),
            r#"{"id":"x","name":"a","timestamp":"t"}"#.to_owned(),
            line("[]", "1"),
            line("null", "1"),
            line("{}", "1e400"),
            line("{}", "1").replace(r#""name":"x""#, r#""name":"has space""#),
            line("{}", "1").replace("05:08", "05-08"),
            line("{}", "1").replace(r#","data""#, r#","extra":1,"data""#),
        ] {
            assert!(parser.parse(bad.as_bytes()).is_err(), "{bad}");
            assert!(Event::from_json_slice(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    /// Each line twice (the second time its context is the previous
    /// line's): the event, its JSON and its raw payload are
    /// `from_json_slice`'s, whether the line is read by position or not.
    #[test]
    fn lines_read_by_position_or_not_give_from_json_slices_event() {
        let typed = Event::new("a.b", json!({"k": "v"}))
            .unwrap()
            .with_schema(Some("a.b@2".into()));
        let mut written = Event::new("caf\u{e9}.x", json!([1, {"b": null}])).unwrap();
        written.context_mut().insert("user_id".into(), json!(10938));
        let line_of = |event: &Event| String::from_utf8(event.to_json_bytes().to_vec()).unwrap();
        // Written back byte for byte.
        let as_written = [
            line_of(&typed),
            line_of(&written),
            line(r#"{"u":1}"#, r#"{"b":"\u00e9 \"q\"","a":[1,2.5,-3e-7]}"#),
            line(r#"{"u":1}"#, r#""text""#),
            line(r#"{"u":{"v":[1,"x"]}}"#, "18446744073709551616"),
            line("{}", "{ \"spaced\" : 1 }"),
        ];
        let other_by_position = [
            line(r#"{"u":1.0e0}"#, "1"),
            line(r#"{"u": 1}"#, "1"),
            line(r#"{"u":1}"#, "1").replace(".826649Z", "Z"),
            line(r#"{"u":1}"#, "1").replace(".826649Z", ".826649+00:00"),
        ];
        let not_by_position = [
            line(r#"{"u":1}"#, "null"),
            line(r#"{"u":1}"#, "{\n\"a\": 1}"),
            line(r#"{"u":1}"#, " 1"),
            line(r#"{"u":1}"#, "1 "),
            line(r#"{"u":1}"#, "1").replace("01a225b4-d94a", "01A225B4-D94A"),
            line(r#"{"u":1}"#, "1").replace(r#""name":"x""#, r#""name":"\u0078""#),
            line(r#"{"u":1}"#, "1").replace(r#","data""#, r#","schema":null,"data""#),
            line(r#"{"u":1}"#, "1").replace(r#","data":1"#, ""),
            format!("{} ", line(r#"{"u":1}"#, "1")),
            line(r#"{"u":1}"#, "1").replace(
                r#""name":"x","timestamp":"2026-11-29T05:08:58.826649Z""#,
                r#""timestamp":"2026-11-29T05:08:58.826649Z","name":"x""#,
            ),
        ];
        let mut parser = EventLineParser::new();
        let all = as_written.iter().map(|text| (text, true, true));
        let all = all.chain(other_by_position.iter().map(|text| (text, true, false)));
        let all = all.chain(not_by_position.iter().map(|text| (text, false, false)));
        for (text, by_position, same_bytes) in all {
            for _ in 0..2 {
                let fast = parser.parse(text.as_bytes()).unwrap();
                let slow = Event::from_json_slice(text.as_bytes()).unwrap();
                assert_eq!(fast, slow, "{text}");
                assert_eq!(fast.raw_data(), slow.raw_data(), "{text}");
                assert_eq!(fast.schema(), slow.schema(), "{text}");
                assert_eq!(fast.to_json_bytes(), slow.to_json_bytes(), "{text}");
                if same_bytes {
                    assert_eq!(fast.to_json_bytes(), text.as_bytes());
                }
                if same_bytes {
                    // A line as written, vouched for, reads the same.
                    let written = parser.parse_written(text.as_bytes()).unwrap();
                    assert_eq!(written, slow, "{text}");
                    assert_eq!(written.raw_data(), slow.raw_data(), "{text}");
                    assert_eq!(written.to_json_bytes(), slow.to_json_bytes(), "{text}");
                }
            }
            let read = parser.parse_as_written(text.as_bytes(), true);
            assert_eq!(read.is_some(), by_position, "{text}");
        }
        // What the general path refuses, this one does too, context cached or not.
        for bad in [
            line(r#"{"u":1}"#, "1e400"),
            line(r#"{"u":1}"#, "[1,]"),
            line(r#"{"u":1}"#, "1,\"data\":2"),
            line(r#"{"u":1}"#, "\"\\ud800\""),
            line(r#"{"u":1}"#, "1").replace(r#""name":"x""#, r#""name":"has space""#),
            line(r#"{"u":1}"#, "1").replace(r#""name":"x""#, r#""name":"""#),
            line(r#"{"u":1}"#, "1").replace("05:08", "25:08"),
            line(r#"{"u":1}"#, "1").replace("01a225b4-d94a", "01a225b4-d94g"),
        ] {
            parser.parse(line(r#"{"u":1}"#, "1").as_bytes()).unwrap();
            assert!(parser.parse(bad.as_bytes()).is_err(), "{bad}");
            assert!(Event::from_json_slice(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    /// `parse_written` takes the payload of a line laid out as written as
    /// the caller vouches for it: not validated again (what it saves), and
    /// read as `null` if the caller was wrong. Everything else about the
    /// line is still checked.
    #[test]
    fn a_line_vouched_for_keeps_its_payload_unvalidated_and_the_rest_checked() {
        let good = line(r#"{"u":1}"#, "1");
        let mut parser = EventLineParser::new();
        parser.parse_written(good.as_bytes()).unwrap();
        let unchecked = line(r#"{"u":1}"#, "[1,]");
        let event = parser.parse_written(unchecked.as_bytes()).unwrap();
        assert_eq!(event.to_json_bytes(), unchecked.as_bytes());
        assert_eq!(event.data(), &Value::Null);
        assert!(parser.parse(unchecked.as_bytes()).is_err());
        for bad in [
            good.replace(r#""name":"x""#, r#""name":"has space""#),
            good.replace("05:08", "25:08"),
            good.replace("01a225b4-d94a", "01a225b4-d94g"),
            good.replace(r#"{"u":1}"#, r#"{"u":}"#),
            good.replace(r#","data":1}"#, r#","data":1"#),
        ] {
            parser.parse_written(good.as_bytes()).unwrap();
            assert!(parser.parse_written(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn timestamps_read_from_the_last_second_equal_humantimes() {
        let mut parser = EventLineParser::new();
        let line_at = |stamp: &str| {
            let text = String::from_utf8(
                Event::new("a.b", json!(1))
                    .unwrap()
                    .to_json_bytes()
                    .to_vec(),
            )
            .unwrap();
            let start = text.find(",\"timestamp\":\"").unwrap() + 14;
            let end = start + text[start..].find('"').unwrap();
            format!("{}{stamp}{}", &text[..start], &text[end..])
        };
        for stamp in [
            "2024-02-29T23:59:59.000001Z",
            "2024-02-29T23:59:59.999999Z",
            // From the second above.
            "2024-02-29T23:59:59.000002Z",
            "2024-02-29T23:59:59.5Z",
            "2024-02-29T23:59:59Z",
            "2024-02-29T23:59:59.1234567Z",
            "2024-02-29T23:59:59.12345xZ",
            "2024-02-29T23:59:59.123456+00:00",
            "2024-03-01T00:00:00.000000Z",
            "2024-03-01T00:00:00.123456Z",
            "2024-03-01T00:00:00.12345aZ",
            "2024-02-30T00:00:00.000000Z",
            "1969-12-31T23:59:59.250000Z",
            "1969-12-31T23:59:59.750000Z",
            "2024-02-29T23:59:59.000002Z",
        ] {
            let line = line_at(stamp);
            let expected = Event::from_json_slice(line.as_bytes());
            match (parser.parse(line.as_bytes()), expected) {
                (Ok(event), Ok(expected)) => {
                    assert_eq!(event.timestamp(), expected.timestamp(), "{stamp}");
                }
                (Err(_), Err(_)) => {}
                (got, expected) => panic!("{stamp}: {got:?} against {expected:?}"),
            }
        }
    }

    #[test]
    fn names_are_shared_and_a_bad_one_is_still_refused() {
        let mut parser = EventLineParser::new();
        let named = |name: &str| Event::new(name, json!(1)).unwrap().to_json_bytes().to_vec();
        // More names than the parser keeps, twice over, by both paths.
        let names: Vec<String> = (0..NAMES + 3).map(|n| format!("type.{n}")).collect();
        let mut first = Vec::new();
        for round in 0..2 {
            for name in &names {
                let event = parser.parse(&named(name)).unwrap();
                assert_eq!(event.name(), name.as_str());
                if round == 0 {
                    first.push(event.name.clone());
                } else {
                    let earlier = &first[first.len() - names.len()..];
                    assert!(earlier.iter().any(|a| Arc::ptr_eq(a, &event.name)));
                }
            }
        }
        // A refused name is never kept: refused again, as the general parse refuses it.
        let bad = String::from_utf8(named("type.0"))
            .unwrap()
            .replace("type.0", "bad name!");
        assert!(Event::from_json_slice(bad.as_bytes()).is_err());
        assert!(parser.parse(bad.as_bytes()).is_err());
        assert!(parser.parse(bad.as_bytes()).is_err());
    }

    #[test]
    fn a_context_is_shared_only_with_the_same_text() {
        let mut parser = EventLineParser::new();
        let events: Vec<Event> = [
            r#"{"u":1}"#,
            r#"{"u":1}"#,
            r#"{"u":2}"#,
            r#"{"u":1}"#,
            r#"{"u": 1}"#,
        ]
        .iter()
        .map(|context| parser.parse(line(context, "1").as_bytes()).unwrap())
        .collect();
        let shared = |a: usize, b: usize| {
            Arc::ptr_eq(events[a].shared_context(), events[b].shared_context())
        };
        assert!(shared(0, 1));
        assert!(!shared(1, 2), "different text, different map");
        assert_eq!(events[2].context()["u"], 2);
        assert!(!shared(2, 3));
        assert_eq!(events[3].context(), events[0].context());
        assert!(!shared(3, 4), "same map, other text: parsed again");
        assert_eq!(events[4].context(), events[0].context());
    }

    #[test]
    fn changing_one_event_leaves_the_other_alone() {
        let mut parser = EventLineParser::new();
        let text = line(r#"{"u":1}"#, "1");
        let first = parser.parse(text.as_bytes()).unwrap();
        let mut second = parser.parse(text.as_bytes()).unwrap();
        second.context_mut().insert("u".into(), json!(2));
        assert_eq!(first.context()["u"], 1);
        assert_eq!(second.context()["u"], 2);
        assert_eq!(first.to_json_bytes(), text.as_bytes());
        // The parser's map is untouched too.
        let third = parser.parse(text.as_bytes()).unwrap();
        assert_eq!(third.context()["u"], 1);
        assert!(Arc::ptr_eq(first.shared_context(), third.shared_context()));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// The two results agree: both errors, or the same event, raw payload,
    /// schema and JSON.
    fn agree(text: &[u8], fast: Result<Event, serde_json::Error>) {
        match (fast, Event::from_json_slice(text)) {
            (Err(_), Err(_)) => {}
            (Ok(fast), Ok(slow)) => {
                assert_eq!(fast, slow);
                assert_eq!(fast.raw_data(), slow.raw_data());
                assert_eq!(fast.schema(), slow.schema());
                assert_eq!(fast.to_json_bytes(), slow.to_json_bytes());
            }
            (fast, slow) => panic!(
                "{:?}: {fast:?} but from_json_slice {slow:?}",
                String::from_utf8_lossy(text)
            ),
        }
    }

    /// JSON values of a few levels: strings with escapes and non-ASCII,
    /// integers and finite floats.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-1e300f64..1e300).prop_map(Value::from),
            "[ -~\u{e9}\u{1F600}\n\t\u{1}]{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::vec((r#"[a-z"\\]{1,4}"#, inner), 0..4)
                    .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// A line as written, then changed at a few bytes (replaced,
        /// removed or inserted, from bytes that matter to JSON), parsed
        /// after the original (so that its context is the previous one).
        #[test]
        fn a_changed_line_parses_as_from_json_slice_parses_it(
            context in prop::sample::select(vec![r#"{}"#, r#"{"user_id":10938}"#, r#"{"a":[1,{"b":"c"}],"d":1.5}"#]),
            data in prop::sample::select(vec![r#"{"url":"/1"}"#, "[1,2]", r#""s""#, "7", r#"{"a":{"b":[null,true]}}"#]),
            schema in any::<bool>(),
            edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, prop::sample::select(b"{}[]\",:\\ \n0e.-Znul9aA\x01\xc3".to_vec())), 1..4),
        ) {
            let schema = if schema { r#","schema":"a.b@1""# } else { "" };
            let original = format!(
                r#"{{"id":"01a225b4-d94a-7000-b9f9-c37f702a909a","name":"a.b"{schema},"timestamp":"2026-11-29T05:08:58.826649Z","context":{context},"data":{data}}}"#
            );
            let mut text = original.clone().into_bytes();
            for (at, kind, byte) in edits {
                let at = at.index(text.len() + 1);
                match kind {
                    0 if at < text.len() => text[at] = byte,
                    1 if at < text.len() => {
                        text.remove(at);
                    }
                    _ => text.insert(at, byte),
                }
            }
            let mut parser = EventLineParser::new();
            parser.parse(original.as_bytes()).unwrap();
            agree(&text, parser.parse(&text));
            agree(&text, parser.parse(&text));
        }

        /// Any event's line as written reads back through `parse_written`
        /// as `from_json_slice` reads it, the second time with its context
        /// cached (by position).
        #[test]
        fn a_written_line_parses_written_as_from_json_slice_parses_it(
            data in json_value(),
            context in prop::collection::vec((r#"[a-z_é"\\]{1,6}"#, json_value()), 0..4),
            schema in any::<bool>(),
        ) {
            let mut event = Event::new("a.b", data).unwrap();
            if schema {
                event = event.with_schema(Some("a.b@1".into()));
            }
            event.context_mut().extend(context);
            let text = event.to_json_bytes().to_vec();
            let mut parser = EventLineParser::new();
            for _ in 0..2 {
                let read = parser.parse_written(&text).unwrap();
                prop_assert_eq!(&read, &event);
                agree(&text, Ok(read));
            }
        }
    }
}
