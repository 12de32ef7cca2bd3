use eventtracking::TrackedEvent;

#[derive(TrackedEvent)]
#[tracked_event(name = address.create)]
struct NotAString;

fn main() {}
