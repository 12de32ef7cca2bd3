//! Optional request events: off by default; when on, one per request, in
//! the request's context, with status and latency; also for failed and
//! cancelled requests.

mod common;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use common::{client, delivered, get, memory_tracker, only, probe_app, Server, DEADLINE};
use eventtracking::context;
use eventtracking_tower::TrackingContextLayer;
use tower::{service_fn, Layer, ServiceExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_by_default() {
    let (tracker, memory) = memory_tracker();
    let server = Server::start(probe_app(tracker.clone(), TrackingContextLayer::new())).await;
    let client = client();
    get(&client, &server.url("/probe"), &[]).await;
    get(&client, &server.url("/status/204"), &[]).await;
    let events = delivered(&tracker, &memory).await;
    let names: Vec<_> = events.iter().map(|e| e.name()).collect();
    assert_eq!(names, ["probe"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_per_request_with_status_and_latency() {
    let (tracker, memory) = memory_tracker();
    let layer = TrackingContextLayer::builder()
        .with_request_event("http.request")
        .with_tracker(tracker.clone())
        .build()
        .unwrap();
    let server = Server::start(probe_app(tracker.clone(), layer)).await;
    let client = client();
    for (path, status) in [
        ("/probe", 200),
        ("/status/404", 404),
        ("/status/503", 503),
        ("/missing", 404),
    ] {
        memory.clear();
        let reply = get(&client, &server.url(path), &[("x-request-id", "r-1")]).await;
        assert_eq!(reply.status, status);
        let events = delivered(&tracker, &memory).await;
        let event = only(&events, "http.request");
        assert_eq!(event.data()["status"], status, "{path}");
        let latency = event.data()["latency_ms"]
            .as_f64()
            .expect("latency_ms is a number");
        assert!(latency >= 0.0, "{path}: {latency}");
        assert!(event.data().get("error").is_none() && event.data().get("cancelled").is_none());
        assert_eq!(event.context()["path"], path);
        assert_eq!(event.context()["method"], "GET");
        assert_eq!(event.context()["request_id"], "r-1");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_tracker_is_used_unless_one_is_given() {
    let (tracker, memory) = memory_tracker();
    let guard = eventtracking::init(tracker.clone());
    let layer = TrackingContextLayer::builder()
        .with_request_event("web.hit")
        .build()
        .unwrap();
    let server = Server::start(probe_app(tracker.clone(), layer)).await;
    get(&client(), &server.url("/status/200"), &[]).await;
    let events = delivered(&tracker, &memory).await;
    assert_eq!(only(&events, "web.hit").data()["status"], 200);
    drop(server);
    tokio::task::spawn_blocking(move || drop(guard))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_service_still_emits() {
    let (tracker, memory) = memory_tracker();
    let layer = TrackingContextLayer::builder()
        .with_request_event("http.request")
        .with_tracker(tracker.clone())
        .build()
        .unwrap();
    let failing = service_fn(|_: http::Request<Body>| async {
        Err::<http::Response<Body>, _>(std::io::Error::other("backend down"))
    });
    let request = http::Request::get("/x")
        .header("x-request-id", "r-9")
        .body(Body::empty())
        .unwrap();
    let result = layer.layer(failing).oneshot(request).await;
    assert!(result.is_err());
    let events = delivered(&tracker, &memory).await;
    let event = only(&events, "http.request");
    assert!(event.data()["status"].is_null());
    assert_eq!(event.data()["error"], true);
    assert_eq!(event.context()["request_id"], "r-9");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_request_emits_in_its_context() {
    let (tracker, memory) = memory_tracker();
    let layer = TrackingContextLayer::builder()
        .with_extractor(|_: &http::request::Parts| {
            Ok::<_, Infallible>(serde_json::json!({"user_id": "u-5"}))
        })
        .with_request_event("http.request")
        .with_tracker(tracker.clone())
        .build()
        .unwrap();
    let (started_tx, started) = tokio::sync::oneshot::channel::<serde_json::Value>();
    let started_tx = Arc::new(Mutex::new(Some(started_tx)));
    let never_answers = service_fn(move |_: http::Request<Body>| {
        // Reports the context it runs in, then never completes.
        let user = context::current()
            .get("user_id")
            .cloned()
            .unwrap_or_default();
        if let Some(tx) = started_tx.lock().unwrap().take() {
            let _ = tx.send(user);
        }
        std::future::pending::<Result<http::Response<Body>, Infallible>>()
    });
    let request = http::Request::get("/slow")
        .header("x-request-id", "r-5")
        .body(Body::empty())
        .unwrap();
    let task = tokio::spawn(layer.layer(never_answers).oneshot(request));
    let seen = tokio::time::timeout(DEADLINE, started)
        .await
        .expect("service called")
        .unwrap();
    assert_eq!(seen, "u-5");
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());

    let events = delivered(&tracker, &memory).await;
    let event = only(&events, "http.request");
    assert_eq!(event.data()["cancelled"], true);
    assert!(event.data()["status"].is_null());
    assert_eq!(event.context()["request_id"], "r-5");
    assert_eq!(event.context()["path"], "/slow");
    assert_eq!(event.context()["user_id"], "u-5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_request_events_are_counted_and_the_request_goes_on() {
    let (tracker, _memory) = memory_tracker();
    let layer = TrackingContextLayer::builder()
        .with_request_event("http.request")
        .with_tracker(tracker.clone())
        .build()
        .unwrap();
    let shut = tracker.clone();
    tokio::task::spawn_blocking(move || shut.shutdown(Duration::from_secs(5)))
        .await
        .unwrap()
        .expect("first shutdown");
    let ok = service_fn(|_: http::Request<Body>| async {
        Ok::<_, Infallible>(http::Response::new(Body::empty()))
    });
    let response = layer
        .layer(ok)
        .oneshot(http::Request::new(Body::empty()))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(layer.stats().request_event_errors, 1);
    assert_eq!(layer.stats().requests, 1);
}
