//! `validate = true`: events checked against the catalog.

mod common;

use common::{config, delivered, memory_tracker, Server};
use eventtracking::TrackedEvent;
use http::StatusCode;
use serde_json::json;

/// A page was viewed.
#[derive(TrackedEvent)]
#[tracked_event(crate = "eventtracking", name = "test.page.view", version = 2)]
#[allow(dead_code)]
struct PageView {
    /// The page.
    url: String,
    /// How far down, in percent.
    scroll: Option<u8>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_checked_against_their_type() {
    let (tracker, memory) = memory_tracker();
    let server = Server::start(tracker.clone(), config().with_validate(true)).await;
    let reply = server
        .post(&json!({"events": [
            {"name": "test.page.view", "data": {"url": "/a", "scroll": 40}},
            {"name": "test.page.view", "data": {"url": 7}},
            {"name": "test.page.view", "data": {"scroll": 3}},
            {"name": "test.unknown", "data": {}},
        ]}))
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:?}");
    assert_eq!(reply.body["accepted"], 1);
    let rejected = reply.body["rejected"].as_array().unwrap();
    assert_eq!(rejected[0]["pointer"], "/events/1/data/url");
    assert!(
        rejected[0]["error"]
            .as_str()
            .unwrap()
            .contains("test.page.view@2"),
        "{rejected:?}"
    );
    assert_eq!(rejected[1]["pointer"], "/events/2/data");
    assert_eq!(rejected[2]["pointer"], "/events/3/data");
    assert!(rejected[2]["error"]
        .as_str()
        .unwrap()
        .contains("no event type"));
    assert_eq!(delivered(&tracker, &memory).await.len(), 1);

    // Without `validate`, the same events all go through.
    let server2 = Server::start(tracker.clone(), config()).await;
    let reply = server2
        .post(&json!([{"name": "test.page.view", "data": {"url": 7}}]))
        .await;
    assert_eq!(reply.body["accepted"], 1);
    server.stop().await;
    server2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_is_served_as_json() {
    let (tracker, _memory) = memory_tracker();
    let server = Server::start(tracker, config()).await;
    let reply = server.get("/catalog.json").await;
    assert_eq!(reply.status, StatusCode::OK);
    let types = reply.body["event_types"].as_array().unwrap();
    let page_view = types
        .iter()
        .find(|t| t["name"] == "test.page.view")
        .expect("the test's type is listed");
    assert_eq!(page_view["version"], 2);
    assert_eq!(page_view["description"], "A page was viewed.");
    assert!(
        page_view["schema"]["properties"].get("url").is_some(),
        "{page_view}"
    );
    server.stop().await;
}
