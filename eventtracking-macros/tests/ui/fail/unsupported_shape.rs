use eventtracking::TrackedEvent;

#[derive(TrackedEvent)]
#[tracked_event(name = "enum")]
enum Enum {
    A,
}

#[derive(TrackedEvent)]
#[tracked_event(name = "union")]
union Union {
    a: u8,
}

#[derive(TrackedEvent)]
#[tracked_event(name = "tuple")]
struct Tuple(u8, String);

#[derive(TrackedEvent)]
#[tracked_event(name = "generic")]
struct Generic<T> {
    value: T,
}

#[derive(TrackedEvent)]
#[tracked_event(name = "lifetime")]
struct Lifetime<'a> {
    value: &'a str,
}

fn main() {}
