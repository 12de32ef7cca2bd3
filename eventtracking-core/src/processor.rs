//! Processors: keep, change or drop events on their way to the backends.
//!
//! The [`Processor`] trait lives here so that a processor crate depends on
//! the core only; the built-in processors (`allow`, `block`, `enrich`,
//! `redact`, `sample`) and the code that runs processors are in the engine.

use std::fmt::Debug;
use std::sync::Arc;

use crate::error::ProcessorError;
use crate::event::Event;

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

/// A processor made of a closure, named for counters and errors.
///
/// ```
/// use std::sync::Arc;
/// use eventtracking_core::{processor_fn, Event, Processor};
///
/// let drop_debug = processor_fn("drop-debug", |event: Arc<Event>| {
///     Ok((!event.name().starts_with("debug.")).then_some(event))
/// });
/// let debug = Arc::new(Event::new("debug.trace", serde_json::Value::Null).unwrap());
/// assert!(drop_debug.process(debug).unwrap().is_none());
/// assert_eq!(drop_debug.name(), "drop-debug");
/// ```
pub fn processor_fn<F>(name: impl Into<String>, process: F) -> FnProcessor<F>
where
    F: Fn(Arc<Event>) -> ProcessResult + Send + Sync + 'static,
{
    FnProcessor {
        name: name.into(),
        process,
    }
}

/// A [`Processor`] made by [`processor_fn`].
pub struct FnProcessor<F> {
    name: String,
    process: F,
}

impl<F> Debug for FnProcessor<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnProcessor")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<F> Processor for FnProcessor<F>
where
    F: Fn(Arc<Event>) -> ProcessResult + Send + Sync + 'static,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn process(&self, event: Arc<Event>) -> ProcessResult {
        (self.process)(event)
    }
}
