//! The `eventtracking` binary, run as a user would.

mod common;

use common::{eventtracking, json_lines};

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn file_config(dir: &Path) -> (String, std::path::PathBuf) {
    let events = dir.join("events.jsonl");
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[delivery]\nlinger_ms = 5\ndead_letter_path = \"{}\"\n[backends.local]\nengine = \"file\"\npath = \"{}\"\n",
            dir.join("dead.jsonl").display(),
            events.display()
        ),
    )
    .unwrap();
    (config.display().to_string(), events)
}

#[test]
fn demo_prints_the_seed_events_as_json_lines() {
    let output = eventtracking(&["demo"], None);
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let events = json_lines(&stdout);
    assert_eq!(events.len(), 3);
    for line in stdout.lines() {
        let at = |key: &str| line.find(&format!("\"{key}\":")).unwrap();
        assert!(
            at("id") < at("name") && at("name") < at("schema") && at("schema") < at("timestamp"),
            "{line}"
        );
        assert!(
            at("timestamp") < at("context") && at("context") < at("data"),
            "{line}"
        );
    }

    let expected = eventtracking_testkit::seed_example_events();
    let mut ids = HashSet::new();
    for (event, (name, context, data)) in events.iter().zip(expected) {
        // The five fields of the seed, plus the schema reference of a typed event.
        assert_eq!(event.as_object().unwrap().len(), 6);
        assert_eq!(event["name"], name);
        assert_eq!(event["schema"], format!("{name}@1"));
        assert_eq!(event["context"], context);
        assert_eq!(event["data"], data);
        let id = event["id"].as_str().unwrap();
        assert_eq!(&id[14..15], "7", "UUIDv7: {id}");
        assert!(ids.insert(id.to_owned()));
        let ts = event["timestamp"].as_str().unwrap();
        assert!(ts.ends_with('Z') && ts.len() == 27, "{ts}");
        eventtracking::parse_timestamp(ts).unwrap();
    }
    assert!(
        stderr(&output).contains("delivery report"),
        "{}",
        stderr(&output)
    );
    assert!(
        stderr(&output).contains("stdout: accepted 3, delivered 3"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn catalog_documents_the_demo_event_types_as_json_and_markdown() {
    let output = eventtracking(&["catalog"], None);
    assert!(output.status.success(), "{}", stderr(&output));
    let catalog: Value = serde_json::from_slice(&output.stdout).unwrap();
    let types = catalog["event_types"].as_array().unwrap();
    let keys: Vec<&str> = types.iter().map(|t| t["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["address.create@1", "navigation.request@1"]);
    let address = &types[0];
    assert_eq!(
        address["description"],
        "A learner created a postal address.\n\nEmitted when the address form is saved."
    );
    let schema = &address["schema"];
    assert_eq!(
        schema["properties"]["name"]["description"],
        "The addressee."
    );
    // The nested type is described too, with its own field docs.
    let nested = &schema["$defs"]["PostalAddress"];
    assert_eq!(
        nested["properties"]["postal_code"]["description"],
        "The postal (ZIP) code."
    );

    let output = eventtracking(&["catalog", "--format", "markdown"], None);
    assert!(output.status.success(), "{}", stderr(&output));
    let markdown = String::from_utf8(output.stdout).unwrap();
    for expected in [
        "## `navigation.request` (version 1)",
        "A page was requested.",
        "| `url` | data | string | yes | The URL requested, with its query string. |",
        "| `address` | data | `PostalAddress` | yes | Where the address is. |",
    ] {
        assert!(
            markdown.contains(expected),
            "{expected:?} missing from:\n{markdown}"
        );
    }

    let output = eventtracking(&["catalog", "--format", "yaml"], None);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
}

#[test]
fn demo_writes_the_catalog_beside_the_events_file() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _events) = file_config(dir.path());
    let output = eventtracking(&["demo", "--config", &config, "--count", "3"], None);
    assert!(output.status.success(), "{}", stderr(&output));
    let catalog: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("events.catalog.json")).unwrap())
            .unwrap();
    let keys: Vec<&str> = catalog["event_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["address.create@1", "navigation.request@1"]);
    assert!(
        stderr(&output).contains("event types published 2"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn demo_count_writes_to_the_configured_file() {
    let dir = tempfile::tempdir().unwrap();
    let (config, events) = file_config(dir.path());
    let output = eventtracking(&["demo", "--config", &config, "--count", "50"], None);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(output.stdout.is_empty());
    let lines = json_lines(&std::fs::read_to_string(events).unwrap());
    assert_eq!(lines.len(), 150);
    let ids: HashSet<_> = lines
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 150);
}

#[test]
fn bad_config_is_a_clear_error_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[backends.x]\nengine = \"warp\"\n").unwrap();
    let output = eventtracking(&["demo", "--config", config.to_str().unwrap()], None);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(
        err.contains("warp") && err.contains("discard, file"),
        "{err}"
    );

    std::fs::write(&config, "[delivery]\nqueue_capacty = 3\n").unwrap();
    let output = eventtracking(&["demo", "--config", config.to_str().unwrap()], None);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("queue_capacty"),
        "{}",
        stderr(&output)
    );

    let output = eventtracking(&["demo", "--config", "/nonexistent/et.toml"], None);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("/nonexistent/et.toml"));
}

#[test]
fn send_reports_bad_lines_by_number_and_goes_on() {
    let input = [
        r#"{"name": "page.view", "data": {"url": "/a"}, "context": {"user_id": 7}}"#,
        r#"{"name": "page.view", "data": "#,
        r#"{"name": "bad name", "data": {}}"#,
        "",
        r#"{"name": "page.leave", "data": [1, 2]}"#,
    ]
    .join("\n");
    let output = eventtracking(&["send"], Some(&input));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(err.contains("line 2:"), "{err}");
    assert!(err.contains("line 3:") && err.contains("bad name"), "{err}");
    assert!(
        !err.contains("line 1:") && !err.contains("line 5:"),
        "{err}"
    );
    assert!(err.contains("2 input line(s) refused"), "{err}");
    let events = json_lines(&String::from_utf8_lossy(&output.stdout));
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["context"], json!({"user_id": 7}));
    assert_eq!(events[0]["data"], json!({"url": "/a"}));
    assert_eq!(events[1]["name"], "page.leave");
    assert_eq!(events[1]["context"], json!({}));
}

#[test]
fn replay_resends_dead_letters_keeping_ids() {
    let dir = tempfile::tempdir().unwrap();
    let (config, events) = file_config(dir.path());
    let dead = dir.path().join("to-replay.jsonl");
    let records = [
        json!({"failed_at": "2026-11-29T00:00:00.000000Z", "backend": "warehouse", "reason": "retries exhausted", "attempts": 9,
               "event": {"id": "019ad0a4-0000-7000-8000-000000000001", "name": "navigation.request", "timestamp": "2026-11-28T23:59:59.000001Z", "context": {"user_id": 1}, "data": {"url": "/1"}}}),
        json!({"id": "019ad0a4-0000-7000-8000-000000000002", "name": "address.create", "timestamp": "2026-11-28T23:59:59.000002Z", "context": {}, "data": {"name": "foo"}}),
    ];
    let mut text = records
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    text.push_str("\nnot json\n");
    std::fs::write(&dead, text).unwrap();

    let output = eventtracking(
        &["replay", dead.to_str().unwrap(), "--config", &config],
        None,
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("line 3:"), "{}", stderr(&output));
    let lines = json_lines(&std::fs::read_to_string(events).unwrap());
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0], records[0]["event"]);
    assert_eq!(lines[1], records[1]);
}

#[test]
fn listing_commands_do_not_panic_when_the_reader_goes_away() {
    for args in [["engines", ""], ["catalog", "--format=markdown"]] {
        let args: Vec<&str> = args.into_iter().filter(|a| !a.is_empty()).collect();
        let mut child = Command::new(env!("CARGO_BIN_EXE_eventtracking"))
            .args(&args)
            .env_remove("EVENTTRACKING_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Close the reading end before the command writes (as `| head -0` would).
        drop(child.stdout.take());
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
    }
}

#[test]
fn engines_lists_what_is_linked_in() {
    let output = eventtracking(&["engines"], None);
    assert!(output.status.success());
    let out = String::from_utf8_lossy(&output.stdout);
    for engine in [
        "discard", "file", "tracing", "allow", "block", "enrich", "redact", "sample",
    ] {
        assert!(
            out.contains(&format!("  {engine} ")),
            "{engine} missing from {out}"
        );
    }
    let kafka = out.lines().find(|l| l.starts_with("  kafka ")).unwrap();
    assert!(
        kafka.ends_with("(batch_size 10000 unless configured)"),
        "{kafka}"
    );
}
