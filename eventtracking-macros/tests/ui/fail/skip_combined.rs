use eventtracking::TrackedEvent;

#[derive(TrackedEvent)]
#[tracked_event(name = "a")]
struct Skips {
    #[tracked_event(skip, rename = "b")]
    renamed: u8,
    #[tracked_event(context)]
    #[tracked_event(skip)]
    in_context: u8,
    #[tracked_event(skip = true)]
    with_value: u8,
}

fn main() {}
