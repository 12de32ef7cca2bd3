//! The example of the original library's README: what it emits and what
//! must come out.

use std::sync::Arc;

use eventtracking::{Event, Tracker};
use serde_json::{json, Value};

/// The example of the original library's README, emit for emit: two
/// `navigation.request` (the second in an inner context that overrides
/// `user_id`) and an `address.create`, all inside an `outer` context.
/// [`seed_example_events`] lists what they must look like.
///
/// ```
/// use std::time::Duration;
/// use eventtracking::{InMemoryBackend, Tracker};
/// use eventtracking_testkit::{emit_seed_example, seed_example_events};
///
/// let memory = InMemoryBackend::new();
/// let tracker = Tracker::builder().with_backend("memory", memory.clone()).build().unwrap();
/// emit_seed_example(&tracker).unwrap();
/// tracker.flush(Duration::from_secs(5));
/// for (event, (name, context, data)) in memory.events().iter().zip(seed_example_events()) {
///     assert_eq!((event.name(), event.context(), event.data()), (name, context.as_object().unwrap(), &data));
/// }
/// ```
pub fn emit_seed_example(
    tracker: &Tracker,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let [first, second, third] = seed_example_events();
    tracker.enter_context("outer", &first.1)?;
    tracker.emit(first.0, first.2)?;
    {
        let _inner = tracker.context(
            "inner",
            json!({"user_id": 11111, "session_id": "2987lkjdyoioey"}),
        )?;
        tracker.emit(second.0, second.2)?;
    }
    tracker.emit(third.0, third.2)?;
    tracker.exit_context("outer")?;
    Ok(())
}

/// The seed example's events as `(name, context, data)`, in order.
pub fn seed_example_events() -> [(&'static str, Value, Value); 3] {
    [
        (
            "navigation.request",
            json!({"user_id": 10938}),
            json!({"url": "http://www.edx.org/some/path/1"}),
        ),
        (
            "navigation.request",
            json!({"user_id": 11111, "session_id": "2987lkjdyoioey"}),
            json!({"url": "http://www.edx.org/some/path/2"}),
        ),
        (
            "address.create",
            json!({"user_id": 10938}),
            json!({"name": "foo", "address": {"postal_code": "90210", "country": "United States"}}),
        ),
    ]
}

/// `n` events cycling through the seed example's three payloads, all in
/// the context `{"user_id": 10938}`, one map shared as a tracker's events
/// emitted in one context share it: a realistic stream for throughput
/// benchmarks of backends.
///
/// ```
/// let events = eventtracking_testkit::seed_example_stream(4);
/// assert_eq!(events[3].name(), "navigation.request");
/// assert_eq!(events[2].context()["user_id"], 10938);
/// assert!(std::sync::Arc::ptr_eq(events[0].shared_context(), events[3].shared_context()));
/// ```
pub fn seed_example_stream(n: usize) -> Vec<Arc<Event>> {
    let shapes = seed_example_events();
    // One map shared by every event, as the events a tracker emits in one
    // context share its merged context (a copy per event is what no emit
    // path makes, and it defeated the JSON writers' context caches).
    let context = Arc::new(shapes[0].1.as_object().cloned().unwrap_or_default());
    (0..n)
        .map(|i| {
            let (name, _, data) = &shapes[i % shapes.len()];
            Event::emitted_value(name, context.clone(), data.clone()).expect("seed names are valid")
        })
        .collect()
}
