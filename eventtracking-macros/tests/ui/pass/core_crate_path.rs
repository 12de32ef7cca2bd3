//! `crate = "..."`: deriving with `eventtracking-core` directly.

use eventtracking_core::TrackedEvent;

/// Registered through the core crate.
#[derive(TrackedEvent)]
#[tracked_event(crate = "eventtracking_core", name = "core.direct", version = 4294967295)]
struct Direct {
    value: u8,
}

/// An absolute path works too.
#[derive(TrackedEvent)]
#[tracked_event(crate = "::eventtracking_core", name = "core.absolute")]
struct Absolute;

fn main() {
    assert_eq!(Direct::SCHEMA, "core.direct@4294967295");
    assert_eq!(Absolute::VERSION, 1);
    let data = Absolute.serialize_data(serde_json::value::Serializer).unwrap();
    assert_eq!(data, serde_json::json!({}));
    let data = Direct { value: 1 }.serialize_data(serde_json::value::Serializer).unwrap();
    assert_eq!(data, serde_json::json!({"value": 1}));
    let catalog = eventtracking_core::catalog().unwrap();
    let entry = catalog.get("core.direct", u32::MAX).unwrap();
    assert_eq!(entry.description, "Registered through the core crate.");
    assert!(catalog.get("core.absolute", 1).is_some());
}
