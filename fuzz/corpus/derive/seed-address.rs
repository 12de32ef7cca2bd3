/// A learner created a postal address.
///
/// Emitted when the address form is saved.
#[derive(TrackedEvent, Serialize)]
#[tracked_event(name = "address.create", version = 1)]
#[serde(rename_all = "camelCase")]
struct AddressCreate {
    /// The addressee.
    name: String,
    /// Where the address is.
    #[tracked_event(rename = "addr")]
    address: PostalAddress,
    #[tracked_event(skip)]
    cache: u32,
    /// The learner.
    #[tracked_event(context)]
    user_id: u64,
    note: Option<String>,
}
