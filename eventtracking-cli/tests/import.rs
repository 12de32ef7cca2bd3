//! `eventtracking import` and `send`'s own timestamps and ids, run as a user
//! would: the binary, a file backend, a real MongoDB server, and the Python
//! original writing the logs.

mod common;

use common::eventtracking;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, SystemTime};

use eventtracking::Event;
use serde_json::{json, Value};

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn events_in(path: &Path) -> Vec<Event> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| Event::from_json_slice(line.as_bytes()).unwrap())
        .collect()
}

/// A config writing to `events.jsonl` in `dir`, dead letters to `dead.jsonl`.
fn file_config(dir: &Path) -> String {
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[delivery]\nlinger_ms = 5\ndead_letter_path = {:?}\n[backends.local]\nengine = \"file\"\npath = {:?}\n",
            dir.join("dead.jsonl").display().to_string(),
            dir.join("events.jsonl").display().to_string()
        ),
    )
    .unwrap();
    config.display().to_string()
}

fn at(text: &str) -> SystemTime {
    eventtracking::parse_timestamp(text).unwrap()
}

#[test]
fn import_keeps_times_gives_stable_ids_and_dead_letters_unreadable_lines_by_number() {
    let dir = tempfile::tempdir().unwrap();
    let config = file_config(dir.path());
    let log = dir.path().join("tracking.log");
    let lines = [
        r#"{"name": "navigation.request", "timestamp": "2026-11-29T01:52:39.123456+00:00", "data": {"url": "/1"}, "context": {"user_id": 10938}}"#,
        r#"{"timestamp": "2026-11-29T01:52:40+00:00", "data": {}}"#,
        r#"{"name": "address.create", "timestamp": "2026-11-29T03:52:40.5+02:00", "data": {"name": "foo"}, "context": {}}"#,
        r#"{"name": "a", "timestamp": "last tuesday"}"#,
        "",
        r#"{"name": "a", "timestamp": "2026-11-29T01:52:40Z", "data": "text"}"#,
        r#"{"name": "problem.check", "timestamp": "2026-11-29T01:52:41.1234567Z"}"#,
    ];
    std::fs::write(&log, lines.join("\n")).unwrap();
    let args = [
        "import",
        "--from",
        "python-eventtracking",
        log.to_str().unwrap(),
        "--config",
        &config,
    ];

    let output = eventtracking(&args, None);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let err = stderr(&output);
    let shown = log.display();
    assert!(
        err.contains(&format!("{shown} line 2: missing name")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{shown} line 4: bad timestamp \"last tuesday\"")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{shown} line 6: data is not an object but a string"
        )),
        "{err}"
    );
    assert!(
        err.contains("eventtracking import: 1 file(s), ")
            && err.contains(
                " 7 line(s): 3 event(s) imported, 3 unreadable (in the dead-letter file "
            ),
        "{err}"
    );
    let events = events_in(&dir.path().join("events.jsonl"));
    let summary: Vec<_> = events
        .iter()
        .map(|e| {
            (
                e.name(),
                e.timestamp(),
                e.data().clone(),
                e.context().clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "navigation.request",
                at("2026-11-29T01:52:39.123456Z"),
                json!({"url": "/1"}),
                json!({"user_id": 10938}).as_object().unwrap().clone()
            ),
            (
                "address.create",
                at("2026-11-29T01:52:40.500000Z"),
                json!({"name": "foo"}),
                Default::default()
            ),
            (
                "problem.check",
                at("2026-11-29T01:52:41.123456Z"),
                json!({}),
                Default::default()
            ),
        ]
    );
    assert!(events.iter().all(|e| e.id().get_version_num() == 8));

    // The unreadable lines, in the dead-letter file, saying where they were.
    let dead: Vec<Value> = std::fs::read_to_string(dir.path().join("dead.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(dead.len(), 3);
    for (record, (number, error)) in dead.iter().zip([
        (2, "missing name"),
        (4, "bad timestamp"),
        (6, "data is not an object"),
    ]) {
        let data = &record["event"]["data"];
        assert_eq!(record["event"]["name"], "eventtracking.import.unreadable");
        assert_eq!(data["line"], number);
        assert_eq!(data["file"], log.display().to_string());
        assert_eq!(data["text"], lines[number - 1]);
        assert!(
            data["error"].as_str().unwrap().starts_with(error),
            "{record}"
        );
        assert!(
            record["reason"]
                .as_str()
                .unwrap()
                .starts_with(&format!("unreadable: {shown} line {number}: {error}")),
            "{record}"
        );
    }

    // Again: the same ids.
    std::fs::remove_file(dir.path().join("events.jsonl")).unwrap();
    let again = eventtracking(&args, None);
    assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
    let ids = |events: &[Event]| events.iter().map(Event::id).collect::<Vec<_>>();
    assert_eq!(
        ids(&events_in(&dir.path().join("events.jsonl"))),
        ids(&events)
    );
}

#[test]
fn import_reads_several_files_in_order_and_a_clean_import_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let config = file_config(dir.path());
    let (first, second) = (dir.path().join("1.log"), dir.path().join("2.log"));
    std::fs::write(
        &first,
        "{\"name\": \"a\", \"timestamp\": \"2026-01-01T00:00:00+00:00\"}\n",
    )
    .unwrap();
    std::fs::write(
        &second,
        "{\"name\": \"b\", \"timestamp\": \"2026-01-01T00:00:01+00:00\"}\n",
    )
    .unwrap();
    let output = eventtracking(
        &[
            "import",
            "--from",
            "python-eventtracking",
            first.to_str().unwrap(),
            second.to_str().unwrap(),
            "--config",
            &config,
        ],
        None,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("2 file(s)")
            && stderr(&output).contains("2 event(s) imported, 0 unreadable")
    );
    let names: Vec<_> = events_in(&dir.path().join("events.jsonl"))
        .iter()
        .map(|e| e.name().to_owned())
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert!(!dir.path().join("dead.jsonl").exists());
}

#[test]
fn import_names_the_formats_it_knows_and_a_missing_file() {
    let output = eventtracking(&["import", "--from", "edx-tracking-log", "x.log"], None);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("python-eventtracking"),
        "{}",
        stderr(&output)
    );
    let output = eventtracking(
        &[
            "import",
            "--from",
            "python-eventtracking",
            "/nonexistent/x.log",
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("cannot read /nonexistent/x.log"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn send_keeps_a_given_timestamp_and_id_and_names_bad_ones_by_line() {
    let input = [
        r#"{"name": "a", "data": {}, "timestamp": "2026-11-29T03:52:39.25+02:00", "id": "0190c4b4-4f5e-7c3a-8b4e-1a2b3c4d5e6f"}"#,
        r#"{"name": "b", "data": {}, "timestamp": "2026-11-29T01:52:39"}"#,
        r#"{"name": "c", "data": {}, "id": "not-a-uuid"}"#,
        r#"{"name": "d", "data": {}, "timestamp": "2026-11-29T01:52:39Z", "context": {"user_id": 7}}"#,
        r#"{"name": "e", "data": {}, "id": "0190c4b4-4f5e-7c3a-8b4e-1a2b3c4d5e70"}"#,
        r#"{"name": "bad name", "timestamp": "2026-11-29T01:52:39Z"}"#,
    ]
    .join("\n");
    let before = SystemTime::now();
    let output = eventtracking(&["send"], Some(&input));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(
        err.contains("line 2: bad timestamp \"2026-11-29T01:52:39\""),
        "{err}"
    );
    assert!(err.contains("line 3: bad id \"not-a-uuid\""), "{err}");
    assert!(err.contains("line 6:") && err.contains("bad name"), "{err}");
    assert!(err.contains("3 input line(s) refused"), "{err}");
    let events: Vec<Event> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| Event::from_json_slice(l.as_bytes()).unwrap())
        .collect();
    assert_eq!(events.len(), 3);
    assert_eq!(
        events[0].id().to_string(),
        "0190c4b4-4f5e-7c3a-8b4e-1a2b3c4d5e6f"
    );
    assert_eq!(events[0].timestamp(), at("2026-11-29T01:52:39.250000Z"));
    assert_eq!(
        (events[1].name(), events[1].timestamp()),
        ("d", at("2026-11-29T01:52:39Z"))
    );
    assert_eq!(events[1].context()["user_id"], 7);
    assert_eq!(events[1].id().get_version_num(), 7);
    assert_eq!(
        events[2].id().to_string(),
        "0190c4b4-4f5e-7c3a-8b4e-1a2b3c4d5e70"
    );
    assert!(events[2].timestamp() >= before - Duration::from_secs(1));
}

/// Imports a file twice into the real MongoDB server: the second import
/// stores nothing new (the ids are the same, `_id` is the id).
#[test]
fn reimporting_into_mongodb_stores_nothing_new() {
    let uri = eventtracking_testkit::servers::mongo_uri();
    let database = eventtracking_testkit::unique_name("import");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mongo.toml");
    std::fs::write(
        &config,
        format!(
            "[delivery]\nlinger_ms = 5\ndead_letter_path = {:?}\n[backends.db]\nengine = \"mongo\"\nuri = {uri:?}\ndatabase = {database:?}\nserver_selection_timeout_ms = 5000\n",
            dir.path().join("dead.jsonl").display().to_string()
        ),
    )
    .unwrap();
    let log = dir.path().join("tracking.log");
    let text: String = (0..50)
        .map(|i| format!("{{\"name\": \"n{}\", \"timestamp\": \"2026-11-29T01:52:{:02}.{i:06}+00:00\", \"context\": {{\"user_id\": {i}}}, \"data\": {{}}}}\n", i % 3, i % 60))
        .collect();
    std::fs::write(&log, text).unwrap();
    let args = [
        "import",
        "--from",
        "python-eventtracking",
        log.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ];

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let collection = runtime.block_on(async {
        let client = mongodb::Client::with_uri_str(&uri).await.unwrap();
        client
            .database(&database)
            .collection::<mongodb::bson::Document>("events")
    });
    let count = || {
        runtime.block_on(async {
            collection
                .count_documents(mongodb::bson::doc! {})
                .await
                .unwrap_or_else(|e| {
                    panic!("MongoDB at {uri}: {e}: run `scripts/services start mongo`")
                })
        })
    };
    for run in 0..2 {
        let output = eventtracking(&args, None);
        assert!(output.status.success(), "run {run}: {}", stderr(&output));
        assert!(
            stderr(&output).contains("50 event(s) imported"),
            "{}",
            stderr(&output)
        );
        assert_eq!(count(), 50, "after import {}", run + 1);
    }
    runtime.block_on(async { collection.drop().await.unwrap() });
}
