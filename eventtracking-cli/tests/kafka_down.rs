//! Kafka down at start: each distinct librdkafka error is logged once per
//! retry round at most (it used to come twice, through librdkafka's log and
//! its error callback, and "1/1 brokers are down" on every reconnect: 250
//! lines), and its first occurrence is shown.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

#[test]
fn a_broker_outage_logs_each_distinct_error_once_per_round() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    // Nothing listens on port 1: every connection is refused at once.
    std::fs::write(
        &config,
        format!(
            "[delivery]\ndead_letter_path = \"{}\"\n[backends.stream]\nengine = \"kafka\"\nbrokers = \"127.0.0.1:1\"\ntopic = \"t\"\n",
            dir.path().join("dead.jsonl").display()
        ),
    )
    .unwrap();
    // The whole run (deadline, then the flush's own second) stays well inside
    // one round (kafka's LOG_REPEAT_INTERVAL, 10 s).
    let mut child = Command::new(env!("CARGO_BIN_EXE_eventtracking"))
        .args(["send", "--timeout", "4", "--config"])
        .arg(&config)
        .env_remove("EVENTTRACKING_CONFIG")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"name\":\"k.down\"}\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);

    let librdkafka: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("librdkafka"))
        .collect();
    // The first occurrence is there.
    assert!(
        librdkafka
            .iter()
            .any(|l| l.contains("Connect to") && l.contains("127.0.0.1:1")),
        "{stderr}"
    );
    // Each distinct report once: counted by what follows the level and target,
    // with the counts and timings that vary between repeats taken out.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for line in &librdkafka {
        // A slow machine may still reach a second round; its summary of what
        // was held back is the one repeat allowed.
        if line.contains("held_back=") {
            continue;
        }
        let text = line
            .split_once("eventtracking_kafka::librdkafka:")
            .map_or(*line, |(_, after)| after);
        let text = text.trim_start();
        let text = text.strip_prefix("librdkafka:").unwrap_or(text);
        let text = text.split(" (after ").next().unwrap_or(text);
        let key: String = text
            .replace("[thrd:127.0.0.1:1/bootstrap]: ", "")
            .chars()
            .filter(|c| !c.is_ascii_digit())
            .collect();
        let key = key.trim().to_owned();
        *seen.entry(key).or_default() += 1;
    }
    for (report, count) in &seen {
        assert_eq!(*count, 1, "logged {count} times: {report}\n{stderr}");
    }
    assert!(librdkafka.len() <= 4, "{stderr}");
}
