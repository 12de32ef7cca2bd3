//! A stalled backend and a tiny queue: 503 with Retry-After, never a
//! silent drop, and `/readyz` says not ready.

mod common;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use common::{config, post_until_refused, Server, Stalled, DEADLINE};
use eventtracking::{DeliveryConfig, Event, Tracker};
use http::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_503_and_every_accepted_event_is_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Stalled::new();
    let tracker = Tracker::builder()
        .with_delivery(
            DeliveryConfig::default()
                .with_queue_capacity(4)
                .with_batch_size(1)
                .with_linger(Duration::ZERO)
                .with_send_timeout(Duration::from_secs(600))
                .with_dead_letter_path(dir.path().join("dead.jsonl")),
        )
        .with_backend("stalled", backend.clone())
        .build()
        .unwrap();
    let server = Server::start(tracker.clone(), config()).await;

    let (accepted, refused) = post_until_refused(&server, 20, |i| json!({"i": i})).await;
    let refused = refused.expect("the queue of 4 never filled");
    assert!(
        refused
            .header("retry-after")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert!(
        refused.body["error"].as_str().unwrap().contains("queue"),
        "{refused:?}"
    );
    // The queue holds 4; the stalled send may hold one more.
    assert!((4..=5).contains(&accepted.len()), "{accepted:?}");

    let reply = server
        .post(&json!([{"name": "a", "data": {}}, {"name": "b", "data": {}}]))
        .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.body["accepted"], 0);

    let ready = server.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE, "{ready:?}");
    assert_eq!(ready.body["backends"]["stalled"]["ready"], false);

    // Unstall: exactly the events answered 202 arrive.
    backend.gate.add_permits(1_000);
    let report = tracker.flush_async(DEADLINE).await;
    assert!(report.complete, "{report}");
    assert_eq!(*backend.stored.lock().unwrap(), accepted);
    assert_eq!(server.get("/readyz").await.status, StatusCode::OK);
    server.stop().await;
}

/// The queue fills between the collector's room check and the emit (as
/// when other requests race this one): the receipt, settled at once as
/// dropped for a full queue, turns into a 503 that lists the event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_dropped_for_a_full_queue_is_503_listing_the_event() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Stalled::new();
    // The processor stands in for the racing requests: on "race.trigger"
    // it fills the queue through the same tracker before the event is queued.
    let this: Arc<OnceLock<Tracker>> = Arc::default();
    let filler = this.clone();
    let processor = eventtracking::processor_fn("filler", move |event: Arc<Event>| {
        if event.name() == "race.trigger" {
            if let Some(tracker) = filler.get() {
                for _ in 0..6 {
                    let _ = tracker.emit("race.filler", json!({}));
                }
            }
        }
        Ok(Some(event))
    });
    let tracker = Tracker::builder()
        .with_delivery(
            DeliveryConfig::default()
                .with_queue_capacity(4)
                .with_batch_size(1)
                .with_linger(Duration::ZERO)
                .with_send_timeout(Duration::from_secs(600))
                .with_dead_letter_path(dir.path().join("dead.jsonl")),
        )
        .with_processor(Arc::new(processor))
        .with_backend("stalled", backend.clone())
        .build()
        .unwrap();
    this.set(tracker.clone()).unwrap();
    let server = Server::start(tracker.clone(), config()).await;

    let reply = server
        .post(&json!([{"name": "bad name", "data": {}}, {"name": "race.trigger", "data": {}}]))
        .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{reply:?}");
    assert!(reply.header("retry-after").is_some());
    assert_eq!(reply.body["accepted"], 0);
    let rejected = reply.body["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert_eq!(rejected[0]["pointer"], "/0/name");
    assert_eq!(rejected[1]["index"], 1);
    assert!(
        rejected[1]["error"]
            .as_str()
            .unwrap()
            .contains("queue full"),
        "{rejected:?}"
    );
    backend.gate.add_permits(1_000);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tracker_without_backends_or_with_one_that_blocks_or_evicts_is_refused_at_start() {
    for overflow in [
        eventtracking::Overflow::Block,
        eventtracking::Overflow::DropOldest,
    ] {
        let tracker = Tracker::builder()
            .with_delivery(DeliveryConfig::default().with_overflow(overflow))
            .with_backend("memory", eventtracking::InMemoryBackend::new())
            .build()
            .unwrap();
        let err = eventtracking_collector::Collector::new(tracker, config()).unwrap_err();
        assert!(
            err.to_string()
                .contains("backends.memory.delivery.overflow"),
            "{err}"
        );
    }
}
