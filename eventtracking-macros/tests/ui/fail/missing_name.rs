use eventtracking::TrackedEvent;

#[derive(TrackedEvent)]
struct NoAttribute {
    value: u8,
}

#[derive(TrackedEvent)]
#[tracked_event(version = 2)]
struct NoName;

fn main() {}
