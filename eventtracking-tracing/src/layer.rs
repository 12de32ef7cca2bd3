//! The layer: marked `tracing` events → tracked events.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use eventtracking_core::{context, Event, JsonMap};
use eventtracking_engine::Tracker;
use serde_json::{Number, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The default target prefix that marks a `tracing` event as tracked: `"track"`.
pub const DEFAULT_TARGET_PREFIX: &str = "track";
/// The default field that marks a `tracing` event as tracked: `tracked = true`.
pub const DEFAULT_MARKER_FIELD: &str = "tracked";
/// The default field holding the event name: `name`.
pub const DEFAULT_NAME_FIELD: &str = "name";

/// A [`tracing_subscriber::Layer`] that turns marked `tracing` events into
/// tracked events.
///
/// **Which events.** An event is tracked when its target is the prefix
/// (default `"track"`) or starts with the prefix and `.` or `::`
/// (`target: "track.navigation.request"`), or when it has the marker field
/// set to `true` (default `tracked = true`). Every other event is left alone
/// at the cost of a prefix comparison and a look-up of the marker among its
/// field names.
///
/// **Name.** The name field (default `name`) when it is a string, else the
/// target's rest after the prefix (`"track.navigation.request"` →
/// `navigation.request`). An event with neither, or a name breaking the
/// event-name rule, is not tracked and is counted
/// ([`TrackingLayerStats::refused`]).
///
/// **Data.** Every other field of the event (its message as `message`),
/// without the marker and name fields: strings, booleans and numbers as JSON
/// scalars (a 128-bit integer beyond 64 bits as text, a non-finite float as
/// `null`), anything recorded with `?` or `%` as its text.
///
/// **Context.** The fields of the spans enclosing the event, root first,
/// inner spans winning on a shared key (the stack semantics of contexts),
/// laid over the explicit contexts current where the event is emitted
/// (`enter_context`, `Tracker::context`, `in_context`). So **span fields win
/// over explicit contexts** on a shared key: the span is usually the closer,
/// finer-grained scope (a request's span inside a service-wide context).
/// Span fields recorded later (`span.record(..)`) count from then on. Spans
/// are followed across `.await` as `tracing` follows them
/// ([`tracing::Instrument`]), and task-local contexts (`in_context`) as the
/// tracker does.
///
/// **Filters.** The layer sees only what the subscriber's global filters let
/// through: an `EnvFilter` added with `.with(filter)` to the whole subscriber
/// also hides tracked events below its level. To track events whatever the
/// log level, give the filter to the formatting layer only
/// (`fmt::layer().with_filter(EnvFilter::..)`).
///
/// Events of the [`TracingBackend`](crate::TracingBackend) are never tracked
/// again, whatever their target.
///
/// ```
/// use eventtracking_tracing::TrackingLayer;
/// use tracing_subscriber::{fmt, prelude::*, EnvFilter};
///
/// let layer = TrackingLayer::builder().build(); // the default tracker
/// let stats = layer.stats();
/// let subscriber = tracing_subscriber::registry()
///     .with(fmt::layer().with_filter(EnvFilter::new("warn")))
///     .with(layer);
/// # drop(subscriber);
/// assert_eq!(stats.tracked(), 0);
/// ```
#[derive(Debug)]
pub struct TrackingLayer {
    tracker: Option<Tracker>,
    target_prefix: Cow<'static, str>,
    marker_field: Cow<'static, str>,
    name_field: Cow<'static, str>,
    stats: TrackingLayerStats,
}

/// Builds a [`TrackingLayer`]; see [`TrackingLayer::builder`].
#[derive(Debug)]
pub struct TrackingLayerBuilder {
    layer: TrackingLayer,
}

/// What a [`TrackingLayer`] did: a handle that stays valid after the layer
/// moved into its subscriber.
#[derive(Debug, Clone, Default)]
pub struct TrackingLayerStats {
    counters: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    tracked: AtomicU64,
    refused: AtomicU64,
}

impl TrackingLayerStats {
    /// Marked events handed to the tracker.
    pub fn tracked(&self) -> u64 {
        self.counters.tracked.load(Relaxed)
    }

    /// Marked events that could not be tracked: no name, an invalid name, or
    /// refused by the tracker (shut down).
    pub fn refused(&self) -> u64 {
        self.counters.refused.load(Relaxed)
    }
}

impl TrackingLayer {
    /// Starts building a layer: the default tracker
    /// ([`eventtracking_engine::default_tracker`]), target prefix `"track"`,
    /// marker field `tracked`, name field `name`.
    pub fn builder() -> TrackingLayerBuilder {
        TrackingLayerBuilder {
            layer: TrackingLayer {
                tracker: None,
                target_prefix: Cow::Borrowed(DEFAULT_TARGET_PREFIX),
                marker_field: Cow::Borrowed(DEFAULT_MARKER_FIELD),
                name_field: Cow::Borrowed(DEFAULT_NAME_FIELD),
                stats: TrackingLayerStats::default(),
            },
        }
    }

    /// The layer's counters.
    pub fn stats(&self) -> TrackingLayerStats {
        self.stats.clone()
    }

    /// `Some(rest of the target)` when the target carries the prefix
    /// (`Some("")` for the bare prefix).
    fn target_name<'a>(&self, target: &'a str) -> Option<&'a str> {
        let rest = target.strip_prefix(&*self.target_prefix)?;
        if rest.is_empty() {
            return Some("");
        }
        rest.strip_prefix('.').or_else(|| rest.strip_prefix("::"))
    }

    fn tracker(&self) -> Tracker {
        match &self.tracker {
            Some(tracker) => tracker.clone(),
            None => eventtracking_engine::default_tracker(),
        }
    }
}

impl TrackingLayerBuilder {
    /// Emits to `tracker` instead of the default tracker.
    pub fn with_tracker(mut self, tracker: Tracker) -> Self {
        self.layer.tracker = Some(tracker);
        self
    }

    /// The target prefix marking tracked events (default `"track"`); an empty
    /// prefix turns marking by target off.
    pub fn with_target_prefix(mut self, prefix: impl Into<Cow<'static, str>>) -> Self {
        self.layer.target_prefix = prefix.into();
        self
    }

    /// The field marking tracked events when `true` (default `tracked`).
    pub fn with_marker_field(mut self, field: impl Into<Cow<'static, str>>) -> Self {
        self.layer.marker_field = field.into();
        self
    }

    /// The field holding the event name (default `name`).
    pub fn with_name_field(mut self, field: impl Into<Cow<'static, str>>) -> Self {
        self.layer.name_field = field.into();
        self
    }

    /// The layer.
    pub fn build(self) -> TrackingLayer {
        self.layer
    }
}

/// The fields of one span, as JSON, kept in the span's extensions; shared,
/// so that an event inside one span with fields (and no explicit context)
/// takes them as its context without a copy.
#[derive(Debug)]
struct SpanFields(Arc<JsonMap>);

impl<S> Layer<S> for TrackingLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.fields().is_empty() {
            return;
        }
        let mut fields = JsonMap::new();
        attrs.record(&mut JsonVisitor::new(&mut fields));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(Arc::new(fields)));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        match extensions.get_mut::<SpanFields>() {
            // Copied first if an event still holds the old fields.
            Some(SpanFields(fields)) => {
                values.record(&mut JsonVisitor::new(Arc::make_mut(fields)));
            }
            None => {
                let mut fields = JsonMap::new();
                values.record(&mut JsonVisitor::new(&mut fields));
                extensions.insert(SpanFields(Arc::new(fields)));
            }
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let metadata = event.metadata();
        if metadata.name() == crate::backend::EVENT_NAME {
            return;
        }
        let by_target = if self.target_prefix.is_empty() {
            None
        } else {
            self.target_name(metadata.target())
        };
        let has_marker = metadata.fields().field(&*self.marker_field).is_some();
        if by_target.is_none() && !has_marker {
            return;
        }
        let mut data = JsonMap::new();
        event.record(&mut JsonVisitor::new(&mut data));
        let marked = match data.remove(&*self.marker_field) {
            Some(marker) => marker == Value::Bool(true) || by_target.is_some(),
            None => by_target.is_some(),
        };
        if !marked {
            return;
        }
        let name = match data.remove(&*self.name_field) {
            Some(Value::String(name)) => Cow::Owned(name),
            Some(other) => {
                // Not a name: keep it as data.
                data.insert(self.name_field.to_string(), other);
                Cow::Borrowed(by_target.unwrap_or_default())
            }
            None => Cow::Borrowed(by_target.unwrap_or_default()),
        };
        let mut context = context::current();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(SpanFields(fields)) = span.extensions().get::<SpanFields>() {
                    if context.is_empty() {
                        context = fields.clone();
                    } else {
                        let merged = Arc::make_mut(&mut context);
                        for (key, value) in fields.iter() {
                            merged.insert(key.clone(), value.clone());
                        }
                    }
                }
            }
        }
        let emitted = Event::emitted_value(&name, context, Value::Object(data))
            .map_err(drop)
            .and_then(|event| self.tracker().emit_event(event).map_err(drop));
        match emitted {
            Ok(()) => self.stats.counters.tracked.fetch_add(1, Relaxed),
            Err(()) => self.stats.counters.refused.fetch_add(1, Relaxed),
        };
    }
}

/// Records `tracing` fields as JSON values.
struct JsonVisitor<'a> {
    map: &'a mut JsonMap,
}

impl<'a> JsonVisitor<'a> {
    fn new(map: &'a mut JsonMap) -> Self {
        JsonVisitor { map }
    }

    fn put(&mut self, field: &Field, value: Value) {
        self.map.insert(field.name().to_owned(), value);
    }
}

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(
            field,
            Number::from_f64(value).map_or(Value::Null, Value::Number),
        );
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        let value =
            i64::try_from(value).map_or_else(|_| Value::String(value.to_string()), Value::from);
        self.put(field, value);
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        let value =
            u64::try_from(value).map_or_else(|_| Value::String(value.to_string()), Value::from);
        self.put(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_owned()));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::String(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }
}
