//! Processors: keep, change or drop events on their way to the backends.
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

use std::fmt::Debug;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{BuildError, ProcessorError};
use crate::event::{Event, JsonMap};
use crate::registry::{ComponentConfig, ProcessorRegistration};

/// What a processor decided.
pub type ProcessResult = Result<Option<Arc<Event>>, ProcessorError>;

/// Keeps (`Ok(Some(event))`), changes (`Ok(Some(changed))`, copy-on-write
/// with [`Arc::make_mut`]) or drops (`Ok(None)`) an event.
///
/// Implementations must not block: tracker-level processors run inside `emit`.
///
/// ```
/// use std::sync::Arc;
/// use eventtracking_core::{Event, ProcessResult, Processor};
///
/// #[derive(Debug)]
/// struct Uppercase;
/// impl Processor for Uppercase {
///     fn name(&self) -> &str { "uppercase" }
///     fn process(&self, mut event: Arc<Event>) -> ProcessResult {
///         if let Some(s) = event.data().as_str().map(str::to_uppercase) {
///             *Arc::make_mut(&mut event).data_mut() = s.into();
///         }
///         Ok(Some(event))
///     }
/// }
/// let event = Arc::new(Event::new("a", "hi".into()).unwrap());
/// assert_eq!(Uppercase.process(event).unwrap().unwrap().data(), "HI");
/// ```
pub trait Processor: Send + Sync + Debug + 'static {
    /// A name for counters and error messages.
    fn name(&self) -> &str;
    /// Processes one event.
    fn process(&self, event: Arc<Event>) -> ProcessResult;
}

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
                    Err(ProcessorError {
                        processor: processor.name().to_owned(),
                        event: name.to_string(),
                        reason: format!("panicked: {}", panic_message(panic.as_ref())),
                    })
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

/// Matches event names against globs (`navigation.*`) and/or a regex.
#[derive(Debug, Clone)]
pub struct NameMatcher {
    globs: globset::GlobSet,
    regex: Option<regex::Regex>,
}

impl NameMatcher {
    /// A matcher from globs and an optional regex; an error names the bad pattern.
    pub fn new(globs: &[String], regex: Option<&str>) -> Result<Self, String> {
        let mut set = globset::GlobSetBuilder::new();
        for glob in globs {
            let compiled = globset::GlobBuilder::new(glob)
                .literal_separator(false)
                .build()
                .map_err(|e| format!("bad glob {glob:?}: {e}"))?;
            set.add(compiled);
        }
        let globs = set.build().map_err(|e| e.to_string())?;
        let regex = regex
            .map(|r| regex::Regex::new(r).map_err(|e| format!("bad regex {r:?}: {e}")))
            .transpose()?;
        Ok(NameMatcher { globs, regex })
    }

    /// Whether the name matches any glob or the regex.
    pub fn is_match(&self, name: &str) -> bool {
        self.globs.is_match(name) || self.regex.as_ref().is_some_and(|r| r.is_match(name))
    }
}

/// Keeps (`allow`) or drops (`block`) events by name.
///
/// ```
/// use std::sync::Arc;
/// use eventtracking_core::{Event, NameFilter, Processor};
/// let allow = NameFilter::allow(&["navigation.*".to_owned()], None).unwrap();
/// let nav = Arc::new(Event::new("navigation.request", serde_json::Value::Null).unwrap());
/// let other = Arc::new(Event::new("address.create", serde_json::Value::Null).unwrap());
/// assert!(allow.process(nav).unwrap().is_some());
/// assert!(allow.process(other).unwrap().is_none());
/// ```
#[derive(Debug, Clone)]
pub struct NameFilter {
    matcher: NameMatcher,
    keep_matches: bool,
}

impl NameFilter {
    /// Keeps only events whose name matches.
    pub fn allow(globs: &[String], regex: Option<&str>) -> Result<Self, String> {
        Ok(NameFilter {
            matcher: NameMatcher::new(globs, regex)?,
            keep_matches: true,
        })
    }

    /// Drops events whose name matches.
    pub fn block(globs: &[String], regex: Option<&str>) -> Result<Self, String> {
        Ok(NameFilter {
            matcher: NameMatcher::new(globs, regex)?,
            keep_matches: false,
        })
    }
}

impl Processor for NameFilter {
    fn name(&self) -> &str {
        if self.keep_matches {
            "allow"
        } else {
            "block"
        }
    }

    fn process(&self, event: Arc<Event>) -> ProcessResult {
        let keep = self.matcher.is_match(event.name()) == self.keep_matches;
        Ok(keep.then_some(event))
    }
}

/// Adds static fields to every event's context (e.g. host, app version).
#[derive(Debug, Clone)]
pub struct Enrich {
    fields: JsonMap,
    overwrite: bool,
}

impl Enrich {
    /// Adds `fields`; with `overwrite` false a key the context already has is kept.
    pub fn new(fields: JsonMap, overwrite: bool) -> Self {
        Enrich { fields, overwrite }
    }
}

impl Processor for Enrich {
    fn name(&self) -> &str {
        "enrich"
    }

    fn process(&self, mut event: Arc<Event>) -> ProcessResult {
        let needed = self
            .fields
            .iter()
            .any(|(k, v)| match event.context().get(k) {
                None => true,
                Some(existing) => self.overwrite && existing != v,
            });
        if needed {
            let context = Arc::make_mut(&mut event).context_mut();
            for (key, value) in &self.fields {
                if self.overwrite || !context.contains_key(key) {
                    context.insert(key.clone(), value.clone());
                }
            }
        }
        Ok(Some(event))
    }
}

/// Replaces (or removes) fields by dotted path, e.g. `data.password` or `context.session_id`.
///
/// ```
/// use std::sync::Arc;
/// use eventtracking_core::{Event, Processor, Redact};
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

/// Keeps a fraction of events, decided by the random bits of the event id,
/// so the same event is kept or dropped alike everywhere.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    threshold: u64,
    rate: f64,
}

impl Sample {
    /// `rate` in 0.0..=1.0: the fraction kept.
    pub fn new(rate: f64) -> Result<Self, String> {
        if !(0.0..=1.0).contains(&rate) {
            return Err(format!("rate {rate} must be between 0.0 and 1.0"));
        }
        let threshold = (rate * (1u64 << 62) as f64) as u64;
        Ok(Sample { threshold, rate })
    }

    /// The fraction kept.
    pub fn rate(&self) -> f64 {
        self.rate
    }
}

impl Processor for Sample {
    fn name(&self) -> &str {
        "sample"
    }

    fn process(&self, event: Arc<Event>) -> ProcessResult {
        // A UUIDv7 mixes a timestamp and a counter with its random bits, so
        // hash the whole id (splitmix64's finalizer) for an even spread.
        let id = event.id().as_u128();
        let mut x = (id as u64) ^ ((id >> 64) as u64).rotate_left(29);
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^= x >> 31;
        let random = x >> 2;
        Ok((random < self.threshold || self.rate >= 1.0).then_some(event))
    }
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

inventory::submit! { ProcessorRegistration::new("allow", "keeps only events whose name matches `names` globs or `regex`", build_allow) }
inventory::submit! { ProcessorRegistration::new("block", "drops events whose name matches `names` globs or `regex`", build_block) }
inventory::submit! { ProcessorRegistration::new("enrich", "adds static `fields` to the context", build_enrich) }
inventory::submit! { ProcessorRegistration::new("redact", "replaces or removes fields by path (`data.password`)", build_redact) }
inventory::submit! { ProcessorRegistration::new("sample", "keeps a `rate` fraction of events, by event id", build_sample) }

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
