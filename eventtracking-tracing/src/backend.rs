//! The `tracing` backend: every event as one structured `tracing` event.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, OnceLock};

use eventtracking_core::registry::{BackendRegistration, ComponentConfig};
use eventtracking_core::{async_trait, Backend, BackendResult, BuildError, Event};
use serde::Deserialize;
use tracing::callsite::{Callsite, Identifier};
use tracing::field::{Field, FieldSet, Value};
use tracing::metadata::Kind;
use tracing::subscriber::Interest;
use tracing::{Level, Metadata};

/// The default target of the backend's `tracing` events: `"eventtracking"`.
pub const DEFAULT_TARGET: &str = "eventtracking";

/// The `name` of the backend's `tracing` events' metadata (what
/// [`TrackingLayer`](crate::TrackingLayer) recognizes, so that it never
/// tracks them again).
pub(crate) const EVENT_NAME: &str = "eventtracking tracked event";

/// The fields of every event the backend writes, in this order.
const FIELDS: [&str; 6] = ["name", "id", "timestamp", "schema", "context", "data"];

/// The `tracing` backend (engine `tracing`): hands every event to `tracing`
/// as one event at one level and target, so that an application's log
/// pipeline (a `fmt` layer, JSON logs, OpenTelemetry) carries it. The
/// analog of the original's `LoggerBackend`.
///
/// Fields of each `tracing` event: `name`, `id`, `timestamp` (RFC 3339 with
/// microseconds), `schema` (typed events only), `context` and `data` (both as
/// JSON text).
///
/// | key | default | meaning |
/// |---|---|---|
/// | `level` | `"info"` | `"trace"`, `"debug"`, `"info"`, `"warn"` or `"error"` |
/// | `target` | `"eventtracking"` | the `tracing` target (any non-empty text) |
///
/// Runtime: none of its own. Events are written by the engine's delivery
/// thread, so they reach the **global** subscriber
/// (`tracing::subscriber::set_global_default`, `.init()`), not one set with
/// `with_default` on another thread. Writing never fails: an event the
/// subscriber does not want (filtered out) is delivered all the same.
///
/// ```
/// use eventtracking_tracing::TracingBackend;
/// let backend = TracingBackend::new(tracing::Level::WARN, "audit").unwrap();
/// assert_eq!((backend.level(), backend.target()), (tracing::Level::WARN, "audit"));
/// assert!(TracingBackend::new(tracing::Level::INFO, "").is_err());
/// ```
#[derive(Debug, Clone)]
pub struct TracingBackend {
    callsite: &'static BackendCallsite,
}

/// Why a [`TracingBackend`] cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TracingBackendError {
    /// The target is empty.
    #[error("`target` is empty")]
    EmptyTarget,
}

impl TracingBackend {
    /// A backend writing at `level` to `target`.
    pub fn new(level: Level, target: &str) -> Result<Self, TracingBackendError> {
        if target.is_empty() {
            return Err(TracingBackendError::EmptyTarget);
        }
        Ok(TracingBackend {
            callsite: BackendCallsite::get(level, target),
        })
    }

    /// The level of its events.
    pub fn level(&self) -> Level {
        *self.callsite.metadata().level()
    }

    /// The target of its events.
    pub fn target(&self) -> &str {
        self.callsite.metadata().target()
    }

    fn write(&self, event: &Event) {
        let metadata = self.callsite.metadata();
        tracing::dispatcher::get_default(|dispatch| {
            if !dispatch.enabled(metadata) {
                return;
            }
            let Some([name, id, timestamp, schema, context, data]) = self.callsite.fields.get()
            else {
                return;
            };
            let name_text = event.name();
            let schema_text = event.schema();
            let id_text = event.id().to_string();
            let time_text = event.timestamp_rfc3339();
            let context_text = serde_json::to_string(event.context()).unwrap_or_default();
            let data_text = match event.raw_data() {
                Some(raw) => raw.to_owned(),
                None => serde_json::to_string(event.data()).unwrap_or_default(),
            };
            // JSON as it is (`context={"user_id":1}`), not quoted as a string.
            let context_json = tracing::field::display(&context_text);
            let data_json = tracing::field::display(&data_text);
            let values: [(&Field, Option<&dyn Value>); 6] = [
                (name, Some(&name_text as &dyn Value)),
                (id, Some(&id_text.as_str() as &dyn Value)),
                (timestamp, Some(&time_text.as_str() as &dyn Value)),
                (schema, schema_text.as_ref().map(|s| s as &dyn Value)),
                (context, Some(&context_json as &dyn Value)),
                (data, Some(&data_json as &dyn Value)),
            ];
            let values = metadata.fields().value_set(&values);
            dispatch.event(&tracing::Event::new(metadata, &values));
        });
    }
}

#[async_trait]
impl Backend for TracingBackend {
    async fn send_batch(&self, batch: &[Arc<Event>]) -> BackendResult {
        for event in batch {
            self.write(event);
        }
        Ok(())
    }
}

/// A callsite made at run time, for a target from the config: `tracing`'s
/// macros need their target when compiling. One per (level, target) in the
/// process, kept for its lifetime (as a macro's static callsite is).
#[derive(Debug)]
struct BackendCallsite {
    metadata: OnceLock<Metadata<'static>>,
    fields: OnceLock<[Field; 6]>,
}

static CALLSITES: LazyLock<Mutex<HashMap<(Level, String), &'static BackendCallsite>>> =
    LazyLock::new(Default::default);

impl BackendCallsite {
    fn get(level: Level, target: &str) -> &'static BackendCallsite {
        let mut callsites = CALLSITES.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(callsite) = callsites.get(&(level, target.to_owned())) {
            return callsite;
        }
        let callsite: &'static BackendCallsite = Box::leak(Box::new(BackendCallsite {
            metadata: OnceLock::new(),
            fields: OnceLock::new(),
        }));
        let target: &'static str = Box::leak(target.to_owned().into_boxed_str());
        let metadata = Metadata::new(
            EVENT_NAME,
            target,
            level,
            Some(file!()),
            Some(line!()),
            Some(module_path!()),
            FieldSet::new(&FIELDS, Identifier(callsite)),
            Kind::EVENT,
        );
        let metadata = callsite.metadata.get_or_init(|| metadata);
        let fields = metadata.fields();
        let field = |name: &str| fields.field(name);
        if let (Some(a), Some(b), Some(c), Some(d), Some(e), Some(f)) = (
            field(FIELDS[0]),
            field(FIELDS[1]),
            field(FIELDS[2]),
            field(FIELDS[3]),
            field(FIELDS[4]),
            field(FIELDS[5]),
        ) {
            let _ = callsite.fields.set([a, b, c, d, e, f]);
        }
        tracing::callsite::register(callsite);
        callsites.insert((level, target.to_owned()), callsite);
        callsite
    }
}

impl Callsite for BackendCallsite {
    fn set_interest(&self, _interest: Interest) {
        // Not cached: `write` asks the dispatcher (`enabled`) per event.
    }

    fn metadata(&self) -> &Metadata<'_> {
        match self.metadata.get() {
            Some(metadata) => metadata,
            // Set before the callsite is handed out or registered.
            None => unreachable!("a backend callsite is registered after its metadata is set"),
        }
    }
}

/// The options of engine `tracing`; see [`TracingBackend`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    level: Option<String>,
    target: Option<String>,
}

fn parse_level(text: &str) -> Option<Level> {
    match text.to_ascii_lowercase().as_str() {
        "trace" => Some(Level::TRACE),
        "debug" => Some(Level::DEBUG),
        "info" => Some(Level::INFO),
        "warn" | "warning" => Some(Level::WARN),
        "error" => Some(Level::ERROR),
        _ => None,
    }
}

fn build(config: &ComponentConfig) -> Result<Box<dyn Backend>, BuildError> {
    let options: Options = config.parse_options()?;
    let level = match options.level.as_deref() {
        None => Level::INFO,
        Some(text) => parse_level(text).ok_or_else(|| {
            config.invalid(format!(
                "`level` = {text:?}: expected \"trace\", \"debug\", \"info\", \"warn\" or \"error\""
            ))
        })?,
    };
    let target = options.target.as_deref().unwrap_or(DEFAULT_TARGET);
    let backend = TracingBackend::new(level, target)
        .map_err(|_| config.invalid("`target` = \"\": must not be empty"))?;
    Ok(Box::new(backend))
}

eventtracking_core::register_backend! {
    BackendRegistration::new(
        "tracing",
        "every event as one structured `tracing` event (`level`, `target`), for an app's log pipeline",
        build,
    )
}
