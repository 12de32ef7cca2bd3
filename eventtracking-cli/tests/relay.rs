//! `eventtracking relay` against the real broker: demo → Kafka → relay →
//! file delivers every event unchanged; a relay killed with SIGKILL mid-stream
//! and restarted loses nothing; SIGTERM and SIGINT stop it after delivering
//! and committing, so restarts deliver nothing twice.
//!
//! The broker is `EVENTTRACKING_TEST_KAFKA_BROKERS` (`scripts/services start
//! kafka`); with none reachable the tests fail, they never skip.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{brokers, require_broker, unique};
use eventtracking::Event;

const WAIT: Duration = Duration::from_secs(90);

/// A test's files: the producer's config (Kafka plus a file of what was
/// sent) and the relay's (`[source]` plus a file backend).
struct Setup {
    dir: tempfile::TempDir,
    producer: PathBuf,
    relay: PathBuf,
}

impl Setup {
    fn new(name: &str) -> Self {
        require_broker();
        let dir = tempfile::tempdir().unwrap();
        let topic = unique(name);
        let group = unique(&format!("{name}-group"));
        // The demo's typed events document themselves on this topic.
        let catalog = unique(&format!("{name}-types"));
        let path = |file: &str| dir.path().join(file).display().to_string();
        let producer = dir.path().join("producer.toml");
        std::fs::write(
            &producer,
            format!(
                r#"[delivery]
linger_ms = 5
dead_letter_path = "{dead}"

[backends.stream]
engine = "kafka"
brokers = "{brokers}"
topic = "{topic}"
catalog_topic = "{catalog}"

[backends.sent]
engine = "file"
path = "{sent}"
"#,
                dead = path("producer-dead-letter.jsonl"),
                brokers = brokers(),
                sent = path("sent.jsonl"),
            ),
        )
        .unwrap();
        let relay = dir.path().join("relay.toml");
        std::fs::write(
            &relay,
            format!(
                r#"[delivery]
linger_ms = 5
dead_letter_path = "{dead}"

[source]
engine = "kafka"
brokers = "{brokers}"
topics = ["{topic}"]
group = "{group}"
catalog_topic = "{catalog}"
properties = {{ "session.timeout.ms" = "3000", "heartbeat.interval.ms" = "500" }}

[backends.local]
engine = "file"
path = "{relayed}"
"#,
                dead = path("relay-dead-letter.jsonl"),
                brokers = brokers(),
                relayed = path("relayed.jsonl"),
            ),
        )
        .unwrap();
        Setup {
            dir,
            producer,
            relay,
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `eventtracking demo --count N` into Kafka (and sent.jsonl).
    fn produce(&self, count: u64) {
        let output = Command::new(env!("CARGO_BIN_EXE_eventtracking"))
            .args(["demo", "--count", &count.to_string(), "--config"])
            .arg(&self.producer)
            .env_remove("EVENTTRACKING_CONFIG")
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "demo failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn relay(&self, extra: &[&str]) -> RelayProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_eventtracking"))
            .arg("relay")
            .arg("--config")
            .arg(&self.relay)
            .args(["--commit-interval-ms", "200", "--progress-interval", "1"])
            .args(extra)
            .env_remove("EVENTTRACKING_CONFIG")
            .env_remove("EVENTTRACKING_OVERFLOW")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let reader = {
            let stderr = stderr.clone();
            let pipe = child.stderr.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    let mut text = stderr.lock().unwrap();
                    text.push_str(&line);
                    text.push('\n');
                }
            })
        };
        RelayProcess {
            child,
            stderr,
            reader: Some(reader),
        }
    }

    fn lines(&self, name: &str) -> Vec<String> {
        match std::fs::read_to_string(self.file(name)) {
            Ok(text) => text.lines().map(str::to_owned).collect(),
            Err(_) => Vec::new(),
        }
    }

    fn line_count(&self, name: &str) -> usize {
        std::fs::read(self.file(name))
            .map(|bytes| bytes.iter().filter(|b| **b == b'\n').count())
            .unwrap_or(0)
    }
}

struct RelayProcess {
    child: Child,
    stderr: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl RelayProcess {
    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!(
                "the relay exited early ({status}):\n{}",
                self.stderr.lock().unwrap()
            );
        }
    }

    /// Waits for the exit (fails after `WAIT`); returns the status and all of stderr.
    fn wait(mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the relay did not exit:\n{}", self.stderr.lock().unwrap());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        let stderr = self.stderr.lock().unwrap().clone();
        (status, stderr)
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits until `file` has at least `n` lines while the relay runs.
fn wait_for_lines(setup: &Setup, relay: &mut RelayProcess, file: &str, n: usize) -> usize {
    let deadline = Instant::now() + WAIT;
    loop {
        let count = setup.line_count(file);
        if count >= n {
            return count;
        }
        relay.assert_running();
        assert!(
            Instant::now() < deadline,
            "only {count} of {n} lines arrived:\n{}",
            relay.stderr.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Every sent event was relayed unchanged (byte for byte) at least once;
/// returns how many arrived more than once.
fn assert_all_relayed(setup: &Setup) -> usize {
    let sent = setup.lines("sent.jsonl");
    let relayed = setup.lines("relayed.jsonl");
    let sent_set: HashSet<&String> = sent.iter().collect();
    assert_eq!(sent_set.len(), sent.len(), "the demo sent duplicates");
    let mut counts: HashMap<&String, usize> = HashMap::new();
    for line in &relayed {
        // Whole events only (a restart cuts a line torn by a kill).
        serde_json::from_str::<Event>(line).unwrap_or_else(|e| panic!("bad line {line:?}: {e}"));
        assert!(sent_set.contains(line), "relayed but never sent: {line}");
        *counts.entry(line).or_default() += 1;
    }
    let missing = sent.iter().filter(|l| !counts.contains_key(l)).count();
    assert_eq!(
        missing,
        0,
        "{missing} of {} events never arrived",
        sent.len()
    );
    counts.values().map(|n| n - 1).sum()
}

fn exit_code(status: ExitStatus) -> Option<i32> {
    status.code()
}

#[test]
fn demo_to_kafka_to_relay_to_file_delivers_every_event_unchanged() {
    let setup = Setup::new("relay-demo");
    setup.produce(200);
    assert_eq!(setup.line_count("sent.jsonl"), 600);
    let (status, stderr) = setup.relay(&["--exit-when-idle", "2"]).wait();
    assert_eq!(exit_code(status), Some(0), "{stderr}");
    assert!(stderr.contains("relay report (idle)"), "{stderr}");
    assert!(
        stderr.contains(
            "messages 602, events 600, event types 2, malformed 0, committed 602, uncommitted 0"
        ),
        "{stderr}"
    );
    // The documentation of the demo's typed events followed them through
    // Kafka's catalog topic into the relay's file backend.
    let catalog: serde_json::Value =
        serde_json::from_slice(&std::fs::read(setup.file("relayed.catalog.json")).unwrap())
            .unwrap();
    let keys: Vec<&str> = catalog["event_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["address.create@1", "navigation.request@1"]);
    assert!(stderr.contains("assigned partitions:"), "{stderr}");

    let mut sent = setup.lines("sent.jsonl");
    let mut relayed = setup.lines("relayed.jsonl");
    sent.sort();
    relayed.sort();
    assert_eq!(
        relayed, sent,
        "the relayed JSON lines differ from the sent ones"
    );
    assert_eq!(assert_all_relayed(&setup), 0);
    assert!(!setup.file("relay-dead-letter.jsonl").exists());
}

#[test]
fn a_relay_killed_mid_stream_and_restarted_loses_nothing() {
    const EVENTS: usize = 30_000;
    let setup = Setup::new("relay-kill");
    setup.produce(EVENTS as u64 / 3);

    // Slowed down so that the kill lands mid-stream.
    let mut first = setup.relay(&["--max-rate", "5000"]);
    let at_kill = wait_for_lines(&setup, &mut first, "relayed.jsonl", 3_000);
    first.child.kill().unwrap(); // SIGKILL: no flush, no commit, no goodbye
    let (status, _) = first.wait();
    assert_eq!(status.code(), None, "not killed by the signal");
    assert!(at_kill < EVENTS, "the kill came too late to be mid-stream");

    let (status, stderr) = setup.relay(&["--exit-when-idle", "2"]).wait();
    assert_eq!(exit_code(status), Some(0), "{stderr}");
    assert!(stderr.contains("uncommitted 0"), "{stderr}");
    eprintln!("the restarted relay:\n{stderr}");
    let duplicates = assert_all_relayed(&setup);
    let relayed = setup.line_count("relayed.jsonl");
    eprintln!(
        "killed at {at_kill} lines; after the restart {relayed} lines for {EVENTS} events: {duplicates} duplicates"
    );
    assert_eq!(relayed, EVENTS + duplicates);
    // Only what was read after the last commit comes again: at most about
    // a commit interval's worth at 5000/s, plus what librdkafka had in hand.
    assert!(duplicates < 5_000, "{duplicates} duplicates");
}

#[test]
fn sigterm_and_sigint_deliver_and_commit_so_restarts_repeat_nothing() {
    const EVENTS: usize = 15_000;
    let setup = Setup::new("relay-signal");
    setup.produce(EVENTS as u64 / 3);

    let mut stopped_at = 0;
    for signal in ["TERM", "INT"] {
        let mut relay = setup.relay(&["--max-rate", "3000"]);
        wait_for_lines(&setup, &mut relay, "relayed.jsonl", stopped_at + 1_500);
        relay.signal(signal);
        let (status, stderr) = relay.wait();
        assert_eq!(exit_code(status), Some(0), "SIG{signal}:\n{stderr}");
        assert!(
            stderr.contains(&format!("SIG{signal}: stopping")),
            "{stderr}"
        );
        assert!(stderr.contains("relay report (stop requested)"), "{stderr}");
        assert!(stderr.contains("uncommitted 0"), "{stderr}");
        stopped_at = setup.line_count("relayed.jsonl");
        assert!(stopped_at < EVENTS, "SIG{signal} came after the end");
    }
    let (status, stderr) = setup.relay(&["--exit-when-idle", "2"]).wait();
    assert_eq!(exit_code(status), Some(0), "{stderr}");

    // Every event exactly once: each stop committed everything it delivered.
    assert_eq!(assert_all_relayed(&setup), 0);
    assert_eq!(setup.line_count("relayed.jsonl"), EVENTS);
}

#[test]
fn relay_without_a_source_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "[backends.a]\nengine = \"discard\"\n").unwrap();
    let output: Output = Command::new(env!("CARGO_BIN_EXE_eventtracking"))
        .args(["relay", "--config"])
        .arg(&config)
        .env_remove("EVENTTRACKING_CONFIG")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("[source]"), "{stderr}");
}
