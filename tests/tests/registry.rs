//! The engines linked in match the enabled features, and a config file builds
//! a pipeline from their names alone.

use std::time::Duration;

use eventtracking::registry;
use eventtracking::Config;

#[test]
fn registered_engines_match_enabled_features() {
    let backends: Vec<&str> = registry::backend_engines()
        .unwrap()
        .iter()
        .map(|r| r.name())
        .collect();
    // Sorted by name, one entry each.
    assert_eq!(backends, ["discard", "file", "kafka", "mongo"]);
    let processors: Vec<&str> = registry::processor_engines()
        .unwrap()
        .iter()
        .map(|r| r.name())
        .collect();
    assert_eq!(processors, ["allow", "block", "enrich", "redact", "sample"]);
}

#[test]
fn a_config_file_builds_the_whole_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let config = format!(
        r#"
        [delivery]
        queue_capacity = 1000
        overflow = "block"
        linger_ms = 5
        dead_letter_path = "{dead}"

        [[processors]]
        engine = "allow"
        names = ["navigation.*", "address.*"]

        [[processors]]
        engine = "enrich"
        fields = {{ app_version = "1.2.3" }}

        [backends.local]
        engine = "file"
        path = "{path}"

        [[backends.local.processors]]
        engine = "redact"
        paths = ["data.password"]

        [backends.archive]
        engine = "discard"
        "#,
        dead = dir.path().join("dead.jsonl").display(),
        path = events.display()
    );
    let tracker = Config::from_toml_str(&config).unwrap().build().unwrap();
    tracker
        .emit(
            "navigation.request",
            serde_json::json!({"url": "/a", "password": "hunter2"}),
        )
        .unwrap();
    tracker.emit("debug.noise", serde_json::json!({})).unwrap();
    let report = tracker.shutdown(Duration::from_secs(10)).unwrap();
    assert!(report.complete);
    assert_eq!(report.tracker.filtered, 1, "{report}");
    assert_eq!(report.backends["local"].delivered, 1, "{report}");
    assert_eq!(report.backends["archive"].delivered, 1, "{report}");

    let text = std::fs::read_to_string(&events).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["name"], "navigation.request");
    assert_eq!(lines[0]["data"]["password"], "[REDACTED]");
    assert_eq!(lines[0]["data"]["url"], "/a");
    assert_eq!(lines[0]["context"]["app_version"], "1.2.3");
}
