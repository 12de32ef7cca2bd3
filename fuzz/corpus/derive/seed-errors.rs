#[tracked_event(name = "", version = 0, version = 2, colour = "red", crate = "not a path")]
#[tracked_event(name = "a b@1")]
struct Bad<T> {
    #[tracked_event(skip, skip, rename = 3, context = true)]
    a: T,
    #[tracked_event(rename = "a")]
    b: u8,
    #[tracked_event(context, skip)]
    c: u8,
}
