//! Signals, the shutdown deadline and the dead-letter file, through the
//! `eventtracking` binary: nothing accepted is lost silently.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_eventtracking");

/// A bulk command running with stdin piped and stderr in a file (to poll it).
struct Running {
    child: Child,
    stderr: PathBuf,
}

impl Running {
    fn start(dir: &Path, args: &[&str]) -> Self {
        let stderr = dir.join(format!("stderr-{}.txt", args[0]));
        let child = Command::new(BIN)
            .args(args)
            .env_remove("EVENTTRACKING_CONFIG")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Running { child, stderr }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits until `ready()`; fails the test with stderr if it exits or hangs first.
    fn wait_for(&mut self, what: &str, ready: impl Fn(&Self) -> bool) {
        let give_up = Instant::now() + Duration::from_secs(120);
        while !ready(self) {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("exited ({status}) before {what}:\n{}", self.stderr());
            }
            assert!(
                Instant::now() < give_up,
                "never saw {what}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the exit (a hang guard, not a timing assertion).
    fn wait(mut self) -> (ExitStatus, String) {
        let give_up = Instant::now() + Duration::from_secs(180);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, self.stderr());
            }
            if Instant::now() > give_up {
                let _ = self.child.kill();
                panic!("did not exit:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `send` input: `{"name":"s","data":N}` for N in 1..=n.
fn numbered_lines(n: u64) -> String {
    (1..=n)
        .map(|i| format!("{{\"name\":\"s\",\"data\":{i}}}\n"))
        .collect()
}

fn line_count(path: &Path) -> usize {
    std::fs::read(path)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .unwrap_or(0)
}

fn json_lines(path: &Path) -> Vec<Value> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// A counter of one backend's line in the report, e.g. `stat(&stderr, "local", "accepted")`.
fn stat(stderr: &str, backend: &str, name: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{backend}: accepted")))
        .unwrap_or_else(|| panic!("no report line for {backend}:\n{stderr}"));
    let at = line
        .find(&format!("{name} "))
        .unwrap_or_else(|| panic!("no {name} in {line}"));
    line[at + name.len() + 1..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn file_config(dir: &Path, extra_delivery: &str) -> (PathBuf, PathBuf, PathBuf) {
    let events = dir.join("events.jsonl");
    let dead = dir.join("dead.jsonl");
    let config = dir.join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[delivery]\nbatch_size = 1\ndead_letter_path = {dead:?}\n{extra_delivery}\n\
             [backends.local]\nengine = \"file\"\npath = {events:?}\nfsync = \"batch\"\n"
        ),
    )
    .unwrap();
    (config, events, dead)
}

/// Every accepted event is in the events file or the dead-letter file,
/// once; returns (delivered, dead-lettered).
fn assert_all_accounted(stderr: &str, events: &Path, dead: &Path) -> (u64, u64) {
    let accepted = stat(stderr, "local", "accepted");
    assert!(accepted > 0, "{stderr}");
    let delivered: Vec<u64> = json_lines(events)
        .iter()
        .map(|e| e["data"].as_u64().unwrap())
        .collect();
    let dead_lettered: Vec<u64> = json_lines(dead)
        .iter()
        .map(|r| {
            assert!(r["reason"].as_str().unwrap().starts_with("shutdown"), "{r}");
            r["event"]["data"].as_u64().unwrap()
        })
        .collect();
    let all: BTreeSet<u64> = delivered.iter().chain(&dead_lettered).copied().collect();
    assert_eq!(
        all.len(),
        delivered.len() + dead_lettered.len(),
        "an event is in both files"
    );
    assert_eq!(all, (1..=accepted).collect(), "{stderr}");
    assert_eq!(stat(stderr, "local", "delivered"), delivered.len() as u64);
    assert_eq!(
        stat(stderr, "local", "dead-lettered"),
        dead_lettered.len() as u64
    );
    assert_eq!(stat(stderr, "local", "dropped"), 0, "{stderr}");
    (delivered.len() as u64, dead_lettered.len() as u64)
}

fn replay(dead: &Path, config: &Path) -> (ExitStatus, String) {
    let output = Command::new(BIN)
        .args([
            "replay",
            dead.to_str().unwrap(),
            "-c",
            config.to_str().unwrap(),
        ])
        .env_remove("EVENTTRACKING_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn send_then_signal(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (config, events, dead) = file_config(dir.path(), "");
    let mut send = Running::start(
        dir.path(),
        &["send", "-c", config.to_str().unwrap(), "--timeout", "2"],
    );
    // 20,000 lines, then stdin stays open (the issue's `; sleep 8`).
    let mut stdin = send.child.stdin.take().unwrap();
    stdin.write_all(numbered_lines(20_000).as_bytes()).unwrap();
    send.wait_for("the first events written", |_| line_count(&events) > 0);
    send.signal(signal);
    let (status, stderr) = send.wait();
    drop(stdin);
    assert!(
        stderr.contains(&format!("stopped by SIG{signal}")),
        "{stderr}"
    );
    let (_, dead_lettered) = assert_all_accounted(&stderr, &events, &dead);
    let expected = if dead_lettered > 0 { 1 } else { 0 };
    assert_eq!(status.code(), Some(expected), "{stderr}");
    if dead_lettered > 0 {
        assert!(stderr.contains("INCOMPLETE: deadline passed"), "{stderr}");
        assert!(stderr.contains("eventtracking replay"), "{stderr}");
        // replay recovers them: then every accepted event is in the events file.
        let accepted = stat(&stderr, "local", "accepted");
        // Into the same events file, in bigger batches (fast), with the same dead-letter file.
        let fast = dir.path().join("replay.toml");
        std::fs::write(
            &fast,
            format!(
                "[delivery]\ndead_letter_path = {dead:?}\n[backends.local]\nengine = \"file\"\npath = {events:?}\n"
            ),
        )
        .unwrap();
        let (status, replayed) = replay(&dead, &fast);
        assert!(status.success(), "{replayed}");
        let delivered: BTreeSet<u64> = json_lines(&events)
            .iter()
            .map(|e| e["data"].as_u64().unwrap())
            .collect();
        assert_eq!(delivered, (1..=accepted).collect());
    }
}

#[test]
fn sigterm_to_send_delivers_or_dead_letters_every_accepted_event() {
    send_then_signal("TERM");
}

#[test]
fn sigint_to_send_delivers_or_dead_letters_every_accepted_event() {
    send_then_signal("INT");
}

#[test]
fn sigint_to_demo_stops_it_and_delivers_what_it_emitted() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[delivery]\ndead_letter_path = {:?}\n[backends.local]\nengine = \"file\"\npath = {events:?}\n",
            dir.path().join("dead.jsonl")
        ),
    )
    .unwrap();
    let mut demo = Running::start(
        dir.path(),
        &[
            "demo",
            "-c",
            config.to_str().unwrap(),
            "--count",
            "1000000000",
        ],
    );
    demo.wait_for("events written", |_| line_count(&events) > 0);
    demo.signal("INT");
    let (status, stderr) = demo.wait();
    assert!(stderr.contains("stopped by SIGINT"), "{stderr}");
    let accepted = stat(&stderr, "local", "accepted");
    let delivered = stat(&stderr, "local", "delivered");
    let dead_lettered = stat(&stderr, "local", "dead-lettered");
    assert_eq!(accepted, delivered + dead_lettered, "{stderr}");
    assert_eq!(line_count(&events) as u64, delivered);
    assert_eq!(
        status.code(),
        Some(if dead_lettered > 0 { 1 } else { 0 }),
        "{stderr}"
    );
}

#[test]
fn a_second_signal_dead_letters_the_rest_and_exits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (config, events, dead) = file_config(dir.path(), "");
    // An hour's deadline: only the second signal can end this soon.
    let mut send = Running::start(
        dir.path(),
        &["send", "-c", config.to_str().unwrap(), "--timeout", "3600"],
    );
    let mut stdin = send.child.stdin.take().unwrap();
    stdin.write_all(numbered_lines(20_000).as_bytes()).unwrap();
    send.wait_for("the first events written", |_| line_count(&events) > 0);
    send.signal("TERM");
    send.wait_for("the first signal handled", |s| {
        s.stderr().contains("SIGTERM: stopping")
    });
    send.signal("TERM");
    let (status, stderr) = send.wait();
    drop(stdin);
    let (delivered, dead_lettered) = assert_all_accounted(&stderr, &events, &dead);
    if dead_lettered > 0 {
        assert_eq!(status.code(), Some(1), "{stderr}");
    } else {
        // Everything got written before the second signal arrived.
        assert_eq!(delivered, stat(&stderr, "local", "accepted"));
    }
}

#[test]
fn mongo_down_at_the_deadline_dead_letters_the_event_and_replay_delivers_it() {
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.jsonl");
    let config = dir.path().join("mongo.toml");
    // Nothing listens on port 1: every attempt fails, retryably.
    std::fs::write(
        &config,
        format!(
            "[delivery]\ndead_letter_path = {dead:?}\n[backends.local]\nengine = \"mongo\"\n\
             uri = \"mongodb://127.0.0.1:1/\"\nserver_selection_timeout_ms = 300\n"
        ),
    )
    .unwrap();
    let mut send = Running::start(
        dir.path(),
        &["send", "-c", config.to_str().unwrap(), "--timeout", "3"],
    );
    send.child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"name\":\"a\",\"data\":1}\n")
        .unwrap();
    let (status, stderr) = send.wait();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(stat(&stderr, "local", "dropped"), 0, "{stderr}");
    assert_eq!(stat(&stderr, "local", "dead-lettered"), 1, "{stderr}");
    assert!(stderr.contains("failed at shutdown 1"), "{stderr}");
    let records = json_lines(&dead);
    assert_eq!(records.len(), 1);
    assert!(
        records[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("shutdown"),
        "{}",
        records[0]
    );

    // Later, replayed to a backend that works, it is delivered with its id.
    let events = dir.path().join("events.jsonl");
    let file_config = dir.path().join("file.toml");
    std::fs::write(
        &file_config,
        format!(
            "[delivery]\ndead_letter_path = {:?}\n[backends.local]\nengine = \"file\"\npath = {events:?}\n",
            dir.path().join("dead2.jsonl")
        ),
    )
    .unwrap();
    let (status, replayed) = replay(&dead, &file_config);
    assert!(status.success(), "{replayed}");
    let delivered = json_lines(&events);
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0]["id"], records[0]["event"]["id"]);
}

#[test]
fn sigterm_with_mongo_paused_dead_letters_what_was_accepted_and_replay_recovers_it() {
    let Ok(uri) = std::env::var("EVENTTRACKING_TEST_MONGO_URI") else {
        eprintln!("EVENTTRACKING_TEST_MONGO_URI is not set: skipping the MongoDB signal test");
        return;
    };
    let Ok(pid) = std::env::var("EVENTTRACKING_TEST_MONGO_PID") else {
        eprintln!("EVENTTRACKING_TEST_MONGO_PID is not set: skipping the MongoDB signal test (it pauses the server)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.jsonl");
    let config = dir.path().join("mongo.toml");
    let collection = format!(
        "signal_{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    std::fs::write(
        &config,
        format!(
            "[delivery]\ndead_letter_path = {dead:?}\n[backends.local]\nengine = \"mongo\"\n\
             uri = {uri:?}\ndatabase = \"eventtracking_cli_tests\"\ncollection = {collection:?}\n\
             server_selection_timeout_ms = 2000\ncreate_indexes = false\n"
        ),
    )
    .unwrap();
    let paused = eventtracking_testkit::PausedProcess::pause(&pid);
    let mut send = Running::start(
        dir.path(),
        &["send", "-c", config.to_str().unwrap(), "--timeout", "3"],
    );
    let mut stdin = send.child.stdin.take().unwrap();
    stdin.write_all(numbered_lines(5_000).as_bytes()).unwrap();
    // Give the reader a moment to accept the lines (whatever it accepted is checked below).
    std::thread::sleep(Duration::from_millis(500));
    send.signal("TERM");
    let (status, stderr) = send.wait();
    drop(paused);
    drop(stdin);
    assert_eq!(status.code(), Some(1), "{stderr}");
    let accepted = stat(&stderr, "local", "accepted");
    assert!(accepted > 0, "{stderr}");
    assert_eq!(stat(&stderr, "local", "delivered"), 0, "{stderr}");
    assert_eq!(
        stat(&stderr, "local", "dead-lettered"),
        accepted,
        "{stderr}"
    );
    assert_eq!(stat(&stderr, "local", "dropped"), 0, "{stderr}");
    let records = json_lines(&dead);
    assert_eq!(records.len() as u64, accepted);
    assert!(records
        .iter()
        .all(|r| r["reason"].as_str().unwrap().starts_with("shutdown")));

    // With the server back, replay delivers every one of them.
    std::fs::rename(&dead, dir.path().join("to-replay.jsonl")).unwrap();
    let (status, replayed) = replay(&dir.path().join("to-replay.jsonl"), &config);
    assert!(status.success(), "{replayed}");
    assert_eq!(
        stat(&replayed, "local", "delivered"),
        accepted,
        "{replayed}"
    );
}

#[test]
fn a_full_dead_letter_file_keeps_whole_records_and_counts_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.jsonl");
    let config = dir.path().join("c.toml");
    // Every event is oversized, so each one goes to the dead-letter file.
    std::fs::write(
        &config,
        format!(
            "[delivery]\nmax_event_bytes = 10\ndead_letter_path = {dead:?}\n\
             [backends.local]\nengine = \"file\"\npath = {:?}\n",
            dir.path().join("events.jsonl")
        ),
    )
    .unwrap();
    let padding = "p".repeat(100);
    let input: String = (1..=200)
        .map(|i| format!("{{\"name\":\"s\",\"data\":{{\"i\":{i},\"pad\":\"{padding}\"}}}}\n"))
        .collect();
    // A 16 KiB file-size limit (RLIMIT_FSIZE), SIGXFSZ ignored: writes past it fail with EFBIG.
    let script = format!(
        "trap '' XFSZ; ulimit -f 16; exec {BIN} send -c {}",
        config.display()
    );
    let mut child = Command::new("bash")
        .args(["-c", &script])
        .env_remove("EVENTTRACKING_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let bytes = std::fs::read(&dead).unwrap();
    assert!(bytes.len() <= 16 * 1024);
    assert!(bytes.ends_with(b"\n"), "torn last record");
    let records = json_lines(&dead);
    assert!(
        !records.is_empty() && records.len() < 200,
        "{}",
        records.len()
    );
    let written = records.len() as u64;
    assert_eq!(stat(&stderr, "local", "dead-lettered"), written, "{stderr}");
    assert_eq!(stat(&stderr, "local", "failed"), 200, "{stderr}");
    assert!(
        stderr.contains(&format!("dead-letter file full {}", 200 - written)),
        "{stderr}"
    );
    assert!(
        stderr.contains("lost: the dead-letter file is full"),
        "{stderr}"
    );
}

#[test]
fn an_unwritable_dead_letter_path_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("a-file");
    std::fs::write(&not_a_dir, "").unwrap();
    let dead = not_a_dir.join("dead.jsonl");
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[delivery]\ndead_letter_path = {dead:?}\n[backends.local]\nengine = \"file\"\npath = {:?}\n",
            dir.path().join("events.jsonl")
        ),
    )
    .unwrap();
    let output = Command::new(BIN)
        .args(["send", "-c", config.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("dead_letter_path"), "{stderr}");
    assert!(stderr.contains(&dead.display().to_string()), "{stderr}");
}

#[test]
fn a_huge_timeout_is_refused_not_a_panic() {
    for command in [&["demo"][..], &["relay"][..]] {
        let output = Command::new(BIN)
            .args(command)
            .args(["--timeout", "9223372036854775807"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("--timeout"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn bulk_commands_block_instead_of_dropping_unless_the_config_says_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let config = dir.path().join("c.toml");
    // A one-event queue: under "drop_newest" nearly every event would be dropped.
    std::fs::write(
        &config,
        format!(
            "[delivery]\nqueue_capacity = 1\ndead_letter_path = {:?}\n[backends.local]\nengine = \"file\"\npath = {events:?}\n",
            dir.path().join("dead.jsonl")
        ),
    )
    .unwrap();
    let output = Command::new(BIN)
        .args(["demo", "-c", config.to_str().unwrap(), "--count", "5000"])
        .env_remove("EVENTTRACKING_OVERFLOW")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(stat(&stderr, "local", "dropped"), 0, "{stderr}");
    assert_eq!(line_count(&events), 15_000);
}

#[test]
fn demo_with_the_default_delivery_settings_drops_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[delivery]\ndead_letter_path = {:?}\n[backends.local]\nengine = \"file\"\npath = {events:?}\n",
            dir.path().join("dead.jsonl")
        ),
    )
    .unwrap();
    let output = Command::new(BIN)
        .args(["demo", "-c", config.to_str().unwrap(), "--count", "200000"])
        .env_remove("EVENTTRACKING_OVERFLOW")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(stat(&stderr, "local", "dropped"), 0, "{stderr}");
    assert_eq!(line_count(&events), 600_000);
}
