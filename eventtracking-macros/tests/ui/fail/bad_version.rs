use eventtracking::TrackedEvent;

#[derive(TrackedEvent)]
#[tracked_event(name = "a", version = "1")]
struct StringVersion;

#[derive(TrackedEvent)]
#[tracked_event(name = "b", version = 0)]
struct Zero;

#[derive(TrackedEvent)]
#[tracked_event(name = "c", version = 4294967296)]
struct TooBig;

#[derive(TrackedEvent)]
#[tracked_event(name = "d", version = -1)]
struct Negative;

#[derive(TrackedEvent)]
#[tracked_event(name = "e", version = 1.5)]
struct Float;

#[derive(TrackedEvent)]
#[tracked_event(name = "f", version = )]
struct Missing;

fn main() {}
