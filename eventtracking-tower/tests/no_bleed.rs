//! 1,000 overlapping requests through the example application, each with
//! its own user: every event carries exactly its own request's user id and
//! request id, and none is missing.

#[path = "../examples/axum_app/app.rs"]
#[allow(dead_code)]
mod app;
mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

use common::{client, delivered, get, memory_tracker, Server};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

const REQUESTS: usize = 1_000;
/// Requests in flight at once (each holds a client and a server socket).
const CONCURRENCY: usize = 250;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_event_carries_its_own_request_context() {
    let (tracker, memory) = memory_tracker();
    let layer = app::tracking_layer();
    let server = Server::start(app::router(tracker.clone(), layer.clone())).await;
    let client = client();
    let slots = Arc::new(Semaphore::new(CONCURRENCY));

    let mut requests = JoinSet::new();
    for i in 0..REQUESTS {
        let permit = slots.clone().acquire_owned().await.expect("semaphore");
        let client = client.clone();
        let url = server.url(&format!("/courses/{i}"));
        requests.spawn(async move {
            let user = format!("user-{i}");
            // Odd requests bring their own request id, even ones get one generated.
            let sent_id = (i % 2 == 1).then(|| format!("client-{i}"));
            let mut headers = vec![("x-user-id", user.as_str())];
            if let Some(id) = &sent_id {
                headers.push(("x-request-id", id));
            }
            let reply = get(&client, &url, &headers).await;
            drop(permit);
            assert_eq!(reply.status, 200, "{reply:?}");
            let request_id = reply.header("x-request-id").to_owned();
            if let Some(sent) = sent_id {
                assert_eq!(request_id, sent);
            }
            (i.to_string(), (user, request_id))
        });
    }
    // course id -> (user id, request id)
    let mut expected = HashMap::new();
    while let Some(done) = requests.join_next().await {
        let (course, ids) = done.expect("request task");
        expected.insert(course, ids);
    }
    assert_eq!(expected.len(), REQUESTS);
    let request_ids: HashSet<_> = expected.values().map(|(_, id)| id.clone()).collect();
    assert_eq!(request_ids.len(), REQUESTS, "request ids must be unique");

    let events = delivered(&tracker, &memory).await;
    assert_eq!(events.len(), 2 * REQUESTS, "an event is missing or extra");

    let mut phases: HashMap<String, Vec<(String, SystemTime)>> = HashMap::new();
    for event in &events {
        assert_eq!(event.name(), "course.view");
        let course = event.data()["course_id"]
            .as_str()
            .expect("course_id")
            .to_owned();
        let (user, request_id) = &expected[&course];
        let context = event.context();
        assert_eq!(context["user_id"], user.as_str(), "bleed: {event:?}");
        assert_eq!(
            context["request_id"],
            request_id.as_str(),
            "bleed: {event:?}"
        );
        assert_eq!(
            context["path"],
            format!("/courses/{course}"),
            "bleed: {event:?}"
        );
        assert_eq!(context["client_ip"], "127.0.0.1");
        let phase = event.data()["phase"].as_str().expect("phase").to_owned();
        phases
            .entry(course)
            .or_default()
            .push((phase, event.timestamp()));
    }
    assert_eq!(phases.len(), REQUESTS);
    let mut edges = Vec::new();
    for (course, mut seen) in phases {
        seen.sort_by_key(|(_, at)| *at);
        let names: Vec<_> = seen.iter().map(|(phase, _)| phase.as_str()).collect();
        assert_eq!(names, ["start", "end"], "course {course}");
        edges.push((seen[0].1, 1i32));
        edges.push((seen[1].1, -1i32));
    }

    // The handlers really overlapped: at some instant many were between
    // their two events, i.e. suspended in their `.await`.
    edges.sort();
    let (mut open, mut most) = (0, 0);
    for (_, step) in edges {
        open += step;
        most = most.max(open);
    }
    assert!(most >= 10, "at most {most} handlers overlapped");
    assert_eq!(layer.stats().requests, REQUESTS as u64);
    assert_eq!(layer.stats().extractor_errors, 0);
}
