//! Many event lines in a row: [`EventLineParser`].

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

use serde::de::Error as _;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use uuid::Uuid;

use super::{intern_name, parse_timestamp, truncate_to_micros, Event, JsonMap};

/// Parses event lines one after another, each exactly as
/// [`Event::from_json_slice`] would, for a reader of many lines (a disk
/// buffer's delivery worker). Lines written in a row usually carry the same
/// context: when a line's context is the same JSON text, byte for byte, as
/// the previous line's, its event shares the previous event's context map
/// (one `Arc`) instead of parsing a new one. Sharing is safe: changing an
/// event's context ([`Event::context_mut`]) copies it first.
///
/// ```
/// use eventtracking_core::EventLineParser;
///
/// let line = |n: u32| format!(r#"{{"id":"01a225b4-d94a-7000-b9f9-c37f702a909a","name":"a.b","timestamp":"2026-11-29T05:08:58.826649Z","context":{{"user_id":10938}},"data":{n}}}"#);
/// let mut parser = EventLineParser::new();
/// let first = parser.parse(line(1).as_bytes()).unwrap();
/// let second = parser.parse(line(2).as_bytes()).unwrap();
/// assert!(std::sync::Arc::ptr_eq(first.shared_context(), second.shared_context()));
/// assert_eq!(second.to_json_bytes(), line(2).as_bytes());
/// ```
#[derive(Debug, Default)]
pub struct EventLineParser {
    /// The last context parsed: its JSON text and its map.
    last_context: Option<(Box<str>, Arc<JsonMap>)>,
}

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
        let line: Line<'_> = serde_json::from_slice(bytes)?;
        let name = intern_name(&line.name).map_err(serde_json::Error::custom)?;
        let timestamp = parse_timestamp(&line.timestamp).map_err(serde_json::Error::custom)?;
        let context = self.context(line.context.get())?;
        let at = truncate_to_micros(timestamp);
        let event = match line.data {
            Some(raw) => Event::with_raw_payload(line.id, name, at, context, raw)?,
            None => Event::from_parts_exact(line.id, name, at, context, Value::Null),
        };
        Ok(event.with_schema(line.schema.map(Cow::Owned)))
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
