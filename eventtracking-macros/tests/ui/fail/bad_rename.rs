use eventtracking::TrackedEvent;

#[derive(TrackedEvent)]
#[tracked_event(name = "a")]
struct Renames {
    #[tracked_event(rename = "")]
    empty: u8,
    #[tracked_event(rename = 5)]
    not_a_string: u8,
    #[tracked_event(rename)]
    no_value: u8,
    /// Data key `id`.
    id: u8,
    #[tracked_event(rename = "id")]
    same_data_key: u8,
    /// Context key `user`.
    #[tracked_event(context, rename = "user")]
    user_id: u8,
    #[tracked_event(context)]
    user: u8,
    /// Data and context are separate: this one is fine.
    #[tracked_event(rename = "user")]
    data_user: u8,
}

fn main() {}
