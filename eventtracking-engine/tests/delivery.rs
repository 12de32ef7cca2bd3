//! The delivery engine: batching, retry, dead letters, overflow policies,
//! timeouts, flush and shutdown, backend isolation and a 1M-event burst.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{assert_accounted, dead_letters, seqs, Action, IdCollector, Recorder, DEADLINE};
use eventtracking::{
    Admission, BackendError, DeliveryConfig, EmitError, EventFailure, InMemoryBackend, Overflow,
    Tracker,
};
use serde_json::json;
use uuid::Uuid;

fn tracker_with(delivery: DeliveryConfig, name: &str, backend: Recorder) -> Tracker {
    Tracker::builder()
        .with_delivery(delivery)
        .with_backend(name, backend)
        .build()
        .unwrap()
}

fn emit_seq(tracker: &Tracker, n: u64) {
    for i in 0..n {
        tracker.emit("test.event", json!({"i": i})).unwrap();
    }
}

#[test]
fn batches_never_exceed_batch_size() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::new();
    let tracker = tracker_with(
        common::delivery(dir.path()).with_batch_size(10),
        "rec",
        recorder.clone(),
    );
    emit_seq(&tracker, 95);
    let report = tracker.flush(DEADLINE);
    assert!(report.complete);
    let sizes = recorder.stored_batch_sizes();
    assert!(sizes.iter().all(|n| (1..=10).contains(n)), "{sizes:?}");
    assert_eq!(sizes.iter().sum::<usize>(), 95);
    assert!(sizes.len() >= 10, "{sizes:?}");
    assert_eq!(report.backends["rec"].batches, sizes.len() as u64);
    // Order is kept.
    assert_eq!(seqs(&recorder.events()), (0..95).collect::<Vec<_>>());
}

#[test]
fn a_long_linger_coalesces_events_into_full_batches() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::new();
    let tracker = tracker_with(
        common::delivery(dir.path())
            .with_batch_size(100)
            .with_linger(std::time::Duration::from_millis(60_000)),
        "rec",
        recorder.clone(),
    );
    emit_seq(&tracker, 1_000);
    assert!(tracker.flush(DEADLINE).complete);
    let sizes = recorder.stored_batch_sizes();
    assert_eq!(sizes.iter().sum::<usize>(), 1_000);
    // A trickle waits for full batches: at most the flush cuts one short.
    assert!(sizes.len() <= 11, "{sizes:?}");
    assert!(sizes.iter().all(|n| *n <= 100), "{sizes:?}");
    assert!(
        sizes[..sizes.len() - 1].iter().all(|n| *n == 100),
        "{sizes:?}"
    );
}

#[test]
fn a_flush_cuts_the_linger_short() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::new();
    let tracker = tracker_with(
        common::delivery(dir.path())
            .with_batch_size(1_000)
            .with_linger(std::time::Duration::from_millis(600_000)),
        "rec",
        recorder.clone(),
    );
    emit_seq(&tracker, 3);
    let report = tracker.flush(DEADLINE);
    assert!(report.complete);
    assert_eq!(report.backends["rec"].delivered, 3);
    assert_eq!(recorder.stored_batch_sizes(), [3]);
    assert!(recorder.flushes() >= 1);
}

#[test]
fn batch_bytes_limit_is_respected() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::new();
    const LIMIT: usize = 2_000;
    let tracker = tracker_with(
        common::delivery(dir.path())
            .with_batch_size(1_000)
            .with_batch_bytes(LIMIT)
            .with_linger(std::time::Duration::from_millis(60_000)),
        "rec",
        recorder.clone(),
    );
    for i in 0..100u64 {
        tracker
            .emit("test.event", json!({"i": i, "pad": "x".repeat(100)}))
            .unwrap();
    }
    // One event alone is larger than the limit: it still goes, alone.
    tracker
        .emit("test.big", json!({"i": 100, "pad": "y".repeat(5_000)}))
        .unwrap();
    for i in 101..150u64 {
        tracker
            .emit("test.event", json!({"i": i, "pad": "x".repeat(100)}))
            .unwrap();
    }
    let report = tracker.flush(DEADLINE);
    assert!(report.complete);
    assert_eq!(report.backends["rec"].delivered, 150);
    assert_eq!(report.backends["rec"].failed, 0);
    let batches = recorder.batches();
    for batch in &batches {
        let bytes: usize = batch.iter().map(|e| e.to_json_bytes().len()).sum();
        // Lines joined by newlines fit the limit, unless the batch is one event.
        if batch.len() > 1 {
            assert!(
                bytes + batch.len() - 1 <= LIMIT,
                "batch of {} events is {bytes} bytes",
                batch.len()
            );
        }
    }
    assert!(
        batches.iter().any(|b| b.len() > 1),
        "events should still coalesce"
    );
    let big = batches
        .iter()
        .find(|b| b.iter().any(|e| e.name() == "test.big"))
        .unwrap();
    assert_eq!(big.len(), 1);
    assert_eq!(seqs(&recorder.events()), (0..150).collect::<Vec<_>>());
}

#[test]
fn retryable_failures_are_retried_until_delivered() {
    let dir = tempfile::tempdir().unwrap();
    const FAILING_CALLS: usize = 3;
    let recorder = Recorder::scripted(|call, _| {
        if call < FAILING_CALLS {
            Action::Fail(BackendError::Retryable(format!("flaky call {call}")))
        } else {
            Action::Store
        }
    });
    let tracker = tracker_with(
        common::delivery(dir.path()).with_max_retries(5),
        "flaky",
        recorder.clone(),
    );
    emit_seq(&tracker, 20);
    let report = tracker.flush(DEADLINE);
    assert!(report.complete);
    let stats = &report.backends["flaky"];
    assert_eq!(stats.delivered, 20);
    assert_eq!(stats.failed, 0);
    assert_eq!(stats.dead_lettered, 0);
    let sizes = recorder.call_sizes();
    let retried: usize = sizes[..FAILING_CALLS].iter().sum();
    assert!(retried >= FAILING_CALLS);
    assert_eq!(stats.retried, retried as u64);
    assert_eq!(stats.batches, sizes.len() as u64);
    assert_accounted(stats);
    // Each event stored once, in order.
    assert_eq!(seqs(&recorder.events()), (0..20).collect::<Vec<_>>());
    assert!(dead_letters(dir.path()).is_empty());
}

#[test]
fn exhausted_retries_go_to_the_dead_letter_file() {
    let dir = tempfile::tempdir().unwrap();
    let recorder =
        Recorder::scripted(|_, _| Action::Fail(BackendError::Retryable("server down".into())));
    const MAX_RETRIES: u32 = 2;
    let tracker = tracker_with(
        common::delivery(dir.path()).with_max_retries(MAX_RETRIES),
        "down-backend",
        recorder.clone(),
    );
    let mut emitted = HashSet::new();
    for i in 0..10u64 {
        tracker.emit("test.event", json!({"i": i})).unwrap();
    }
    let report = tracker.flush(DEADLINE);
    assert!(report.complete);
    let stats = &report.backends["down-backend"];
    assert_eq!(stats.delivered, 0);
    assert_eq!(stats.failed, 10);
    assert_eq!(stats.dead_lettered, 10);
    assert_eq!(stats.dropped, 0);
    // Every batch was tried 1 + MAX_RETRIES times.
    assert_eq!(recorder.calls() % (MAX_RETRIES as usize + 1), 0);
    assert_eq!(
        stats.retried,
        10 * u64::from(MAX_RETRIES),
        "each event retried MAX_RETRIES times"
    );
    assert_accounted(stats);

    let records = dead_letters(dir.path());
    assert_eq!(records.len(), 10);
    for record in &records {
        assert!(
            record.reason.contains("retries exhausted"),
            "{}",
            record.reason
        );
        assert!(record.reason.contains("server down"), "{}", record.reason);
        assert_eq!(record.backend, "down-backend");
        assert_eq!(record.attempts, MAX_RETRIES + 1);
        assert_eq!(record.event.name(), "test.event");
        assert!(humantime::parse_rfc3339(&record.failed_at).is_ok());
        emitted.insert(record.event.data()["i"].as_u64().unwrap());
    }
    assert_eq!(emitted, (0..10).collect());
}

#[test]
fn permanent_failures_are_dead_lettered_without_retry() {
    let dir = tempfile::tempdir().unwrap();
    let recorder =
        Recorder::scripted(|_, _| Action::Fail(BackendError::Permanent("bad request".into())));
    let tracker = tracker_with(
        common::delivery(dir.path()).with_max_retries(8),
        "strict",
        recorder.clone(),
    );
    emit_seq(&tracker, 7);
    let report = tracker.flush(DEADLINE);
    assert!(report.complete);
    let stats = &report.backends["strict"];
    assert_eq!(stats.retried, 0);
    assert_eq!(stats.failed, 7);
    assert_eq!(stats.dead_lettered, 7);
    // One call per batch, none repeated.
    assert_eq!(recorder.call_sizes().iter().sum::<usize>(), 7);
    assert_accounted(stats);
    let records = dead_letters(dir.path());
    assert_eq!(records.len(), 7);
    assert!(records.iter().all(|r| r.attempts == 1
        && r.backend == "strict"
        && r.reason.contains("permanent failure")
        && r.reason.contains("bad request")));
}

#[test]
fn partial_failures_dead_letter_permanent_events_and_retry_the_others() {
    let dir = tempfile::tempdir().unwrap();
    // Events with "kind": "perm" always fail for good; "retry" events fail
    // (retryably) the first time they are seen; "ok" events always store.
    let seen_retry: Arc<Mutex<HashSet<Uuid>>> = Arc::default();
    let recorder = {
        let seen_retry = seen_retry.clone();
        Recorder::scripted(move |_, batch| {
            let mut seen = seen_retry.lock().unwrap();
            let failures: Vec<EventFailure> = batch
                .iter()
                .enumerate()
                .filter_map(|(index, event)| match event.data()["kind"].as_str() {
                    Some("perm") => Some(EventFailure::new(index, false, "duplicate key")),
                    Some("retry") if seen.insert(event.id()) => {
                        Some(EventFailure::new(index, true, "shard busy"))
                    }
                    _ => None,
                })
                .collect();
            if failures.is_empty() {
                Action::Store
            } else {
                Action::Partial(failures)
            }
        })
    };
    let tracker = tracker_with(
        common::delivery(dir.path())
            .with_batch_size(1_000)
            .with_linger(std::time::Duration::from_millis(60_000)),
        "partial",
        recorder.clone(),
    );
    let kinds = ["ok", "perm", "retry"];
    for i in 0..30u64 {
        let kind = kinds[(i % 3) as usize];
        tracker
            .emit("test.event", json!({"i": i, "kind": kind}))
            .unwrap();
    }
    let report = tracker.flush(DEADLINE);
    assert!(report.complete);
    let stats = &report.backends["partial"];
    assert_eq!(stats.delivered, 20);
    assert_eq!(stats.failed, 10);
    assert_eq!(stats.dead_lettered, 10);
    assert_eq!(stats.retried, 10);
    assert_accounted(stats);

    let stored = recorder.events();
    let stored_seqs: Vec<u64> = seqs(&stored);
    let unique: HashSet<u64> = stored_seqs.iter().copied().collect();
    assert_eq!(
        unique.len(),
        stored_seqs.len(),
        "stored twice: {stored_seqs:?}"
    );
    assert_eq!(
        unique,
        (0..30).filter(|i| i % 3 != 1).collect::<HashSet<_>>()
    );

    let records = dead_letters(dir.path());
    assert_eq!(records.len(), 10);
    for record in &records {
        assert_eq!(record.event.data()["kind"], "perm");
        assert!(
            record.reason.contains("permanent failure"),
            "{}",
            record.reason
        );
        assert!(record.reason.contains("duplicate key"), "{}", record.reason);
        assert_eq!(record.backend, "partial");
    }
    assert_eq!(seen_retry.lock().unwrap().len(), 10);
}

#[test]
fn oversized_events_are_dead_lettered_while_neighbours_are_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::new();
    let tracker = tracker_with(
        common::delivery(dir.path())
            .with_max_event_bytes(300)
            .with_linger(std::time::Duration::from_millis(60_000)),
        "sized",
        recorder.clone(),
    );
    tracker.emit("test.event", json!({"i": 0})).unwrap();
    tracker
        .emit("test.event", json!({"i": 1, "blob": "z".repeat(1_000)}))
        .unwrap();
    tracker.emit("test.event", json!({"i": 2})).unwrap();
    let report = tracker.flush(DEADLINE);
    assert!(report.complete);
    let stats = &report.backends["sized"];
    assert_eq!(stats.delivered, 2);
    assert_eq!(stats.failed, 1);
    assert_eq!(stats.dead_lettered, 1);
    assert_eq!(stats.retried, 0);
    assert_accounted(stats);
    assert_eq!(seqs(&recorder.events()), [0, 2]);
    let records = dead_letters(dir.path());
    assert_eq!(records.len(), 1);
    assert!(
        records[0].reason.starts_with("oversized"),
        "{}",
        records[0].reason
    );
    assert_eq!(records[0].backend, "sized");
    assert_eq!(records[0].event.data()["i"], 1);
    assert_eq!(
        records[0].event.data()["blob"].as_str().unwrap().len(),
        1_000
    );
}

#[test]
fn drop_newest_refuses_new_events_when_the_queue_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let (recorder, gate) = Recorder::new().gated();
    const CAPACITY: usize = 10;
    const BATCH: usize = 4;
    let tracker = tracker_with(
        common::delivery(dir.path())
            .with_queue_capacity(CAPACITY)
            .with_batch_size(BATCH)
            .with_overflow(Overflow::DropNewest),
        "blocked",
        recorder.clone(),
    );
    emit_seq(&tracker, 100);
    let before = tracker.report().backends["blocked"];
    // The worker holds at most one batch while the backend is blocked.
    assert!(before.accepted <= (CAPACITY + BATCH) as u64, "{before:?}");
    assert_eq!(before.accepted + before.dropped_by_reason.queue_full, 100);
    assert_eq!(before.dropped, before.dropped_by_reason.queue_full);

    gate.open();
    let report = tracker.flush(DEADLINE);
    assert!(report.complete);
    let stats = &report.backends["blocked"];
    assert_eq!(stats.accepted + stats.dropped_by_reason.queue_full, 100);
    assert_eq!(stats.delivered, stats.accepted);
    assert_accounted(stats);
    let delivered = seqs(&recorder.events());
    assert_eq!(delivered.len() as u64, stats.accepted);
    // Delivered in emit order, each once.
    assert!(delivered.windows(2).all(|w| w[0] < w[1]), "{delivered:?}");
    // The first events always fit; the refused ones are later ones.
    assert!(
        delivered.starts_with(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
        "{delivered:?}"
    );
}

/// `emit_event_checked` says at once, without a receipt, which backends
/// refused an event for want of room; the others took it.
#[test]
fn a_checked_emit_names_the_backends_that_refused_it() {
    let dir = tempfile::tempdir().unwrap();
    let (stuck, _gate) = Recorder::new().gated();
    let free = Recorder::new();
    let tracker = Tracker::builder()
        .with_delivery(common::delivery(dir.path()))
        .with_route(
            "stuck",
            stuck,
            Vec::new(),
            Some(
                common::delivery(dir.path())
                    .with_queue_capacity(1)
                    .with_batch_size(1),
            ),
        )
        .with_backend("free", free.clone())
        .build()
        .unwrap();
    let event = |i: u64| Arc::new(eventtracking::Event::new("checked", json!({"i": i})).unwrap());
    let mut admissions = Vec::new();
    for i in 0..4 {
        admissions.push(tracker.emit_event_checked(event(i)).unwrap());
    }
    // One taken by the stuck worker, one queued, then refusals at "stuck" only.
    assert_eq!(admissions[0], Admission::Taken);
    let refused = admissions
        .iter()
        .filter(|a| matches!(a, Admission::Refused { backends } if backends.len() == 1 && &*backends[0].0 == "stuck" && backends[0].1.contains("queue full")))
        .count();
    assert!(refused >= 2, "{admissions:?}");
    assert!(
        admissions
            .iter()
            .all(|a| matches!(a, Admission::Taken | Admission::Refused { .. })),
        "{admissions:?}"
    );
    let stats = tracker.report().backends["stuck"];
    assert_eq!(
        stats.dropped_by_reason.queue_full, refused as u64,
        "{stats:?}"
    );
    // "free" took all four.
    let report = tracker.shutdown(Duration::from_millis(100)).unwrap();
    assert_eq!(report.backends["free"].accepted, 4, "{report}");
    assert_eq!(free.events().len(), 4, "{report}");
}

/// A tracker processor's verdict comes back as is: filtered, or failed.
#[test]
fn a_checked_emit_reports_a_filtered_event_and_a_processor_error() {
    let processor = eventtracking::processor_fn("picky", |event: Arc<eventtracking::Event>| {
        match event.name() {
            "drop.me" => Ok(None),
            "fail.me" => Err(eventtracking::ProcessorError::new(
                "picky",
                event.name(),
                "cannot take this one",
            )),
            _ => Ok(Some(event)),
        }
    });
    let tracker = Tracker::builder()
        .with_processor(Arc::new(processor))
        .with_backend("memory", InMemoryBackend::new())
        .build()
        .unwrap();
    let event = |name: &str| Arc::new(eventtracking::Event::new(name, json!({})).unwrap());
    assert_eq!(
        tracker.emit_event_checked(event("drop.me")).unwrap(),
        Admission::Filtered
    );
    match tracker.emit_event_checked(event("fail.me")).unwrap() {
        Admission::ProcessorError { reason } => {
            assert!(reason.contains("cannot take this one"), "{reason}")
        }
        other => panic!("expected a processor error, got {other:?}"),
    }
    assert_eq!(
        tracker.emit_event_checked(event("keep.me")).unwrap(),
        Admission::Taken
    );
    tracker.shutdown(DEADLINE).unwrap();
    assert!(matches!(
        tracker.emit_event_checked(event("too.late")),
        Err(EmitError::ShutDown { .. })
    ));
}

#[test]
fn drop_oldest_evicts_old_events_and_keeps_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let (recorder, gate) = Recorder::new().gated();
    const CAPACITY: usize = 10;
    let tracker = tracker_with(
        common::delivery(dir.path())
            .with_queue_capacity(CAPACITY)
            .with_batch_size(1)
            .with_overflow(Overflow::DropOldest),
        "blocked",
        recorder.clone(),
    );
    emit_seq(&tracker, 100);
    gate.open();
    let report = tracker.flush(DEADLINE);
    assert!(report.complete);
    let stats = &report.backends["blocked"];
    assert_eq!(stats.accepted, 100, "drop_oldest accepts every event");
    assert!(stats.dropped_by_reason.evicted >= (100 - CAPACITY - 1) as u64);
    assert_eq!(stats.dropped, stats.dropped_by_reason.evicted);
    assert_eq!(stats.delivered + stats.dropped_by_reason.evicted, 100);
    assert_accounted(stats);
    let delivered = seqs(&recorder.events());
    assert_eq!(delivered.len() as u64, stats.delivered);
    // The newest events are the ones delivered (plus at most the one batch
    // the worker held while the backend was blocked).
    let newest: Vec<u64> = (100 - CAPACITY as u64..100).collect();
    assert!(delivered.ends_with(&newest), "{delivered:?}");
    assert!(delivered.len() <= CAPACITY + 1, "{delivered:?}");
}

#[test]
fn block_waits_for_a_slow_backend_and_delivers_everything() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::new().with_delay(Duration::from_millis(1));
    let tracker = tracker_with(
        common::delivery(dir.path())
            .with_queue_capacity(10)
            .with_batch_size(5)
            .with_overflow(Overflow::Block)
            .with_block_timeout(std::time::Duration::from_millis(DEADLINE.as_millis() as u64)),
        "slow",
        recorder.clone(),
    );
    emit_seq(&tracker, 300);
    let report = tracker.flush(DEADLINE);
    assert!(report.complete);
    let stats = &report.backends["slow"];
    assert_eq!(stats.accepted, 300);
    assert_eq!(stats.delivered, 300);
    assert_eq!(stats.dropped, 0);
    assert_accounted(stats);
    assert_eq!(seqs(&recorder.events()), (0..300).collect::<Vec<_>>());
}

#[test]
fn a_queue_smaller_than_a_batch_is_sent_when_full_not_after_the_linger() {
    // queue_capacity < batch_size: a full queue is as full a batch as there
    // can be, so the worker must not linger on it while emit blocks (or drops).
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::new();
    let tracker = tracker_with(
        common::delivery(dir.path())
            .with_queue_capacity(10)
            .with_batch_size(512)
            .with_linger(std::time::Duration::from_millis(600_000))
            .with_overflow(Overflow::Block)
            .with_block_timeout(std::time::Duration::from_millis(2_000)),
        "rec",
        recorder.clone(),
    );
    emit_seq(&tracker, 13);
    let stats = tracker.report().backends["rec"];
    assert_eq!(stats.dropped, 0, "{stats:?}");
    assert_eq!(stats.accepted, 13);
    let report = tracker.flush(DEADLINE);
    assert!(report.complete);
    assert_eq!(report.backends["rec"].delivered, 13);
    assert_eq!(seqs(&recorder.events()), (0..13).collect::<Vec<_>>());
}

#[test]
fn block_timeout_drops_are_counted_when_the_backend_is_stuck() {
    let dir = tempfile::tempdir().unwrap();
    let (recorder, gate) = Recorder::new().gated();
    const CAPACITY: usize = 5;
    let tracker = tracker_with(
        common::delivery(dir.path())
            .with_queue_capacity(CAPACITY)
            .with_batch_size(1)
            .with_overflow(Overflow::Block)
            .with_block_timeout(std::time::Duration::from_millis(10)),
        "stuck",
        recorder.clone(),
    );
    emit_seq(&tracker, 12);
    let stats = tracker.report().backends["stuck"];
    assert!(stats.accepted <= (CAPACITY + 1) as u64, "{stats:?}");
    assert_eq!(stats.accepted + stats.dropped_by_reason.block_timeout, 12);
    assert!(stats.dropped_by_reason.block_timeout >= 6);

    gate.open();
    let report = tracker.flush(DEADLINE);
    assert!(report.complete);
    let stats = &report.backends["stuck"];
    assert_eq!(stats.delivered, stats.accepted);
    assert_eq!(stats.accepted + stats.dropped_by_reason.block_timeout, 12);
    assert_accounted(stats);
}

/// An emit waiting for room when shutdown begins was handed to the tracker
/// before it: it is dead-lettered (replayable) and its receipt says so, not
/// dropped.
#[test]
fn an_emit_waiting_for_room_at_shutdown_is_dead_lettered_not_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (recorder, _gate) = Recorder::new().gated();
    const CAPACITY: usize = 2;
    let tracker = tracker_with(
        common::delivery(dir.path())
            .with_queue_capacity(CAPACITY)
            .with_batch_size(1)
            .with_overflow(Overflow::Block)
            .with_block_timeout(Duration::from_secs(600)),
        "stuck",
        recorder.clone(),
    );
    // One event in flight (stuck), the queue full behind it.
    emit_seq(&tracker, 1);
    let start = std::time::Instant::now();
    while tracker.queued("stuck") != Some(0) {
        assert!(
            start.elapsed() < DEADLINE,
            "the first event never left the queue"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    for i in 1..=CAPACITY {
        tracker.emit("test.event", json!({"i": i})).unwrap();
    }
    let report = std::thread::scope(|scope| {
        let waiting = scope.spawn(|| {
            tracker
                .emit_acked("test.event", json!({"i": CAPACITY + 1}))
                .unwrap()
        });
        // Whether this emit is still waiting when shutdown begins or arrives
        // just after, the outcome is the same.
        std::thread::sleep(Duration::from_millis(50));
        let report = tracker.shutdown(Duration::from_millis(200)).unwrap();
        let ack = waiting.join().unwrap().wait();
        assert!(
            matches!(ack.outcome("stuck"), Some(eventtracking::Outcome::DeadLettered { reason }) if reason.starts_with("shutdown")),
            "{ack:?}"
        );
        report
    });
    let stats = &report.backends["stuck"];
    assert_eq!(stats.dropped, 0, "{stats:?}");
    assert_eq!(stats.accepted, CAPACITY as u64 + 2, "{stats:?}");
    assert_eq!(stats.dead_lettered, stats.accepted, "{stats:?}");
    assert_accounted(stats);
    assert_eq!(
        seqs_of_dead(&dead_letters(dir.path())),
        (0..CAPACITY as u64 + 2).collect::<Vec<_>>()
    );
}

#[test]
fn a_send_slower_than_send_timeout_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::scripted(|call, _| {
        if call == 0 {
            Action::SleepThenStore(Duration::from_secs(3_600))
        } else {
            Action::Store
        }
    });
    let tracker = tracker_with(
        common::delivery(dir.path())
            .with_send_timeout(std::time::Duration::from_millis(50))
            .with_batch_size(1_000)
            .with_linger(std::time::Duration::from_millis(60_000)),
        "sleepy",
        recorder.clone(),
    );
    emit_seq(&tracker, 5);
    let report = tracker.flush(DEADLINE);
    assert!(report.complete);
    let stats = &report.backends["sleepy"];
    assert_eq!(stats.delivered, 5);
    assert_eq!(stats.failed, 0);
    let sizes = recorder.call_sizes();
    assert!(sizes.len() >= 2, "{sizes:?}");
    assert_eq!(stats.retried, sizes[0] as u64);
    // The timed-out attempt was cancelled: each event stored exactly once.
    assert_eq!(seqs(&recorder.events()), [0, 1, 2, 3, 4]);
}

#[test]
fn a_send_timeout_that_never_clears_is_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::scripted(|_, _| Action::SleepThenStore(Duration::from_secs(3_600)));
    let tracker = tracker_with(
        common::delivery(dir.path())
            .with_send_timeout(std::time::Duration::from_millis(20))
            .with_max_retries(1),
        "hung",
        recorder.clone(),
    );
    emit_seq(&tracker, 3);
    let report = tracker.flush(DEADLINE);
    assert!(report.complete);
    let stats = &report.backends["hung"];
    assert_eq!(stats.failed, 3);
    assert_eq!(stats.dead_lettered, 3);
    let records = dead_letters(dir.path());
    assert_eq!(records.len(), 3);
    assert!(records
        .iter()
        .all(|r| r.reason.contains("retries exhausted") && r.reason.contains("timed out")));
}

#[test]
fn flush_reports_delivery_and_flushes_the_backend() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::new();
    let tracker = tracker_with(common::delivery(dir.path()), "rec", recorder.clone());
    emit_seq(&tracker, 50);
    let report = tracker.flush(DEADLINE);
    assert!(report.complete);
    assert_eq!(report.tracker.emitted, 50);
    let stats = &report.backends["rec"];
    assert_eq!((stats.accepted, stats.delivered, stats.queued), (50, 50, 0));
    assert_eq!(report.total_dropped(), 0);
    assert_eq!(report.total_failed(), 0);
    assert!(recorder.flushes() >= 1);
    // A flush with nothing pending completes too.
    let again = tracker.flush(DEADLINE);
    assert!(again.complete);
    assert_eq!(again.backends["rec"].delivered, 50);
    // The report renders and serializes.
    assert!(report.to_string().contains("delivered 50"), "{report}");
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["backends"]["rec"]["delivered"], 50);
}

#[test]
fn shutdown_delivers_reports_once_and_refuses_later_emits() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::new();
    let tracker = tracker_with(
        common::delivery(dir.path()).with_linger(std::time::Duration::from_millis(600_000)),
        "rec",
        recorder.clone(),
    );
    emit_seq(&tracker, 25);
    let report = tracker
        .shutdown(DEADLINE)
        .expect("the first shutdown reports");
    assert!(report.complete);
    assert_eq!(report.backends["rec"].delivered, 25);
    assert_accounted(&report.backends["rec"]);
    assert_eq!(recorder.shutdowns(), 1);
    assert!(recorder.flushes() >= 1);
    assert_eq!(seqs(&recorder.events()), (0..25).collect::<Vec<_>>());

    assert!(tracker.shutdown(DEADLINE).is_none());
    let err = tracker.emit("too.late", json!({})).unwrap_err();
    assert!(
        matches!(&err, EmitError::ShutDown { name } if name == "too.late"),
        "{err:?}"
    );
    let after = tracker.report();
    assert_eq!(after.tracker.after_shutdown, 1);
    assert_eq!(after.tracker.emitted, 25);
    assert_eq!(after.backends["rec"].accepted, 25);
    assert_eq!(recorder.shutdowns(), 1);
}

#[test]
fn shutdown_with_a_stuck_backend_is_incomplete_and_counts_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (recorder, _gate) = Recorder::new().gated();
    let tracker = tracker_with(
        common::delivery(dir.path()).with_batch_size(8),
        "stuck",
        recorder.clone(),
    );
    emit_seq(&tracker, 50);
    let report = tracker
        .shutdown(Duration::from_millis(200))
        .expect("report");
    assert!(!report.complete);
    assert!(report.deadline_passed);
    let stats = &report.backends["stuck"];
    assert_eq!(stats.accepted, 50);
    assert_eq!(stats.delivered, 0);
    // Queued and in flight at the deadline: dead-lettered (replayable), not dropped.
    assert_eq!(stats.failed_shutdown, 50, "{stats:?}");
    assert_eq!(stats.dead_lettered, 50, "{stats:?}");
    assert_eq!(stats.dropped, 0, "{stats:?}");
    assert_accounted(stats);
    assert!(recorder.events().is_empty());
    let dead = dead_letters(dir.path());
    assert_eq!(seqs_of_dead(&dead), (0..50).collect::<Vec<_>>());
    assert!(
        dead.iter().all(|r| r.reason.starts_with("shutdown")),
        "{dead:?}"
    );
    assert!(
        report.to_string().contains("INCOMPLETE: deadline passed"),
        "{report}"
    );
    // After shutdown there is nothing left to wait for: a flush returns at once
    // (within its deadline) with the final counts.
    let after = tracker.flush(DEADLINE);
    assert!(after.complete, "{after}");
    assert_eq!(after.backends["stuck"], *stats);
}

#[test]
fn shutdown_with_a_partly_stuck_backend_accounts_for_every_event() {
    let dir = tempfile::tempdir().unwrap();
    // The first two batches are stored, then the backend hangs.
    let recorder = Recorder::scripted(|call, _| {
        if call < 2 {
            Action::Store
        } else {
            Action::SleepThenStore(Duration::from_secs(3_600))
        }
    });
    let tracker = tracker_with(
        common::delivery(dir.path()).with_batch_size(10),
        "half",
        recorder.clone(),
    );
    emit_seq(&tracker, 100);
    let report = tracker.shutdown(Duration::from_millis(300)).unwrap();
    assert!(!report.complete);
    let stats = &report.backends["half"];
    assert_eq!(stats.accepted, 100);
    assert_eq!(stats.delivered, recorder.events().len() as u64);
    assert!(stats.delivered <= 20);
    assert_eq!(stats.delivered + stats.failed_shutdown, 100, "{stats:?}");
    assert_eq!(stats.dead_lettered, stats.failed_shutdown, "{stats:?}");
    assert_accounted(stats);
    let mut all: Vec<u64> = seqs(&recorder.events());
    all.extend(seqs_of_dead(&dead_letters(dir.path())));
    all.sort_unstable();
    assert_eq!(all, (0..100).collect::<Vec<_>>());
}

fn seqs_of_dead(records: &[eventtracking::DeadLetterRecord]) -> Vec<u64> {
    let mut seqs: Vec<u64> = records
        .iter()
        .map(|r| r.event.data()["i"].as_u64().unwrap())
        .collect();
    seqs.sort_unstable();
    seqs
}

#[test]
fn a_retry_loop_at_the_shutdown_deadline_dead_letters_instead_of_sleeping_on() {
    let dir = tempfile::tempdir().unwrap();
    // Always retryable: without the deadline this would retry for minutes.
    let recorder = Recorder::scripted(|_, _| Action::Fail(BackendError::Retryable("down".into())));
    let tracker = tracker_with(
        common::delivery(dir.path())
            .with_max_retries(1_000)
            .with_initial_backoff(std::time::Duration::from_millis(10_000))
            .with_max_backoff(std::time::Duration::from_millis(60_000))
            .with_retry_budget(std::time::Duration::from_millis(3_600_000)),
        "down",
        recorder,
    );
    emit_seq(&tracker, 5);
    let report = tracker.shutdown(Duration::from_millis(300)).unwrap();
    let stats = &report.backends["down"];
    assert_eq!(stats.failed_shutdown, 5, "{stats:?}");
    assert_eq!(stats.dead_lettered, 5, "{stats:?}");
    assert_accounted(stats);
    let dead = dead_letters(dir.path());
    assert_eq!(seqs_of_dead(&dead), (0..5).collect::<Vec<_>>());
    assert!(
        dead[0].reason.contains("last: transient failure: down") || dead[0].reason.contains("down"),
        "{}",
        dead[0].reason
    );
}

#[test]
fn the_retry_budget_ends_retries_and_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::scripted(|_, _| Action::Fail(BackendError::Retryable("down".into())));
    let tracker = tracker_with(
        common::delivery(dir.path())
            .with_max_retries(1_000_000)
            .with_initial_backoff(std::time::Duration::from_millis(5))
            .with_max_backoff(std::time::Duration::from_millis(20))
            .with_retry_budget(std::time::Duration::from_millis(200)),
        "down",
        recorder,
    );
    emit_seq(&tracker, 3);
    let report = tracker.flush(DEADLINE);
    assert!(report.complete, "{report}");
    let stats = &report.backends["down"];
    assert_eq!(stats.dead_lettered, 3, "{stats:?}");
    assert_eq!(stats.failed_shutdown, 0, "{stats:?}");
    let dead = dead_letters(dir.path());
    assert!(
        dead.iter()
            .all(|r| r.reason.starts_with("retries exhausted")
                && r.reason.contains("retry_budget_ms 200")),
        "{dead:?}"
    );
}

#[test]
fn cut_shutdown_short_ends_a_long_shutdown_at_once_with_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let (recorder, _gate) = Recorder::new().gated();
    let tracker = tracker_with(common::delivery(dir.path()), "stuck", recorder);
    emit_seq(&tracker, 10);
    let cutter = {
        let tracker = tracker.clone();
        std::thread::spawn(move || {
            // Wait until the shutdown below is under way, then cut it.
            while tracker.emit("probe", json!({})).is_ok() {
                std::thread::sleep(Duration::from_millis(10));
            }
            tracker.cut_shutdown_short();
        })
    };
    // An hour's deadline: only the cut can end this call.
    let report = tracker.shutdown(Duration::from_secs(3_600)).unwrap();
    cutter.join().unwrap();
    let stats = &report.backends["stuck"];
    assert_eq!(stats.delivered, 0);
    assert_eq!(stats.failed_shutdown, stats.accepted, "{stats:?}");
    assert_eq!(dead_letters(dir.path()).len() as u64, stats.accepted);
}

#[test]
fn an_unwritable_dead_letter_path_is_refused_at_build() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let path = file.join("dead.jsonl");
    let err = Tracker::builder()
        .with_delivery(DeliveryConfig::default().with_dead_letter_path(path.clone()))
        .with_backend("rec", Recorder::new())
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("dead_letter_path"), "{err}");
    assert!(err.contains(&path.display().to_string()), "{err}");
    // A writable path that does not exist yet is not created by the check.
    let fine = dir.path().join("sub").join("dead.jsonl");
    Tracker::builder()
        .with_delivery(DeliveryConfig::default().with_dead_letter_path(fine.clone()))
        .with_backend("rec", Recorder::new())
        .build()
        .unwrap();
    assert!(!fine.exists());
}

#[test]
fn a_million_event_burst_into_a_slow_backend_loses_nothing() {
    const EVENTS: u64 = 1_000_000;
    let dir = tempfile::tempdir().unwrap();
    let collector = IdCollector::with_delay(Duration::from_millis(1));
    let tracker = Tracker::builder()
        .with_delivery(
            common::delivery(dir.path())
                .with_queue_capacity(10_000)
                .with_batch_size(1_000)
                .with_overflow(Overflow::Block)
                .with_block_timeout(std::time::Duration::from_millis(120_000)),
        )
        .with_backend("slow", collector.clone())
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let emitters: Vec<_> = (0..2u64)
        .map(|t| {
            let tracker = tracker.clone();
            std::thread::spawn(move || {
                for i in 0..EVENTS / 2 {
                    tracker
                        .emit_value("burst.event", serde_json::Value::from(t * EVENTS + i))
                        .unwrap();
                }
            })
        })
        .collect();
    // Watch the queue (for the log only: how full it got depends on speed).
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let monitor = {
        let (tracker, done) = (tracker.clone(), done.clone());
        std::thread::spawn(move || {
            let mut max_queued = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                max_queued = max_queued.max(tracker.report().backends["slow"].queued);
                std::thread::sleep(Duration::from_millis(5));
            }
            max_queued
        })
    };
    for e in emitters {
        e.join().unwrap();
    }
    let emitted_in = started.elapsed();
    let report = tracker.flush(Duration::from_secs(300));
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    eprintln!(
        "1M burst: emitted in {emitted_in:?}, delivered in {:?}, max queued {}",
        started.elapsed(),
        monitor.join().unwrap()
    );
    assert!(report.complete);
    assert_eq!(report.tracker.emitted, EVENTS);
    let stats = &report.backends["slow"];
    assert_eq!(stats.accepted, EVENTS);
    assert_eq!(stats.delivered, EVENTS);
    assert_eq!(stats.dropped, 0);
    assert_eq!(stats.failed, 0);
    assert_accounted(stats);
    let mut ids = collector.take_ids();
    assert_eq!(ids.len() as u64, EVENTS);
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len() as u64, EVENTS, "an event was delivered twice");
}

#[test]
fn a_failing_backend_does_not_affect_another() {
    let dir = tempfile::tempdir().unwrap();
    let (stuck, _gate) = Recorder::new().gated();
    let failing = Recorder::scripted(|_, _| Action::Fail(BackendError::Permanent("always".into())));
    let memory = InMemoryBackend::new();
    let tracker = Tracker::builder()
        .with_delivery(common::delivery(dir.path()).with_queue_capacity(10_000))
        .with_route(
            "stuck",
            stuck,
            Vec::new(),
            Some(
                common::delivery(dir.path())
                    .with_queue_capacity(20)
                    .with_batch_size(5),
            ),
        )
        .with_backend("failing", failing)
        .with_backend("good", memory.clone())
        .build()
        .unwrap();
    for i in 0..1_000u64 {
        tracker.emit("test.event", json!({"i": i})).unwrap();
    }
    // The stuck backend keeps the flush from completing; the others are done.
    let report = tracker.flush(Duration::from_millis(500));
    assert!(!report.complete);
    let good = &report.backends["good"];
    assert_eq!(
        (good.accepted, good.delivered, good.dropped),
        (1_000, 1_000, 0)
    );
    assert_eq!(seqs(&memory.events()), (0..1_000).collect::<Vec<_>>());
    let failing = &report.backends["failing"];
    assert_eq!((failing.accepted, failing.failed), (1_000, 1_000));
    assert_eq!(failing.delivered, 0);
    let stuck = &report.backends["stuck"];
    assert!(stuck.dropped_by_reason.queue_full > 0);
    assert_eq!(stuck.delivered, 0);
    let final_report = tracker.shutdown(Duration::from_millis(200)).unwrap();
    for stats in final_report.backends.values() {
        assert_accounted(stats);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_async_inside_a_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::new().with_delay(Duration::from_millis(2));
    let tracker = tracker_with(
        common::delivery(dir.path()).with_batch_size(10),
        "rec",
        recorder.clone(),
    );
    emit_seq(&tracker, 200);
    let report = tracker.flush_async(DEADLINE).await;
    assert!(report.complete);
    assert_eq!(report.backends["rec"].delivered, 200);
    assert_eq!(recorder.events().len(), 200);
    // Shutting down (and dropping) inside the runtime is fine too.
    let report = tracker.shutdown(DEADLINE).unwrap();
    assert!(report.complete);
}

#[tokio::test(flavor = "current_thread")]
async fn emit_and_flush_from_a_current_thread_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let memory = InMemoryBackend::new();
    let tracker = Tracker::builder()
        .with_delivery(common::delivery(dir.path()))
        .with_backend("memory", memory.clone())
        .build()
        .unwrap();
    tracker
        .in_context("request", json!({"user_id": 3}), async {
            tracker.emit("first", json!({})).unwrap();
            tokio::task::yield_now().await;
            tracker.emit("second", json!({})).unwrap();
        })
        .await
        .unwrap();
    let report = tracker.flush_async(DEADLINE).await;
    assert!(report.complete);
    tracker.emit("third", json!({})).unwrap();
    // The blocking flush works here too: delivery runs on its own threads.
    let report = tracker.flush(DEADLINE);
    assert!(report.complete);
    assert_eq!(report.backends["memory"].delivered, 3);
    let events = memory.events();
    assert_eq!(events[0].context()["user_id"], 3);
    assert_eq!(events[1].context()["user_id"], 3);
    assert!(events[2].context().is_empty());
    drop(tracker);
}

#[test]
fn dead_letter_write_errors_are_counted_as_drops() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dead.jsonl");
    let recorder = Recorder::scripted(|_, _| Action::Fail(BackendError::Permanent("nope".into())));
    let tracker = tracker_with(
        common::delivery(dir.path()).with_dead_letter_path(path.clone()),
        "rec",
        recorder,
    );
    // Writable at start, then the dead-letter "file" becomes a directory: writing it fails.
    std::fs::create_dir(&path).unwrap();
    emit_seq(&tracker, 4);
    let report = tracker.flush(DEADLINE);
    assert!(report.complete);
    let stats = &report.backends["rec"];
    assert_eq!(stats.failed, 4);
    assert_eq!(stats.dead_lettered, 0);
    assert_eq!(stats.dropped_by_reason.dead_letter_error, 4);
    assert_accounted(stats);
}

/// A backend that keeps the `(t, i)` data of what it stores, for fast lookups.
#[derive(Debug, Default, Clone)]
struct Seen(Arc<Mutex<HashSet<(u64, u64)>>>);

#[eventtracking::async_trait]
impl eventtracking::Backend for Seen {
    async fn send_batch(
        &self,
        batch: &[Arc<eventtracking::Event>],
    ) -> eventtracking::BackendResult {
        let mut seen = self.0.lock().unwrap();
        for event in batch {
            let data = event.data();
            seen.insert((data["t"].as_u64().unwrap(), data["i"].as_u64().unwrap()));
        }
        Ok(())
    }
}

#[test]
fn concurrent_flushes_each_wait_for_their_own_events() {
    // Threads each emit one event and flush, over and over: every
    // complete flush must cover the event its own thread emitted before it,
    // even while other threads' flushes are in progress.
    const ITERATIONS: u64 = 4_000;
    const THREADS: u64 = 8;
    let dir = tempfile::tempdir().unwrap();
    let seen = Seen::default();
    let tracker = Tracker::builder()
        .with_delivery(
            common::delivery(dir.path()).with_linger(std::time::Duration::from_millis(0)),
        )
        .with_backend("seen", seen.clone())
        .build()
        .unwrap();
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (tracker, seen) = (tracker.clone(), seen.clone());
            std::thread::spawn(move || {
                let mut missing = Vec::new();
                for i in 0..ITERATIONS {
                    tracker.emit("test.event", json!({"t": t, "i": i})).unwrap();
                    assert!(tracker.flush(DEADLINE).complete);
                    if !seen.0.lock().unwrap().contains(&(t, i)) {
                        missing.push(i);
                    }
                }
                missing
            })
        })
        .collect();
    let missing: Vec<(usize, Vec<u64>)> = threads
        .into_iter()
        .map(|thread| thread.join().unwrap())
        .enumerate()
        .filter(|(_, missing)| !missing.is_empty())
        .collect();
    assert!(
        missing.is_empty(),
        "flushes returned before the event emitted just before them was delivered \
         (thread, iterations): {missing:?}"
    );
    let report = tracker.shutdown(DEADLINE).unwrap();
    assert_eq!(report.backends["seen"].delivered, THREADS * ITERATIONS);
}

#[test]
fn unworkable_delivery_settings_are_refused_when_building() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "batch_size",
            common::delivery(dir.path()).with_batch_size(0),
        ),
        (
            "queue_capacity",
            common::delivery(dir.path()).with_queue_capacity(0),
        ),
        (
            "send_timeout_ms",
            common::delivery(dir.path()).with_send_timeout(std::time::Duration::from_millis(0)),
        ),
        (
            "initial_backoff_ms",
            common::delivery(dir.path())
                .with_initial_backoff(std::time::Duration::from_millis(100))
                .with_max_backoff(std::time::Duration::from_millis(10)),
        ),
    ];
    for (key, bad) in cases {
        // As the tracker default...
        let err = Tracker::builder()
            .with_delivery(bad.clone())
            .with_backend("rec", Recorder::new())
            .build()
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains(key) && text.contains("rec"), "{key}: {text}");
        // ...and as one backend's own settings.
        let err = Tracker::builder()
            .with_delivery(common::delivery(dir.path()))
            .with_backend("fine", Recorder::new())
            .with_route("picky", Recorder::new(), Vec::new(), Some(bad))
            .build()
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(key) && text.contains("picky"),
            "{key}: {text}"
        );
    }
}

/// A backend whose `flush` fails (say, an fsync): the flush report is not
/// complete and the failure is counted, at flush and at shutdown.
#[test]
fn a_failing_backend_flush_is_counted_and_makes_the_report_incomplete() {
    #[derive(Debug)]
    struct FsyncFails;
    #[eventtracking::async_trait]
    impl eventtracking::Backend for FsyncFails {
        async fn send_batch(
            &self,
            _batch: &[Arc<eventtracking::Event>],
        ) -> eventtracking::BackendResult {
            Ok(())
        }
        async fn flush(&self) -> eventtracking::BackendResult {
            Err(eventtracking::BackendError::Retryable(
                "fsync: I/O error".into(),
            ))
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let tracker = Tracker::builder()
        .with_delivery(DeliveryConfig::default().with_dead_letter_path(dir.path().join("dl.jsonl")))
        .with_backend("disk", FsyncFails)
        .build()
        .unwrap();
    tracker.emit("a", json!(1)).unwrap();
    let report = tracker.flush(DEADLINE);
    assert!(!report.complete, "{report}");
    assert_eq!(report.backends["disk"].delivered, 1);
    assert_eq!(report.backends["disk"].flush_errors, 1);
    assert!(report.to_string().contains("flush errors 1"), "{report}");
    let report = tracker.shutdown(DEADLINE).unwrap();
    assert!(!report.complete, "{report}");
    assert_eq!(report.backends["disk"].flush_errors, 2);
}

/// A backend that panics fails that batch (dead-lettered with the panic
/// message); the worker lives on and delivers later batches.
#[test]
fn a_panicking_backend_fails_the_batch_not_the_worker() {
    #[derive(Debug)]
    struct PanicsOnPoison(Mutex<Vec<u64>>);
    #[eventtracking::async_trait]
    impl eventtracking::Backend for PanicsOnPoison {
        async fn send_batch(
            &self,
            batch: &[Arc<eventtracking::Event>],
        ) -> eventtracking::BackendResult {
            if batch.iter().any(|e| e.name() == "poison") {
                panic!("cannot store poison");
            }
            self.0
                .lock()
                .unwrap()
                .extend(batch.iter().map(|e| e.data().as_u64().unwrap()));
            Ok(())
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(PanicsOnPoison(Mutex::new(Vec::new())));
    let tracker = Tracker::builder()
        .with_delivery(
            DeliveryConfig::default()
                .with_batch_size(1)
                .with_dead_letter_path(common::dead_letter_path(dir.path())),
        )
        .with_backend("fragile", backend.clone())
        .build()
        .unwrap();
    tracker.emit("ok", json!(1)).unwrap();
    tracker.flush(DEADLINE);
    tracker.emit("poison", json!(2)).unwrap();
    tracker.flush(DEADLINE);
    tracker.emit("ok", json!(3)).unwrap();
    let report = tracker.flush(DEADLINE);
    assert!(report.complete, "{report}");
    assert_eq!(report.backends["fragile"].delivered, 2, "{report}");
    assert_eq!(report.backends["fragile"].dead_lettered, 1, "{report}");
    assert_eq!(*backend.0.lock().unwrap(), [1, 3]);
    let records = dead_letters(dir.path());
    assert_eq!(records.len(), 1);
    assert!(
        records[0].reason.contains("panicked: cannot store poison"),
        "{}",
        records[0].reason
    );
}

/// A panicking processor is a processor error: counted, the event dropped
/// for that route, `emit` itself returns normally.
#[test]
fn a_panicking_processor_is_counted_not_propagated() {
    #[derive(Debug)]
    struct Explodes;
    impl eventtracking::Processor for Explodes {
        fn name(&self) -> &str {
            "explodes"
        }
        fn process(&self, _event: Arc<eventtracking::Event>) -> eventtracking::ProcessResult {
            panic!("boom")
        }
    }
    let tracker = Tracker::builder()
        .with_processor(Arc::new(Explodes))
        .build()
        .unwrap();
    tracker.emit("a", json!(1)).unwrap();
    assert_eq!(tracker.report().tracker.processor_errors, 1);
}
