//! [`MessageKey`]: the key of each message, and writing it for an event.

use std::fmt;
use std::str::FromStr;

use eventtracking_core::Event;

use crate::KafkaBackendError;

/// The key of each message.
///
/// ```
/// use eventtracking_kafka::MessageKey;
/// assert_eq!("id".parse::<MessageKey>().unwrap(), MessageKey::EventId);
/// assert_eq!("context.user_id".parse::<MessageKey>().unwrap(), MessageKey::context_field("user_id"));
/// assert!("data.user_id".parse::<MessageKey>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum MessageKey {
    /// The event id, hyphenated lower-case UUID text (config `"id"`, the default).
    #[default]
    EventId,
    /// A field of the event's context, by dotted path (config
    /// `"context.user_id"`, `"context.session.id"`): a string is used as is,
    /// another JSON value as its compact JSON text. An event without the field,
    /// or with `null` there, is keyed by its id.
    ContextField(Vec<String>),
}

impl MessageKey {
    /// [`MessageKey::ContextField`] from a dotted path such as `user_id` or `session.id`.
    pub fn context_field(path: &str) -> Self {
        MessageKey::ContextField(path.split('.').map(str::to_owned).collect())
    }
}

impl FromStr for MessageKey {
    type Err = KafkaBackendError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "id" {
            return Ok(MessageKey::EventId);
        }
        match text.strip_prefix("context.") {
            Some(path) if !path.is_empty() && path.split('.').all(|p| !p.is_empty()) => {
                Ok(MessageKey::context_field(path))
            }
            _ => Err(KafkaBackendError::InvalidKey {
                key: text.to_owned(),
                reason: "expected \"id\" or \"context.FIELD\" (e.g. \"context.user_id\")".into(),
            }),
        }
    }
}

impl fmt::Display for MessageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageKey::EventId => f.write_str("id"),
            MessageKey::ContextField(path) => write!(f, "context.{}", path.join(".")),
        }
    }
}

/// The event id as hyphenated lower-case text.
pub(crate) fn id_text<'b>(event: &Event, buffer: &'b mut [u8; 45]) -> &'b str {
    event.id().hyphenated().encode_lower(buffer)
}

/// Writes the key of `event` into `out`.
pub(crate) fn write_key(key: &MessageKey, event: &Event, out: &mut Vec<u8>) {
    out.clear();
    if let MessageKey::ContextField(path) = key {
        let mut value = event.context().get(&path[0]);
        for part in &path[1..] {
            value = value.and_then(|v| v.get(part));
        }
        match value {
            Some(serde_json::Value::String(s)) => {
                out.extend_from_slice(s.as_bytes());
                return;
            }
            Some(serde_json::Value::Null) | None => {}
            Some(other) => {
                if serde_json::to_writer(&mut *out, other).is_ok() {
                    return;
                }
                out.clear();
            }
        }
    }
    let mut buffer = [0u8; 45];
    out.extend_from_slice(id_text(event, &mut buffer).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event_with_context(context: serde_json::Value) -> Event {
        let mut event = Event::new("page.view", json!({})).unwrap();
        *event.context_mut() = context.as_object().unwrap().clone();
        event
    }

    #[test]
    fn keys_come_from_the_id_or_a_context_field_with_fallback() {
        let mut out = Vec::new();
        let event =
            event_with_context(json!({"user_id": "u1", "n": 7, "s": {"id": [1, 2]}, "z": null}));
        let id = event.id().to_string();
        write_key(&MessageKey::EventId, &event, &mut out);
        assert_eq!(out, id.as_bytes());
        write_key(&"context.user_id".parse().unwrap(), &event, &mut out);
        assert_eq!(out, b"u1");
        write_key(&"context.n".parse().unwrap(), &event, &mut out);
        assert_eq!(out, b"7");
        write_key(&"context.s.id".parse().unwrap(), &event, &mut out);
        assert_eq!(out, b"[1,2]");
        for missing in ["context.z", "context.nope", "context.user_id.x"] {
            write_key(&missing.parse().unwrap(), &event, &mut out);
            assert_eq!(out, id.as_bytes(), "{missing}");
        }
    }

    #[test]
    fn bad_keys_are_refused() {
        for bad in ["", "context.", "context..a", "user_id", "data.x"] {
            assert!(bad.parse::<MessageKey>().is_err(), "{bad:?}");
        }
    }
}
