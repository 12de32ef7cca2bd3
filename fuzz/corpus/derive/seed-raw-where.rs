#[tracked_event(name = "r#type.ok")]
struct r#Type where String: Clone {
    r#type: String,
    #[tracked_event(rename = "k", context)]
    user: core::option::Option<u64>,
}
