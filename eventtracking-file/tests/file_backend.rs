//! The file backend through a real tracker and delivery engine.

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use eventtracking_core::{Config, DeliveryConfig, Event, Tracker};
use eventtracking_file::{FileBackend, FsyncPolicy};
use serde_json::json;

fn tracker(backend: FileBackend, batch_size: usize) -> Tracker {
    Tracker::builder()
        .with_delivery(
            DeliveryConfig::default()
                .with_batch_size(batch_size)
                .with_linger_ms(1)
                .with_queue_capacity(1 << 20),
        )
        .with_backend("file", backend)
        .build()
        .unwrap()
}

fn read_events(path: &Path) -> Vec<Event> {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.is_empty() || text.ends_with('\n'), "last line is torn");
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect()
}

/// Every file in `dir` (sorted by name: rotated files sort by time, the live one last).
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn events_are_whole_json_lines_read_back_equal_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/events.jsonl");
    let memory = eventtracking_core::InMemoryBackend::new();
    let tracker = Tracker::builder()
        .with_backend("file", FileBackend::builder(&path).build().unwrap())
        .with_backend("memory", memory.clone())
        .build()
        .unwrap();
    let _ctx = tracker.context("outer", json!({"user_id": 10938})).unwrap();
    for i in 0..500 {
        tracker
            .emit(
                "navigation.request",
                json!({"i": i, "nested": {"deep": [i, {"x": "ü\n\"q\""}]}}),
            )
            .unwrap();
    }
    let report = tracker.shutdown(Duration::from_secs(10)).unwrap();
    assert_eq!(report.backends["file"].delivered, 500, "{report}");
    let written = read_events(&path);
    let sent: Vec<Event> = memory.events().iter().map(|e| (**e).clone()).collect();
    assert_eq!(written, sent);
    let line: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let keys: Vec<&str> = line
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["id", "name", "timestamp", "context", "data"]);
}

#[test]
fn config_builds_the_file_engine_and_names_bad_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let config = format!(
        "[backends.local]\nengine = \"file\"\npath = \"{}\"\nmax_bytes = 100000\nrotate_every = \"1h\"\nfsync = \"interval\"\nfsync_interval_ms = 10",
        path.display()
    );
    let tracker = Config::from_toml_str(&config).unwrap().build().unwrap();
    tracker.emit("a.b", json!({"k": 1})).unwrap();
    tracker.shutdown(Duration::from_secs(10)).unwrap();
    assert_eq!(read_events(&path).len(), 1);

    let err = |text: String| match Config::from_toml_str(&text).unwrap().build() {
        Ok(_) => panic!("expected an error for {text}"),
        Err(e) => e.to_string(),
    };
    let p = path.display();
    let e = err(format!(
        "[backends.local]\nengine = \"file\"\npath = \"{p}\"\nmax_byte = 3"
    ));
    assert!(
        e.contains("max_byte") && e.contains("backends.local"),
        "{e}"
    );
    let e = err("[backends.local]\nengine = \"file\"\npath = \"-\"\nmax_bytes = 3".into());
    assert!(e.contains("max_bytes") && e.contains("stdout"), "{e}");
    let e = err(format!(
        "[backends.local]\nengine = \"file\"\npath = \"{p}\"\nfsync = \"sometimes\""
    ));
    assert!(e.contains("sometimes"), "{e}");
    let e = err(format!(
        "[backends.local]\nengine = \"file\"\npath = \"{p}\"\nrotate_every = \"soon\""
    ));
    assert!(e.contains("rotate_every") && e.contains("soon"), "{e}");
    let e = err(
        "[backends.local]\nengine = \"file\"\npath = \"/proc/no/such/dir/events.jsonl\"".into(),
    );
    assert!(e.contains("/proc/no/such/dir/events.jsonl"), "{e}");
    let e = err("[backends.local]\nengine = \"file\"".into());
    assert!(e.contains("path"), "{e}");
}

#[test]
fn size_rotation_keeps_every_event_once_in_bounded_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let max_bytes = 20_000;
    let backend = FileBackend::builder(&path)
        .with_max_bytes(max_bytes)
        .build()
        .unwrap();
    let tracker = tracker(backend, 10);
    let mut emitted = HashSet::new();
    for i in 0..2_000 {
        tracker
            .emit("page.view", json!({"i": i, "url": "/some/path"}))
            .unwrap();
    }
    let report = tracker.shutdown(Duration::from_secs(30)).unwrap();
    assert_eq!(report.backends["file"].delivered, 2_000, "{report}");
    let files = files(dir.path());
    assert!(files.len() > 5, "{files:?}");
    assert_eq!(files.last().unwrap(), &path, "the live file sorts last");
    let mut seen = Vec::new();
    for file in &files {
        let size = std::fs::metadata(file).unwrap().len();
        assert!(size <= max_bytes, "{} is {size} bytes", file.display());
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("events.") && name.ends_with(".jsonl"),
            "{name}"
        );
        seen.extend(
            read_events(file)
                .into_iter()
                .map(|e| e.data()["i"].as_u64().unwrap()),
        );
    }
    emitted.extend(0..2_000u64);
    assert_eq!(seen.len(), 2_000);
    assert_eq!(seen.iter().copied().collect::<HashSet<_>>(), emitted);
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "order kept across files"
    );
}

#[test]
fn time_rotation_starts_new_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let backend = FileBackend::builder(&path)
        .with_rotate_every(Duration::from_millis(100))
        .build()
        .unwrap();
    let tracker = tracker(backend, 1);
    for i in 0..4 {
        tracker.emit("tick", json!({"i": i})).unwrap();
        tracker.flush(Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(150));
    }
    tracker.shutdown(Duration::from_secs(5)).unwrap();
    let files = files(dir.path());
    assert_eq!(files.len(), 4, "{files:?}");
    let total: usize = files.iter().map(|f| read_events(f).len()).sum();
    assert_eq!(total, 4);
}

#[test]
fn files_are_created_with_mode_0640_rotated_ones_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let backend = FileBackend::builder(&path)
        .with_max_bytes(300)
        .build()
        .unwrap();
    let tracker = tracker(backend, 1);
    for i in 0..5 {
        tracker
            .emit("page.view", json!({"i": i, "pad": "x".repeat(100)}))
            .unwrap();
    }
    tracker.shutdown(Duration::from_secs(5)).unwrap();
    let files = files(dir.path());
    assert!(files.len() >= 2, "{files:?}");
    for file in files {
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640, "{}", file.display());
    }
}

#[test]
fn a_torn_last_line_is_cut_and_new_lines_follow_complete_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let complete: Vec<String> = (0..3)
        .map(|i| {
            String::from_utf8(
                Event::new("old", json!(i))
                    .unwrap()
                    .to_json_bytes()
                    .to_vec(),
            )
            .unwrap()
        })
        .collect();
    let mut text = complete.join("\n");
    text.push('\n');
    text.push_str(r#"{"id":"0190c4b4-4f5e-7c3a-8b4e-1a2b"#);
    std::fs::write(&path, &text).unwrap();

    let tracker = tracker(FileBackend::builder(&path).build().unwrap(), 10);
    tracker.emit("new", json!({"after": "repair"})).unwrap();
    tracker.shutdown(Duration::from_secs(5)).unwrap();
    let events = read_events(&path);
    let names: Vec<&str> = events.iter().map(Event::name).collect();
    assert_eq!(names, ["old", "old", "old", "new"]);
}

#[test]
fn fsync_policies_write_the_same_lines() {
    for policy in [
        FsyncPolicy::Never,
        FsyncPolicy::EveryBatch,
        FsyncPolicy::Interval(Duration::from_millis(1)),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let backend = FileBackend::builder(&path)
            .with_fsync(policy)
            .build()
            .unwrap();
        let tracker = tracker(backend, 7);
        for i in 0..50 {
            tracker.emit("a", json!(i)).unwrap();
        }
        let report = tracker.shutdown(Duration::from_secs(5)).unwrap();
        assert_eq!(report.backends["file"].delivered, 50, "{policy:?}");
        let data: Vec<i64> = read_events(&path)
            .iter()
            .map(|e| e.data().as_i64().unwrap())
            .collect();
        assert_eq!(data, (0..50).collect::<Vec<_>>(), "{policy:?}");
    }
}

#[test]
fn a_write_error_is_retryable_and_names_the_file() {
    // /dev/full accepts the open and fails every write with ENOSPC.
    let backend = FileBackend::builder("/dev/full").build().unwrap();
    let event = Arc::new(Event::new("a", json!(1)).unwrap());
    let runtime = tokio::runtime::Builder::new_multi_thread().build().unwrap();
    let error = runtime
        .block_on(eventtracking_core::Backend::send_batch(&backend, &[event]))
        .unwrap_err();
    assert!(error.is_retryable(), "{error}");
    assert!(error.to_string().contains("/dev/full"), "{error}");
}
