use eventtracking::TrackedEvent;

#[derive(TrackedEvent)]
#[tracked_event(name = "a", verison = 1, description = "not a key", rename = "x")]
struct Container {
    #[tracked_event(skipp)]
    a: u8,
    #[tracked_event(name = "b", optional)]
    b: u8,
}

fn main() {}
