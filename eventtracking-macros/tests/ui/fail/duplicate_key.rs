use eventtracking::TrackedEvent;

#[derive(TrackedEvent)]
#[tracked_event(name = "a", version = 1, name = "b")]
#[tracked_event(version = 2, crate = "eventtracking", crate = "eventtracking")]
struct Container;

#[derive(TrackedEvent)]
#[tracked_event(name = "fields")]
struct Fields {
    #[tracked_event(rename = "a", rename = "b")]
    renamed: u8,
    #[tracked_event(context)]
    #[tracked_event(context)]
    user: u8,
    #[tracked_event(skip, skip)]
    skipped: u8,
}

fn main() {}
