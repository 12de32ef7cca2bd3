//! The seed example of the original library's README, event for event, with
//! typed events: their documentation is in `eventtracking catalog`.

use eventtracking::{TrackedEvent, TrackedEventExt, Tracker};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::json;

/// A page was requested.
///
/// Emitted by the web front end for every page view, before the page is served.
#[derive(TrackedEvent)]
#[tracked_event(name = "navigation.request", version = 1)]
pub(crate) struct NavigationRequest {
    /// The URL requested, with its query string.
    pub(crate) url: String,
}

/// A learner created a postal address.
///
/// Emitted when the address form is saved.
#[derive(TrackedEvent)]
#[tracked_event(name = "address.create", version = 1)]
pub(crate) struct AddressCreate {
    /// The addressee.
    pub(crate) name: String,
    /// Where the address is.
    pub(crate) address: PostalAddress,
}

/// A postal address.
#[derive(Serialize, JsonSchema)]
pub(crate) struct PostalAddress {
    /// The postal (ZIP) code.
    pub(crate) postal_code: String,
    /// The country, spelled out.
    pub(crate) country: String,
}

/// Emits the seed's three events: two `navigation.request` (the second in a
/// nested context that overrides `user_id`) and one `address.create`.
pub(crate) fn run(tracker: &Tracker) -> Result<(), Box<dyn std::error::Error>> {
    tracker.enter_context("outer", json!({"user_id": 10938}))?;
    NavigationRequest {
        url: "http://www.edx.org/some/path/1".into(),
    }
    .emit_to(tracker)?;
    {
        let _inner = tracker.context(
            "inner",
            json!({"user_id": 11111, "session_id": "2987lkjdyoioey"}),
        )?;
        NavigationRequest {
            url: "http://www.edx.org/some/path/2".into(),
        }
        .emit_to(tracker)?;
    }
    AddressCreate {
        name: "foo".into(),
        address: PostalAddress {
            postal_code: "90210".into(),
            country: "United States".into(),
        },
    }
    .emit_to(tracker)?;
    // The seed leaves `outer` entered; we exit it so `--count N` runs stay alike.
    tracker.exit_context("outer")?;
    Ok(())
}
