//! Hostile input to `send` and `replay`: non-UTF-8 lines, over-long lines,
//! and memory that stays bounded.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_eventtracking");

fn file_config(dir: &Path) -> (String, std::path::PathBuf) {
    let events = dir.join("events.jsonl");
    let config = dir.join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[delivery]\nlinger_ms = 5\ndead_letter_path = {:?}\n[backends.local]\nengine = \"file\"\npath = {events:?}\n",
            dir.join("dead.jsonl")
        ),
    )
    .unwrap();
    (config.display().to_string(), events)
}

fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("EVENTTRACKING_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn names(events: &Path) -> Vec<String> {
    std::fs::read_to_string(events)
        .unwrap()
        .lines()
        .map(|l| {
            let event: Value = serde_json::from_str(l).unwrap();
            event["name"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[test]
fn send_refuses_a_non_utf8_line_by_number_and_reads_on() {
    let dir = tempfile::tempdir().unwrap();
    let (config, events) = file_config(dir.path());
    let mut input = b"{\"name\":\"first\"}\n{\"name\":\"bad\",\"data\":\"".to_vec();
    input.extend_from_slice(b"\xff\xfe\"}\n{\"name\":\"third\"}\n");
    let output = run(&["send", "-c", &config], &input);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("line 2: not UTF-8"), "{stderr}");
    assert_eq!(names(&events), ["first", "third"]);
}

#[test]
fn send_and_replay_skip_an_over_long_line_and_read_on() {
    let dir = tempfile::tempdir().unwrap();
    let (config, events) = file_config(dir.path());
    let long = format!("{{\"name\":\"long\",\"data\":\"{}\"}}\n", "x".repeat(1000));
    let input = format!("{{\"name\":\"first\"}}\n{long}{{\"name\":\"third\"}}\n");
    let output = run(
        &["send", "-c", &config, "--max-line-bytes", "100"],
        input.as_bytes(),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("line 2: longer than --max-line-bytes (100 bytes)"),
        "{stderr}"
    );
    assert_eq!(names(&events), ["first", "third"]);

    // replay: the events file (plain events), plus a long line and a bad one.
    let mut file = std::fs::read(&events).unwrap();
    file.extend_from_slice(long.as_bytes());
    file.extend_from_slice(b"\xff\n");
    let to_replay = dir.path().join("replay.jsonl");
    std::fs::write(&to_replay, file).unwrap();
    let (config2, events2) = {
        let sub = dir.path().join("second");
        std::fs::create_dir(&sub).unwrap();
        file_config(&sub)
    };
    let output = run(
        &[
            "replay",
            to_replay.to_str().unwrap(),
            "-c",
            &config2,
            "--max-line-bytes",
            "500",
        ],
        b"",
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("line 3: longer than"), "{stderr}");
    assert!(stderr.contains("line 4: not UTF-8"), "{stderr}");
    assert_eq!(names(&events2), ["first", "third"]);
}

/// The peak resident memory of a running process, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[test]
fn send_holds_no_more_than_the_line_limit_of_an_endless_line() {
    let dir = tempfile::tempdir().unwrap();
    let (config, events) = file_config(dir.path());
    let mut child = Command::new(BIN)
        .args(["send", "-c", &config, "--max-line-bytes", "1000000"])
        .env_remove("EVENTTRACKING_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    // 256 MiB without a newline (as `send < /dev/zero` would read), then a good line.
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..256 {
        input.write_all(&zeros).unwrap();
    }
    input.write_all(b"\n{\"name\":\"after\"}\n").unwrap();
    // Measured while it still runs (stdin open): the long line was held in full before.
    let peak = peak_rss(child.id());
    drop(input);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(peak < 128 << 20, "peak RSS {} MiB", peak >> 20);
    assert!(stderr.contains("line 1: longer than"), "{stderr}");
    assert_eq!(names(&events), ["after"]);
}

#[test]
fn replay_streams_its_file_in_bounded_memory() {
    if !Path::new("/usr/bin/time").exists() {
        eprintln!("/usr/bin/time is not installed: skipping the replay memory test");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
    let pad = "x".repeat(700);
    // About 80 MB of plain events.
    for i in 0..100_000u32 {
        writeln!(
            out,
            r#"{{"id":"0190c4b4-4f5e-7c3a-8b4e-{i:012}","name":"big.event","timestamp":"2026-01-01T00:00:00.000000Z","context":{{}},"data":{{"i":{i},"pad":"{pad}"}}}}"#
        )
        .unwrap();
    }
    drop(out);
    let size = std::fs::metadata(&file).unwrap().len();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[delivery]\nqueue_capacity = 1000\ndead_letter_path = {:?}\n[backends.x]\nengine = \"discard\"\n",
            dir.path().join("dead.jsonl")
        ),
    )
    .unwrap();
    let output = Command::new("/usr/bin/time")
        .args(["-f", "peak-rss-kib %M", BIN, "replay"])
        .args([file.to_str().unwrap(), "-c", config.to_str().unwrap()])
        .env_remove("EVENTTRACKING_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("delivered 100000"), "{stderr}");
    let peak_kib: u64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak-rss-kib "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Reading the whole file in would take more than the file's size.
    assert!(
        peak_kib * 1024 < size / 2,
        "peak RSS {peak_kib} KiB for a {size}-byte file"
    );
}
