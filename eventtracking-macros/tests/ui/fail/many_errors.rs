//! One compilation reports every error, each at its own span.
use eventtracking::TrackedEvent;

#[derive(TrackedEvent)]
#[tracked_event(name = "has space", version = 0, colour = "red")]
#[tracked_event(name = "second")]
struct Many<T> {
    #[tracked_event(skip, context)]
    a: T,
    #[tracked_event(rename = "")]
    b: u8,
    #[tracked_event(renmae = "c")]
    c: u8,
    #[tracked_event(rename = "b2")]
    d: u8,
    b2: u8,
}

fn main() {}
