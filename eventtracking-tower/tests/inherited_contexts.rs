//! What a request context starts from: an empty stack by default (nothing
//! entered outside, or by an earlier request, leaks in), the caller's
//! contexts on request; and what handlers add stays in their request.

mod common;

use std::convert::Infallible;

use axum::body::Body;
use common::{delivered, memory_tracker, only};
use eventtracking::context::{self, ContextSnapshot};
use eventtracking::Tracker;
use eventtracking_tower::TrackingContextLayer;
use serde_json::json;
use tower::{service_fn, Layer, ServiceExt};

/// A service that emits `seen`, entering (and never exiting) a context
/// `leak` first when asked to.
fn handler(
    tracker: Tracker,
) -> impl tower::Service<
    http::Request<Body>,
    Response = http::Response<Body>,
    Error = Infallible,
    Future: Send,
> + Clone
       + Send
       + 'static {
    service_fn(move |request: http::Request<Body>| {
        let tracker = tracker.clone();
        async move {
            if request.uri().path() == "/leak" {
                context::enter_context(
                    "leak",
                    json!({"leaked": true}).as_object().unwrap().clone(),
                );
            }
            tokio::task::yield_now().await;
            let nested = tracker
                .in_context("step", json!({"step": 1}), async {
                    tracker.emit("nested", json!({})).unwrap();
                })
                .await;
            nested.unwrap();
            tracker.emit("seen", json!({})).unwrap();
            Ok(http::Response::new(Body::empty()))
        }
    })
}

fn request(path: &str) -> http::Request<Body> {
    http::Request::get(path).body(Body::empty()).unwrap()
}

// One thread: every request runs on the same thread, so anything kept in
// thread-local state would show up in the next request.
#[tokio::test(flavor = "current_thread")]
async fn requests_start_from_an_empty_stack_and_leave_nothing_behind() {
    let (tracker, memory) = memory_tracker();
    let service = TrackingContextLayer::new().layer(handler(tracker.clone()));

    let _thread = context::context("thread", json!({"thread_ctx": true})).unwrap();
    context::in_context("app", json!({"service": "courses"}), async {
        service.clone().oneshot(request("/leak")).await.unwrap();
        service.clone().oneshot(request("/after")).await.unwrap();
    })
    .await
    .unwrap();

    let events = delivered(&tracker, &memory).await;
    assert_eq!(events.len(), 4);
    for event in &events {
        let ctx = event.context();
        assert!(
            ctx.get("service").is_none() && ctx.get("thread_ctx").is_none(),
            "{event:?}"
        );
    }
    let seen: Vec<_> = events.iter().filter(|e| e.name() == "seen").collect();
    assert_eq!(seen[0].context()["path"], "/leak");
    assert_eq!(
        seen[0].context()["leaked"],
        true,
        "a handler's own context is in its events"
    );
    assert_eq!(seen[1].context()["path"], "/after");
    assert!(
        seen[1].context().get("leaked").is_none(),
        "leaked into the next request"
    );
    // Nested contexts inside the handler add to the request context, then go.
    let nested: Vec<_> = events.iter().filter(|e| e.name() == "nested").collect();
    assert_eq!(nested[1].context()["step"], 1);
    assert_eq!(nested[1].context()["path"], "/after");
    assert!(seen[1].context().get("step").is_none());
    // And nothing stuck to the thread or the caller's task.
    assert!(context::current().get("leaked").is_none());
    assert_eq!(context::current()["thread_ctx"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inherited_contexts_carry_app_wide_fields() {
    let (tracker, memory) = memory_tracker();
    let layer = TrackingContextLayer::builder()
        .with_inherited_contexts(true)
        .build()
        .unwrap();
    let service = layer.layer(handler(tracker.clone()));
    let snapshot = context::in_context(
        "app",
        json!({"service": "courses", "path": "outer"}),
        async { ContextSnapshot::current() },
    )
    .await
    .unwrap();
    // As a server spawned with `context::spawn` / `ContextSnapshot::scope` would.
    snapshot
        .scope(service.oneshot(request("/inside")))
        .await
        .unwrap();

    let events = delivered(&tracker, &memory).await;
    let seen = only(&events, "seen");
    assert_eq!(seen.context()["service"], "courses");
    assert_eq!(
        seen.context()["path"],
        "/inside",
        "the request context wins over outer ones"
    );
}
