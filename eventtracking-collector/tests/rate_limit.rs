//! Rate limits: 429 with Retry-After, per write key and per client address.

mod common;

use std::num::NonZeroU32;

use common::{config, delivered, memory_tracker, Server, KEY};
use eventtracking_collector::RateLimit;
use http::{Method, StatusCode};
use serde_json::json;

fn events(n: usize) -> serde_json::Value {
    json!((0..n)
        .map(|i| json!({"name": "tick", "data": {"i": i}}))
        .collect::<Vec<_>>())
}

// A rate slow enough that the bucket cannot refill between requests.
fn slow(burst: u32) -> Option<RateLimit> {
    RateLimit::new(0.001, NonZeroU32::new(burst).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_per_ip_limit_is_429_with_retry_after() {
    let (tracker, memory) = memory_tracker();
    let server = Server::start(tracker.clone(), config().with_rate_limit_per_ip(slow(5))).await;
    assert_eq!(server.post(&events(3)).await.status, StatusCode::ACCEPTED);
    assert_eq!(server.post(&events(2)).await.status, StatusCode::ACCEPTED);
    let reply = server.post(&events(1)).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS, "{reply:?}");
    let retry_after: u64 = reply.header("retry-after").unwrap().parse().unwrap();
    assert!(retry_after >= 1);
    // More than the burst can never pass: 413, not a 429 to retry forever.
    let reply = server.post(&events(6)).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(reply.body["error"]
        .as_str()
        .unwrap()
        .contains("rate_limit_per_ip_burst"));
    assert_eq!(delivered(&tracker, &memory).await.len(), 5);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_key_limit_counts_each_key_apart() {
    let (tracker, memory) = memory_tracker();
    let other = "wk_other_77aa";
    let config = config()
        .with_write_keys([KEY, other])
        .unwrap()
        .with_rate_limit_per_key(slow(2));
    let server = Server::start(tracker.clone(), config).await;
    assert_eq!(server.post(&events(2)).await.status, StatusCode::ACCEPTED);
    let reply = server.post(&events(1)).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(reply.header("retry-after").is_some());
    let reply = server
        .send(
            Method::POST,
            "/v1/events",
            &[
                ("content-type", "application/json"),
                ("x-eventtracking-key", other),
            ],
            events(2).to_string(),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::ACCEPTED,
        "another key has its own bucket"
    );
    assert_eq!(delivered(&tracker, &memory).await.len(), 4);
    server.stop().await;
}
