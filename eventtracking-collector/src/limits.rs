//! The shape limits of an event's `data` and `context`: nesting depth,
//! string length and keys per object, checked on the JSON text as it came
//! (no tree of maps is built).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::config::MAX_DEPTH;

/// The limits one value is checked against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_string_bytes: usize,
    pub(crate) max_object_keys: usize,
}

/// A limit broken: the JSON pointer (below the value checked) and why.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Broken {
    pub(crate) pointer: String,
    pub(crate) error: String,
}

impl Limits {
    /// The first limit the JSON text `value` breaks, in document order.
    /// A text too short to break any is not read (a number too large for
    /// a JSON value is then left to whoever reads it: see [`Self::locate`]).
    pub(crate) fn check(&self, value: &RawValue) -> Option<Broken> {
        if self.cannot_break(value.get()) {
            return None;
        }
        self.locate(value)
    }

    /// [`Self::check`] reading the text whatever its length: also finds
    /// where a number too large for a JSON value (`1e400`) is.
    pub(crate) fn locate(&self, value: &RawValue) -> Option<Broken> {
        self.check_in(&mut serde_json::Deserializer::from_str(value.get()))
    }

    /// Whether JSON `text` is too short to break a limit: no string in it
    /// (escapes decoded) is longer than the text, each key of an object
    /// takes at least 4 bytes (`"":0`), and each level of nesting 2.
    pub(crate) fn cannot_break(&self, text: &str) -> bool {
        let len = text.len();
        len <= self.max_string_bytes && len / 4 <= self.max_object_keys && len < 2 * (MAX_DEPTH + 1)
    }

    /// The first limit an object already read (as its pairs) breaks.
    pub(crate) fn check_pairs(
        &self,
        pairs: &[(Cow<'_, str>, serde_json::Value)],
    ) -> Option<Broken> {
        let entries = pairs.iter().map(|(key, value)| (key.as_ref(), value));
        self.check_in(de::value::MapDeserializer::<_, serde_json::Error>::new(
            entries,
        ))
    }

    fn check_in<'de, D: Deserializer<'de>>(&self, input: D) -> Option<Broken> {
        let mut path = Vec::new();
        let mut broken = None;
        let walk = Walk {
            limits: *self,
            depth: 0,
            path: &mut path,
            broken: &mut broken,
        };
        let error = walk.deserialize(input).err()?;
        let error = broken.unwrap_or_else(|| {
            // Not a limit of ours: serde_json refused a number.
            let message = error.to_string();
            message
                .rsplit_once(" at line ")
                .map_or(message.as_str(), |(head, _)| head)
                .to_owned()
        });
        Some(Broken {
            pointer: pointer(&path),
            error,
        })
    }
}

/// One value read against the limits. On a break, the message is left in
/// `broken`, `path` holds the way to it, and the read stops with an error.
struct Walk<'p, 'de> {
    limits: Limits,
    depth: usize,
    path: &'p mut Vec<Segment<'de>>,
    broken: &'p mut Option<String>,
}

impl<'p, 'de> Walk<'p, 'de> {
    fn child(&mut self) -> Walk<'_, 'de> {
        Walk {
            limits: self.limits,
            depth: self.depth + 1,
            path: self.path,
            broken: self.broken,
        }
    }

    fn refuse<E: de::Error>(self, message: String) -> E {
        *self.broken = Some(message);
        E::custom("limit broken")
    }

    fn too_deep<E: de::Error>(self) -> Result<(), E> {
        if self.depth >= MAX_DEPTH {
            return Err(self.refuse(format!(
                "nested deeper than {MAX_DEPTH} levels of arrays and objects"
            )));
        }
        Ok(())
    }

    fn string<E: de::Error>(self, text: &str) -> Result<(), E> {
        if text.len() > self.limits.max_string_bytes {
            let max = self.limits.max_string_bytes;
            return Err(self.refuse(format!(
                "a string of {} bytes is longer than max_string_bytes ({max})",
                text.len()
            )));
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, text: &str) -> Result<(), E> {
        self.string(text)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut items: A) -> Result<(), A::Error> {
        if self.depth >= MAX_DEPTH {
            return self.too_deep();
        }
        let mut index = 0;
        loop {
            self.path.push(Segment::Index(index));
            if items.next_element_seed(self.child())?.is_none() {
                self.path.pop();
                return Ok(());
            }
            self.path.pop();
            index += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        if self.depth >= MAX_DEPTH {
            return self.too_deep();
        }
        let max_keys = self.limits.max_object_keys;
        let mut keys = 0;
        while let Some(key) = map.next_key_seed(KeyText)? {
            keys += 1;
            if keys > max_keys {
                return Err(self.refuse(format!(
                    "an object has more keys than max_object_keys ({max_keys})"
                )));
            }
            let long = key.len();
            self.path.push(Segment::Key(key));
            if long > self.limits.max_string_bytes {
                let max = self.limits.max_string_bytes;
                return Err(self.refuse(format!(
                    "a key of {long} bytes is longer than max_string_bytes ({max})"
                )));
            }
            map.next_value_seed(self.child())?;
            self.path.pop();
        }
        Ok(())
    }
}

/// An object's key, borrowed from the text unless it has escapes.
pub(crate) struct KeyText;

impl<'de> DeserializeSeed<'de> for KeyText {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyText {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(key))
    }
    fn visit_str<E>(self, key: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(key.to_owned()))
    }
}

/// One step of a JSON pointer.
#[derive(Debug, Clone)]
pub(crate) enum Segment<'a> {
    Key(Cow<'a, str>),
    Index(usize),
}

/// `/a/0/b~1c`: RFC 6901, with `~` and `/` escaped.
pub(crate) fn pointer(path: &[Segment<'_>]) -> String {
    let mut out = String::new();
    for segment in path {
        out.push('/');
        match segment {
            Segment::Key(key) => out.push_str(&key.replace('~', "~0").replace('/', "~1")),
            Segment::Index(index) => out.push_str(&index.to_string()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const LIMITS: Limits = Limits {
        max_string_bytes: 5,
        max_object_keys: 2,
    };

    fn check(value: serde_json::Value) -> Option<Broken> {
        let raw = serde_json::value::to_raw_value(&value).unwrap();
        let (checked, located) = (LIMITS.check(&raw), LIMITS.locate(&raw));
        assert_eq!(checked, located, "{raw}");
        located
    }

    fn check_text(text: &str) -> Option<Broken> {
        LIMITS.locate(&serde_json::from_str::<Box<RawValue>>(text).unwrap())
    }

    #[test]
    fn each_limit_names_where() {
        assert_eq!(check(json!({"a": [1, "ok"]})), None);
        let broken = check(json!({"a": [1, "too long"]})).unwrap();
        assert_eq!(broken.pointer, "/a/1");
        assert!(
            broken.error.contains("max_string_bytes (5)"),
            "{}",
            broken.error
        );
        let broken = check(json!({"x/y": {"a": 1, "b": 2, "c": 3}})).unwrap();
        assert_eq!(broken.pointer, "/x~1y");
        assert!(
            broken.error.contains("max_object_keys (2)"),
            "{}",
            broken.error
        );
        let broken = check(json!({"a": {"toolong": 1}})).unwrap();
        assert_eq!(broken.pointer, "/a/toolong");
        assert!(
            broken.error.contains("a key of 7 bytes"),
            "{}",
            broken.error
        );
        let mut deep = json!(1);
        for _ in 0..MAX_DEPTH {
            deep = json!([deep]);
        }
        assert_eq!(check(deep.clone()), None, "{MAX_DEPTH} levels are allowed");
        let broken = check(json!([deep])).unwrap();
        assert!(broken.error.contains("deeper than 64"), "{}", broken.error);
        assert_eq!(broken.pointer, format!("{}", "/0".repeat(MAX_DEPTH)));
    }

    #[test]
    fn pairs_already_read_are_checked_as_their_text_is() {
        let pairs = |value: serde_json::Value| -> Vec<(Cow<'static, str>, serde_json::Value)> {
            let map = value.as_object().unwrap().clone();
            map.into_iter().map(|(k, v)| (Cow::Owned(k), v)).collect()
        };
        let value = json!({"x": 1, "a": {"b": "too long", "c": 1}});
        let text = check(value.clone()).unwrap();
        let read = LIMITS.check_pairs(&pairs(value)).unwrap();
        assert_eq!(read, text);
        assert_eq!(read.pointer, "/a/b");
        assert_eq!(LIMITS.check_pairs(&pairs(json!({"a": "short"}))), None);
        // A key that is itself too long, at the top.
        let long_key = json!({"a-key-too-long": 1});
        assert_eq!(
            LIMITS.check_pairs(&pairs(long_key.clone())),
            check(long_key)
        );
    }

    #[test]
    fn escaped_keys_and_strings_are_measured_decoded() {
        // "\u0041" is one byte decoded, six as written.
        assert_eq!(
            check_text(r#"{"\u0041\u0041": "\u0041\u0041\u0041\u0041\u0041"}"#),
            None
        );
        let broken = check_text(r#"{"a~\u0041": "\u0041\u0041\u0041\u0041\u0041\u0041"}"#).unwrap();
        assert_eq!(broken.pointer, "/a~0A");
    }

    #[test]
    fn a_text_too_short_to_break_a_limit_is_not_read() {
        let limits = Limits {
            max_string_bytes: 10,
            max_object_keys: 2,
        };
        assert!(limits.cannot_break(r#"{"a":"b"}"#));
        assert!(
            !limits.cannot_break(r#"{"a":"0123456789"}"#),
            "longer than a string may be"
        );
        let wide = Limits {
            max_string_bytes: 1 << 20,
            max_object_keys: 1 << 20,
        };
        assert!(
            !wide.cannot_break(&format!(
                "{}{}",
                "[".repeat(MAX_DEPTH + 1),
                "]".repeat(MAX_DEPTH + 1)
            )),
            "deep enough to break"
        );
        assert!(wide.cannot_break(&format!(
            "{}{}",
            "[".repeat(MAX_DEPTH),
            "]".repeat(MAX_DEPTH)
        )));
        // Every text `cannot_break` passes is within the limits.
        for text in [
            r#"{"a":1,"b":2}"#,
            r#"{"a":{"b":{"c":[]}}}"#,
            r#""\u0041\u0041""#,
        ] {
            let raw = serde_json::from_str::<Box<RawValue>>(text).unwrap();
            if LIMITS.cannot_break(text) {
                assert_eq!(LIMITS.locate(&raw), None, "{text}");
            }
        }
    }

    #[test]
    fn a_number_out_of_range_is_refused_where_it_is() {
        let broken = check_text(r#"{"a": [1, 1e400]}"#).unwrap();
        assert_eq!(broken.pointer, "/a/1");
        assert!(broken.error.contains("out of range"), "{}", broken.error);
        assert!(!broken.error.contains("line"), "{}", broken.error);
    }
}
