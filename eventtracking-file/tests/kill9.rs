//! A writer killed with SIGKILL mid-stream leaves a file that a restarted
//! writer repairs and appends to: every line is a whole event, no id twice.
//!
//! The test binary (harness = false) re-executes itself: with [`CHILD_ENV`]
//! set it is the writer that gets killed.
#![cfg(unix)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use eventtracking::{DeliveryConfig, Event, Tracker};
use eventtracking_file::FileBackend;
use serde_json::json;

const CHILD_ENV: &str = "EVENTTRACKING_FILE_CHILD";
const MAX_BYTES: u64 = 256 * 1024;

fn tracker(path: &Path) -> Tracker {
    let backend = FileBackend::builder(path)
        .with_max_bytes(MAX_BYTES)
        .build()
        .unwrap();
    let dir = path.parent().unwrap();
    let delivery = DeliveryConfig::default()
        .with_batch_size(200)
        .with_linger(std::time::Duration::from_millis(1))
        .with_dead_letter_path(dir.join("dead-letter.jsonl"));
    Tracker::builder()
        .with_delivery(delivery)
        .with_backend("file", backend)
        .build()
        .unwrap()
}

/// The writer child: emits events (big enough that one batch takes several
/// pages) until killed, or gives up after a minute if nobody kills it.
fn kill9_child_writer(path: std::ffi::OsString) {
    let tracker = tracker(Path::new(&path));
    let pad = "p".repeat(500);
    let started = Instant::now();
    let mut i = 0u64;
    while started.elapsed() < Duration::from_secs(60) {
        for _ in 0..200 {
            tracker
                .emit("kill.child", json!({"i": i, "pad": pad}))
                .unwrap();
            i += 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("the child writer was not killed");
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("events.")
        })
        .collect();
    files.sort();
    files
}

fn total_bytes(dir: &Path) -> u64 {
    files(dir)
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum()
}

fn last_byte(path: &Path) -> Option<u8> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path).ok()?;
    file.seek(SeekFrom::End(-1)).ok()?;
    let mut byte = [0u8];
    file.read_exact(&mut byte).ok()?;
    Some(byte[0])
}

fn restart_after_kill_9_appends_after_complete_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD_ENV, &path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // Let it write (and rotate) for a while, then SIGKILL it mid-stream.
    let deadline = Instant::now() + Duration::from_secs(30);
    while total_bytes(dir.path()) < 3 * MAX_BYTES {
        assert!(Instant::now() < deadline, "the child wrote too little");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the child writer exited early"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // Aim for the middle of a write: kill when the file's last byte is not a
    // newline (or after a while anyway).
    let aim = Instant::now() + Duration::from_secs(2);
    while Instant::now() < aim && last_byte(&path).is_none_or(|b| b == b'\n') {}
    child.kill().unwrap(); // SIGKILL on Unix
    let status = child.wait().unwrap();
    assert!(!status.success());
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "{status:?}");
    }
    let before = std::fs::read(&path).unwrap_or_default();
    let torn = !before.is_empty() && !before.ends_with(b"\n");
    eprintln!("killed the writer; the current file ends with a torn line: {torn}");

    // Restart a writer on the same path.
    let tracker = tracker(&path);
    for i in 0..10 {
        tracker.emit("kill.restart", json!({"i": i})).unwrap();
    }
    let report = tracker.shutdown(Duration::from_secs(10)).unwrap();
    assert_eq!(report.backends["file"].delivered, 10);

    let files = files(dir.path());
    assert!(files.len() >= 3, "no rotation happened: {files:?}");
    let mut ids = HashSet::new();
    let mut child_events = 0;
    let mut restart = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(
            text.ends_with('\n'),
            "{} ends with a torn line",
            file.display()
        );
        for line in text.lines() {
            let event: Event = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}: incomplete line {line:?}: {e}", file.display()));
            assert!(ids.insert(event.id()), "id {} written twice", event.id());
            match event.name() {
                "kill.child" => child_events += 1,
                _ => restart.push((file.clone(), event.data()["i"].as_u64().unwrap())),
            }
        }
    }
    assert!(child_events > 0);
    // The restarted writer's events are whole and in order; the first batch
    // may have rotated the old file away.
    assert_eq!(
        restart.iter().map(|(_, i)| *i).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    assert!(restart.iter().all(|(file, _)| file == &path));
    // What the child left complete is untouched, the torn tail is gone, and
    // the restart's lines follow: in the same file, or in a fresh one if
    // appending would have passed `max_bytes`.
    let after = std::fs::read(&path).unwrap();
    let kept = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |at| at + 1);
    let appended = if after.len() > kept && after[..kept] == before[..kept] {
        &after[kept..]
    } else {
        let newest_rotated = &files[files.len() - 2];
        assert_eq!(std::fs::read(newest_rotated).unwrap(), &before[..kept]);
        &after[..]
    };
    let appended = std::str::from_utf8(appended).unwrap();
    assert_eq!(appended.lines().count(), 10, "{appended}");
    assert!(appended
        .lines()
        .all(|l| l.contains(r#""name":"kill.restart""#)));
}

/// A plain `main` (harness = false): the same binary is the test and, with
/// the child variable set, the writer it kills.
fn main() {
    match std::env::var_os(CHILD_ENV) {
        Some(path) => kill9_child_writer(path),
        None => {
            restart_after_kill_9_appends_after_complete_lines();
            println!("kill9: 1 passed, 0 failed");
        }
    }
}
