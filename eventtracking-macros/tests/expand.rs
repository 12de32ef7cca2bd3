//! What the derive generates, observed from the outside: the constants, the
//! data and context it writes, and the `EventTypeInfo` it registers.

use eventtracking::__private::inventory;
use eventtracking::catalog::SchemaGenerator;
use eventtracking::{EventTypeInfo, FieldLocation, JsonMap, TrackedEvent};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{json, Value};

/// A postal address.
#[derive(Serialize, JsonSchema)]
struct PostalAddress {
    street: String,
    zip: Option<u32>,
}

/// A learner created a postal address.
///
/// Emitted when the address form is saved.
#[derive(TrackedEvent)]
#[tracked_event(name = "expand.address.create", version = 7)]
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
    /// The course, in the context under another key.
    #[tracked_event(context, rename = "course")]
    course_id: Option<String>,
    note: Option<String>,
}

#[derive(TrackedEvent)]
#[tracked_event(name = "expand.ping")]
struct Ping;

fn sample() -> AddressCreate {
    AddressCreate {
        name: "Ada".into(),
        address: PostalAddress {
            street: "1 Main St".into(),
            zip: Some(12345),
        },
        cache: 99,
        user_id: 7,
        course_id: None,
        note: Some("hi".into()),
    }
}

fn registered(name: &str) -> &'static EventTypeInfo {
    let mut found = inventory::iter::<EventTypeInfo>
        .into_iter()
        .filter(|info| info.name == name);
    let info = found
        .next()
        .unwrap_or_else(|| panic!("{name} is not registered"));
    assert!(found.next().is_none(), "{name} is registered twice");
    info
}

#[test]
fn constants() {
    assert_eq!(AddressCreate::NAME, "expand.address.create");
    assert_eq!(AddressCreate::VERSION, 7);
    assert_eq!(AddressCreate::SCHEMA, "expand.address.create@7");
    const { assert!(AddressCreate::HAS_CONTEXT_FIELDS) };
    assert_eq!(Ping::NAME, "expand.ping");
    assert_eq!(Ping::VERSION, 1);
    assert_eq!(Ping::SCHEMA, "expand.ping@1");
    const { assert!(!Ping::HAS_CONTEXT_FIELDS) };
}

#[test]
fn data_is_the_data_fields_in_declaration_order() {
    let event = sample();
    assert_eq!(event.cache, 99);
    let mut out = Vec::new();
    event
        .serialize_data(&mut serde_json::Serializer::new(&mut out))
        .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"{"name":"Ada","addr":{"street":"1 Main St","zip":12345},"note":"hi"}"#
    );
    let data = Ping.serialize_data(serde_json::value::Serializer).unwrap();
    assert_eq!(data, json!({}));
}

#[test]
fn context_fields_go_into_the_context() {
    let mut context = JsonMap::new();
    context.insert("existing".into(), json!(true));
    sample().context_fields(&mut context).unwrap();
    assert_eq!(
        Value::Object(context),
        json!({"existing": true, "user_id": 7, "course": null})
    );
    let mut context = JsonMap::new();
    Ping.context_fields(&mut context).unwrap();
    assert!(context.is_empty());
}

#[test]
fn registered_type_info() {
    let info = registered("expand.address.create");
    assert_eq!(info.version, 7);
    assert_eq!(
        info.description,
        "A learner created a postal address.\n\nEmitted when the address form is saved."
    );
    assert_eq!(info.rust_type, "expand::AddressCreate");
    let fields: Vec<_> = info
        .fields
        .iter()
        .map(|f| (f.name, f.description, f.location, f.required))
        .collect();
    assert_eq!(
        fields,
        [
            ("name", "The addressee.", FieldLocation::Data, true),
            ("addr", "Where the address is.", FieldLocation::Data, true),
            ("user_id", "The learner.", FieldLocation::Context, true),
            (
                "course",
                "The course, in the context under another key.",
                FieldLocation::Context,
                false
            ),
            ("note", "", FieldLocation::Data, false),
        ]
    );
    let mut generator = SchemaGenerator::default();
    let schemas: Vec<Value> = info
        .fields
        .iter()
        .map(|f| (f.schema)(&mut generator))
        .collect();
    assert_eq!(schemas[0], json!({"type": "string"}));
    assert_eq!(schemas[1], json!({"$ref": "#/$defs/PostalAddress"}));
    assert_eq!(schemas[2]["type"], "integer");
    assert_eq!(schemas[3], json!({"type": ["string", "null"]}));
    let definitions = generator.take_definitions();
    assert_eq!(
        definitions["PostalAddress"]["properties"]["street"],
        json!({"type": "string"})
    );

    let ping = registered("expand.ping");
    assert_eq!(ping.description, "");
    assert_eq!(ping.rust_type, "expand::Ping");
    assert!(ping.fields.is_empty());
}

#[test]
fn catalog_entry() {
    let catalog = eventtracking::catalog().unwrap();
    let entry = catalog.get("expand.address.create", 7).unwrap();
    assert_eq!(entry.key, AddressCreate::SCHEMA);
    let schema = &entry.schema;
    assert_eq!(
        schema["properties"]["name"]["description"],
        "The addressee."
    );
    assert_eq!(schema["required"], json!(["name", "addr"]));
    assert!(schema["$defs"]["PostalAddress"].is_object(), "{schema:#}");
    assert!(catalog.get("expand.ping", 1).is_some());
}
