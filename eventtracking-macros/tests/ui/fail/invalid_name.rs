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

#[derive(TrackedEvent)]
#[tracked_event(name = "address.create@2")]
struct At;

#[derive(TrackedEvent)]
#[tracked_event(name = address.create)]
struct NotAString;

fn main() {}
