//! The disk buffer wired into delivery (`buffer = "disk"`): delivery
//! exactly once through the buffer, events kept across a shutdown and
//! delivered by the next tracker, nothing redelivered after a clean
//! shutdown, a torn tail and a flipped byte, a full buffer under each
//! overflow policy, `Buffered` receipts, an unwritable `buffer_path`, and
//! the config keys. No timing assertions: waits use generous deadlines.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::{seqs, Action, Recorder, DEADLINE};
use eventtracking::buffer::{DiskBuffer, DiskBufferOptions, FsyncPolicy, ReadRef};
use eventtracking::{
    BackendError, BufferFsync, BufferKind, Config, DeliveryConfig, Event, Outcome, Overflow,
    Tracker,
};
use serde_json::{json, Value};

const SEGMENT_HEADER: usize = 32;
const FRAME_HEADER: usize = 20;

/// Test delivery settings with a disk buffer under `dir/buffers`.
fn disk(dir: &Path) -> DeliveryConfig {
    common::delivery(dir)
        .with_buffer(BufferKind::Disk)
        .with_buffer_path(dir.join("buffers"))
        .with_buffer_fsync(BufferFsync::Always)
}

fn build(delivery: DeliveryConfig, name: &str, backend: Recorder) -> Tracker {
    Tracker::builder()
        .with_delivery(delivery)
        .with_backend(name, backend)
        .build()
        .unwrap()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "etb"))
        .collect();
    files.sort();
    files
}

/// The raw lines of the dead-letter file (corrupt records are no events).
fn dead_letter_lines(dir: &Path) -> Vec<Value> {
    match std::fs::read_to_string(common::dead_letter_path(dir)) {
        Ok(text) => text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn events(n: u64) -> Vec<Event> {
    (0..n)
        .map(|i| Event::new("page.view", json!({"i": i})).unwrap())
        .collect()
}

/// A disk route's settings that keep retrying, and a backend that always
/// fails: what it is given stays in the buffer.
fn store_down(dir: &Path) -> (DeliveryConfig, Recorder) {
    let failing = Recorder::scripted(|_, _| {
        Action::Fail(BackendError::Retryable("the store is down".into()))
    });
    let config = disk(dir)
        .with_max_retries(1_000_000)
        .with_retry_budget(Duration::from_secs(3_600));
    (config, failing)
}

/// Writes events into backend `name`'s buffer directly, as an earlier run would have left them.
fn prefill(dir: &Path, name: &str, events: &[Event]) -> PathBuf {
    let path = dir.join("buffers").join(name);
    // `close` writes and fsyncs everything.
    let buffer = DiskBuffer::open(
        &path,
        DiskBufferOptions::default().with_fsync(FsyncPolicy::Never),
    )
    .unwrap();
    for event in events {
        buffer.append(event.to_json_bytes()).unwrap();
    }
    buffer.close().unwrap();
    path
}

#[test]
fn events_through_a_disk_buffer_are_delivered_once_and_the_buffer_ends_empty() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::new();
    let tracker = build(
        disk(dir.path()).with_buffer_fsync(BufferFsync::Interval),
        "a",
        recorder.clone(),
    );
    for i in 0..1_000u64 {
        tracker.emit("page.view", json!({"i": i})).unwrap();
    }
    let report = tracker.flush(DEADLINE);
    assert!(report.complete, "{report}");
    assert_eq!(report.flushed["a"].delivered, 1_000, "{report:?}");
    assert_eq!(seqs(&recorder.events()), (0..1_000).collect::<Vec<_>>());
    let stats = report.backends["a"];
    // (`delivered` is counted just after the flush's own tally, above.)
    assert_eq!(stats.accepted, 1_000, "{stats:?}");
    assert_eq!(stats.buffered_events, 0, "{stats:?}");
    assert!(stats.buffer_segments >= 1, "{stats:?}");
    let report = tracker.shutdown(DEADLINE).unwrap();
    assert!(report.complete, "{report}");
    common::assert_accounted(&report.backends["a"]);
    assert!(
        report.to_string().contains("disk buffer: 0 events"),
        "{report}"
    );
    assert_eq!(recorder.events().len(), 1_000, "nothing twice");
    assert!(dead_letter_lines(dir.path()).is_empty());
}

/// The buffer rides out an outage longer than the retry limits: a disk
/// route keeps retrying past `max_retries` and `retry_budget_ms` instead of
/// dead-lettering what it holds durably.
#[test]
fn an_outage_longer_than_the_retry_limits_is_waited_out_not_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    const FAILED_CALLS: usize = 12;
    let recovering = Recorder::scripted(|call, _| {
        if call < FAILED_CALLS {
            Action::Fail(BackendError::Retryable("the store is down".into()))
        } else {
            Action::Store
        }
    });
    let config = disk(dir.path())
        .with_max_retries(2)
        .with_retry_budget(Duration::from_millis(20))
        .with_initial_backoff(Duration::from_millis(1))
        .with_max_backoff(Duration::from_millis(5));
    let tracker = build(config, "a", recovering.clone());
    for i in 0..40u64 {
        tracker.emit("page.view", json!({"i": i})).unwrap();
    }
    let report = tracker.shutdown(DEADLINE).unwrap();
    let stats = &report.backends["a"];
    assert!(report.complete, "{report}");
    assert_eq!(stats.delivered, 40, "{report}");
    assert_eq!(stats.failed, 0, "{report}");
    assert!(stats.retried >= FAILED_CALLS as u64, "{report}");
    assert!(dead_letter_lines(dir.path()).is_empty());
    assert_eq!(seqs(&recovering.events()), (0..40).collect::<Vec<_>>());
}

/// An event emitted while the tracker shuts down still goes into the disk
/// buffer (or, once shutdown has closed it, to the dead-letter file): never
/// dropped, and the next tracker delivers what the buffer kept.
#[test]
fn an_emit_during_shutdown_is_buffered_for_the_next_tracker() {
    let dir = tempfile::tempdir().unwrap();
    let (stalled, _gate) = Recorder::new().gated();
    let config = disk(dir.path());
    let tracker = build(config.clone(), "a", stalled);
    tracker.emit("page.view", json!({"i": 0})).unwrap();
    let (report, late) = std::thread::scope(|scope| {
        let shutting = scope.spawn(|| tracker.shutdown(Duration::from_millis(300)).unwrap());
        std::thread::sleep(Duration::from_millis(50));
        let late = tracker.emit_acked("page.view", json!({"i": 1}));
        (shutting.join().unwrap(), late)
    });
    let stats = report.backends["a"];
    assert_eq!(stats.dropped, 0, "{report}");
    match late {
        // Before the tracker was done: buffered, or dead-lettered if the
        // buffer was already closed.
        Ok(receipt) => {
            let ack = receipt.wait();
            assert!(
                matches!(
                    ack.outcome("a"),
                    Some(Outcome::Buffered | Outcome::DeadLettered { .. })
                ),
                "{ack:?}"
            );
        }
        // The shutdown was over: the emit is an error, nothing taken.
        Err(error) => assert!(error.to_string().contains("shut down"), "{error}"),
    }
    assert_eq!(
        stats.accepted,
        stats.kept_in_buffer + stats.dead_lettered,
        "{report}"
    );
    drop(tracker);
    let recorder = Recorder::new();
    let tracker = build(config, "a", recorder.clone());
    assert!(tracker.flush(DEADLINE).complete);
    let mut all = seqs(&recorder.events());
    all.extend(
        dead_letter_lines(dir.path())
            .iter()
            .map(|r| r["event"]["data"]["i"].as_u64().unwrap()),
    );
    all.sort_unstable();
    assert_eq!(all, (0..stats.accepted).collect::<Vec<_>>(), "{report}");
}

#[test]
fn a_failing_backend_keeps_events_in_the_buffer_and_the_next_tracker_delivers_them() {
    let dir = tempfile::tempdir().unwrap();
    let (config, failing) = store_down(dir.path());
    let tracker = build(config.clone(), "a", failing.clone());
    let emitted: Vec<u64> = (0..50).collect();
    for i in &emitted {
        tracker.emit("page.view", json!({"i": i})).unwrap();
    }
    // Wait until the worker has tried, so that events are in flight too.
    let start = std::time::Instant::now();
    while failing.calls() < 3 && start.elapsed() < DEADLINE {
        std::thread::sleep(Duration::from_millis(5));
    }
    let report = tracker.shutdown(Duration::from_millis(200)).unwrap();
    let stats = report.backends["a"];
    assert_eq!(stats.delivered, 0, "{stats:?}");
    assert_eq!((stats.failed, stats.dead_lettered), (0, 0), "{stats:?}");
    assert_eq!(stats.buffered_events, 50, "{stats:?}");
    // Every one: in flight, queued in memory, or never read from disk.
    assert_eq!(stats.kept_in_buffer, 50, "{stats:?}");
    assert!(report.to_string().contains("kept at shutdown"), "{report}");
    assert!(
        dead_letter_lines(dir.path()).is_empty(),
        "durable: not dead-lettered"
    );
    drop(tracker);

    let recorder = Recorder::new();
    let tracker = build(config, "a", recorder.clone());
    tracker.emit("page.view", json!({"i": 50})).unwrap();
    let report = tracker.flush(DEADLINE);
    assert!(report.complete, "{report}");
    let expected: Vec<u64> = emitted.iter().copied().chain([50]).collect();
    assert_eq!(
        seqs(&recorder.events()),
        expected,
        "the buffered events first, in order, once; then the new one"
    );
    let stats = report.backends["a"];
    assert_eq!(
        (stats.buffer_replayed, stats.buffered_events),
        (50, 0),
        "{stats:?}"
    );
    tracker.shutdown(DEADLINE).unwrap();
}

#[test]
fn a_restart_after_a_clean_shutdown_redelivers_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let first = Recorder::new();
    let tracker = build(disk(dir.path()), "a", first.clone());
    for i in 0..20u64 {
        tracker.emit("page.view", json!({"i": i})).unwrap();
    }
    assert!(tracker.shutdown(DEADLINE).unwrap().complete);
    assert_eq!(first.events().len(), 20);
    drop(tracker);

    let second = Recorder::new();
    let tracker = build(disk(dir.path()), "a", second.clone());
    tracker.emit("page.view", json!({"i": 20})).unwrap();
    let report = tracker.flush(DEADLINE);
    assert!(report.complete, "{report}");
    assert_eq!(seqs(&second.events()), vec![20], "only the new event");
    assert_eq!(report.backends["a"].buffer_replayed, 0);
    tracker.shutdown(DEADLINE).unwrap();
}

#[test]
fn a_flush_right_after_start_waits_for_what_an_earlier_run_buffered() {
    let dir = tempfile::tempdir().unwrap();
    prefill(dir.path(), "a", &events(2_000));
    let recorder = Recorder::new();
    // A small read-ahead: the backlog takes many reads.
    let config = disk(dir.path()).with_queue_capacity(64).with_batch_size(16);
    let tracker = build(config, "a", recorder.clone());
    let report = tracker.flush(DEADLINE);
    assert!(report.complete, "{report}");
    assert_eq!(seqs(&recorder.events()), (0..2_000).collect::<Vec<_>>());
    assert_eq!(report.flushed["a"].delivered, 2_000, "{report:?}");
    tracker.shutdown(DEADLINE).unwrap();
}

/// The buffer is the queue: a backlog is read a few batches ahead of the
/// sends (as many as may be in flight, and one more), not up to
/// `queue_capacity`.
#[test]
fn a_backlog_is_read_only_a_few_batches_ahead() {
    let dir = tempfile::tempdir().unwrap();
    prefill(dir.path(), "a", &events(2_000));
    let (recorder, gate) = Recorder::new().gated();
    let mut config = disk(dir.path()).with_batch_size(16);
    config.max_in_flight = Some(1);
    assert!(config.queue_capacity >= 2_000);
    let tracker = build(config, "a", recorder.clone());
    let deadline = std::time::Instant::now() + DEADLINE;
    while recorder.calls() == 0 {
        assert!(std::time::Instant::now() < deadline, "no send started");
        std::thread::sleep(Duration::from_millis(5));
    }
    // One batch in flight (its send waits at the gate), two read ahead.
    let queued = tracker.queued("a").unwrap();
    assert!(queued <= 2 * 16, "{queued} queued");
    gate.open();
    let report = tracker.flush(DEADLINE);
    assert!(report.complete, "{report}");
    assert_eq!(seqs(&recorder.events()), (0..2_000).collect::<Vec<_>>());
    tracker.shutdown(DEADLINE).unwrap();
}

#[test]
fn a_torn_tail_is_cut_counted_and_the_rest_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let written = events(10);
    let path = prefill(dir.path(), "a", &written);
    let segment = segment_files(&path).remove(0);
    let len = std::fs::metadata(&segment).unwrap().len();
    // Cut the last record mid-payload, as a crash mid-write would.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(len - 5)
        .unwrap();

    let recorder = Recorder::new();
    let tracker = build(disk(dir.path()), "a", recorder.clone());
    let report = tracker.flush(DEADLINE);
    assert!(report.complete, "{report}");
    assert_eq!(seqs(&recorder.events()), (0..9).collect::<Vec<_>>());
    let stats = report.backends["a"];
    assert_eq!(stats.buffer_corrupt_records, 1, "{stats:?}");
    assert_eq!(stats.buffered_events, 0, "{stats:?}");
    tracker.shutdown(DEADLINE).unwrap();
}

#[test]
fn a_flipped_byte_mid_segment_dead_letters_that_record_and_delivers_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let written = events(5);
    let path = prefill(dir.path(), "a", &written);
    let segment = segment_files(&path).remove(0);
    let mut bytes = std::fs::read(&segment).unwrap();
    let frame = |i: usize| FRAME_HEADER + written[i].to_json_bytes().len();
    let third = SEGMENT_HEADER + frame(0) + frame(1);
    bytes[third + FRAME_HEADER + 3] ^= 0x20;
    std::fs::write(&segment, &bytes).unwrap();

    let recorder = Recorder::new();
    let tracker = build(disk(dir.path()), "a", recorder.clone());
    let report = tracker.flush(DEADLINE);
    assert_eq!(seqs(&recorder.events()), vec![0, 1, 3, 4]);
    let stats = report.backends["a"];
    assert_eq!(stats.buffer_corrupt_records, 1, "{stats:?}");
    assert_eq!(stats.buffered_events, 0, "{stats:?}");
    let lines = dead_letter_lines(dir.path());
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["backend"], "a");
    assert!(
        lines[0]["reason"]
            .as_str()
            .unwrap()
            .contains("corrupt record"),
        "{lines:?}"
    );
    let mut flipped = written[2].to_json_bytes().to_vec();
    flipped[3] ^= 0x20;
    let hex: String = flipped.iter().map(|b| format!("{b:02x}")).collect();
    assert!(
        lines[0]["raw_hex"].as_str().unwrap().contains(&hex),
        "the record's bytes: {lines:?}"
    );
    tracker.shutdown(DEADLINE).unwrap();
}

/// What a tracker appends is marked as an event's line as written, and
/// delivered without its payload validated again; a record appended as
/// bytes is not marked, so it is validated: one laid out exactly as an
/// event line, after one with the same context, whose payload is not JSON
/// is dead-lettered as not an event, not delivered.
#[test]
fn only_records_a_tracker_appended_are_delivered_unvalidated() {
    let dir = tempfile::tempdir().unwrap();
    let (config, failing) = store_down(dir.path());
    let tracker = build(config.clone(), "a", failing);
    tracker.emit("page.view", json!({"i": 0})).unwrap();
    let report = tracker.shutdown(Duration::from_millis(200)).unwrap();
    assert_eq!(report.backends["a"].kept_in_buffer, 1, "{report}");
    drop(tracker);

    let path = dir.path().join("buffers").join("a");
    let good = Event::new("page.view", json!({"i": 1})).unwrap();
    let good_line = good.to_json_bytes().to_vec();
    let bad_line = String::from_utf8(good_line.clone())
        .unwrap()
        .replace(r#""data":{"i":1}"#, r#""data":{"i":}"#);
    let marks = {
        let buffer = DiskBuffer::open(&path, DiskBufferOptions::default()).unwrap();
        buffer.append(&good_line).unwrap();
        buffer.append(bad_line.as_bytes()).unwrap();
        buffer.append_event(&good).unwrap();
        let mut marks = Vec::new();
        buffer
            .read_with(10, 1 << 20, |item| match item {
                ReadRef::Record(record) => marks.push(record.event_line),
                other => panic!("{other:?}"),
            })
            .unwrap();
        marks
    };
    assert_eq!(
        marks,
        [true, false, false, true],
        "the tracker's, two as bytes, append_event's"
    );

    let recorder = Recorder::new();
    let tracker = build(config, "a", recorder.clone());
    let report = tracker.flush(DEADLINE);
    assert!(report.complete, "{report}");
    assert_eq!(seqs(&recorder.events()), vec![0, 1, 1]);
    let lines = dead_letter_lines(dir.path());
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0]["reason"]
            .as_str()
            .unwrap()
            .contains("not an event"),
        "{lines:?}"
    );
    tracker.shutdown(DEADLINE).unwrap();
}

#[test]
fn a_full_buffer_follows_the_overflow_policy() {
    for overflow in [Overflow::DropNewest, Overflow::DropOldest, Overflow::Block] {
        let dir = tempfile::tempdir().unwrap();
        let (recorder, gate) = Recorder::new().gated();
        let config = disk(dir.path())
            // A short read-ahead: most records stay unread on disk, where eviction finds them.
            .with_queue_capacity(8)
            .with_buffer_max_bytes(8 * 1024)
            .with_overflow(overflow)
            .with_block_timeout(Duration::from_millis(5));
        let tracker = build(config, "a", recorder.clone());
        let padding = "x".repeat(100);
        for i in 0..300u64 {
            tracker
                .emit("page.view", json!({"i": i, "padding": padding}))
                .unwrap();
        }
        let stats = tracker.report().backends["a"];
        let d = stats.dropped_by_reason;
        match overflow {
            Overflow::DropNewest => {
                assert!(d.queue_full > 0, "{overflow:?}: {stats:?}");
                assert_eq!(stats.accepted + d.queue_full, 300, "{stats:?}");
            }
            Overflow::DropOldest => {
                assert!(d.evicted > 0, "{overflow:?}: {stats:?}");
                assert_eq!((stats.accepted, d.queue_full), (300, 0), "{stats:?}");
            }
            _ => {
                assert!(d.block_timeout > 0, "{overflow:?}: {stats:?}");
                assert_eq!(stats.accepted + d.block_timeout, 300, "{stats:?}");
            }
        }
        assert!(stats.buffered_bytes <= 8 * 1024, "{stats:?}");
        gate.open();
        let report = tracker.flush(DEADLINE);
        assert!(report.complete, "{overflow:?}: {report}");
        let delivered = seqs(&recorder.events());
        let mut unique = delivered.clone();
        unique.dedup();
        assert_eq!(unique, delivered, "{overflow:?}: nothing twice");
        assert!(!delivered.is_empty());
        // Each accepted event counted once: delivered, or evicted unread.
        let stats = &report.backends["a"];
        assert_eq!(
            stats.delivered,
            delivered.len() as u64,
            "{overflow:?}: {report}"
        );
        common::assert_accounted(stats);
        tracker.shutdown(DEADLINE).unwrap();
    }
}

/// The records a crash now would leave unacknowledged in backend `name`'s
/// buffer: a copy of its files (as the disk holds them), opened and read.
fn unacknowledged_after_a_crash(dir: &Path, name: &str) -> usize {
    let path = dir.join("buffers").join(name);
    let copy = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&path).unwrap() {
        let entry = entry.unwrap();
        let file = entry.file_name();
        if file == "ledger" || file.to_string_lossy().ends_with(".etb") {
            std::fs::copy(entry.path(), copy.path().join(file)).unwrap();
        }
    }
    let buffer = DiskBuffer::open(copy.path(), DiskBufferOptions::default()).unwrap();
    let mut records = 0;
    loop {
        let read = buffer.read(1000, 1 << 20).unwrap().len();
        if read == 0 {
            return records;
        }
        records += read;
    }
}

/// Under `"interval"`, acknowledgements within an interval of the last
/// ledger write are not written at once: the worker's tick (its fsync runs
/// off the worker) writes them about an interval later, without a flush,
/// a close or another acknowledgement.
#[test]
fn under_interval_the_workers_tick_stores_the_position_without_a_close() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::new();
    let config = disk(dir.path())
        .with_buffer_fsync(BufferFsync::Interval)
        .with_buffer_fsync_interval(Duration::from_millis(500));
    let tracker = build(config, "a", recorder.clone());
    tracker.emit("page.view", json!({"i": 0})).unwrap();
    assert!(tracker.flush(DEADLINE).complete);
    // Right after the first ledger write: these are acknowledged within
    // the interval, so not written at once.
    for i in 1..=10 {
        tracker.emit("page.view", json!({"i": i})).unwrap();
    }
    assert!(tracker.flush(DEADLINE).complete);
    assert_eq!(recorder.events().len(), 11);
    let deadline = std::time::Instant::now() + DEADLINE;
    let mut left = unacknowledged_after_a_crash(dir.path(), "a");
    while left > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        left = unacknowledged_after_a_crash(dir.path(), "a");
    }
    assert_eq!(
        left, 0,
        "the tick stored the position of every delivered event"
    );
    tracker.shutdown(DEADLINE).unwrap();
}

#[test]
fn an_acked_emit_to_a_disk_route_answers_buffered() {
    let dir = tempfile::tempdir().unwrap();
    let (on_disk, memory) = (Recorder::new(), Recorder::new());
    let tracker = Tracker::builder()
        .with_delivery(common::delivery(dir.path()))
        .with_route("disk", on_disk.clone(), Vec::new(), Some(disk(dir.path())))
        .with_backend("memory", memory.clone())
        .build()
        .unwrap();
    let ack = tracker
        .emit_acked("page.view", json!({"i": 1}))
        .unwrap()
        .wait();
    assert_eq!(ack.outcome("disk"), Some(&Outcome::Buffered));
    assert_eq!(ack.outcome("memory"), Some(&Outcome::Delivered));
    assert!(ack.is_settled() && ack.is_delivered_or_buffered() && !ack.is_delivered());
    assert!(tracker.flush(DEADLINE).complete);
    assert_eq!(seqs(&on_disk.events()), vec![1]);
    tracker.shutdown(DEADLINE).unwrap();
}

#[test]
fn an_event_larger_than_the_buffer_is_dead_lettered_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::new();
    let tracker = build(
        disk(dir.path()).with_buffer_max_bytes(4 * 1024),
        "a",
        recorder.clone(),
    );
    let ack = tracker
        .emit_acked(
            "page.view",
            json!({"i": 0, "padding": "x".repeat(8 * 1024)}),
        )
        .unwrap()
        .wait();
    match ack.outcome("a") {
        Some(Outcome::DeadLettered { reason }) => {
            assert!(reason.contains("disk buffer"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    let lines = common::dead_letters(dir.path());
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].event.data()["i"], 0);
    let stats = tracker.shutdown(DEADLINE).unwrap().backends["a"];
    assert_eq!((stats.accepted, stats.dead_lettered), (1, 1), "{stats:?}");
    assert!(recorder.events().is_empty());
}

/// A `buffer_max_bytes` below what the smallest event takes would have
/// every event dead-lettered: the build refuses it, naming the key and the
/// value; at exactly that size the smallest event is buffered.
#[test]
fn a_buffer_max_bytes_that_holds_no_event_is_a_build_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let smallest = eventtracking::buffer::smallest_event_buffer_bytes();
    let smallest_line = Event::new("a", Value::Null).unwrap().to_json_bytes().len();
    assert_eq!(
        smallest as usize,
        SEGMENT_HEADER + FRAME_HEADER + smallest_line
    );
    for bad in [1, 10, smallest - 1] {
        let error = Tracker::builder()
            .with_delivery(disk(dir.path()).with_buffer_max_bytes(bad))
            .with_backend("a", Recorder::new())
            .build()
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("backend `a`")
                && error.contains(&format!("buffer_max_bytes` = {bad}:"))
                && error.contains("can hold no event"),
            "{bad}: {error}"
        );
    }
    let text = format!(
        "[backends.b]\nengine = \"discard\"\n[backends.b.delivery]\nbuffer = \"disk\"\nbuffer_path = {:?}\nbuffer_max_bytes = 10",
        dir.path().join("from-toml")
    );
    let error = Config::from_toml_str(&text)
        .and_then(|config| config.build())
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("buffer_max_bytes") && error.contains("10"),
        "{error}"
    );
    // A memory buffer does not use the key.
    Tracker::builder()
        .with_delivery(common::delivery(dir.path()).with_buffer_max_bytes(10))
        .with_backend("a", Recorder::new())
        .build()
        .unwrap()
        .shutdown(DEADLINE)
        .unwrap();
    // At exactly that size, the smallest event fits.
    let recorder = Recorder::new();
    let tracker = build(
        disk(dir.path()).with_buffer_max_bytes(smallest),
        "a",
        recorder.clone(),
    );
    let ack = tracker.emit_acked("a", Value::Null).unwrap().wait();
    assert_eq!(ack.outcome("a"), Some(&Outcome::Buffered));
    assert!(tracker.flush(DEADLINE).complete);
    assert_eq!(recorder.events().len(), 1);
    tracker.shutdown(DEADLINE).unwrap();
}

#[test]
fn an_unwritable_buffer_path_is_a_build_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    let error = Tracker::builder()
        .with_delivery(disk(dir.path()).with_buffer_path(&file))
        .with_backend("a", Recorder::new())
        .build()
        .unwrap_err()
        .to_string();
    assert!(error.contains("buffer_path"), "{error}");
    assert!(error.contains(&*file.to_string_lossy()), "{error}");
    // Named as the backend's delivery settings, not as an engine.
    assert!(
        error.starts_with("backend `a`: delivery settings: buffer_path"),
        "{error}"
    );

    // From a config file: the build fails the same way.
    let text = format!(
        "[delivery]\nbuffer = \"disk\"\nbuffer_path = {:?}\ndead_letter_path = {:?}\n[backends.a]\nengine = \"discard\"",
        file.display().to_string(),
        common::dead_letter_path(dir.path()).display().to_string()
    );
    let error = Config::from_toml_str(&text)
        .unwrap()
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("buffer_path") && error.contains(&*file.to_string_lossy()),
        "{error}"
    );
    assert!(
        error.contains("backend `a`: delivery settings") && !error.contains("engine `delivery`"),
        "{error}"
    );

    // A read-only directory: only stops a user that is not root.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let read_only = dir.path().join("read-only");
        std::fs::create_dir(&read_only).unwrap();
        std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o555)).unwrap();
        if std::fs::write(read_only.join("probe"), b"").is_ok() {
            eprintln!("skipped the read-only directory case: permissions do not stop this user");
        } else {
            let error = Tracker::builder()
                .with_delivery(disk(dir.path()).with_buffer_path(&read_only))
                .with_backend("a", Recorder::new())
                .build()
                .unwrap_err()
                .to_string();
            assert!(
                error.contains(&*read_only.join("a").to_string_lossy()),
                "{error}"
            );
        }
        std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

#[test]
fn the_buffer_keys_are_read_from_a_config_file_and_bad_values_name_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let buffers = dir.path().join("buffers");
    let text = format!(
        r#"
        [delivery]
        buffer = "disk"
        buffer_path = {buffers:?}
        buffer_max_bytes = 1048576
        buffer_fsync = "always"
        buffer_fsync_interval_ms = 7
        dead_letter_path = {dead:?}
        [backends.a]
        engine = "discard"
        [backends.b]
        engine = "discard"
        [backends.b.delivery]
        buffer_fsync = "interval"
        buffer_max_bytes = 2097152
        [backends.c]
        engine = "discard"
        [backends.c.delivery]
        buffer = "memory"
        "#,
        buffers = buffers.display().to_string(),
        dead = common::dead_letter_path(dir.path()).display().to_string(),
    );
    let config = Config::from_toml_str(&text).unwrap();
    let global = config.delivery_config().unwrap();
    assert_eq!(global.buffer, BufferKind::Disk);
    assert_eq!(global.buffer_path, buffers);
    assert_eq!(global.buffer_max_bytes, 1 << 20);
    assert_eq!(global.buffer_fsync, BufferFsync::Always);
    assert_eq!(global.buffer_fsync_interval, Duration::from_millis(7));
    let tracker = config.build().unwrap();
    let b = tracker.delivery_config("b").unwrap();
    assert_eq!(
        (b.buffer, b.buffer_fsync, b.buffer_max_bytes),
        (BufferKind::Disk, BufferFsync::Interval, 2 << 20)
    );
    assert_eq!(
        tracker.delivery_config("c").unwrap().buffer,
        BufferKind::Memory
    );
    assert!(buffers.join("a").is_dir() && buffers.join("b").is_dir());
    assert!(!buffers.join("c").exists(), "a memory route has no buffer");
    tracker.emit("page.view", json!({"i": 1})).unwrap();
    assert!(tracker.flush(DEADLINE).complete);
    tracker.shutdown(DEADLINE).unwrap();

    let defaults = DeliveryConfig::default();
    assert_eq!(defaults.buffer, BufferKind::Memory);
    assert_eq!(defaults.buffer_path, PathBuf::from("eventtracking-buffer"));
    assert_eq!(defaults.buffer_max_bytes, 1 << 30);
    assert_eq!(defaults.buffer_fsync, BufferFsync::Interval);
    assert_eq!(defaults.buffer_fsync_interval, Duration::from_millis(100));

    for (bad, key, value) in [
        ("buffer = \"tape\"", "buffer", "tape"),
        ("buffer_fsync = \"sometimes\"", "buffer_fsync", "sometimes"),
        ("buffer_max_bytes = 0", "buffer_max_bytes", "0"),
        (
            "buffer_fsync_interval_ms = 0",
            "buffer_fsync_interval_ms",
            "0",
        ),
    ] {
        let text = format!("[backends.a]\nengine = \"discard\"\n[backends.a.delivery]\n{bad}");
        let error = Config::from_toml_str(&text)
            .and_then(|config| config.build())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(key) && error.contains(value),
            "{bad}: {error}"
        );
    }

    let mut env = DeliveryConfig::default();
    env.apply_env_from(|var| match var {
        "EVENTTRACKING_BUFFER" => Some("disk".into()),
        "EVENTTRACKING_BUFFER_PATH" => Some("/tmp/b".into()),
        "EVENTTRACKING_BUFFER_MAX_BYTES" => Some("4096".into()),
        "EVENTTRACKING_BUFFER_FSYNC" => Some("never".into()),
        "EVENTTRACKING_BUFFER_FSYNC_INTERVAL_MS" => Some("9".into()),
        _ => None,
    })
    .unwrap();
    assert_eq!(
        (
            env.buffer,
            env.buffer_path.clone(),
            env.buffer_max_bytes,
            env.buffer_fsync,
            env.buffer_fsync_interval
        ),
        (
            BufferKind::Disk,
            PathBuf::from("/tmp/b"),
            4096,
            BufferFsync::Never,
            Duration::from_millis(9)
        )
    );
    let error = DeliveryConfig::default()
        .apply_env_from(|var| (var == "EVENTTRACKING_BUFFER").then(|| "tape".into()))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("EVENTTRACKING_BUFFER") && error.contains("tape"),
        "{error}"
    );
}

#[test]
fn the_shared_event_arc_is_unchanged_by_the_round_trip() {
    // An event read back from the buffer is the one emitted: same id, name,
    // timestamp and data.
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::new();
    let tracker = build(disk(dir.path()), "a", recorder.clone());
    let event = Arc::new(Event::new("page.view", json!({"i": 7, "f": 0.1})).unwrap());
    tracker.emit_event(event.clone()).unwrap();
    assert!(tracker.flush(DEADLINE).complete);
    let got = recorder.events();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].to_json_bytes(), event.to_json_bytes());
    tracker.shutdown(DEADLINE).unwrap();
}

/// The child process of [`events_buffered_before_a_kill_9_are_delivered_by_the_next_tracker`]:
/// runs only when that test starts it (the variable names its directory).
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os("EVENTTRACKING_TEST_CRASH_DIR") else {
        return;
    };
    let dir = PathBuf::from(dir);
    // A backend that never answers: nothing is acknowledged before the kill.
    let (recorder, gate) = Recorder::new().gated();
    std::mem::forget(gate);
    let tracker = build(disk(&dir), "a", recorder);
    for i in 0..100u64 {
        let ack = tracker
            .emit_acked("page.view", json!({"i": i}))
            .unwrap()
            .wait();
        assert_eq!(ack.outcome("a"), Some(&Outcome::Buffered));
    }
    println!("BUFFERED");
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[cfg(unix)]
#[test]
fn events_buffered_before_a_kill_9_are_delivered_by_the_next_tracker() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env("EVENTTRACKING_TEST_CRASH_DIR", dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let buffered = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains("BUFFERED"));
    // `kill` is SIGKILL: no shutdown, no close, no ledger written.
    // (An error: the child already exited, which `buffered` then tells.)
    let _ = child.kill();
    child.wait().unwrap();
    assert!(buffered, "the child did not buffer its events");

    let recorder = Recorder::new();
    let tracker = build(disk(dir.path()), "a", recorder.clone());
    let report = tracker.flush(DEADLINE);
    assert!(report.complete, "{report}");
    assert_eq!(
        seqs(&recorder.events()),
        (0..100).collect::<Vec<_>>(),
        "every event whose receipt said Buffered (fsync always), once, in order"
    );
    assert_eq!(report.backends["a"].buffer_replayed, 100);
    tracker.shutdown(DEADLINE).unwrap();
}
