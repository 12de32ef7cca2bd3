//! `redact`: fields replaced or removed by path.

use serde_json::Value;
use std::sync::Arc;

use eventtracking_core::{Event, ProcessResult, Processor};

/// Replaces (or removes) fields by dotted path, e.g. `data.password` or `context.session_id`.
///
/// ```
/// use std::sync::Arc;
/// use eventtracking::{Event, Processor, Redact};
/// let redact = Redact::new(&["data.user.password".to_owned()], "[REDACTED]".into(), false).unwrap();
/// let event = Arc::new(Event::new("login", serde_json::json!({"user": {"password": "hunter2"}})).unwrap());
/// let out = redact.process(event).unwrap().unwrap();
/// assert_eq!(out.data()["user"]["password"], "[REDACTED]");
/// ```
#[derive(Debug, Clone)]
pub struct Redact {
    paths: Vec<(RedactRoot, Vec<String>)>,
    replacement: Value,
    remove: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RedactRoot {
    Data,
    Context,
}

impl Redact {
    /// Paths start with `data.` or `context.`; an error names the bad path.
    pub fn new(paths: &[String], replacement: Value, remove: bool) -> Result<Self, String> {
        let parsed = paths
            .iter()
            .map(|path| {
                let mut parts = path.split('.');
                let root = match parts.next() {
                    Some("data") => RedactRoot::Data,
                    Some("context") => RedactRoot::Context,
                    _ => {
                        return Err(format!(
                            "path {path:?} must start with `data.` or `context.`"
                        ))
                    }
                };
                let rest: Vec<String> = parts.map(str::to_owned).collect();
                if rest.is_empty() || rest.iter().any(String::is_empty) {
                    return Err(format!(
                        "path {path:?} must name a field, e.g. `data.password`"
                    ));
                }
                Ok((root, rest))
            })
            .collect::<Result<_, _>>()?;
        Ok(Redact {
            paths: parsed,
            replacement,
            remove,
        })
    }

    fn lookup<'a>(mut value: &'a Value, path: &[String]) -> Option<&'a Value> {
        for key in path {
            value = value.as_object()?.get(key)?;
        }
        Some(value)
    }

    fn apply(&self, target: &mut Value, path: &[String]) {
        let Some((last, parents)) = path.split_last() else {
            return;
        };
        let mut value = target;
        for key in parents {
            match value.as_object_mut().and_then(|m| m.get_mut(key)) {
                Some(next) => value = next,
                None => return,
            }
        }
        if let Some(map) = value.as_object_mut() {
            if self.remove {
                map.remove(last);
            } else if let Some(slot) = map.get_mut(last) {
                *slot = self.replacement.clone();
            }
        }
    }
}

impl Processor for Redact {
    fn name(&self) -> &str {
        "redact"
    }

    fn process(&self, mut event: Arc<Event>) -> ProcessResult {
        let present = self.paths.iter().any(|(root, path)| match root {
            RedactRoot::Data => Self::lookup(event.data(), path).is_some(),
            RedactRoot::Context => path
                .split_first()
                .and_then(|(first, rest)| Self::lookup(event.context().get(first)?, rest))
                .is_some(),
        });
        if !present {
            return Ok(Some(event));
        }
        let event_mut = Arc::make_mut(&mut event);
        for (root, path) in &self.paths {
            match root {
                RedactRoot::Data => self.apply(event_mut.data_mut(), path),
                RedactRoot::Context => {
                    let mut context = Value::Object(std::mem::take(event_mut.context_mut()));
                    self.apply(&mut context, path);
                    if let Value::Object(map) = context {
                        *event_mut.context_mut() = map;
                    }
                }
            }
        }
        Ok(Some(event))
    }
}
