//! `send --receipts FILE`: what happened to each input line's event.

mod common;

use common::json_lines;

use std::io::Write;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_eventtracking");

#[test]
fn receipts_say_per_line_what_each_backend_did_with_the_event() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let dead = dir.path().join("dead.jsonl");
    let receipts = dir.path().join("receipts.jsonl");
    let config = dir.path().join("c.toml");
    // `all` takes every event; `small` dead-letters those over 200 bytes.
    std::fs::write(
        &config,
        format!(
            "[delivery]\ndead_letter_path = {dead:?}\n\
             [backends.all]\nengine = \"file\"\npath = {events:?}\n\
             [backends.small]\nengine = \"file\"\npath = {:?}\n\
             [backends.small.delivery]\nmax_event_bytes = 200\n",
            dir.path().join("small.jsonl")
        ),
    )
    .unwrap();
    let padding = "p".repeat(300);
    let input = format!(
        "{{\"name\":\"a\",\"data\":1}}\nnot json\n{{\"name\":\"b\",\"data\":\"{padding}\"}}\n\
         {{\"name\":\"c\",\"data\":3,\"id\":\"0190e0a8-4c39-7000-8000-000000000003\"}}\n"
    );
    let mut send = Command::new(BIN)
        .args(["send", "-c", config.to_str().unwrap(), "--receipts"])
        .arg(&receipts)
        .env_remove("EVENTTRACKING_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    send.stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = send.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    // A refused line and a dead-lettered event: exit 1, with the report.
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("line 2:"), "{stderr}");

    let receipts = json_lines(&std::fs::read_to_string(&receipts).unwrap());
    let lines: Vec<u64> = receipts
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [1, 3, 4], "{receipts:?}");
    let stored = json_lines(&std::fs::read_to_string(&events).unwrap());
    for (receipt, event) in receipts.iter().zip(&stored) {
        assert_eq!(receipt["id"], event["id"], "{receipt} {event}");
        assert_eq!(
            receipt["outcomes"]["all"]["outcome"], "delivered",
            "{receipt}"
        );
    }
    assert_eq!(receipts[2]["id"], "0190e0a8-4c39-7000-8000-000000000003");
    assert_eq!(receipts[0]["outcomes"]["small"]["outcome"], "delivered");
    let big = &receipts[1]["outcomes"]["small"];
    assert_eq!(big["outcome"], "dead_lettered", "{big}");
    assert!(
        big["reason"].as_str().unwrap().contains("oversized"),
        "{big}"
    );
    // Receipts go to their file: stdout stays empty.
    assert!(output.stdout.is_empty());
}

#[test]
fn an_unwritable_receipts_path_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let receipts = dir.path().join("no-such-dir").join("receipts.jsonl");
    let output = Command::new(BIN)
        .args(["send", "--receipts", receipts.to_str().unwrap()])
        .env_remove("EVENTTRACKING_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("receipts file") && stderr.contains(receipts.to_str().unwrap()),
        "{stderr}"
    );
}
