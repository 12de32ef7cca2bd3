//! A typed event's name follows the core's one rule, the rule untyped
//! events follow: what `validate_event_name` accepts compiles (non-ASCII,
//! `@`, `/`, 255 bytes).
#![deny(warnings)]

use eventtracking::TrackedEvent;

#[derive(TrackedEvent)]
#[tracked_event(name = "address.create@2")]
struct WithAt;

#[derive(TrackedEvent)]
#[tracked_event(name = "édition/1")]
struct NonAscii;

#[derive(TrackedEvent)]
#[tracked_event(name = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")]
struct Longest;

fn main() {
    for name in [WithAt::NAME, NonAscii::NAME, Longest::NAME] {
        eventtracking::validate_event_name(name).unwrap();
    }
    assert_eq!(Longest::NAME.len(), eventtracking::MAX_EVENT_NAME_BYTES);
    assert_eq!(WithAt::SCHEMA, "address.create@2@1");
}
