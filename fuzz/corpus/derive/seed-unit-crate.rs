/** A heartbeat. */
#[tracked_event(name = "app.heartbeat", version = 2, crate = "eventtracking_core")]
struct Heartbeat;
