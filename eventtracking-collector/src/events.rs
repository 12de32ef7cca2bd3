//! From a parsed body to events: the three accepted shapes, each event's
//! fields, and its limits.

use std::sync::Arc;

use eventtracking_core::uuid::Uuid;
use eventtracking_core::{parse_timestamp, validate_event_name, Event, JsonMap};
use serde_json::Value;

use crate::context::ServerContext;
use crate::limits::Limits;
use crate::response::{Problem, Rejection};
use crate::validate::Violation;

/// The catalog check of one event's name and data (see `validate`).
pub(crate) type Check<'a> = &'a dyn Fn(&str, &Value) -> Option<Violation>;

/// The events made from a body, each with its index, and those refused.
pub(crate) struct Made {
    pub(crate) events: Vec<(usize, Arc<Event>)>,
    pub(crate) rejected: Vec<Rejection>,
    pub(crate) pointers: Pointers,
}

/// The fields an event may have.
const FIELDS: &[&str] = &["name", "data", "context", "id", "timestamp"];

/// The events of a body, and the JSON pointer prefix of each (`/events/3`,
/// `/3`, or empty for a single event).
pub(crate) struct Batch {
    items: Vec<Value>,
    pointers: Pointers,
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

impl Batch {
    /// One event `{...}`, an array of them, or `{"events": [...]}`.
    pub(crate) fn from_body(body: Value) -> Result<Self, Problem> {
        match body {
            Value::Array(items) => Ok(Batch::new(items, "", false)),
            Value::Object(mut map) if !map.contains_key("name") && map.contains_key("events") => {
                if map.len() > 1 {
                    let other = map
                        .keys()
                        .find(|k| *k != "events")
                        .cloned()
                        .unwrap_or_default();
                    return Err(Problem::bad_request(format!(
                        "a body with \"events\" holds nothing else (found {other:?})"
                    )));
                }
                match map.remove("events") {
                    Some(Value::Array(items)) => Ok(Batch::new(items, "/events", false)),
                    _ => Err(Problem::bad_request(
                        "\"events\" must be an array of events",
                    )),
                }
            }
            Value::Object(map) => Ok(Batch::new(vec![Value::Object(map)], "", true)),
            _ => Err(Problem::bad_request(
                "the body must be an event object, an array of events, or {\"events\": [...]}",
            )),
        }
    }

    fn new(items: Vec<Value>, prefix: &'static str, single: bool) -> Self {
        Batch {
            items,
            pointers: Pointers { prefix, single },
        }
    }

    /// How many events the body holds.
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// Each event, made into an [`Event`] (with its index) or refused,
    /// and where the events are in the body.
    pub(crate) fn into_events(
        self,
        server: &ServerContext,
        limits: Limits,
        check: Check<'_>,
    ) -> Made {
        let mut events = Vec::with_capacity(self.items.len());
        let mut rejected = Vec::new();
        let pointers = self.pointers;
        for (index, item) in self.items.into_iter().enumerate() {
            match one_event(item, server, limits, check) {
                Ok(event) => events.push((index, Arc::new(event))),
                Err((below, error)) => rejected.push(Rejection {
                    index,
                    pointer: format!("{}{below}", pointers.of(index)),
                    error,
                }),
            }
        }
        Made {
            events,
            rejected,
            pointers,
        }
    }
}

/// One event; on refusal, the pointer below the event and why.
fn one_event(
    item: Value,
    server: &ServerContext,
    limits: Limits,
    check: Check<'_>,
) -> Result<Event, Violation> {
    let Value::Object(mut map) = item else {
        return Err((
            String::new(),
            "an event must be a JSON object {\"name\", \"data\", ...}".into(),
        ));
    };
    if let Some(unknown) = map.keys().find(|key| !FIELDS.contains(&key.as_str())) {
        return Err((
            format!("/{}", unknown.replace('~', "~0").replace('/', "~1")),
            "unknown field: an event has name, data, context, id and timestamp".into(),
        ));
    }
    let name = match map.remove("name") {
        Some(Value::String(name)) => name,
        Some(_) => return Err(("/name".into(), "name must be a string".into())),
        None => return Err(("/name".into(), "name is missing".into())),
    };
    validate_event_name(&name).map_err(|error| ("/name".to_owned(), error.to_string()))?;
    let Some(data) = map.remove("data") else {
        return Err(("/data".into(), "data is missing".into()));
    };
    if let Some(broken) = limits.check(&data) {
        return Err((format!("/data{}", broken.pointer), broken.error));
    }
    let context = match map.remove("context") {
        None | Some(Value::Null) => None,
        Some(context @ Value::Object(_)) => {
            if let Some(broken) = limits.check(&context) {
                return Err((format!("/context{}", broken.pointer), broken.error));
            }
            match context {
                Value::Object(context) => Some(context),
                _ => None,
            }
        }
        Some(_) => return Err(("/context".into(), "context must be an object".into())),
    };
    let id = match map.remove("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(
            Uuid::parse_str(&text)
                .map_err(|_| ("/id".to_owned(), "id must be a UUID".to_owned()))?,
        ),
        Some(_) => return Err(("/id".into(), "id must be a UUID string".into())),
    };
    let client_timestamp = match map.remove("timestamp") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => {
            parse_timestamp(&text).map_err(|error| ("/timestamp".to_owned(), error))?;
            Some(text)
        }
        Some(_) => {
            return Err((
                "/timestamp".into(),
                "timestamp must be an RFC 3339 string".into(),
            ))
        }
    };
    if let Some((below, error)) = check(&name, &data) {
        return Err((format!("/data{below}"), error));
    }
    let id = id.unwrap_or_else(Event::new_id);
    let context: Arc<JsonMap> = server.merge(context, client_timestamp);
    Ok(Event::from_parts(
        id,
        Arc::from(name),
        server.received,
        context,
        data,
    ))
}
