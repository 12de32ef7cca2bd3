//! The file backend through a real tracker, through config, and driven directly.
#![cfg(unix)]

use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventtracking::{Backend, Config, DeliveryConfig, Event, InMemoryBackend, Tracker};
use eventtracking_file::{FileBackend, FsyncPolicy};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

/// Every file of `dir` whose name starts with `stem.`, sorted by name
/// (rotated files sort by time, before the current file).
fn files(dir: &Path, stem: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{stem}."))
        })
        .collect();
    files.sort();
    files
}

/// The events of one file, checking that it holds whole lines only.
fn read_events(path: &Path) -> Vec<Event> {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "{} ends with a torn line",
        path.display()
    );
    text.lines()
        .map(|line| {
            serde_json::from_str::<Event>(line)
                .unwrap_or_else(|e| panic!("{}: bad line {line:?}: {e}", path.display()))
        })
        .collect()
}

fn delivery(dir: &Path) -> DeliveryConfig {
    DeliveryConfig::default()
        .with_linger(std::time::Duration::from_millis(1))
        .with_dead_letter_path(dir.join("dead-letter.jsonl"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn event(batch: usize, i: usize, pad: usize) -> Arc<Event> {
    Arc::new(
        Event::new(
            "file.test",
            json!({"batch": batch, "i": i, "pad": "x".repeat(pad)}),
        )
        .unwrap(),
    )
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn tracker_writes_one_event_per_line_and_they_read_back_equal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/events.jsonl");
    let backend = FileBackend::builder(&path).build().unwrap();
    let memory = InMemoryBackend::new();
    let tracker = Tracker::builder()
        .with_delivery(delivery(dir.path()).with_batch_size(7))
        .with_backend("file", backend)
        .with_backend("memory", memory.clone())
        .build()
        .unwrap();
    tracker
        .enter_context("outer", json!({"user_id": 10938}))
        .unwrap();
    for i in 0..50 {
        let _inner = tracker.context("inner", json!({"request": i})).unwrap();
        tracker
            .emit(
                "navigation.request",
                json!({"url": format!("/path/{i}"), "text": "line\nbreak \"quoted\" ü"}),
            )
            .unwrap();
    }
    tracker.exit_context("outer").unwrap();
    let report = tracker.flush(WAIT);
    assert!(report.complete);
    assert_eq!(report.backends["file"].delivered, 50);

    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 50);
    assert!(text.ends_with('\n'));
    for line in &lines {
        let value: Value = serde_json::from_str(line).unwrap();
        let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 5, "{line}");
        for key in ["id", "name", "timestamp", "context", "data"] {
            assert!(value.get(key).is_some(), "{key} missing in {line}");
        }
    }
    let written = read_events(&path);
    let emitted: Vec<Event> = memory.events().iter().map(|e| (**e).clone()).collect();
    assert_eq!(written, emitted);
    assert_eq!(written[3].context()["user_id"], 10938);
    assert_eq!(written[3].context()["request"], 3);
    assert_eq!(written[3].data()["url"], "/path/3");
    tracker.shutdown(WAIT).unwrap();
}

#[test]
fn config_builds_the_file_engine_and_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let toml = format!(
        "[delivery]\nlinger_ms = 1\ndead_letter_path = {dl:?}\n[backends.local]\nengine = \"file\"\npath = {path:?}\nmax_bytes = 1000000\nrotate_every = \"1h\"\n",
        dl = dir.path().join("dl.jsonl"),
        path = path,
    );
    let tracker = Config::from_toml_str(&toml).unwrap().build().unwrap();
    assert_eq!(tracker.backend_names(), ["local"]);
    tracker.emit("config.works", json!({"n": 1})).unwrap();
    tracker.emit("config.works", json!({"n": 2})).unwrap();
    assert!(tracker.flush(WAIT).complete);
    let events = read_events(&path);
    assert_eq!(
        events
            .iter()
            .map(|e| e.data()["n"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(mode(&path), 0o640);
    tracker.shutdown(WAIT).unwrap();

    // Stdout is fine without rotation.
    let stdout =
        Config::from_toml_str("[backends.out]\nengine = \"file\"\npath = \"-\"\nfsync = \"batch\"")
            .unwrap()
            .build()
            .unwrap();
    stdout.shutdown(WAIT).unwrap();
}

fn build_error(options: &str) -> String {
    let toml = format!("[backends.local]\nengine = \"file\"\n{options}");
    let err = Config::from_toml_str(&toml)
        .unwrap()
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("backends.local"),
        "error does not name the entry: {err}"
    );
    err
}

#[test]
fn config_errors_name_the_key_value_or_path() {
    let dir = tempfile::tempdir().unwrap();
    let ok_path = format!("path = {:?}\n", dir.path().join("e.jsonl"));

    let err = build_error(&format!("{ok_path}colour = \"blue\""));
    assert!(err.contains("unknown field `colour`"), "{err}");
    let err = build_error("max_bytes = 10");
    assert!(err.contains("missing field `path`"), "{err}");
    let err = build_error("path = \"\"");
    assert!(err.contains("`path`"), "{err}");

    let err = build_error("path = \"-\"\nmax_bytes = 1000");
    assert!(
        err.contains("`max_bytes`") && err.contains("stdout"),
        "{err}"
    );
    let err = build_error("path = \"-\"\nrotate_every = \"1h\"");
    assert!(
        err.contains("`rotate_every`") && err.contains("stdout"),
        "{err}"
    );

    let err = build_error(&format!("{ok_path}max_bytes = 0"));
    assert!(err.contains("`max_bytes` = 0"), "{err}");
    let err = build_error(&format!("{ok_path}rotate_every = \"soon\""));
    assert!(err.contains("`rotate_every` = \"soon\""), "{err}");
    let err = build_error(&format!("{ok_path}rotate_every = \"0s\""));
    assert!(err.contains("`rotate_every` = \"0s\""), "{err}");

    // A path that cannot be opened: its "directory" is a regular file.
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, "").unwrap();
    let bad = blocker.join("events.jsonl");
    let err = build_error(&format!("path = {bad:?}"));
    assert!(err.contains(&bad.display().to_string()), "{err}");
    assert!(err.contains("os error"), "{err}");
    // ... and the builder says the same.
    let err = FileBackend::builder(&bad).build().unwrap_err().to_string();
    assert!(err.contains(&bad.display().to_string()), "{err}");
    let err = FileBackend::builder(dir.path())
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot open event file"), "{err}");
}

#[test]
fn fsync_policies_are_parsed_and_all_write() {
    let dir = tempfile::tempdir().unwrap();
    for (name, extra) in [
        ("default", ""),
        ("never", "fsync = \"never\""),
        ("batch", "fsync = \"batch\""),
        ("interval", "fsync = \"interval\""),
        (
            "interval-ms",
            "fsync = \"interval\"\nfsync_interval_ms = 10",
        ),
    ] {
        let path = dir.path().join(format!("{name}.jsonl"));
        let toml = format!(
            "[delivery]\nlinger_ms = 1\ndead_letter_path = {dl:?}\n[backends.local]\nengine = \"file\"\npath = {path:?}\n{extra}",
            dl = dir.path().join("dl.jsonl"),
        );
        let tracker = Config::from_toml_str(&toml).unwrap().build().unwrap();
        for i in 0..5 {
            tracker.emit("fsync.test", json!({"i": i})).unwrap();
            std::thread::sleep(Duration::from_millis(15));
        }
        // Idle for several intervals: the interval task runs with nothing failing.
        std::thread::sleep(Duration::from_millis(60));
        let report = tracker.shutdown(WAIT).unwrap();
        assert!(report.complete, "{name}");
        let stats = &report.backends["local"];
        assert_eq!(
            (stats.delivered, stats.failed, stats.retried),
            (5, 0, 0),
            "{name}"
        );
        assert_eq!(read_events(&path).len(), 5, "{name}");
    }
    assert!(!dir.path().join("dl.jsonl").exists());

    let ok_path = format!("path = {:?}\n", dir.path().join("e.jsonl"));
    let err = build_error(&format!("{ok_path}fsync = \"sometimes\""));
    assert!(err.contains("`fsync` = \"sometimes\""), "{err}");
    let err = build_error(&format!(
        "{ok_path}fsync = \"batch\"\nfsync_interval_ms = 10"
    ));
    assert!(err.contains("`fsync_interval_ms`"), "{err}");
    let err = build_error(&format!(
        "{ok_path}fsync = \"interval\"\nfsync_interval_ms = 0"
    ));
    assert!(err.contains("`fsync_interval_ms` = 0"), "{err}");
}

#[test]
fn size_rotation_never_splits_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let max_bytes = 1500;
    let backend = FileBackend::builder(&path)
        .with_max_bytes(max_bytes)
        .build()
        .unwrap();
    let mut emitted = Vec::new();
    runtime().block_on(async {
        for batch in 0..40 {
            // 1 to 4 events of about 150 bytes; batch 17 alone exceeds max_bytes.
            let n = if batch == 17 { 20 } else { 1 + batch % 4 };
            let events: Vec<_> = (0..n).map(|i| event(batch, i, 40)).collect();
            backend.send_batch(&events).await.unwrap();
            emitted.extend(events.iter().map(|e| e.id()));
        }
        backend.flush().await.unwrap();
    });

    let files = files(dir.path(), "events");
    assert!(files.len() >= 5, "expected several files, got {files:?}");
    assert_eq!(files.last().unwrap(), &path);
    let mut written = Vec::new();
    let mut file_of_batch = BTreeMap::new();
    let mut oversized = 0;
    for file in &files {
        let events = read_events(file);
        let len = std::fs::metadata(file).unwrap().len();
        let batches: HashSet<u64> = events
            .iter()
            .map(|e| e.data()["batch"].as_u64().unwrap())
            .collect();
        if len > max_bytes {
            assert_eq!(
                batches.len(),
                1,
                "{} is {len} bytes and holds batches {batches:?}",
                file.display()
            );
            oversized += 1;
        }
        for batch in batches {
            let previous = file_of_batch.insert(batch, file.clone());
            assert!(
                previous.is_none(),
                "batch {batch} is split across {previous:?} and {file:?}"
            );
        }
        written.extend(events.iter().map(|e| e.id()));
    }
    assert_eq!(oversized, 1, "only batch 17 is larger than max_bytes");
    assert_eq!(written.len(), emitted.len());
    assert_eq!(
        written, emitted,
        "events missing, duplicated or out of order"
    );
}

#[test]
fn size_rotation_through_a_tracker_keeps_every_event() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let backend = FileBackend::builder(&path)
        .with_max_bytes(4096)
        .build()
        .unwrap();
    let tracker = Tracker::builder()
        .with_delivery(delivery(dir.path()).with_batch_size(16))
        .with_backend("file", backend)
        .build()
        .unwrap();
    for i in 0..1000 {
        tracker.emit("tracker.rotation", json!({"i": i})).unwrap();
    }
    let report = tracker.shutdown(WAIT).unwrap();
    assert_eq!(report.backends["file"].delivered, 1000);
    let files = files(dir.path(), "events");
    assert!(files.len() > 5, "{files:?}");
    let mut seen = HashSet::new();
    let mut order = Vec::new();
    for file in &files {
        assert!(
            std::fs::metadata(file).unwrap().len() <= 4096,
            "{}",
            file.display()
        );
        for event in read_events(file) {
            assert!(seen.insert(event.id()), "duplicate {}", event.id());
            order.push(event.data()["i"].as_u64().unwrap());
        }
    }
    assert_eq!(order, (0..1000).collect::<Vec<_>>());
}

#[test]
fn time_rotation_starts_a_new_file_when_the_current_one_is_old() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let every = Duration::from_millis(200);
    let backend = FileBackend::builder(&path)
        .with_rotate_every(every)
        .build()
        .unwrap();
    let started = Instant::now();
    let mut sent = 0;
    runtime().block_on(async {
        while started.elapsed() < Duration::from_millis(700) {
            backend.send_batch(&[event(sent, 0, 0)]).await.unwrap();
            sent += 1;
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        backend.flush().await.unwrap();
    });
    let elapsed = started.elapsed();
    let files = files(dir.path(), "events");
    assert!(files.len() >= 2, "no time rotation: {files:?}");
    // A file is rotated only once it is `every` old.
    let most = (elapsed.as_millis() / every.as_millis()) as usize + 1;
    assert!(
        files.len() <= most,
        "{} files in {elapsed:?}: {files:?}",
        files.len()
    );
    let total: usize = files.iter().map(|f| read_events(f).len()).sum();
    assert_eq!(total, sent);
}

#[test]
fn files_are_created_with_mode_0640_also_after_rotation() {
    // Also under a umask that would narrow 0640 to 0600: the test binary
    // runs this test again in a child started with `umask 077`.
    const UMASK_CHILD: &str = "EVENTTRACKING_FILE_UMASK_CHILD";
    if std::env::var_os(UMASK_CHILD).is_none() {
        let status = std::process::Command::new("sh")
            .args(["-c", "umask 077 && exec \"$0\" \"$@\""])
            .arg(std::env::current_exe().unwrap())
            .args([
                "files_are_created_with_mode_0640_also_after_rotation",
                "--exact",
                "--test-threads=1",
            ])
            .env(UMASK_CHILD, "1")
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "failed under umask 077");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.log");
    let backend = FileBackend::builder(&path)
        .with_max_bytes(200)
        .with_fsync(FsyncPolicy::EveryBatch)
        .build()
        .unwrap();
    assert_eq!(mode(&path), 0o640);
    runtime().block_on(async {
        for batch in 0..4 {
            backend.send_batch(&[event(batch, 0, 100)]).await.unwrap();
        }
    });
    let files = files(dir.path(), "events");
    assert_eq!(files.len(), 4, "{files:?}");
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy();
        assert!(name.ends_with(".log"), "{name}");
        assert_eq!(mode(file), 0o640, "{name}");
    }
}

#[test]
fn a_torn_last_line_is_cut_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let old: Vec<Arc<Event>> = (0..3).map(|i| event(0, i, 0)).collect();
    let mut content = Vec::new();
    for event in &old {
        content.extend_from_slice(event.to_json_bytes());
        content.push(b'\n');
    }
    let complete = content.len() as u64;
    let torn = event(0, 3, 0);
    content.extend_from_slice(&torn.to_json_bytes()[..40]);
    std::fs::write(&path, &content).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();

    let backend = FileBackend::builder(&path).build().unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        complete,
        "not repaired at open"
    );
    // An existing file keeps its mode.
    assert_eq!(mode(&path), 0o600);
    let new: Vec<Arc<Event>> = (0..2).map(|i| event(1, i, 0)).collect();
    runtime().block_on(async {
        backend.send_batch(&new).await.unwrap();
        backend.shutdown().await.unwrap();
    });
    let text = std::fs::read(&path).unwrap();
    assert_eq!(&text[..complete as usize], &content[..complete as usize]);
    let events = read_events(&path);
    let expected: Vec<Event> = old.iter().chain(&new).map(|e| (**e).clone()).collect();
    assert_eq!(events, expected);

    // A whole file without a newline is a torn first line: emptied.
    let only_torn = dir.path().join("torn.jsonl");
    std::fs::write(&only_torn, &torn.to_json_bytes()[..10]).unwrap();
    drop(FileBackend::builder(&only_torn).build().unwrap());
    assert_eq!(std::fs::metadata(&only_torn).unwrap().len(), 0);

    // A healthy file is left alone.
    let healthy = dir.path().join("healthy.jsonl");
    std::fs::write(&healthy, &content[..complete as usize]).unwrap();
    drop(FileBackend::builder(&healthy).build().unwrap());
    assert_eq!(
        std::fs::read(&healthy).unwrap(),
        &content[..complete as usize]
    );
}

#[test]
fn a_failed_write_is_cut_back_so_the_retry_leaves_whole_lines() {
    // The child runs with a file size limit (`ulimit -f`, SIGXFSZ ignored),
    // so a write that crosses it fails half way with EFBIG.
    const FSIZE_CHILD: &str = "EVENTTRACKING_FILE_FSIZE_CHILD";
    let Some(dir) = std::env::var_os(FSIZE_CHILD) else {
        let dir = tempfile::tempdir().unwrap();
        let output = std::process::Command::new("sh")
            .args(["-c", "trap '' XFSZ && ulimit -f 16 && exec \"$0\" \"$@\""])
            .arg(std::env::current_exe().unwrap())
            .args([
                "a_failed_write_is_cut_back_so_the_retry_leaves_whole_lines",
                "--exact",
                "--test-threads=1",
                "--nocapture",
            ])
            .env(FSIZE_CHILD, dir.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains("1 passed"), "{stdout}");
        return;
    };
    let path = Path::new(&dir).join("events.jsonl");
    let backend = FileBackend::builder(&path).build().unwrap();
    let mut written = 0;
    let failure = runtime().block_on(async {
        for batch in 0..100 {
            let events: Vec<_> = (0..3).map(|i| event(batch, i, 300)).collect();
            let before = std::fs::metadata(&path).unwrap().len();
            match backend.send_batch(&events).await {
                Ok(()) => written += events.len(),
                Err(error) => {
                    assert_eq!(
                        std::fs::metadata(&path).unwrap().len(),
                        before,
                        "not cut back"
                    );
                    return Some(error);
                }
            }
        }
        None
    });
    let error = failure.expect("the file size limit was never hit");
    assert!(error.is_retryable(), "{error}");
    let message = error.to_string();
    assert!(
        message.contains(&path.display().to_string()) && message.contains("os error"),
        "{message}"
    );
    assert!(written > 0);
    assert_eq!(read_events(&path).len(), written);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_renamed_or_replaced_file_is_noticed_and_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let backend = FileBackend::builder(&path).build().unwrap();
    let event = |i: u64| Arc::new(Event::new("t.reopen", json!({ "i": i })).unwrap());
    let numbers = |path: &Path| -> Vec<u64> {
        read_events(path)
            .iter()
            .map(|e| e.data()["i"].as_u64().unwrap())
            .collect()
    };

    backend.send_batch(&[event(1)]).await.unwrap();
    std::fs::remove_file(&path).unwrap();
    backend.send_batch(&[event(2), event(3)]).await.unwrap();
    assert_eq!(numbers(&path), [2, 3]);
    assert_eq!(backend.reopened_count(), 1);

    let renamed = dir.path().join("events.old.jsonl");
    std::fs::rename(&path, &renamed).unwrap();
    backend.send_batch(&[event(4)]).await.unwrap();
    assert_eq!(numbers(&renamed), [2, 3]);
    assert_eq!(numbers(&path), [4]);
    assert_eq!(backend.reopened_count(), 2);

    // Replaced by another file (as an atomic rename over it does): appended to.
    let replacement = dir.path().join("replacement");
    std::fs::write(&replacement, "{\"id\":\"0\"}\n").unwrap();
    std::fs::rename(&replacement, &path).unwrap();
    backend.send_batch(&[event(5)]).await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with("{\"id\":\"0\"}\n") && text.contains("\"i\":5"),
        "{text}"
    );
    assert_eq!(backend.reopened_count(), 3);
    // Unchanged: no reopening.
    backend.send_batch(&[event(6)]).await.unwrap();
    assert_eq!(backend.reopened_count(), 3);
}
