//! (8) Several batches in flight at once.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use eventtracking::{async_trait, Backend, BackendResult, CatalogEntry, Event, Outcome, Tracker};
use serde_json::json;

use crate::harness::{shared_store, Run, BACKEND, WAIT};
use crate::target::{Case, ConformanceTarget, Idempotence};

/// How many events the case sends, in batches of [`BATCH`].
const EVENTS: u64 = 400;
const BATCH: usize = 10;

/// A backend that says its sends may overlap
/// ([`Backend::max_concurrent_sends`](eventtracking::Backend::max_concurrent_sends) > 1)
/// gets 400 acknowledged events in batches of 10 with that many batches in
/// flight: every receipt says `Delivered` and the store holds every event
/// (once, for [`Idempotence::Store`]). A backend that keeps order must
/// refuse `max_in_flight = 2` with an error naming the key, and then
/// deliver the same events one batch at a time.
pub fn concurrent_sends<T: ConformanceTarget>() {
    let _store = shared_store();
    let run = Run::<T>::new(Case::ConcurrentSends);
    let allowed = run.build(run.options()).max_concurrent_sends();
    assert!(allowed >= 1, "{} allows {allowed} sends at once", T::ENGINE);
    if allowed == 1 {
        let refused = Tracker::builder()
            .with_delivery(run.delivery(|d| d.with_max_in_flight(2)))
            .with_backend(BACKEND, run.build(run.options()))
            .build()
            .map(drop)
            .expect_err("max_in_flight = 2 on a backend whose sends cannot overlap");
        assert!(refused.to_string().contains("max_in_flight"), "{refused}");
    }
    let probe = OverlapProbe {
        inner: run.build(run.options()),
        running: Arc::default(),
        most: Arc::default(),
    };
    let (running, most) = (probe.running.clone(), probe.most.clone());
    let tracker = Tracker::builder()
        .with_delivery(run.delivery(|d| d.with_batch_size(BATCH)))
        .with_backend(BACKEND, probe)
        .build()
        .expect("the tracker builds");
    assert_eq!(
        tracker
            .delivery_config(BACKEND)
            .and_then(|d| d.max_in_flight),
        None,
        "the case runs with the backend's own max_in_flight"
    );
    let receipts: Vec<_> = (0..EVENTS)
        .map(|i| {
            tracker
                .emit_acked("conformance.concurrent", json!({"i": i}))
                .expect("accepted")
        })
        .collect();
    let mut sent = BTreeSet::new();
    for mut receipt in receipts {
        let ack = receipt
            .wait_timeout(WAIT)
            .expect("every receipt is answered");
        assert_eq!(ack.outcome(BACKEND), Some(&Outcome::Delivered), "{ack:?}");
        sent.insert(ack.event_id());
    }
    let report = tracker.shutdown(WAIT).expect("the first shutdown");
    assert!(report.complete, "{report}");
    assert_eq!(report.backends[BACKEND].delivered, EVENTS, "{report}");
    let most = most.load(SeqCst);
    assert_eq!(running.load(SeqCst), 0);
    assert!(
        most <= allowed,
        "{most} sends overlapped, more than {allowed}"
    );
    if allowed > 1 {
        assert!(
            most > 1,
            "{} allows {allowed} sends at once, but none overlapped",
            T::ENGINE
        );
    }
    let stored = run.stored_events();
    let ids: BTreeSet<_> = stored.iter().map(|e| e.id()).collect();
    assert_eq!(ids, sent, "the store does not hold exactly the events sent");
    if run.target.idempotence() == Idempotence::Store {
        assert_eq!(stored.len() as u64, EVENTS, "an event was stored twice");
    }
}

/// The backend under test, counting how many sends overlap at most.
struct OverlapProbe {
    inner: Box<dyn Backend>,
    running: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
}

#[async_trait]
impl Backend for OverlapProbe {
    async fn send_batch(&self, batch: &[Arc<Event>]) -> BackendResult {
        let now = self.running.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
        let result = self.inner.send_batch(batch).await;
        self.running.fetch_sub(1, SeqCst);
        result
    }
    async fn flush(&self) -> BackendResult {
        self.inner.flush().await
    }
    async fn shutdown(&self) -> BackendResult {
        self.inner.shutdown().await
    }
    async fn publish_event_types(&self, types: &[Arc<CatalogEntry>]) -> BackendResult {
        self.inner.publish_event_types(types).await
    }
    fn max_concurrent_sends(&self) -> usize {
        self.inner.max_concurrent_sends()
    }
}
