//! Nested types, `rename`, `skip`, `context`, `Option`, raw names and
//! foreign attributes (ignored by the derive).
#![forbid(unsafe_code)]
#![deny(warnings, missing_docs)]

use std::cell::Cell;

use eventtracking::{JsonMap, TrackedEvent};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::json;

/// A city.
#[derive(Serialize, JsonSchema)]
pub struct City {
    name: String,
    zip: Option<u32>,
}

/// A postal address.
#[derive(Serialize, JsonSchema)]
pub struct PostalAddress {
    street: String,
    city: City,
}

/// A learner created a postal address.
///
/// Emitted when the address form is saved.
#[derive(TrackedEvent, Serialize)]
#[tracked_event(name = "address.create", version = 3)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub struct AddressCreate {
    /// The addressee.
    name: String,
    /// Where the address is.
    #[tracked_event(rename = "addr")]
    #[serde(rename = "not_used_by_the_derive")]
    address: PostalAddress,
    /// Neither `Serialize` nor `JsonSchema`: fine, it is skipped.
    #[tracked_event(skip)]
    #[serde(skip)]
    cache: Cell<u32>,
    /// The learner.
    #[tracked_event(context)]
    user_id: u64,
    note: Option<String>,
    /// A raw identifier: the key is `type`.
    r#type: Vec<u8>,
}

fn main() {
    let event = AddressCreate {
        name: "Ada".into(),
        address: PostalAddress {
            street: "1 Main St".into(),
            city: City { name: "London".into(), zip: None },
        },
        cache: Cell::new(1),
        user_id: 7,
        note: None,
        r#type: vec![1],
    };
    assert_eq!(event.cache.get(), 1);
    assert_eq!(AddressCreate::SCHEMA, "address.create@3");
    assert!(AddressCreate::HAS_CONTEXT_FIELDS);
    let data = event.serialize_data(serde_json::value::Serializer).unwrap();
    assert_eq!(
        data,
        json!({
            "name": "Ada",
            "addr": {"street": "1 Main St", "city": {"name": "London", "zip": null}},
            "note": null,
            "type": [1],
        })
    );
    let mut context = JsonMap::new();
    event.context_fields(&mut context).unwrap();
    assert_eq!(serde_json::Value::Object(context), json!({"user_id": 7}));
}
