//! Per-event acknowledgements, flushes with their own answers, and batches
//! in flight at once.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use common::{dead_letters, Action, Gate, Recorder, DEADLINE};
use eventtracking::{
    async_trait, Backend, BackendError, BackendResult, DeliveryConfig, Event, EventFailure,
    NameFilter, Outcome, Overflow, Processor, ProcessorError, Receipt, Tracker,
};
use serde_json::json;

fn build(delivery: DeliveryConfig, backends: Vec<(&str, Recorder)>) -> Tracker {
    let mut builder = Tracker::builder().with_delivery(delivery);
    for (name, backend) in backends {
        builder = builder.with_backend(name, backend);
    }
    builder.build().unwrap()
}

#[test]
fn a_receipt_says_delivered_for_each_backend() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (Recorder::new(), Recorder::new());
    let tracker = build(
        common::delivery(dir.path()),
        vec![("a", a.clone()), ("b", b.clone())],
    );
    let receipt = tracker.emit_acked("page.view", json!({"i": 1})).unwrap();
    let id = receipt.event_id();
    let ack = receipt.wait();
    assert_eq!(ack.event_id(), id);
    assert_eq!(ack.outcome("a"), Some(&Outcome::Delivered));
    assert_eq!(ack.outcome("b"), Some(&Outcome::Delivered));
    assert!(ack.is_delivered() && ack.is_settled() && !ack.is_filtered());
    assert_eq!(a.events()[0].id(), id);
    assert_eq!(b.events()[0].id(), id);
}

#[test]
fn a_receipt_is_a_future_too() {
    let dir = tempfile::tempdir().unwrap();
    let tracker = build(common::delivery(dir.path()), vec![("a", Recorder::new())]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let event = Arc::new(Event::new("page.view", json!({"i": 2})).unwrap());
    let id = event.id();
    let ack = runtime.block_on(async {
        tokio::time::timeout(DEADLINE, tracker.emit_event_acked(event).unwrap())
            .await
            .expect("the receipt resolves")
    });
    assert_eq!(ack.event_id(), id);
    assert!(ack.is_delivered());
}

#[test]
fn a_permanent_failure_is_dead_lettered_and_the_receipt_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let failing = Recorder::scripted(|_, _| {
        Action::Fail(BackendError::Permanent("the store refused it".into()))
    });
    let tracker = build(
        common::delivery(dir.path()),
        vec![("ok", Recorder::new()), ("bad", failing)],
    );
    let ack = tracker
        .emit_acked("page.view", json!({"i": 3}))
        .unwrap()
        .wait();
    assert_eq!(ack.outcome("ok"), Some(&Outcome::Delivered));
    match ack.outcome("bad") {
        Some(Outcome::DeadLettered { reason }) => {
            assert!(reason.contains("the store refused it"), "{reason}")
        }
        other => panic!("expected dead-lettered, got {other:?}"),
    }
    assert!(ack.is_settled(), "dead-lettered counts as settled");
    assert!(!ack.is_delivered());
    let dead = dead_letters(dir.path());
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].event.id(), ack.event_id());
    assert!(dead[0].reason.contains("the store refused it"));
}

#[test]
fn a_partial_failure_answers_each_event_of_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::scripted(|call, _| {
        if call == 0 {
            Action::Partial(vec![EventFailure::permanent(1, "duplicate key")])
        } else {
            Action::Store
        }
    });
    let (gated, gate) = recorder.gated();
    let tracker = build(
        common::delivery(dir.path()).with_batch_size(3),
        vec![("rec", gated)],
    );
    let receipts: Vec<_> = (0..3)
        .map(|i| tracker.emit_acked("page.view", json!({"i": i})).unwrap())
        .collect();
    gate.open();
    let outcomes: Vec<Outcome> = receipts
        .into_iter()
        .map(|r| r.wait().outcome("rec").cloned().unwrap())
        .collect();
    assert_eq!(outcomes[0], Outcome::Delivered);
    assert!(
        matches!(&outcomes[1], Outcome::DeadLettered { reason } if reason.contains("duplicate key")),
        "{:?}",
        outcomes[1]
    );
    assert_eq!(outcomes[2], Outcome::Delivered);
}

#[test]
fn an_event_filtered_by_the_tracker_resolves_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (gated, _gate) = Recorder::new().gated();
    let tracker = Tracker::builder()
        .with_delivery(common::delivery(dir.path()))
        .with_processor(Arc::new(
            NameFilter::allow(&["keep.*".into()], None).unwrap(),
        ))
        .with_backend("a", gated)
        .build()
        .unwrap();
    let mut receipt = tracker.emit_acked("drop.me", json!({})).unwrap();
    // Resolved before any worker could act: the backend is gated shut.
    assert!(receipt.is_ready());
    let ack = receipt
        .wait_timeout(Duration::ZERO)
        .expect("answered at once");
    assert!(ack.is_filtered() && ack.is_settled());
    assert_eq!(ack.outcome("a"), Some(&Outcome::Filtered));
}

#[derive(Debug)]
struct Explodes;

impl Processor for Explodes {
    fn name(&self) -> &str {
        "explodes"
    }

    fn process(&self, event: Arc<Event>) -> Result<Option<Arc<Event>>, ProcessorError> {
        if event.name() == "bad.event" {
            return Err(ProcessorError::new(
                "explodes",
                event.name(),
                "cannot enrich this one",
            ));
        }
        Ok(Some(event))
    }
}

#[test]
fn a_backend_processor_error_is_a_drop_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let tracker = Tracker::builder()
        .with_delivery(common::delivery(dir.path()))
        .with_route("a", Recorder::new(), vec![Arc::new(Explodes)], None)
        .build()
        .unwrap();
    let ack = tracker.emit_acked("bad.event", json!({})).unwrap().wait();
    match ack.outcome("a") {
        Some(Outcome::Dropped { reason, .. }) => {
            assert!(reason.contains("cannot enrich this one"), "{reason}")
        }
        other => panic!("expected dropped, got {other:?}"),
    }
    assert!(!ack.is_settled());
    // Sending it again would fail the same way.
    assert!(!ack.outcome("a").unwrap().may_succeed_later());
}

/// A tracker whose one backend `a` has a queue of one event under
/// `overflow`, with a first event already taken by its (gated) worker: the
/// next event fills the queue.
fn one_slot_held(dir: &std::path::Path, overflow: Overflow) -> (Tracker, Gate, Receipt) {
    let (gated, gate) = Recorder::new().gated();
    let tracker = build(
        common::delivery(dir)
            .with_queue_capacity(1)
            .with_batch_size(1)
            .with_overflow(overflow),
        vec![("a", gated)],
    );
    let first = tracker.emit_acked("e", json!({"i": 0})).unwrap();
    let taken = std::time::Instant::now();
    while tracker.report().backends["a"].queued > 0 {
        assert!(
            taken.elapsed() < DEADLINE,
            "the worker never took the first event"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    (tracker, gate, first)
}

#[test]
fn a_full_queue_drops_and_the_receipt_says_so() {
    let dir = tempfile::tempdir().unwrap();
    // The first is taken by the (gated) worker, the second fills the queue.
    let (tracker, gate, first) = one_slot_held(dir.path(), Overflow::DropNewest);
    let second = tracker.emit_acked("e", json!({"i": 1})).unwrap();
    let mut third = tracker.emit_acked("e", json!({"i": 2})).unwrap();
    let ack = third.wait_timeout(Duration::ZERO).expect("refused at once");
    match ack.outcome("a") {
        Some(Outcome::Dropped { reason, .. }) => assert!(reason.contains("queue full"), "{reason}"),
        other => panic!("expected dropped, got {other:?}"),
    }
    // Refused for want of room: later, there may be room.
    assert!(ack.outcome("a").unwrap().may_succeed_later());
    gate.open();
    assert!(first.wait().is_delivered());
    assert!(second.wait().is_delivered());
}

#[test]
fn an_evicted_event_is_answered_as_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (tracker, gate, _first) = one_slot_held(dir.path(), Overflow::DropOldest);
    let mut second = tracker.emit_acked("e", json!({"i": 1})).unwrap();
    let third = tracker.emit_acked("e", json!({"i": 2})).unwrap();
    let ack = second
        .wait_timeout(Duration::ZERO)
        .expect("evicted at once");
    assert!(
        matches!(ack.outcome("a"), Some(Outcome::Dropped { reason, .. }) if reason.contains("evicted")),
        "{ack:?}"
    );
    // It had been accepted: the emitter did not wait to send it again.
    assert!(!ack.outcome("a").unwrap().may_succeed_later());
    gate.open();
    assert!(third.wait().is_delivered());
}

#[test]
fn events_still_held_at_the_shutdown_deadline_are_answered_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let (gated, _gate) = Recorder::new().gated();
    let tracker = build(
        common::delivery(dir.path()).with_batch_size(2),
        vec![("stuck", gated)],
    );
    let receipts: Vec<_> = (0..5)
        .map(|i| tracker.emit_acked("e", json!({"i": i})).unwrap())
        .collect();
    tracker.shutdown(Duration::from_millis(100)).unwrap();
    for receipt in receipts {
        let ack = receipt.wait();
        assert!(
            matches!(ack.outcome("stuck"), Some(Outcome::DeadLettered { reason }) if reason.starts_with("shutdown")),
            "{ack:?}"
        );
    }
    assert_eq!(dead_letters(dir.path()).len(), 5);
}

#[test]
fn emitting_after_shutdown_is_an_error_not_a_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let tracker = build(common::delivery(dir.path()), vec![("a", Recorder::new())]);
    tracker.shutdown(DEADLINE).unwrap();
    assert!(tracker.emit_acked("e", json!({})).is_err());
}

/// A backend whose first flush is slow and fails; later flushes work.
#[derive(Debug, Clone, Default)]
struct FirstFlushFails {
    flushes: Arc<AtomicUsize>,
    stored: Arc<AtomicUsize>,
}

#[async_trait]
impl Backend for FirstFlushFails {
    async fn send_batch(&self, batch: &[Arc<Event>]) -> BackendResult {
        let poisoned: Vec<EventFailure> = batch
            .iter()
            .enumerate()
            .filter(|(_, e)| e.name() == "poison")
            .map(|(i, _)| EventFailure::permanent(i, "poison refused"))
            .collect();
        self.stored.fetch_add(batch.len() - poisoned.len(), SeqCst);
        if poisoned.is_empty() {
            Ok(())
        } else {
            Err(BackendError::Partial(poisoned))
        }
    }

    async fn flush(&self) -> BackendResult {
        if self.flushes.fetch_add(1, SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            return Err(BackendError::Retryable("fsync failed".into()));
        }
        Ok(())
    }
}

#[test]
fn concurrent_flushes_each_get_their_own_answer() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FirstFlushFails::default();
    let tracker = Tracker::builder()
        .with_delivery(common::delivery(dir.path()))
        .with_backend("store", backend.clone())
        .build()
        .unwrap();
    for i in 0..10 {
        tracker.emit("e", json!({"i": i})).unwrap();
    }
    tracker.emit("poison", json!({})).unwrap();
    let start = Arc::new(Barrier::new(2));
    let first = {
        let (tracker, start) = (tracker.clone(), start.clone());
        std::thread::spawn(move || {
            start.wait();
            tracker.flush(DEADLINE)
        })
    };
    start.wait();
    // The first flush is now under way (its backend flush sleeps, then fails).
    while backend.flushes.load(SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    for i in 10..15 {
        tracker.emit("e", json!({"i": i})).unwrap();
    }
    let second = tracker.flush(DEADLINE);
    let first = first.join().unwrap();

    let mine = &first.flushed["store"];
    assert_eq!(mine.delivered, 10, "{mine:?}");
    assert_eq!(mine.dead_lettered, 1, "{mine:?}");
    assert!(
        mine.error.as_deref().unwrap().contains("fsync failed"),
        "{mine:?}"
    );
    assert!(!first.complete);

    // The second flush saw neither the first one's failed fsync nor its poison event.
    let theirs = &second.flushed["store"];
    assert_eq!(theirs.delivered, 5, "{theirs:?}");
    assert_eq!(theirs.dead_lettered, 0, "{theirs:?}");
    assert_eq!(theirs.error, None);
    assert!(second.complete, "{second}");
    assert!(theirs.is_complete());
}

#[test]
fn a_flush_with_nothing_queued_answers_empty_and_complete() {
    let dir = tempfile::tempdir().unwrap();
    let tracker = build(common::delivery(dir.path()), vec![("a", Recorder::new())]);
    let report = tracker.flush(DEADLINE);
    assert!(report.complete);
    assert_eq!(report.flushed["a"], Default::default());
}

/// Records how many `send_batch` calls overlap at most.
#[derive(Debug, Clone)]
struct OverlapProbe {
    allowed: usize,
    running: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
    stored: Arc<Mutex<Vec<u64>>>,
}

impl OverlapProbe {
    fn new(allowed: usize) -> Self {
        OverlapProbe {
            allowed,
            running: Arc::default(),
            most: Arc::default(),
            stored: Arc::default(),
        }
    }
}

#[async_trait]
impl Backend for OverlapProbe {
    async fn send_batch(&self, batch: &[Arc<Event>]) -> BackendResult {
        let now = self.running.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.stored
            .lock()
            .unwrap()
            .extend(batch.iter().map(|e| e.data()["i"].as_u64().unwrap()));
        self.running.fetch_sub(1, SeqCst);
        Ok(())
    }

    fn max_concurrent_sends(&self) -> usize {
        self.allowed
    }
}

fn overlap_run(probe: OverlapProbe, delivery: DeliveryConfig) -> (usize, Vec<u64>) {
    let tracker = Tracker::builder()
        .with_delivery(delivery.with_batch_size(10))
        .with_backend("probe", probe.clone())
        .build()
        .unwrap();
    let receipts: Vec<_> = (0..200)
        .map(|i| tracker.emit_acked("e", json!({"i": i})).unwrap())
        .collect();
    assert!(receipts.into_iter().all(|r| r.wait().is_delivered()));
    let report = tracker.flush(DEADLINE);
    assert!(report.complete, "{report}");
    assert_eq!(report.flushed["probe"].delivered, 200);
    let stored = probe.stored.lock().unwrap().clone();
    (probe.most.load(SeqCst), stored)
}

#[test]
fn a_backend_that_allows_overlap_gets_batches_in_flight_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (most, mut stored) = overlap_run(OverlapProbe::new(4), common::delivery(dir.path()));
    assert!(most > 1, "sends never overlapped (at most {most})");
    assert!(most <= 4, "more than max_in_flight overlapped: {most}");
    stored.sort_unstable();
    assert_eq!(stored, (0..200).collect::<Vec<_>>());
}

#[test]
fn max_in_flight_one_keeps_order_and_never_overlaps() {
    let dir = tempfile::tempdir().unwrap();
    let (most, stored) = overlap_run(
        OverlapProbe::new(4),
        common::delivery(dir.path()).with_max_in_flight(1),
    );
    assert_eq!(most, 1);
    assert_eq!(stored, (0..200).collect::<Vec<_>>());
}

#[test]
fn a_backend_that_keeps_order_never_overlaps() {
    let dir = tempfile::tempdir().unwrap();
    let (most, stored) = overlap_run(OverlapProbe::new(1), common::delivery(dir.path()));
    assert_eq!(most, 1);
    assert_eq!(stored, (0..200).collect::<Vec<_>>());
}

#[test]
fn max_in_flight_above_one_is_refused_for_a_backend_that_keeps_order() {
    let dir = tempfile::tempdir().unwrap();
    let error = Tracker::builder()
        .with_delivery(common::delivery(dir.path()).with_max_in_flight(3))
        .with_backend("ordered", OverlapProbe::new(1))
        .build()
        .unwrap_err()
        .to_string();
    assert!(error.contains("max_in_flight = 3"), "{error}");
    assert!(error.contains("ordered"), "{error}");
}

#[test]
fn max_in_flight_zero_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let error = Tracker::builder()
        .with_delivery(common::delivery(dir.path()).with_max_in_flight(0))
        .with_backend("a", OverlapProbe::new(4))
        .build()
        .unwrap_err()
        .to_string();
    assert!(error.contains("max_in_flight"), "{error}");
}

/// A linger far longer than the test's deadline: an event that waits it out
/// never arrives in time.
fn lingering(dir: &std::path::Path) -> DeliveryConfig {
    common::delivery(dir)
        .with_linger(Duration::from_secs(3600))
        .with_batch_size(1000)
}

#[test]
fn a_waited_on_receipt_does_not_wait_out_the_linger() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::new();
    let tracker = build(lingering(dir.path()), vec![("a", recorder.clone())]);
    for i in 0..3 {
        tracker.emit("page.view", json!({ "plain": i })).unwrap();
    }
    let mut receipt = tracker
        .emit_acked("page.view", json!({"acked": 1}))
        .unwrap();
    let ack = receipt
        .wait_timeout(DEADLINE)
        .expect("the receipt resolves before the linger ends");
    assert!(ack.is_delivered());
    // What was queued before it went with it, in order.
    let names: Vec<String> = recorder
        .events()
        .iter()
        .map(|e| e.data().to_string())
        .collect();
    assert_eq!(
        names,
        [
            r#"{"plain":0}"#,
            r#"{"plain":1}"#,
            r#"{"plain":2}"#,
            r#"{"acked":1}"#
        ]
    );
}

#[test]
fn an_awaited_receipt_does_not_wait_out_the_linger() {
    let dir = tempfile::tempdir().unwrap();
    let tracker = build(lingering(dir.path()), vec![("a", Recorder::new())]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ack = runtime.block_on(async {
        let receipt = tracker.emit_acked("page.view", json!({"i": 1})).unwrap();
        tokio::time::timeout(DEADLINE, receipt)
            .await
            .expect("the receipt resolves before the linger ends")
    });
    assert!(ack.is_delivered());
}

#[test]
fn a_flush_answers_a_receipt_still_lingering() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::new();
    let tracker = build(lingering(dir.path()), vec![("a", recorder.clone())]);
    let receipt = tracker.emit_acked("page.view", json!({"i": 1})).unwrap();
    // A flush sends it (the linger still holds it otherwise).
    let report = tracker.flush(DEADLINE);
    assert!(report.complete, "{report:?}");
    assert!(receipt.is_ready());
    assert_eq!(recorder.events().len(), 1);
}

#[test]
fn queued_counts_what_waits_in_a_backends_queue() {
    let dir = tempfile::tempdir().unwrap();
    let (tracker, gate, first) = one_slot_held(dir.path(), Overflow::DropNewest);
    // The first event is in flight (held by the gate), not queued.
    assert_eq!(tracker.queued("a"), Some(0));
    let second = tracker.emit_acked("e", json!({"i": 1})).unwrap();
    assert_eq!(tracker.queued("a"), Some(1));
    assert_eq!(
        tracker.report().backends["a"].queued,
        1,
        "the same as the report"
    );
    assert_eq!(tracker.queued("nowhere"), None);
    gate.open();
    assert!(first.wait().is_delivered() && second.wait().is_delivered());
    assert_eq!(tracker.queued("a"), Some(0));
}
