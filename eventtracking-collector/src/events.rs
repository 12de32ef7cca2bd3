//! From a request body to events: the three accepted shapes, each event's
//! fields, and its limits. The body is read as borrowed JSON text: each
//! event's `data` is checked in place and kept as the client sent it (no
//! tree of maps is built or freed per event).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use eventtracking_core::uuid::Uuid;
use eventtracking_core::{intern_event_name, parse_timestamp, Event, JsonMap};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::context::{ClientContext, ServerContext};
use crate::limits::{Broken, KeyText, Limits};
use crate::response::{Problem, Rejection};
use crate::validate::Violation;

/// The catalog check of one event's name and data (see `validate`).
pub(crate) type Check<'a> = &'a dyn Fn(&str, &RawValue) -> Option<Violation>;

/// The events made from a body, each with its index, and those refused.
pub(crate) struct Made {
    pub(crate) events: Vec<(usize, Arc<Event>)>,
    pub(crate) rejected: Vec<Rejection>,
    pub(crate) pointers: Pointers,
}

/// The events of a body, as JSON text borrowed from it, and the JSON
/// pointer prefix of each (`/events/3`, `/3`, or empty for a single event).
pub(crate) struct Batch<'a> {
    items: Items<'a>,
    pointers: Pointers,
}

enum Items<'a> {
    /// A body that is one event, its fields already read.
    One(Fields<'a>),
    Many(Vec<&'a RawValue>),
}

/// Where the events of a body are, as JSON pointers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pointers {
    prefix: &'static str,
    single: bool,
}

impl Pointers {
    /// The JSON pointer of the event at `index`.
    pub(crate) fn of(self, index: usize) -> String {
        if self.single {
            String::new()
        } else {
            format!("{}/{index}", self.prefix)
        }
    }
}

impl<'a> Batch<'a> {
    /// One event `{...}`, an array of them, or `{"events": [...]}`; a
    /// syntax error names its line and column.
    pub(crate) fn parse(body: &'a [u8]) -> Result<Self, Problem> {
        // UTF-8 checked once for the whole body, rather than for each raw
        // value and string as reading bytes does; reading the bytes still
        // names where invalid UTF-8 is.
        let shape = match std::str::from_utf8(body) {
            Ok(text) => serde_json::from_str::<Shape<'a>>(text),
            Err(_) => serde_json::from_slice::<Shape<'a>>(body),
        }
        .map_err(malformed)?;
        match shape {
            Shape::Array(items) => Ok(Batch::new(Items::Many(items), "", false)),
            Shape::Object(fields) if fields.name.is_none() && fields.events.is_some() => {
                if let Some(other) = fields.other_than_events {
                    return Err(Problem::bad_request(format!(
                        "a body with \"events\" holds nothing else (found {other:?})"
                    )));
                }
                let events = fields.events.map_or("", RawValue::get);
                match serde_json::from_str::<Vec<&'a RawValue>>(events) {
                    Ok(items) => Ok(Batch::new(Items::Many(items), "/events", false)),
                    Err(_) => Err(Problem::bad_request(
                        "\"events\" must be an array of events",
                    )),
                }
            }
            Shape::Object(fields) => Ok(Batch::new(Items::One(fields), "", true)),
            Shape::Other => Err(Problem::bad_request(
                "the body must be an event object, an array of events, or {\"events\": [...]}",
            )),
        }
    }

    fn new(items: Items<'a>, prefix: &'static str, single: bool) -> Self {
        Batch {
            items,
            pointers: Pointers { prefix, single },
        }
    }

    /// How many events the body holds.
    pub(crate) fn len(&self) -> usize {
        match &self.items {
            Items::One(_) => 1,
            Items::Many(items) => items.len(),
        }
    }

    /// Each event, made into an [`Event`] (with its index) or refused,
    /// and where the events are in the body.
    pub(crate) fn into_events(
        self,
        mut server: ServerContext,
        limits: Limits,
        check: Check<'_>,
    ) -> Made {
        let mut events = Vec::with_capacity(self.len());
        let mut rejected = Vec::new();
        let pointers = self.pointers;
        let mut previous = Previous::default();
        // The server's fields go into the only event's context as they are.
        let last = matches!(self.items, Items::One(_));
        let mut one = |index: usize, fields: Result<&Fields<'a>, Violation>| {
            let made = fields.and_then(|fields| {
                one_event(fields, &mut server, last, limits, check, &mut previous)
            });
            match made {
                Ok(event) => events.push((index, Arc::new(event))),
                Err((below, error)) => rejected.push(Rejection {
                    index,
                    pointer: format!("{}{below}", pointers.of(index)),
                    error,
                }),
            }
        };
        match &self.items {
            Items::One(fields) => one(0, Ok(fields)),
            Items::Many(items) => {
                for (index, item) in items.iter().enumerate() {
                    match serde_json::from_str::<Shape<'a>>(item.get()) {
                        Ok(Shape::Object(fields)) => one(index, Ok(&fields)),
                        _ => one(index, Err(not_an_object())),
                    }
                }
            }
        }
        Made {
            events,
            rejected,
            pointers,
        }
    }
}

fn not_an_object() -> Violation {
    (
        String::new(),
        "an event must be a JSON object {\"name\", \"data\", ...}".into(),
    )
}

/// 400 for a body that is not JSON, naming the line and column.
fn malformed(error: serde_json::Error) -> Problem {
    let (line, column) = (error.line(), error.column());
    // serde_json's message ends with its own " at line L column C".
    let message = error.to_string();
    let message = message
        .rsplit_once(" at line ")
        .map_or(message.as_str(), |(head, _)| head);
    Problem::malformed(
        format!("malformed JSON at line {line}, column {column}: {message}"),
        line,
        column,
    )
}

/// What the request's previous event was made with, for the next to share:
/// consecutive events sending the same context (and client timestamp)
/// share one merged map, and events of the same name one name.
#[derive(Default)]
struct Previous<'a> {
    context: Option<LastContext<'a>>,
    name: Option<Arc<str>>,
}

/// The client's context text, its timestamp, and the merged map.
type LastContext<'a> = (Option<&'a str>, Option<Cow<'a, str>>, Arc<JsonMap>);

/// One event; on refusal, the pointer below the event and why.
fn one_event<'a>(
    fields: &Fields<'a>,
    server: &mut ServerContext,
    last: bool,
    limits: Limits,
    check: Check<'_>,
    previous: &mut Previous<'a>,
) -> Result<Event, Violation> {
    if let Some(unknown) = &fields.unknown {
        return Err((
            format!("/{}", unknown.replace('~', "~0").replace('/', "~1")),
            "unknown field: an event has name, data, context, id and timestamp".into(),
        ));
    }
    let name = match fields.name.map(text) {
        Some(Some(name)) => name,
        Some(None) => return Err(("/name".into(), "name must be a string".into())),
        None => return Err(("/name".into(), "name is missing".into())),
    };
    // Checked (the core rule) and shared: the name of the event before, or
    // this thread's one allocation for it.
    let name: Arc<str> = match &previous.name {
        Some(last) if **last == *name => last.clone(),
        _ => {
            let shared = intern_event_name(&name)
                .map_err(|error| ("/name".to_owned(), error.to_string()))?;
            previous.name.insert(shared).clone()
        }
    };
    let Some(data) = fields.data else {
        return Err(("/data".into(), "data is missing".into()));
    };
    if let Some(broken) = limits.check(data) {
        return Err((format!("/data{}", broken.pointer), broken.error));
    }
    let context = match fields.context {
        None => None,
        Some(raw) if raw.get() == "null" => None,
        Some(raw) if raw.get().starts_with('{') => Some(raw),
        Some(_) => return Err(("/context".into(), "context must be an object".into())),
    };
    let id = match fields.id {
        None => None,
        Some(raw) if raw.get() == "null" => None,
        Some(raw) => match text(raw) {
            Some(text) => Some(
                Uuid::parse_str(&text)
                    .map_err(|_| ("/id".to_owned(), "id must be a UUID".to_owned()))?,
            ),
            None => return Err(("/id".into(), "id must be a UUID string".into())),
        },
    };
    let client_timestamp = match fields.timestamp {
        None => None,
        Some(raw) if raw.get() == "null" => None,
        Some(raw) => match text(raw) {
            Some(text) => {
                parse_timestamp(&text).map_err(|error| ("/timestamp".to_owned(), error))?;
                Some(text)
            }
            None => {
                return Err((
                    "/timestamp".into(),
                    "timestamp must be an RFC 3339 string".into(),
                ))
            }
        },
    };
    if let Some((below, error)) = check(&name, data) {
        return Err((format!("/data{below}"), error));
    }
    let context_text = context.map(RawValue::get);
    let context = match &previous.context {
        // The same context (and timestamp) as the event before: its map.
        Some((last_context, last_timestamp, merged))
            if *last_context == context_text && *last_timestamp == client_timestamp =>
        {
            merged.clone()
        }
        _ => {
            let client = match context {
                Some(raw) => Some(client_context(raw, limits)?),
                None => None,
            };
            let merged = server.merge(client, client_timestamp.as_deref(), last);
            previous.context = Some((context_text, client_timestamp, merged.clone()));
            merged
        }
    };
    let id = id.unwrap_or_else(Event::new_id);
    Event::from_parts_raw_data(id, name, server.received, context, data).map_err(
        // A number out of range: the walk on the text says where.
        |error| match limits.locate(data) {
            Some(broken) => (format!("/data{}", broken.pointer), broken.error),
            None => ("/data".to_owned(), error.to_string()),
        },
    )
}

/// A client's context object, read (without the server's keys) and then
/// checked against the limits.
fn client_context(raw: &RawValue, limits: Limits) -> Result<ClientContext<'_>, Violation> {
    let broken = |broken: Broken| (format!("/context{}", broken.pointer), broken.error);
    match serde_json::from_str::<ClientContext>(raw.get()) {
        Ok(client) if limits.cannot_break(raw.get()) => Ok(client),
        Ok(client) => match limits.check_pairs(client.fields()) {
            Some(error) => Err(broken(error)),
            None => Ok(client),
        },
        // A number out of range: the walk on the text says where.
        Err(error) => Err(limits
            .locate(raw)
            .map(broken)
            .unwrap_or_else(|| ("/context".to_owned(), error.to_string()))),
    }
}

/// A JSON string's text, or `None` for any other value.
fn text(raw: &RawValue) -> Option<Cow<'_, str>> {
    // `Cow<str>`'s own `Deserialize` always copies: borrow when unescaped.
    #[derive(Deserialize)]
    struct Text<'a>(#[serde(borrow)] Cow<'a, str>);
    serde_json::from_str::<Text<'_>>(raw.get())
        .ok()
        .map(|Text(text)| text)
}

/// A body or an array item: an object (its fields read), an array (its
/// items as text), or anything else.
enum Shape<'a> {
    Object(Fields<'a>),
    Array(Vec<&'a RawValue>),
    Other,
}

/// An object's fields, as an event's (or a body's `events`). Like a JSON
/// object read into a map, a repeated key keeps its last value.
#[derive(Default)]
struct Fields<'a> {
    name: Option<&'a RawValue>,
    data: Option<&'a RawValue>,
    context: Option<&'a RawValue>,
    id: Option<&'a RawValue>,
    timestamp: Option<&'a RawValue>,
    events: Option<&'a RawValue>,
    /// The first key that is not an event's field (`events` included).
    /// Keys are borrowed from the body unless they hold escapes.
    unknown: Option<Cow<'a, str>>,
    /// The first key other than `events`.
    other_than_events: Option<Cow<'a, str>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Shape<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ShapeVisitor(std::marker::PhantomData))
    }
}

struct ShapeVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for ShapeVisitor<'a> {
    type Value = Shape<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event object, an array of events, or {\"events\": [...]}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape<'a>, A::Error> {
        let mut fields = Fields::<'a>::default();
        while let Some(key) = map.next_key_seed(KeyText)? {
            let value: &'de RawValue = map.next_value()?;
            let slot = match &*key {
                "name" => &mut fields.name,
                "data" => &mut fields.data,
                "context" => &mut fields.context,
                "id" => &mut fields.id,
                "timestamp" => &mut fields.timestamp,
                "events" => {
                    if fields.unknown.is_none() {
                        fields.unknown = Some(key);
                    }
                    fields.events = Some(value);
                    continue;
                }
                _ => {
                    if fields.other_than_events.is_none() {
                        fields.other_than_events = Some(key.clone());
                    }
                    if fields.unknown.is_none() {
                        fields.unknown = Some(key);
                    }
                    continue;
                }
            };
            *slot = Some(value);
            if fields.other_than_events.is_none() {
                fields.other_than_events = Some(key);
            }
        }
        Ok(Shape::Object(fields))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape<'a>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element::<&'de RawValue>()? {
            items.push(item);
        }
        Ok(Shape::Array(items))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Shape<'a>, E> {
        Ok(Shape::Other)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Shape<'a>, E> {
        Ok(Shape::Other)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Shape<'a>, E> {
        Ok(Shape::Other)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Shape<'a>, E> {
        Ok(Shape::Other)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Shape<'a>, E> {
        Ok(Shape::Other)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Shape<'a>, E> {
        Ok(Shape::Other)
    }
}
