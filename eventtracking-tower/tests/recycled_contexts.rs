//! Context maps are recycled once their events are delivered and dropped
//! (here by a backend that keeps only the events' JSON, as the file and
//! Kafka backends do): 1,000 overlapping requests, each with its own mix of
//! fields, then requests one after another with a flush between them.
//! Every event carries exactly its own request's fields, never one left
//! over from the request whose map it reused.

#[path = "../examples/axum_app/app.rs"]
#[allow(dead_code)]
mod app;
mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use common::{client, delivered_json, get, json_tracker, HttpClient, Server};
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

const REQUESTS: usize = 1_000;
const CONCURRENCY: usize = 250;
/// Requests sent one at a time after the overlapping ones.
const SEQUENTIAL: usize = 20;

/// Request `i`'s optional headers: a user on two requests in three, a user
/// agent and a referer on every other one, a request id on every fourth.
fn headers(i: usize) -> Vec<(&'static str, String)> {
    let mut headers = Vec::new();
    if i % 3 != 0 {
        headers.push(("x-user-id", format!("user-{i}")));
    }
    if i % 2 == 1 {
        headers.push(("user-agent", format!("agent-{i}")));
        headers.push(("referer", format!("http://example.com/from/{i}")));
    }
    if i % 4 == 0 {
        headers.push(("x-request-id", format!("client-{i}")));
    }
    headers
}

/// Sends request `i`; returns the context its events must carry.
async fn request(client: &HttpClient, server_url: String, i: usize) -> BTreeMap<String, Value> {
    let headers = headers(i);
    let pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let reply = get(client, &server_url, &pairs).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let mut expected = BTreeMap::new();
    let host = server_url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .expect("host");
    expected.insert("method".to_owned(), json!("GET"));
    expected.insert("path".to_owned(), json!(format!("/courses/{i}")));
    expected.insert("host".to_owned(), json!(host));
    expected.insert("client_ip".to_owned(), json!("127.0.0.1"));
    expected.insert("request_id".to_owned(), json!(reply.header("x-request-id")));
    for (name, value) in headers {
        let key = match name {
            "x-user-id" => "user_id",
            "user-agent" => "user_agent",
            "referer" => "referer",
            _ => continue,
        };
        expected.insert(key.to_owned(), json!(value));
    }
    expected
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recycled_maps_carry_only_their_own_requests_fields() {
    let (tracker, backend) = json_tracker();
    let layer = app::tracking_layer();
    let server = Server::start(app::router(tracker.clone(), layer.clone())).await;
    let client = client();
    let slots = Arc::new(Semaphore::new(CONCURRENCY));

    // course id -> the context of its request
    let mut expected = HashMap::new();
    let mut requests = JoinSet::new();
    for i in 0..REQUESTS {
        let permit = slots.clone().acquire_owned().await.expect("semaphore");
        let client = client.clone();
        let url = server.url(&format!("/courses/{i}"));
        requests.spawn(async move {
            let context = request(&client, url, i).await;
            drop(permit);
            (i.to_string(), context)
        });
    }
    while let Some(done) = requests.join_next().await {
        let (course, context) = done.expect("request task");
        expected.insert(course, context);
    }
    // One at a time, every event delivered (and dropped) before the next:
    // each request finds the maps of the earlier ones free.
    for i in REQUESTS..REQUESTS + SEQUENTIAL {
        let context = request(&client, server.url(&format!("/courses/{i}")), i).await;
        expected.insert(i.to_string(), context);
        delivered_json(&tracker, &backend).await;
    }

    let events = delivered_json(&tracker, &backend).await;
    assert_eq!(events.len(), 2 * (REQUESTS + SEQUENTIAL));
    for event in &events {
        let course = event["data"]["course_id"].as_str().expect("course_id");
        let context: BTreeMap<String, Value> = event["context"]
            .as_object()
            .expect("context")
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(context, expected[course], "course {course}: {event}");
    }
    let stats = layer.stats();
    assert_eq!(stats.requests, (REQUESTS + SEQUENTIAL) as u64);
    assert!(
        stats.recycled_contexts > 0,
        "no map was recycled although every event was delivered: {stats:?}"
    );
}
