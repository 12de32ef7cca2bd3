//! `eventtracking buffers` and `eventtracking drain`: what a backend's disk
//! buffer holds, and delivering it.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use eventtracking::buffer::{DiskBuffer, DiskBufferOptions};
use eventtracking::Event;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_eventtracking");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("EVENTTRACKING_CONFIG")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A config whose backend `out` (a file) keeps its queue in a disk buffer under `dir`.
fn config(dir: &Path) -> String {
    let path = dir.join("pipeline.toml");
    std::fs::write(
        &path,
        format!(
            "[delivery]\nbuffer = \"disk\"\nbuffer_path = {:?}\ndead_letter_path = {:?}\n\n\
             [backends.out]\nengine = \"file\"\npath = {:?}\n",
            dir.join("buffers"),
            dir.join("dead-letter.jsonl"),
            dir.join("out.jsonl"),
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

/// Events left in backend `out`'s buffer, as a process that died would leave them.
fn leave_in_buffer(dir: &Path, n: usize) -> Vec<Arc<Event>> {
    let events: Vec<Arc<Event>> = (0..n)
        .map(|i| Arc::new(Event::new("left.behind", json!({ "i": i })).unwrap()))
        .collect();
    let buffer = DiskBuffer::open(
        dir.join("buffers").join("out"),
        DiskBufferOptions::default(),
    )
    .unwrap();
    for event in &events {
        buffer.append(event.to_json_bytes()).unwrap();
    }
    buffer.close().unwrap();
    events
}

/// The `out` row of `eventtracking buffers`: events, bytes, segments, oldest.
fn out_row(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .find(|line| line.starts_with("out\t"))
        .unwrap_or_else(|| panic!("no row for backend out in:\n{stdout}"))
        .split('\t')
        .map(str::to_owned)
        .collect()
}

#[test]
fn buffers_shows_what_is_held_and_drain_delivers_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let events = leave_in_buffer(dir.path(), 5);

    let listed = run(&["buffers", "--config", &config]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let row = out_row(&text(&listed.stdout));
    assert_eq!(row[1], "5", "events: {row:?}");
    assert!(row[2].parse::<u64>().unwrap() > 0, "bytes: {row:?}");
    assert_eq!(row[4], events[0].timestamp_rfc3339(), "oldest: {row:?}");

    let drained = run(&["drain", "--config", &config, "--timeout", "60"]);
    assert!(
        drained.status.success(),
        "drain failed: {}",
        text(&drained.stderr)
    );
    let stored: Vec<Value> = std::fs::read_to_string(dir.path().join("out.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let ids: Vec<String> = stored
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = events.iter().map(|e| e.id().to_string()).collect();
    assert_eq!(ids, expected, "each event once, in order");

    let after = run(&["buffers", "--config", &config]);
    assert_eq!(out_row(&text(&after.stdout))[1], "0");
    // Draining an empty buffer delivers nothing more.
    assert!(run(&["drain", "--config", &config]).status.success());
    let lines = std::fs::read_to_string(dir.path().join("out.jsonl"))
        .unwrap()
        .lines()
        .count();
    assert_eq!(lines, 5);
}

/// A buffer another process is using is not opened (its records could be
/// cut as torn while being written): `buffers` and `drain` say so and which
/// directory; once `send` has ended, both work.
#[test]
fn a_buffer_in_use_by_another_process_is_refused_naming_it() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let mut send = Command::new(BIN)
        .args(["send", "--config", &config])
        .env_remove("EVENTTRACKING_CONFIG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = send.stdin.take().unwrap();
    stdin
        .write_all(b"{\"name\":\"held\",\"data\":1}\n")
        .unwrap();
    // A segment file: the buffer is open (and locked, which comes first).
    let buffer_dir = dir.path().join("buffers").join("out");
    let has_segment = || {
        std::fs::read_dir(&buffer_dir).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "etb"))
        })
    };
    let start = std::time::Instant::now();
    while !has_segment() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "send never opened its buffer"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    for command in ["buffers", "drain"] {
        let refused = run(&[command, "--config", &config]);
        let stderr = text(&refused.stderr);
        assert!(!refused.status.success(), "{command}: {stderr}");
        assert!(
            stderr.contains("in use by another process")
                && stderr.contains(&buffer_dir.display().to_string()),
            "{command}: {stderr}"
        );
    }
    drop(stdin);
    assert!(send.wait().unwrap().success());
    let listed = run(&["buffers", "--config", &config]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    assert_eq!(out_row(&text(&listed.stdout))[1], "0");
}

#[test]
fn without_a_disk_buffer_there_is_nothing_to_show_or_drain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.toml");
    std::fs::write(
        &path,
        format!(
            "[delivery]\ndead_letter_path = {:?}\n[backends.null]\nengine = \"discard\"\n",
            dir.path().join("dead-letter.jsonl")
        ),
    )
    .unwrap();
    let config = path.to_str().unwrap();
    let listed = run(&["buffers", "--config", config]);
    assert!(listed.status.success());
    assert!(text(&listed.stdout).contains("no backend uses a disk buffer"));
    let drained = run(&["drain", "--config", config]);
    assert!(drained.status.success());
    assert!(text(&drained.stderr).contains("nothing to drain"));
}

#[test]
fn a_bad_config_is_an_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[delivery]\nbuffer = \"tape\"\n[backends.out]\nengine = \"discard\"\n",
    )
    .unwrap();
    let listed = run(&["buffers", "--config", path.to_str().unwrap()]);
    assert_eq!(listed.status.code(), Some(2), "{}", text(&listed.stderr));
    assert!(
        text(&listed.stderr).contains("buffer"),
        "{}",
        text(&listed.stderr)
    );
}
