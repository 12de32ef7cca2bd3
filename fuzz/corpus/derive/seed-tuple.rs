#[tracked_event(name = "t", version = 4294967295)]
struct T(u8, #[tracked_event(skip)] String);
