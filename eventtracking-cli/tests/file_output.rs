//! The file backend under a hostile user, through the `eventtracking`
//! binary: the events file deleted or renamed while `send` writes, stdout
//! closed (`>&-`) or its reader gone (`| head -1`), and the catalog file's
//! mode under a permissive umask.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_eventtracking");

fn config(dir: &Path) -> (PathBuf, PathBuf) {
    let events = dir.join("events.jsonl");
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[delivery]\nlinger_ms = 5\nbatch_size = 50\ndead_letter_path = \"{}\"\n\
             [backends.local]\nengine = \"file\"\npath = \"{}\"\n",
            dir.join("dead.jsonl").display(),
            events.display()
        ),
    )
    .unwrap();
    (config, events)
}

fn spawn_send(config: &Path) -> Child {
    Command::new(BIN)
        .args(["send", "--config"])
        .arg(config)
        .env_remove("EVENTTRACKING_CONFIG")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn write_events(child: &mut Child, range: std::ops::RangeInclusive<u64>) {
    let input = child.stdin.as_mut().unwrap();
    for i in range {
        writeln!(input, r#"{{"name":"t.file","data":{{"i":{i}}}}}"#).unwrap();
    }
    input.flush().unwrap();
}

/// The `data.i` of every line of `path` (none if it does not exist), with
/// how many times each occurs.
fn counts(path: &Path) -> BTreeMap<u64, usize> {
    let mut counts = BTreeMap::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        let event: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        *counts
            .entry(event["data"]["i"].as_u64().unwrap())
            .or_insert(0) += 1;
    }
    counts
}

/// Waits (up to a generous bound) until `path` holds at least `n` lines.
fn wait_for_lines(path: &Path, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let lines = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .count();
        if lines >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} never reached {n} lines",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn finish(mut child: Child) -> (std::process::ExitStatus, String) {
    drop(child.stdin.take());
    let output = child.wait_with_output().unwrap();
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn an_events_file_deleted_mid_stream_is_recreated_and_gets_every_later_event() {
    let dir = tempfile::tempdir().unwrap();
    let (config, events) = config(dir.path());
    let mut child = spawn_send(&config);
    write_events(&mut child, 1..=100);
    wait_for_lines(&events, 100);
    std::fs::remove_file(&events).unwrap();
    write_events(&mut child, 101..=400);
    let (status, stderr) = finish(child);

    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("delivered 400"), "{stderr}");
    // The first 100 went with the deleted file; every later one is in the
    // new file at the path, once.
    let found = counts(&events);
    let expected: BTreeMap<u64, usize> = (101..=400).map(|i| (i, 1)).collect();
    assert_eq!(found, expected);
    // Counted and named in the log.
    assert!(
        stderr.contains("was deleted or replaced")
            && stderr.contains(&events.display().to_string()),
        "{stderr}"
    );
    assert!(!dir.path().join("dead.jsonl").exists());
}

#[test]
fn an_events_file_renamed_mid_stream_leaves_every_event_exactly_once_in_the_two_files() {
    let dir = tempfile::tempdir().unwrap();
    let (config, events) = config(dir.path());
    let renamed = dir.path().join("events.renamed.jsonl");
    let mut child = spawn_send(&config);
    // Renamed while `send` is still writing the first part.
    write_events(&mut child, 1..=5000);
    wait_for_lines(&events, 1);
    std::fs::rename(&events, &renamed).unwrap();
    write_events(&mut child, 5001..=10_000);
    let (status, stderr) = finish(child);

    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("delivered 10000"), "{stderr}");
    let before = counts(&renamed);
    let after = counts(&events);
    assert!(!before.is_empty(), "nothing reached the renamed file");
    // Everything sent after the rename is in the new file at the path.
    assert!((5001..=10_000).all(|i| after.contains_key(&i)), "{stderr}");
    let mut all = before.clone();
    for (i, n) in after {
        *all.entry(i).or_insert(0) += n;
    }
    let expected: BTreeMap<u64, usize> = (1..=10_000).map(|i| (i, 1)).collect();
    assert_eq!(all, expected, "events missing or written twice");
}

#[test]
fn demo_into_a_closed_pipe_stops_and_counts_drops_without_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["demo", "--count", "1000000"])
        .current_dir(dir.path())
        .env_remove("EVENTTRACKING_CONFIG")
        .env_remove("EVENTTRACKING_DEAD_LETTER_PATH")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `| head -1`: read one line, then close the pipe.
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("navigation.request"), "{first}");
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);

    // No dead-letter file in the current directory (or anywhere in it).
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}\n{stderr}");
    // The events not written are counted as dropped because the output
    // closed, and the demo stopped early instead of emitting 3 million.
    assert!(stderr.contains("output closed"), "{stderr}");
    assert!(stderr.contains("dead-lettered 0"), "{stderr}");
    let emitted: u64 = stderr
        .split("emitted ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no report: {stderr}"));
    assert!(emitted < 3_000_000, "{stderr}");
    assert_eq!(output.status.code(), Some(1), "{stderr}");
}

#[test]
fn a_closed_stdout_is_refused_not_reported_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new("sh")
        .args(["-c", "exec \"$0\" demo >&-", BIN])
        .current_dir(dir.path())
        .env_remove("EVENTTRACKING_CONFIG")
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("stdout is closed"), "{stderr}");
    assert!(!stderr.contains("delivered"), "{stderr}");

    // Discarding on purpose is not a closed stdout.
    let output = Command::new("sh")
        .args(["-c", "exec \"$0\" demo > /dev/null", BIN])
        .current_dir(dir.path())
        .env_remove("EVENTTRACKING_CONFIG")
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("delivered 3"), "{stderr}");
}

#[cfg(unix)]
#[test]
fn the_catalog_file_has_the_events_file_s_mode_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (config, events) = config(dir.path());
    let output = Command::new("sh")
        .args(["-c", "umask 000; exec \"$0\" demo --config \"$1\"", BIN])
        .arg(&config)
        .env_remove("EVENTTRACKING_CONFIG")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let catalog = dir.path().join("events.catalog.json");
    for path in [&events, &catalog] {
        let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640, "{}", path.display());
    }
}
