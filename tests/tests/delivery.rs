//! The delivery engine: batching, retry, dead letters, overflow, flush and shutdown.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{dead_letters, fast_delivery, Scripted, WAIT};
use eventtracking::{
    BackendError, BackendStats, DeliveryConfig, EmitError, EventFailure, Overflow, Tracker,
};
use serde_json::json;

fn tracker_with(backend: Scripted, delivery: DeliveryConfig) -> Tracker {
    Tracker::builder()
        .with_delivery(delivery)
        .with_backend("b", backend)
        .build()
        .unwrap()
}

/// Every accepted event is accounted for exactly once.
fn assert_accounted(stats: &BackendStats) {
    let d = &stats.dropped_by_reason;
    assert_eq!(
        stats.accepted,
        stats.delivered
            + stats.failed
            + stats.filtered
            + stats.processor_errors
            + d.evicted
            + d.shutdown_after_accept()
            + stats.queued,
        "{stats:?}"
    );
}

trait ShutdownAfterAccept {
    fn shutdown_after_accept(&self) -> u64;
}
impl ShutdownAfterAccept for eventtracking::DroppedStats {
    fn shutdown_after_accept(&self) -> u64 {
        // In these tests no event is emitted after shutdown, so every
        // shutdown drop was an accepted event abandoned at the deadline.
        self.shutdown
    }
}

#[test]
fn batches_respect_batch_size_and_linger_coalesces() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Scripted::ok();
    let tracker = tracker_with(
        backend.clone(),
        fast_delivery(dir.path())
            .with_batch_size(10)
            .with_linger_ms(200),
    );
    for i in 0..95 {
        tracker.emit("e", json!(i)).unwrap();
    }
    let report = tracker.flush(WAIT);
    assert!(report.complete);
    assert_eq!(report.backends["b"].delivered, 95);
    let sizes = backend.batch_sizes.lock().unwrap().clone();
    assert!(sizes.iter().all(|s| *s <= 10), "{sizes:?}");
    assert!(sizes.len() <= 12, "a long linger coalesces: {sizes:?}");
    let order: Vec<i64> = backend
        .stored()
        .iter()
        .map(|e| e.data().as_i64().unwrap())
        .collect();
    assert_eq!(order, (0..95).collect::<Vec<_>>());
}

#[test]
fn batch_bytes_limits_the_json_size_of_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Scripted::new(|_, batch| {
        let bytes: usize = batch.iter().map(|e| e.to_json_bytes().len() + 1).sum();
        assert!(batch.len() == 1 || bytes <= 2_000, "{bytes}");
        Ok(())
    });
    let tracker = tracker_with(
        backend.clone(),
        fast_delivery(dir.path())
            .with_batch_bytes(2_000)
            .with_linger_ms(50),
    );
    for i in 0..100 {
        tracker
            .emit("e", json!({"i": i, "pad": "x".repeat(300)}))
            .unwrap();
    }
    let report = tracker.flush(WAIT);
    assert_eq!(report.backends["b"].delivered, 100, "{report}");
    assert!(backend.batch_sizes.lock().unwrap().len() >= 20);
}

#[test]
fn retryable_failures_are_retried_until_they_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Scripted::new(|call, _| {
        if call < 3 {
            Err(BackendError::Retryable("server busy".into()))
        } else {
            Ok(())
        }
    });
    let tracker = tracker_with(
        backend.clone(),
        fast_delivery(dir.path()).with_batch_size(100),
    );
    for i in 0..50 {
        tracker.emit("e", json!(i)).unwrap();
    }
    let report = tracker.flush(WAIT);
    let stats = report.backends["b"];
    assert_eq!(stats.delivered, 50, "{report}");
    assert_eq!(stats.retried, 150, "three retries of 50 events: {report}");
    assert_eq!(stats.failed, 0);
    assert!(dead_letters(dir.path()).is_empty());
    assert_eq!(backend.stored().len(), 50);
}

#[test]
fn exhausted_retries_go_to_the_dead_letter_file_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Scripted::new(|_, _| Err(BackendError::Timeout(Duration::from_millis(1))));
    let tracker = tracker_with(
        backend.clone(),
        fast_delivery(dir.path()).with_max_retries(2),
    );
    for i in 0..5 {
        tracker.emit("e", json!(i)).unwrap();
    }
    let report = tracker.flush(WAIT);
    let stats = report.backends["b"];
    assert_eq!(
        (stats.failed, stats.dead_lettered, stats.delivered),
        (5, 5, 0),
        "{report}"
    );
    assert_eq!(backend.calls(), 3, "one try and two retries");
    let records = dead_letters(dir.path());
    assert_eq!(records.len(), 5);
    for (i, record) in records.iter().enumerate() {
        assert_eq!(record.backend, "b");
        assert!(
            record.reason.contains("retries exhausted after 3 attempts"),
            "{}",
            record.reason
        );
        assert!(record.reason.contains("timed out"), "{}", record.reason);
        assert_eq!(record.attempts, 3);
        assert_eq!(record.event.data(), &json!(i));
    }
    assert_accounted(&stats);
}

#[test]
fn permanent_failures_are_dead_lettered_without_retry() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Scripted::new(|_, _| Err(BackendError::Permanent("schema violation".into())));
    let tracker = tracker_with(backend.clone(), fast_delivery(dir.path()));
    tracker.emit("e", json!(1)).unwrap();
    let report = tracker.flush(WAIT);
    assert_eq!(report.backends["b"].dead_lettered, 1);
    assert_eq!(report.backends["b"].retried, 0);
    assert_eq!(backend.calls(), 1);
    assert!(dead_letters(dir.path())[0]
        .reason
        .contains("schema violation"));
}

#[test]
fn partial_failures_dead_letter_some_retry_others_and_keep_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    // First call: event 1 is refused for good, event 2 fails transiently; then all succeed.
    let backend = Scripted::new(|call, batch| {
        if call == 0 {
            assert_eq!(batch.len(), 4);
            Err(BackendError::Partial(vec![
                EventFailure {
                    index: 1,
                    retryable: false,
                    reason: "document too large".into(),
                },
                EventFailure {
                    index: 2,
                    retryable: true,
                    reason: "not primary".into(),
                },
            ]))
        } else {
            Ok(())
        }
    });
    let tracker = tracker_with(
        backend.clone(),
        fast_delivery(dir.path()).with_linger_ms(100),
    );
    for i in 0..4 {
        tracker.emit("e", json!(i)).unwrap();
    }
    let report = tracker.flush(WAIT);
    let stats = report.backends["b"];
    assert_eq!(
        (stats.delivered, stats.failed, stats.retried),
        (3, 1, 1),
        "{report}"
    );
    let stored: HashSet<i64> = backend
        .stored()
        .iter()
        .map(|e| e.data().as_i64().unwrap())
        .collect();
    assert_eq!(stored, HashSet::from([0, 2, 3]));
    let records = dead_letters(dir.path());
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].event.data(), &json!(1));
    assert!(records[0].reason.contains("document too large"));
}

#[test]
fn oversized_events_are_dead_lettered_while_neighbours_are_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Scripted::ok();
    let tracker = tracker_with(
        backend.clone(),
        fast_delivery(dir.path()).with_max_event_bytes(1_000),
    );
    tracker.emit("small", json!(1)).unwrap();
    tracker.emit("big", json!("x".repeat(5_000))).unwrap();
    tracker.emit("small", json!(2)).unwrap();
    let report = tracker.flush(WAIT);
    assert_eq!(report.backends["b"].delivered, 2, "{report}");
    let records = dead_letters(dir.path());
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].event.name(), "big");
    assert!(
        records[0].reason.starts_with("oversized"),
        "{}",
        records[0].reason
    );
    assert!(backend.stored().iter().all(|e| e.name() == "small"));
}

/// A backend that holds every call until `release` is set.
fn gated() -> (Scripted, Arc<AtomicBool>) {
    let release = Arc::new(AtomicBool::new(false));
    let gate = release.clone();
    let backend = Scripted::new(move |_, _| {
        while !gate.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    });
    (backend, release)
}

#[test]
fn drop_newest_refuses_new_events_when_full_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let (backend, release) = gated();
    let tracker = tracker_with(
        backend.clone(),
        fast_delivery(dir.path())
            .with_queue_capacity(10)
            .with_batch_size(5),
    );
    for i in 0..100 {
        tracker.emit("e", json!(i)).unwrap();
    }
    release.store(true, Ordering::SeqCst);
    let report = tracker.flush(WAIT);
    let stats = report.backends["b"];
    assert!(stats.dropped_by_reason.queue_full >= 85, "{report}");
    assert_eq!(
        stats.accepted + stats.dropped_by_reason.queue_full,
        100,
        "{report}"
    );
    assert_eq!(stats.delivered, stats.accepted);
    // The first events got in; the newest were refused (at most a queue and
    // two batches' worth can be in before the backend is released).
    let kept: Vec<i64> = backend
        .stored()
        .iter()
        .map(|e| e.data().as_i64().unwrap())
        .collect();
    assert_eq!(kept[0], 0);
    assert!(kept.iter().all(|i| *i < 30), "{kept:?}");
    assert_accounted(&stats);
}

#[test]
fn drop_oldest_evicts_queued_events_and_keeps_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let (backend, release) = gated();
    let tracker = tracker_with(
        backend.clone(),
        fast_delivery(dir.path())
            .with_queue_capacity(10)
            .with_batch_size(5)
            .with_overflow(Overflow::DropOldest),
    );
    for i in 0..100 {
        tracker.emit("e", json!(i)).unwrap();
    }
    release.store(true, Ordering::SeqCst);
    let report = tracker.flush(WAIT);
    let stats = report.backends["b"];
    assert_eq!(stats.accepted, 100, "{report}");
    assert!(stats.dropped_by_reason.evicted >= 80, "{report}");
    assert_eq!(stats.delivered + stats.dropped_by_reason.evicted, 100);
    let kept: Vec<i64> = backend
        .stored()
        .iter()
        .map(|e| e.data().as_i64().unwrap())
        .collect();
    assert!(kept.ends_with(&(90..100).collect::<Vec<_>>()), "{kept:?}");
    assert_accounted(&stats);
}

#[test]
fn block_waits_for_room_and_loses_nothing_with_a_slow_backend() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Scripted::ok().with_delay(Duration::from_millis(2));
    let tracker = tracker_with(
        backend.clone(),
        fast_delivery(dir.path())
            .with_queue_capacity(20)
            .with_batch_size(10)
            .with_overflow(Overflow::Block)
            .with_block_timeout_ms(30_000),
    );
    for i in 0..500 {
        tracker.emit("e", json!(i)).unwrap();
    }
    let report = tracker.flush(WAIT);
    assert_eq!(report.backends["b"].delivered, 500, "{report}");
    assert_eq!(report.backends["b"].dropped, 0);
}

#[test]
fn block_gives_up_after_block_timeout_and_counts_the_drop() {
    let dir = tempfile::tempdir().unwrap();
    let (backend, release) = gated();
    let tracker = tracker_with(
        backend,
        fast_delivery(dir.path())
            .with_queue_capacity(2)
            .with_batch_size(1)
            .with_overflow(Overflow::Block)
            .with_block_timeout_ms(20),
    );
    for i in 0..10 {
        tracker.emit("e", json!(i)).unwrap();
    }
    release.store(true, Ordering::SeqCst);
    let report = tracker.flush(WAIT);
    let stats = report.backends["b"];
    assert!(stats.dropped_by_reason.block_timeout >= 5, "{report}");
    assert_eq!(stats.accepted + stats.dropped_by_reason.block_timeout, 10);
    assert_eq!(stats.delivered, stats.accepted);
}

#[test]
fn a_send_slower_than_send_timeout_is_a_retryable_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Scripted::ok().with_delay(Duration::from_millis(200));
    let tracker = tracker_with(
        backend.clone(),
        fast_delivery(dir.path())
            .with_send_timeout_ms(20)
            .with_max_retries(1),
    );
    tracker.emit("e", json!(1)).unwrap();
    let report = tracker.flush(WAIT);
    let stats = report.backends["b"];
    assert_eq!((stats.retried, stats.failed), (1, 1), "{report}");
    assert!(dead_letters(dir.path())[0]
        .reason
        .contains("timed out after 20ms"));
}

#[test]
fn shutdown_reports_once_and_refuses_later_emits() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Scripted::ok();
    let tracker = tracker_with(backend.clone(), fast_delivery(dir.path()));
    for i in 0..10 {
        tracker.emit("e", json!(i)).unwrap();
    }
    let report = tracker.shutdown(WAIT).unwrap();
    assert!(report.complete);
    assert_eq!(report.backends["b"].delivered, 10);
    assert!(
        tracker.shutdown(WAIT).is_none(),
        "a second shutdown is a no-op"
    );
    let err = tracker.emit("late", json!(1)).unwrap_err();
    assert!(
        matches!(err, EmitError::ShutDown { ref name } if name == "late"),
        "{err}"
    );
    assert_eq!(tracker.report().tracker.after_shutdown, 1);
}

#[test]
fn shutdown_with_a_stuck_backend_counts_what_it_abandons() {
    let dir = tempfile::tempdir().unwrap();
    let (backend, release) = gated();
    let tracker = tracker_with(backend, fast_delivery(dir.path()).with_batch_size(5));
    for i in 0..20 {
        tracker.emit("e", json!(i)).unwrap();
    }
    let report = tracker.shutdown(Duration::from_millis(200)).unwrap();
    release.store(true, Ordering::SeqCst);
    let stats = report.backends["b"];
    assert!(!report.complete);
    assert_eq!(stats.accepted, 20);
    assert_eq!(
        stats.delivered + stats.dropped_by_reason.shutdown,
        20,
        "{report}"
    );
    assert!(stats.dropped_by_reason.shutdown >= 15, "{report}");
    assert_accounted(&stats);
}

#[test]
fn no_loss_under_a_one_million_event_burst_with_a_slow_backend() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Scripted::ok().with_delay(Duration::from_millis(1));
    let tracker = tracker_with(
        backend.clone(),
        fast_delivery(dir.path())
            .with_queue_capacity(10_000)
            .with_batch_size(2_000)
            .with_overflow(Overflow::Block)
            .with_block_timeout_ms(60_000),
    );
    const N: u64 = 1_000_000;
    for _ in 0..N {
        tracker
            .emit_value("burst", serde_json::Value::Null)
            .unwrap();
    }
    let report = tracker.shutdown(Duration::from_secs(120)).unwrap();
    let stats = report.backends["b"];
    assert_eq!(stats.delivered, N, "{report}");
    assert_eq!(stats.dropped, 0, "{report}");
    let ids: HashSet<_> = backend.stored().iter().map(|e| e.id()).collect();
    assert_eq!(ids.len() as u64, N, "every id exactly once");
}

#[test]
fn a_failing_backend_does_not_hold_up_another() {
    let dir = tempfile::tempdir().unwrap();
    let (stuck, release) = gated();
    let healthy = Scripted::ok();
    let tracker = Tracker::builder()
        .with_delivery(fast_delivery(dir.path()))
        .with_route(
            "stuck",
            stuck,
            Vec::new(),
            Some(fast_delivery(dir.path()).with_queue_capacity(5)),
        )
        .with_backend("healthy", healthy.clone())
        .build()
        .unwrap();
    for i in 0..100 {
        tracker.emit("e", json!(i)).unwrap();
    }
    let deadline = std::time::Instant::now() + WAIT;
    while healthy.stored().len() < 100 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(healthy.stored().len(), 100);
    release.store(true, Ordering::SeqCst);
    let report = tracker.flush(WAIT);
    assert_eq!(report.backends["healthy"].delivered, 100);
    assert!(report.backends["stuck"].dropped_by_reason.queue_full > 0);
}

#[tokio::test(flavor = "current_thread")]
async fn emit_and_flush_async_work_inside_a_current_thread_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Scripted::ok();
    let tracker = tracker_with(backend.clone(), fast_delivery(dir.path()));
    for i in 0..10 {
        tracker.emit("e", json!(i)).unwrap();
    }
    let report = tracker.flush_async(WAIT).await;
    assert!(report.complete);
    assert_eq!(report.backends["b"].delivered, 10);
}
