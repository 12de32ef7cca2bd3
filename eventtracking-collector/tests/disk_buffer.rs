//! A collector whose backend keeps its queue in a disk buffer: while the
//! backend is stalled, events are answered 202 as long as the buffer has
//! room (not 503 once the memory read-ahead is full), and 202 then means
//! the events are on disk: a tracker built later on the same buffer
//! delivers them.

mod common;

use std::time::Duration;

use common::{config, post_until_refused, Server, Stalled, DEADLINE};
use eventtracking::{BufferFsync, BufferKind, DeliveryConfig, InMemoryBackend, Tracker};
use http::StatusCode;
use serde_json::json;

fn delivery(dir: &std::path::Path) -> DeliveryConfig {
    DeliveryConfig::default()
        .with_queue_capacity(4)
        .with_batch_size(2)
        .with_linger(Duration::ZERO)
        .with_send_timeout(Duration::from_secs(600))
        .with_dead_letter_path(dir.join("dead.jsonl"))
        .with_buffer(BufferKind::Disk)
        .with_buffer_path(dir.join("buffers"))
        .with_buffer_fsync(BufferFsync::Always)
}

async fn shut_down(tracker: Tracker, timeout: Duration) -> eventtracking::DeliveryReport {
    tokio::task::spawn_blocking(move || tracker.shutdown(timeout).unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_backend_behind_a_disk_buffer_is_202_and_202_means_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let stalled = Stalled::new();
    let tracker = Tracker::builder()
        .with_delivery(delivery(dir.path()))
        .with_backend("store", stalled.clone())
        .build()
        .unwrap();
    let server = Server::start(tracker.clone(), config()).await;

    // Ten times the memory queue, in batches of 4.
    let mut accepted = Vec::new();
    for request in 0..10 {
        let events: Vec<_> = (0..4)
            .map(|i| {
                let id = format!("0190f3a2-7b1c-7d4e-8f00-{:012}", request * 4 + i);
                accepted.push(id.clone());
                json!({"name": "tick", "data": {"i": i}, "id": id})
            })
            .collect();
        let reply = server.post(&json!(events)).await;
        assert_eq!(
            reply.status,
            StatusCode::ACCEPTED,
            "request {request}: {reply:?}"
        );
        assert_eq!(reply.body["accepted"], 4, "{reply:?}");
    }
    let stats = tracker.report().backends["store"];
    assert_eq!(stats.accepted, 40, "{stats:?}");
    assert_eq!(stats.dropped, 0, "{stats:?}");
    // Ready: the disk buffer has room, though the memory read-ahead is full.
    let ready = server.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::OK, "{ready:?}");
    let store = &ready.body["backends"]["store"];
    assert_eq!(store["ready"], true, "{ready:?}");
    assert!(store["buffered_events"].as_u64().unwrap() > 0, "{ready:?}");
    assert_eq!(store["buffer_max_bytes"], 1u64 << 30, "{ready:?}");
    server.stop().await;
    // Shut down with the backend still stalled: what it did not take stays buffered.
    let report = shut_down(tracker, Duration::from_millis(200)).await;
    let kept = report.backends["store"].kept_in_buffer;
    assert!(kept > 0, "{report}");

    // The next tracker on the same buffer delivers what 202 answered for.
    let next = InMemoryBackend::new();
    let tracker = Tracker::builder()
        .with_delivery(delivery(dir.path()))
        .with_backend("store", next.clone())
        .build()
        .unwrap();
    let report = shut_down(tracker, DEADLINE).await;
    assert!(report.complete, "{report}");
    let mut stored: Vec<String> = stalled.stored.lock().unwrap().clone();
    stored.extend(next.events().iter().map(|e| e.id().to_string()));
    stored.sort();
    stored.dedup();
    assert_eq!(stored, accepted);
}

/// A full disk buffer refuses by itself: 503 with `Retry-After` (the
/// receipt says the event may succeed later), never a 202 for an event
/// that is not on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_buffer_is_503_and_every_event_answered_202_is_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let stalled = Stalled::new();
    let tracker = Tracker::builder()
        .with_delivery(delivery(dir.path()).with_buffer_max_bytes(16 * 1024))
        .with_backend("store", stalled.clone())
        .build()
        .unwrap();
    let server = Server::start(tracker.clone(), config()).await;
    let padding = "p".repeat(1_000);
    let (accepted, refused) = post_until_refused(&server, 100, |_| json!({"pad": padding})).await;
    let refused = refused.expect("the 16 KiB disk buffer never filled");
    assert!(refused.header("retry-after").is_some(), "{refused:?}");
    let error = refused.body["rejected"][0]["error"].as_str().unwrap();
    assert!(error.contains("disk buffer full"), "{refused:?}");
    assert!(!accepted.is_empty());

    stalled.gate.add_permits(1_000);
    let report = tracker.flush_async(DEADLINE).await;
    assert!(report.complete, "{report}");
    assert_eq!(*stalled.stored.lock().unwrap(), accepted);
    server.stop().await;
}
