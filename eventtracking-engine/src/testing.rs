//! Helpers for tests of code that emits events (feature `testing`).

use serde_json::{json, Value};

use crate::Tracker;

/// The example of the original library's README, emit for emit: two
/// `navigation.request` (the second in an inner context that overrides
/// `user_id`) and an `address.create`, all inside an `outer` context.
/// [`seed_example_events`] lists what they must look like.
///
/// ```
/// use std::time::Duration;
/// use eventtracking_engine::testing::{emit_seed_example, seed_example_events};
/// use eventtracking::InMemoryBackend;
/// use eventtracking_engine::Tracker;
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

/// `n` events cycling through the seed example's three payloads, each in
/// the context `{"user_id": 10938}`: a realistic stream for throughput
/// benchmarks of backends.
///
/// ```
/// let events = eventtracking_engine::testing::seed_example_stream(4);
/// assert_eq!(events[3].name(), "navigation.request");
/// assert_eq!(events[2].context()["user_id"], 10938);
/// ```
pub fn seed_example_stream(n: usize) -> Vec<std::sync::Arc<eventtracking_core::Event>> {
    let shapes = seed_example_events();
    (0..n)
        .map(|i| {
            let (name, _, data) = &shapes[i % shapes.len()];
            let mut event =
                eventtracking_core::Event::new(name, data.clone()).expect("seed names are valid");
            *event.context_mut() = shapes[0].1.as_object().cloned().unwrap_or_default();
            std::sync::Arc::new(event)
        })
        .collect()
}

/// A process paused with `kill -STOP` (a test server, to simulate an
/// outage), resumed with `kill -CONT` when this is dropped, however the test
/// ends (panics included).
#[derive(Debug)]
pub struct PausedProcess(String);

impl PausedProcess {
    /// Pauses the process `pid`; panics if `kill -STOP` fails.
    pub fn pause(pid: &str) -> Self {
        let status = std::process::Command::new("kill")
            .args(["-STOP", pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -STOP {pid} failed");
        PausedProcess(pid.to_owned())
    }
}

impl Drop for PausedProcess {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &self.0])
            .status();
    }
}
