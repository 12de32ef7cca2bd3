#[tracked_event(name = "e")]
enum E { A, B(u8) }
