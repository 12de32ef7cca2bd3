//! Typed events (`#[derive(TrackedEvent)]`), the catalog, the publish hook
//! and schema validation.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use common::{dead_letters, delivery, DEADLINE};
use eventtracking::{
    async_trait, catalog, Backend, BackendError, BackendResult, BufferKind, CatalogEntry, Event,
    InMemoryBackend, TrackedEvent, TrackedEventExt, Tracker,
};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{json, Value};

/// A postal address.
#[derive(Serialize, JsonSchema, Clone)]
struct PostalAddress {
    /// The postal code.
    postal_code: String,
    /// The country.
    country: String,
}

/// A learner created a postal address.
///
/// Emitted when the form is saved.
#[derive(TrackedEvent, Clone)]
#[tracked_event(crate = "eventtracking", name = "test.address.create", version = 3)]
struct AddressCreate {
    /// The addressee.
    name: String,
    /// Where the address is.
    #[tracked_event(rename = "postal")]
    address: PostalAddress,
    /// Labels, if any.
    tags: Option<Vec<String>>,
    /// Not part of the event.
    #[tracked_event(skip)]
    #[allow(dead_code)]
    cached: u64,
    /// The learner: goes into the context.
    #[tracked_event(context)]
    user_id: u64,
}

/// A ping with no fields.
#[derive(TrackedEvent)]
#[tracked_event(crate = "eventtracking", name = "test.ping")]
struct Ping;

fn sample() -> AddressCreate {
    AddressCreate {
        name: "foo".into(),
        address: PostalAddress {
            postal_code: "90210".into(),
            country: "United States".into(),
        },
        tags: None,
        cached: 99,
        user_id: 10938,
    }
}

fn memory_tracker(dir: &std::path::Path) -> (Tracker, InMemoryBackend) {
    let memory = InMemoryBackend::new();
    let tracker = Tracker::builder()
        .with_delivery(delivery(dir))
        .with_backend("memory", memory.clone())
        .build()
        .unwrap();
    (tracker, memory)
}

#[test]
fn typed_emit_equals_the_untyped_emit_of_the_same_data() {
    let dir = tempfile::tempdir().unwrap();
    let (tracker, memory) = memory_tracker(dir.path());
    let _outer = tracker
        .context("outer", json!({"session_id": "s1", "user_id": 1}))
        .unwrap();
    sample().emit_to(&tracker).unwrap();
    {
        let _learner = tracker
            .context("learner", json!({"user_id": 10938}))
            .unwrap();
        tracker
            .emit(
                "test.address.create",
                json!({"name": "foo", "postal": {"postal_code": "90210", "country": "United States"}, "tags": null}),
            )
            .unwrap();
    }
    tracker.flush(DEADLINE);
    let events = memory.events();
    let (typed, untyped) = (&events[0], &events[1]);
    assert_eq!(typed.name(), untyped.name());
    assert_eq!(typed.data(), untyped.data());
    // The context field overrides the same key of the enclosing contexts.
    assert_eq!(typed.context(), untyped.context());
    assert_eq!(typed.context()["user_id"], 10938);
    assert_eq!(typed.schema(), Some("test.address.create@3"));
    assert_eq!(untyped.schema(), None);
    // The skipped field is nowhere; the renamed one under its new name.
    let line: Value = serde_json::from_slice(typed.to_json_bytes()).unwrap();
    assert_eq!(line["schema"], "test.address.create@3");
    assert!(line["data"].get("cached").is_none() && line["data"].get("address").is_none());
    assert!(line["data"].get("user_id").is_none());
    // The JSON line reads back as the same event, schema included.
    let back: Event = serde_json::from_slice(typed.to_json_bytes()).unwrap();
    assert_eq!(&back, &**typed);
    assert_eq!(AddressCreate::NAME, "test.address.create");
    assert_eq!(AddressCreate::VERSION, 3);
    assert_eq!(AddressCreate::SCHEMA, "test.address.create@3");
}

#[test]
fn unit_structs_emit_empty_data_on_the_default_tracker() {
    let dir = tempfile::tempdir().unwrap();
    let (tracker, memory) = memory_tracker(dir.path());
    let previous = eventtracking::register_tracker("default", tracker.clone());
    Ping.emit().unwrap();
    tracker.flush(DEADLINE);
    let events = memory.events();
    let ping = events.iter().find(|e| e.name() == "test.ping").unwrap();
    assert_eq!(ping.data(), &json!({}));
    assert_eq!(ping.schema(), Some("test.ping@1"));
    match previous {
        Some(previous) => {
            eventtracking::register_tracker("default", previous);
        }
        None => {
            eventtracking::unregister_tracker("default");
        }
    }
}

#[test]
fn the_catalog_documents_each_type_with_a_schema_that_validates_payloads() {
    let catalog = catalog().unwrap();
    let keys: Vec<&str> = catalog.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        ["test.address.create@3", "test.ping@1"],
        "sorted by name then version"
    );
    let entry = catalog.get("test.address.create", 3).unwrap();
    assert_eq!(
        entry.description,
        "A learner created a postal address.\n\nEmitted when the form is saved."
    );
    assert!(
        entry.rust_type.ends_with("typed_events::AddressCreate"),
        "{}",
        entry.rust_type
    );
    let fields: Vec<(&str, &str, bool)> = entry
        .fields
        .iter()
        .map(|f| (f.name.as_str(), f.description.as_str(), f.required))
        .collect();
    assert_eq!(
        fields,
        [
            ("name", "The addressee.", true),
            ("postal", "Where the address is.", true),
            ("tags", "Labels, if any.", false),
            ("user_id", "The learner: goes into the context.", true),
        ]
    );

    // The schema accepts what the typed emit writes, and refuses what it never would.
    let validator = jsonschema::validator_for(&entry.schema).unwrap();
    let mut buffer = Vec::new();
    sample()
        .serialize_data(&mut serde_json::Serializer::new(&mut buffer))
        .unwrap();
    let payload: Value = serde_json::from_slice(&buffer).unwrap();
    assert!(validator.is_valid(&payload), "{payload}");
    let mut tagged = sample();
    tagged.tags = Some(vec!["home".into()]);
    buffer.clear();
    tagged
        .serialize_data(&mut serde_json::Serializer::new(&mut buffer))
        .unwrap();
    assert!(validator.is_valid(&serde_json::from_slice(&buffer).unwrap()));
    for bad in [
        json!({"postal": {"postal_code": "1", "country": "x"}}),
        json!({"name": 5, "postal": {"postal_code": "1", "country": "x"}}),
        json!({"name": "a", "postal": {"postal_code": 1, "country": "x"}}),
        json!({"name": "a", "postal": {"postal_code": "1", "country": "x"}, "extra": 1}),
    ] {
        assert!(!validator.is_valid(&bad), "accepted {bad}");
    }
    let context = entry.context_schema.as_ref().unwrap();
    assert!(jsonschema::validator_for(context)
        .unwrap()
        .is_valid(&json!({"user_id": 7})));

    // Exports: JSON lists every entry with its schema; Markdown its docs.
    let exported = catalog.to_json();
    assert_eq!(exported["event_types"][0]["schema"], entry.schema);
    let markdown = catalog.to_markdown();
    for expected in [
        "## `test.address.create` (version 3)",
        "A learner created a postal address.",
        "| `postal` | data | `PostalAddress` | yes | Where the address is. |",
        "| `user_id` | context | integer | yes | The learner: goes into the context. |",
        "## `test.ping` (version 1)",
        // Nested types get their own table, with their field docs.
        "### `PostalAddress`\n\nA postal address.",
        "| `postal_code` | string | yes | The postal code. |",
    ] {
        assert!(
            markdown.contains(expected),
            "{expected:?} missing from\n{markdown}"
        );
    }
}

#[test]
fn each_backend_gets_each_type_documented_once_per_process() {
    let dir = tempfile::tempdir().unwrap();
    let first = InMemoryBackend::new();
    let second = InMemoryBackend::new();
    let tracker = Tracker::builder()
        .with_delivery(delivery(dir.path()).with_batch_size(7))
        .with_backend("first", first.clone())
        .with_backend("second", second.clone())
        .build()
        .unwrap();
    for _ in 0..100 {
        sample().emit_to(&tracker).unwrap();
        tracker.emit("untyped", json!({})).unwrap();
    }
    Ping.emit_to(&tracker).unwrap();
    let report = tracker.flush(DEADLINE);
    for backend in [&first, &second] {
        let keys: Vec<String> = backend
            .event_types()
            .iter()
            .map(|e| e.key.clone())
            .collect();
        assert_eq!(keys, ["test.address.create@3", "test.ping@1"]);
        // Each type is published before its first event is sent.
        assert_eq!(backend.events().len(), 201);
    }
    assert_eq!(report.backends["first"].event_types_published, 2);
    assert_eq!(report.backends["first"].catalog_errors, 0);
}

/// Fails to publish the first time, then works; counts calls.
#[derive(Debug, Default)]
struct FlakyCatalog {
    calls: AtomicUsize,
    published: Mutex<Vec<String>>,
    events: AtomicUsize,
}

#[async_trait]
impl Backend for FlakyCatalog {
    async fn send_batch(&self, batch: &[Arc<Event>]) -> BackendResult {
        self.events.fetch_add(batch.len(), SeqCst);
        Ok(())
    }
    async fn publish_event_types(&self, types: &[Arc<CatalogEntry>]) -> BackendResult {
        if self.calls.fetch_add(1, SeqCst) == 0 {
            return Err(BackendError::Retryable("catalog store down".into()));
        }
        let mut published = self.published.lock().unwrap();
        published.extend(types.iter().map(|t| t.key.clone()));
        Ok(())
    }
}

#[test]
fn a_failed_publication_is_counted_and_retried_with_the_next_batch_of_that_type() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(FlakyCatalog::default());
    let tracker = Tracker::builder()
        .with_delivery(delivery(dir.path()))
        .with_backend("flaky", backend.clone())
        .build()
        .unwrap();
    sample().emit_to(&tracker).unwrap();
    tracker.flush(DEADLINE);
    // The events went through although their documentation did not.
    assert_eq!(backend.events.load(SeqCst), 1);
    assert!(backend.published.lock().unwrap().is_empty());
    sample().emit_to(&tracker).unwrap();
    sample().emit_to(&tracker).unwrap();
    let report = tracker.flush(DEADLINE);
    assert_eq!(
        *backend.published.lock().unwrap(),
        ["test.address.create@3"]
    );
    assert_eq!(backend.calls.load(SeqCst), 2);
    assert_eq!(report.backends["flaky"].catalog_errors, 1);
    assert_eq!(report.backends["flaky"].event_types_published, 1);
    assert_eq!(report.backends["flaky"].delivered, 3);
}

#[test]
fn validation_dead_letters_untyped_events_that_break_their_schema() {
    for buffer in [BufferKind::Memory, BufferKind::Disk] {
        validation_dead_letters_through(buffer);
    }
}

fn validation_dead_letters_through(buffer: BufferKind) {
    let dir = tempfile::tempdir().unwrap();
    let memory = InMemoryBackend::new();
    let tracker = Tracker::builder()
        .with_delivery(
            delivery(dir.path())
                .with_validate_schemas(true)
                .with_buffer(buffer)
                .with_buffer_path(dir.path().join("buffers")),
        )
        .with_backend("memory", memory.clone())
        .build()
        .unwrap();
    let good = json!({"name": "a", "postal": {"postal_code": "1", "country": "x"}});
    let bad = json!({"name": 42, "postal": {"postal_code": "1", "country": "x"}});
    tracker.emit("test.address.create", &good).unwrap();
    tracker.emit("test.address.create", &bad).unwrap();
    tracker
        .emit("not.in.the.catalog", json!({"anything": true}))
        .unwrap();
    sample().emit_to(&tracker).unwrap();
    let report = tracker.flush(DEADLINE);
    let stats = &report.backends["memory"];
    assert_eq!(
        (stats.delivered, stats.schema_invalid, stats.dead_lettered),
        (3, 1, 1),
        "{buffer:?}: {report}"
    );
    assert_eq!(stats.accepted, 4, "{buffer:?}: {report}");
    let delivered: Vec<Value> = memory.events().iter().map(|e| e.data().clone()).collect();
    assert!(delivered.contains(&good) && !delivered.contains(&bad));
    let letters = dead_letters(dir.path());
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].event.data(), &bad);
    let reason = &letters[0].reason;
    assert!(
        reason.contains("test.address.create@3")
            && reason.contains("/name")
            && reason.contains("42"),
        "{reason}"
    );
    assert!(report.to_string().contains("schema invalid 1"), "{report}");

    // Off by default: the same bad event is delivered.
    let dir = tempfile::tempdir().unwrap();
    let (tracker, memory) = memory_tracker(dir.path());
    tracker.emit("test.address.create", &bad).unwrap();
    tracker.flush(DEADLINE);
    assert_eq!(memory.events().len(), 1);
}

#[test]
fn validate_schemas_is_a_config_key_and_an_environment_override() {
    let config = eventtracking::Config::from_toml_str(
        "[delivery]\nvalidate_schemas = true\n[backends.a]\nengine = \"discard\"",
    )
    .unwrap();
    let tracker = config.build().unwrap();
    assert!(tracker.delivery_config("a").unwrap().validate_schemas);
    let mut delivery = eventtracking::DeliveryConfig::default();
    delivery
        .apply_env_from(|v| (v == "EVENTTRACKING_VALIDATE_SCHEMAS").then(|| "true".into()))
        .unwrap();
    assert!(delivery.validate_schemas);
}

#[test]
fn entries_documented_elsewhere_are_published_on_request_before_the_flush_completes() {
    // An entry as a relay reads it from a catalog topic: JSON, read back.
    let local = catalog().unwrap().get("test.address.create", 3).unwrap();
    let text = serde_json::to_string(&local.to_json()).unwrap();
    let read: CatalogEntry = serde_json::from_str(&text).unwrap();
    assert_eq!(&read, &**local);
    let mut foreign = read.clone();
    foreign.key = "elsewhere.thing@1".into();
    foreign.name = "elsewhere.thing".into();
    let foreign = Arc::new(foreign);

    let dir = tempfile::tempdir().unwrap();
    let memory = InMemoryBackend::new();
    let flaky = Arc::new(FlakyCatalog::default());
    let tracker = Tracker::builder()
        .with_delivery(delivery(dir.path()))
        .with_backend("memory", memory.clone())
        .with_backend("flaky", flaky.clone())
        .build()
        .unwrap();
    tracker.publish_event_types(std::slice::from_ref(&foreign));
    let report = tracker.flush(DEADLINE);
    assert_eq!(memory.event_types(), std::slice::from_ref(&foreign));
    // The backend that failed makes the flush incomplete, and gets them again next time.
    assert!(!report.complete, "{report}");
    assert_eq!(report.backends["flaky"].catalog_errors, 1);
    let report = tracker.flush(DEADLINE);
    assert!(report.complete, "{report}");
    assert_eq!(*flaky.published.lock().unwrap(), ["elsewhere.thing@1"]);
    assert_eq!(report.backends["flaky"].event_types_published, 1);
}
