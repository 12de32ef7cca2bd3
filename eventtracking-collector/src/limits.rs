//! The shape limits of an event's `data` and `context`: nesting depth,
//! string length and keys per object.

use serde_json::Value;

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
    /// The first limit `value` breaks, depth first.
    pub(crate) fn check(&self, value: &Value) -> Option<Broken> {
        let mut path = Vec::new();
        self.walk(value, 0, &mut path).map(|error| Broken {
            pointer: pointer(&path),
            error,
        })
    }

    /// On a break, `path` is left holding the way to it.
    fn walk<'a>(
        &self,
        value: &'a Value,
        depth: usize,
        path: &mut Vec<Segment<'a>>,
    ) -> Option<String> {
        match value {
            Value::String(text) if text.len() > self.max_string_bytes => Some(format!(
                "a string of {} bytes is longer than max_string_bytes ({})",
                text.len(),
                self.max_string_bytes
            )),
            Value::Array(_) | Value::Object(_) if depth >= MAX_DEPTH => Some(format!(
                "nested deeper than {MAX_DEPTH} levels of arrays and objects"
            )),
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    path.push(Segment::Index(index));
                    if let Some(error) = self.walk(item, depth + 1, path) {
                        return Some(error);
                    }
                    path.pop();
                }
                None
            }
            Value::Object(map) => {
                if map.len() > self.max_object_keys {
                    return Some(format!(
                        "an object of {} keys has more than max_object_keys ({})",
                        map.len(),
                        self.max_object_keys
                    ));
                }
                for (key, item) in map {
                    path.push(Segment::Key(key));
                    if key.len() > self.max_string_bytes {
                        return Some(format!(
                            "a key of {} bytes is longer than max_string_bytes ({})",
                            key.len(),
                            self.max_string_bytes
                        ));
                    }
                    if let Some(error) = self.walk(item, depth + 1, path) {
                        return Some(error);
                    }
                    path.pop();
                }
                None
            }
            _ => None,
        }
    }
}

/// One step of a JSON pointer.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Segment<'a> {
    Key(&'a str),
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

    #[test]
    fn each_limit_names_where() {
        assert_eq!(LIMITS.check(&json!({"a": [1, "ok"]})), None);
        let broken = LIMITS.check(&json!({"a": [1, "too long"]})).unwrap();
        assert_eq!(broken.pointer, "/a/1");
        let broken = LIMITS
            .check(&json!({"x/y": {"a": 1, "b": 2, "c": 3}}))
            .unwrap();
        assert_eq!(broken.pointer, "/x~1y");
        assert!(broken.error.contains("max_object_keys"));
        let mut deep = json!(1);
        for _ in 0..MAX_DEPTH {
            deep = json!([deep]);
        }
        assert_eq!(LIMITS.check(&deep), None, "{MAX_DEPTH} levels are allowed");
        let broken = LIMITS.check(&json!([deep])).unwrap();
        assert!(broken.error.contains("deeper than 64"), "{}", broken.error);
    }
}
