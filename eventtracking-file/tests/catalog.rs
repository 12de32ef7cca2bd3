//! The catalog file beside the events file.

use std::time::Duration;

use eventtracking::{DeliveryConfig, TrackedEvent, TrackedEventExt, Tracker};
use eventtracking_file::FileBackend;
use serde_json::Value;

/// A page was requested.
#[derive(TrackedEvent)]
#[tracked_event(crate = "eventtracking", name = "file.page.view", version = 2)]
struct PageView {
    /// The page.
    url: String,
}

/// A search was run.
#[derive(TrackedEvent)]
#[tracked_event(crate = "eventtracking", name = "file.search")]
struct Search {
    /// What was searched for.
    query: String,
}

fn keys(path: &std::path::Path) -> Vec<String> {
    let catalog: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    catalog["event_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["key"].as_str().unwrap().to_owned())
        .collect()
}

fn file_tracker(backend: FileBackend, dir: &std::path::Path) -> Tracker {
    Tracker::builder()
        .with_delivery(
            DeliveryConfig::default()
                .with_linger(std::time::Duration::from_millis(2))
                .with_dead_letter_path(dir.join("dead.jsonl")),
        )
        .with_backend("local", backend)
        .build()
        .unwrap()
}

#[test]
fn typed_events_are_documented_in_a_catalog_file_beside_the_events() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let catalog = dir.path().join("events.catalog.json");
    let backend = FileBackend::builder(&events).build().unwrap();
    assert_eq!(backend.catalog_path(), Some(catalog.as_path()));
    let tracker = file_tracker(backend, dir.path());
    tracker.emit("untyped", serde_json::json!({})).unwrap();
    tracker.flush(Duration::from_secs(30));
    assert!(!catalog.exists(), "no typed event yet, no catalog");
    for i in 0..50 {
        PageView {
            url: format!("/{i}"),
        }
        .emit_to(&tracker)
        .unwrap();
    }
    let report = tracker.flush(Duration::from_secs(30));
    assert_eq!(keys(&catalog), ["file.page.view@2"]);
    let written: Value = serde_json::from_slice(&std::fs::read(&catalog).unwrap()).unwrap();
    let entry = &written["event_types"][0];
    assert_eq!(entry["description"], "A page was requested.");
    assert_eq!(
        entry["schema"]["properties"]["url"]["description"],
        "The page."
    );
    assert_eq!(report.backends["local"].event_types_published, 1);
    // Every event line carries the key of its entry.
    let text = std::fs::read_to_string(&events).unwrap();
    assert_eq!(text.matches(r#""schema":"file.page.view@2""#).count(), 50);
    tracker.shutdown(Duration::from_secs(30));

    // Another process (here: another backend) adds its types; the first
    // process's entries stay.
    let backend = FileBackend::builder(&events).build().unwrap();
    let tracker = file_tracker(backend, dir.path());
    Search {
        query: "rust".into(),
    }
    .emit_to(&tracker)
    .unwrap();
    tracker.shutdown(Duration::from_secs(30));
    assert_eq!(keys(&catalog), ["file.page.view@2", "file.search@1"]);
    // Replaced atomically: no temporary file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn catalog_path_is_configurable_and_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let chosen = dir.path().join("docs/types.json");
    let config = eventtracking::Config::from_toml_str(&format!(
        "[delivery]\nlinger_ms = 2\ndead_letter_path = \"{dead}\"\n\
         [backends.a]\nengine = \"file\"\npath = \"{a}\"\ncatalog_path = \"{chosen}\"\n\
         [backends.b]\nengine = \"file\"\npath = \"{b}\"\ncatalog_path = \"\"\n",
        dead = dir.path().join("dead.jsonl").display(),
        a = dir.path().join("a.jsonl").display(),
        b = dir.path().join("b.jsonl").display(),
        chosen = chosen.display(),
    ))
    .unwrap();
    let tracker = config.build().unwrap();
    PageView { url: "/".into() }.emit_to(&tracker).unwrap();
    let report = tracker.shutdown(Duration::from_secs(30)).unwrap();
    assert_eq!(keys(&chosen), ["file.page.view@2"]);
    assert!(!dir.path().join("a.catalog.json").exists());
    assert!(!dir.path().join("b.catalog.json").exists());
    // Turned off counts as published: nothing to store, nothing failed.
    assert_eq!(report.backends["b"].catalog_errors, 0);
}

#[test]
fn an_unreadable_catalog_file_is_reported_and_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let catalog = dir.path().join("events.catalog.json");
    std::fs::write(&catalog, "not json").unwrap();
    let tracker = file_tracker(FileBackend::builder(&events).build().unwrap(), dir.path());
    PageView { url: "/".into() }.emit_to(&tracker).unwrap();
    let report = tracker.shutdown(Duration::from_secs(30)).unwrap();
    assert_eq!(report.backends["local"].catalog_errors, 1);
    assert_eq!(report.backends["local"].delivered, 1);
    assert_eq!(std::fs::read_to_string(&catalog).unwrap(), "not json");
}
