//! The built-in processors and the chain that runs them.
//!
//! Tracker-level processors run on the emit path, in order, before any
//! backend sees the event; per-backend processors run in that backend's
//! delivery worker, so they never slow down `emit`. A processor error drops
//! the event for that route only; it is counted and logged.
//!
//! | engine | options | does |
//! |---|---|---|
//! | `allow` | `names` (globs), `regex` | keeps only matching event names |
//! | `block` | `names` (globs), `regex` | drops matching event names |
//! | `enrich` | `fields` (table), `overwrite` (false) | adds static fields to the context |
//! | `redact` | `paths` (`data.x.y`, `context.k`), `replacement` (`"[REDACTED]"`), `remove` (false) | hides fields |
//! | `sample` | `rate` (0.0–1.0) | keeps a fraction, decided by the event id (so every backend agrees) |

mod enrich;
mod name_filter;
mod redact;
mod sample;

use std::sync::Arc;

use eventtracking_core::registry::{ComponentConfig, ProcessorRegistration};
use eventtracking_core::{BuildError, Event, JsonMap, ProcessResult, Processor, ProcessorError};
use serde::Deserialize;
use serde_json::Value;

pub use enrich::Enrich;
pub use name_filter::{NameFilter, NameMatcher};
pub use redact::Redact;
pub use sample::Sample;

/// Runs processors in order; `None` once one of them drops the event.
/// A panicking processor is reported as a failure of that event, so that
/// `emit` and the delivery workers never panic because of one.
pub(crate) fn run_chain(processors: &[Arc<dyn Processor>], mut event: Arc<Event>) -> ProcessResult {
    for processor in processors {
        // The name is kept aside (a shared `Arc<str>`, no copy) for the error;
        // keeping the event itself would make `Arc::make_mut` copy it.
        let name = event.shared_name();
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| processor.process(event)))
                .unwrap_or_else(|panic| {
                    Err(ProcessorError::new(
                        processor.name(),
                        name.to_string(),
                        format!("panicked: {}", panic_message(panic.as_ref())),
                    ))
                });
        match outcome? {
            Some(next) => event = next,
            None => return Ok(None),
        }
    }
    Ok(Some(event))
}

/// The text of a panic payload.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterOptions {
    #[serde(default)]
    names: Vec<String>,
    regex: Option<String>,
}

fn filter_options(config: &ComponentConfig) -> Result<FilterOptions, BuildError> {
    let options: FilterOptions = config.parse_options()?;
    if options.names.is_empty() && options.regex.is_none() {
        return Err(config.invalid("give `names` (a list of globs) or `regex`"));
    }
    Ok(options)
}

fn build_allow(config: &ComponentConfig) -> Result<Arc<dyn Processor>, BuildError> {
    let o = filter_options(config)?;
    Ok(Arc::new(
        NameFilter::allow(&o.names, o.regex.as_deref()).map_err(|e| config.invalid(e))?,
    ))
}

fn build_block(config: &ComponentConfig) -> Result<Arc<dyn Processor>, BuildError> {
    let o = filter_options(config)?;
    Ok(Arc::new(
        NameFilter::block(&o.names, o.regex.as_deref()).map_err(|e| config.invalid(e))?,
    ))
}

fn build_enrich(config: &ComponentConfig) -> Result<Arc<dyn Processor>, BuildError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Options {
        fields: JsonMap,
        #[serde(default)]
        overwrite: bool,
    }
    let o: Options = config.parse_options()?;
    Ok(Arc::new(Enrich::new(o.fields, o.overwrite)))
}

fn build_redact(config: &ComponentConfig) -> Result<Arc<dyn Processor>, BuildError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Options {
        paths: Vec<String>,
        #[serde(default = "default_replacement")]
        replacement: Value,
        #[serde(default)]
        remove: bool,
    }
    fn default_replacement() -> Value {
        Value::String("[REDACTED]".into())
    }
    let o: Options = config.parse_options()?;
    Ok(Arc::new(
        Redact::new(&o.paths, o.replacement, o.remove).map_err(|e| config.invalid(e))?,
    ))
}

fn build_sample(config: &ComponentConfig) -> Result<Arc<dyn Processor>, BuildError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Options {
        rate: f64,
    }
    let o: Options = config.parse_options()?;
    Ok(Arc::new(
        Sample::new(o.rate).map_err(|e| config.invalid(e))?,
    ))
}

eventtracking_core::register_processor! { ProcessorRegistration::new("allow", "keeps only events whose name matches `names` globs or `regex`", build_allow) }
eventtracking_core::register_processor! { ProcessorRegistration::new("block", "drops events whose name matches `names` globs or `regex`", build_block) }
eventtracking_core::register_processor! { ProcessorRegistration::new("enrich", "adds static `fields` to the context", build_enrich) }
eventtracking_core::register_processor! { ProcessorRegistration::new("redact", "replaces or removes fields by path (`data.password`)", build_redact) }
eventtracking_core::register_processor! { ProcessorRegistration::new("sample", "keeps a `rate` fraction of events, by event id", build_sample) }

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(name: &str, data: Value) -> Arc<Event> {
        Arc::new(Event::new(name, data).unwrap())
    }

    #[test]
    fn block_and_regex() {
        let block = NameFilter::block(&[], Some("^debug\\.")).unwrap();
        assert!(block
            .process(event("debug.x", Value::Null))
            .unwrap()
            .is_none());
        assert!(block
            .process(event("nav.x", Value::Null))
            .unwrap()
            .is_some());
        assert!(NameFilter::allow(&["[".into()], None)
            .unwrap_err()
            .contains("\"[\""));
    }

    #[test]
    fn enrich_is_copy_on_write_and_keeps_existing_keys() {
        let fields = json!({"host": "web-1", "user_id": 0})
            .as_object()
            .unwrap()
            .clone();
        let enrich = Enrich::new(fields, false);
        let mut original = Event::new("a", Value::Null).unwrap();
        original.context_mut().insert("user_id".into(), json!(5));
        let original = Arc::new(original);
        let out = enrich.process(original.clone()).unwrap().unwrap();
        assert!(!Arc::ptr_eq(&out, &original));
        assert_eq!(out.context()["host"], "web-1");
        assert_eq!(out.context()["user_id"], 5);
        assert!(
            original.context().get("host").is_none(),
            "the shared original is untouched"
        );
        // Nothing to add: the very same allocation passes through.
        let again = enrich.process(out.clone()).unwrap().unwrap();
        assert!(Arc::ptr_eq(&again, &out));
    }

    #[test]
    fn redact_replaces_and_removes() {
        let redact = Redact::new(
            &["data.password".into(), "context.session.token".into()],
            json!("***"),
            false,
        )
        .unwrap();
        let mut e = Event::new("login", json!({"password": "p", "user": "u"})).unwrap();
        e.context_mut()
            .insert("session".into(), json!({"token": "t", "id": 1}));
        let out = redact.process(Arc::new(e)).unwrap().unwrap();
        assert_eq!(out.data(), &json!({"password": "***", "user": "u"}));
        assert_eq!(out.context()["session"], json!({"token": "***", "id": 1}));

        let remove = Redact::new(&["data.password".into()], Value::Null, true).unwrap();
        let out = remove
            .process(event("login", json!({"password": "p"})))
            .unwrap()
            .unwrap();
        assert_eq!(out.data(), &json!({}));
        assert!(Redact::new(&["password".into()], Value::Null, false)
            .unwrap_err()
            .contains("password"));
    }

    #[test]
    fn sample_is_deterministic_and_close_to_rate() {
        let sample = Sample::new(0.25).unwrap();
        let events: Vec<_> = (0..20_000).map(|_| event("a", Value::Null)).collect();
        let kept = events
            .iter()
            .filter(|e| sample.process((*e).clone()).unwrap().is_some())
            .count();
        assert!((4_000..6_000).contains(&kept), "kept {kept}");
        for e in events.iter().take(100) {
            let first = sample.process(e.clone()).unwrap().is_some();
            assert_eq!(first, sample.process(e.clone()).unwrap().is_some());
        }
        assert!(Sample::new(1.5).is_err());
        let none = Sample::new(0.0).unwrap();
        assert!(events
            .iter()
            .all(|e| none.process(e.clone()).unwrap().is_none()));
    }
}
