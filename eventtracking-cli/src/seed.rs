//! The seed example of the original library's README, event for event.

use eventtracking::Tracker;
use serde_json::json;

/// Emits the seed's three events: two `navigation.request` (the second in a
/// nested context that overrides `user_id`) and one `address.create`.
pub(crate) fn run(tracker: &Tracker) -> Result<(), Box<dyn std::error::Error>> {
    tracker.enter_context("outer", json!({"user_id": 10938}))?;
    tracker.emit(
        "navigation.request",
        json!({"url": "http://www.edx.org/some/path/1"}),
    )?;
    {
        let _inner = tracker.context(
            "inner",
            json!({"user_id": 11111, "session_id": "2987lkjdyoioey"}),
        )?;
        tracker.emit(
            "navigation.request",
            json!({"url": "http://www.edx.org/some/path/2"}),
        )?;
    }
    tracker.emit(
        "address.create",
        json!({
            "name": "foo",
            "address": {"postal_code": "90210", "country": "United States"}
        }),
    )?;
    // The seed leaves `outer` entered; we exit it so `--count N` runs stay alike.
    tracker.exit_context("outer")?;
    Ok(())
}
