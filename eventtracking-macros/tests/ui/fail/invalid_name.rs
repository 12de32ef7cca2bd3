// The core's one name rule, checked at compile time in the expansion.
use eventtracking::TrackedEvent;

#[derive(TrackedEvent)]
#[tracked_event(name = "")]
struct Empty;

#[derive(TrackedEvent)]
#[tracked_event(name = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")]
struct TooLong;

#[derive(TrackedEvent)]
#[tracked_event(name = "address create")]
struct Space;

#[derive(TrackedEvent)]
#[tracked_event(name = "address\tcreate")]
struct Control;

fn main() {}
