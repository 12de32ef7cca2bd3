//! Interop with the Python original (edX `event-tracking`, from PyPI, in the
//! venv `scripts/services` makes): it emits the README's seed example through
//! its `LoggerBackend` into a log file, `eventtracking import` reads that
//! file, and every event is compared field by field with what Python emitted.
//! Fails (never skips) when that Python or the library is missing.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use eventtracking::Event;
use eventtracking_testkit::seed_example_events;
use serde_json::Value;

#[test]
fn the_originals_seed_log_imports_event_for_event() {
    let python = eventtracking_testkit::servers::original_python();
    let dir = tempfile::tempdir().unwrap();
    let (log, times) = (
        dir.path().join("tracking.log"),
        dir.path().join("times.txt"),
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/emit_seed.py");
    let output = Command::new(&python)
        .arg(&script)
        .arg(&log)
        .arg(&times)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{} {}: {}",
        python.display(),
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let python_lines: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let python_times: Vec<SystemTime> = std::fs::read_to_string(&times)
        .unwrap()
        .lines()
        .map(|l| SystemTime::UNIX_EPOCH + Duration::from_micros(l.parse().unwrap()))
        .collect();
    assert_eq!(python_lines.len(), 3, "the original wrote {python_lines:?}");

    let events_path = dir.path().join("events.jsonl");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[delivery]\nlinger_ms = 5\ndead_letter_path = {:?}\n[backends.local]\nengine = \"file\"\npath = {:?}\n",
            dir.path().join("dead.jsonl").display().to_string(),
            events_path.display().to_string()
        ),
    )
    .unwrap();
    let import = |events_path: &Path| {
        let _ = std::fs::remove_file(events_path);
        let output = Command::new(env!("CARGO_BIN_EXE_eventtracking"))
            .args(["import", "--from", "python-eventtracking"])
            .arg(&log)
            .arg("--config")
            .arg(&config)
            .env_remove("EVENTTRACKING_CONFIG")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::read_to_string(events_path)
            .unwrap()
            .lines()
            .map(|l| Event::from_json_slice(l.as_bytes()).unwrap())
            .collect::<Vec<_>>()
    };
    let events = import(&events_path);
    assert_eq!(events.len(), 3);
    for (i, ((event, line), (time, (name, context, data)))) in events
        .iter()
        .zip(&python_lines)
        .zip(python_times.iter().zip(seed_example_events()))
        .enumerate()
    {
        // What Python wrote, and what the seed example says it must be.
        assert_eq!(event.name(), line["name"], "event {i}: name");
        assert_eq!(event.name(), name, "event {i}: name");
        assert_eq!(
            &Value::Object(event.context().clone()),
            &line["context"],
            "event {i}: context"
        );
        assert_eq!(
            Value::Object(event.context().clone()),
            context,
            "event {i}: context"
        );
        assert_eq!(event.data(), &line["data"], "event {i}: data");
        assert_eq!(event.data(), &data, "event {i}: data");
        // The time Python took, to the microsecond.
        assert_eq!(
            event.timestamp(),
            *time,
            "event {i}: timestamp (Python wrote {})",
            line["timestamp"]
        );
        assert_eq!(event.id().get_version_num(), 8, "event {i}: id");
    }
    let ids: std::collections::HashSet<_> = events.iter().map(Event::id).collect();
    assert_eq!(ids.len(), 3);
    // Importing the same log again gives the same events, ids included.
    assert_eq!(import(&events_path), events);
}
