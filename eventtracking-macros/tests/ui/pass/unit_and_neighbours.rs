//! Unit structs, and several derives in one module (their generated helpers
//! must not collide), also in a module without the prelude.
#![deny(warnings)]

mod events {
    use eventtracking::TrackedEvent;

    /// Ping.
    #[derive(TrackedEvent)]
    #[tracked_event(name = "ping")]
    pub struct Ping;

    #[derive(TrackedEvent)]
    #[tracked_event(name = "pong", version = 2)]
    pub struct Pong {}

    /// Has a field: its schema helper sits next to the other types' ones.
    #[derive(TrackedEvent)]
    #[tracked_event(name = "pang")]
    pub struct Pang {
        pub a: u8,
    }

    #[derive(TrackedEvent)]
    #[tracked_event(name = "peng")]
    pub struct Peng {
        pub a: u8,
        #[tracked_event(context)]
        pub b: u8,
    }
}

#[no_implicit_prelude]
mod bare {
    /// No prelude here: the generated code names everything by path.
    #[derive(::eventtracking::TrackedEvent)]
    #[tracked_event(name = "bare")]
    pub struct Bare {
        pub text: ::std::string::String,
        pub maybe: ::std::option::Option<u8>,
        #[tracked_event(context)]
        pub user: u64,
    }
}

use eventtracking::TrackedEvent;

fn main() {
    assert_eq!(events::Ping::SCHEMA, "ping@1");
    assert!(!events::Ping::HAS_CONTEXT_FIELDS);
    let data = events::Ping.serialize_data(serde_json::value::Serializer).unwrap();
    assert_eq!(data, serde_json::json!({}));
    assert_eq!(events::Pong::SCHEMA, "pong@2");
    let data = events::Pong {}.serialize_data(serde_json::value::Serializer).unwrap();
    assert_eq!(data, serde_json::json!({}));
    assert_eq!(events::Pang::NAME, "pang");
    let data = events::Pang { a: 1 }.serialize_data(serde_json::value::Serializer).unwrap();
    assert_eq!(data, serde_json::json!({"a": 1}));
    assert!(events::Peng::HAS_CONTEXT_FIELDS);
    let data = events::Peng { a: 1, b: 2 }.serialize_data(serde_json::value::Serializer).unwrap();
    assert_eq!(data, serde_json::json!({"a": 1}));
    let bare = bare::Bare { text: "x".into(), maybe: Some(1), user: 2 };
    let data = bare.serialize_data(serde_json::value::Serializer).unwrap();
    assert_eq!(data, serde_json::json!({"text": "x", "maybe": 1}));

    let catalog = eventtracking::catalog().unwrap();
    for key in ["ping@1", "pong@2", "pang@1", "peng@1", "bare@1"] {
        assert!(catalog.by_key(key).is_some(), "{key} is not in the catalog");
    }
    assert_eq!(catalog.by_key("ping@1").unwrap().description, "Ping.");
    assert!(catalog
        .by_key("bare@1")
        .unwrap()
        .rust_type
        .ends_with("::bare::Bare"));
}
