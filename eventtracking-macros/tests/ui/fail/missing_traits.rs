//! A nested type without `Serialize` or `JsonSchema`: reported at the field's type.
use eventtracking::TrackedEvent;

struct NotSerializable;

#[derive(serde::Serialize)]
struct NoSchema;

#[derive(TrackedEvent)]
#[tracked_event(name = "a")]
struct Event {
    plain: u8,
    data: NotSerializable,
    #[tracked_event(context)]
    context: NoSchema,
}

fn main() {}
