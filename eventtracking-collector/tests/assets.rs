//! What the collector serves for browsers: the tracker, the demo page (only
//! when enabled) and the catalog page.

mod common;

use common::{config, memory_tracker, Server};
use eventtracking_collector::TRACKER_JS;
use http::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tracker_is_served_as_cacheable_javascript() {
    let (tracker, _memory) = memory_tracker();
    let server = Server::start(tracker, config()).await;
    let reply = server.get("/v1/tracker.js").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.header("content-type"),
        Some("application/javascript; charset=utf-8")
    );
    assert_eq!(reply.header("cache-control"), Some("public, max-age=300"));
    assert_eq!(reply.body.as_str(), Some(TRACKER_JS));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_page_is_served_only_when_enabled() {
    let (tracker, _memory) = memory_tracker();
    let server = Server::start(tracker.clone(), config()).await;
    assert_eq!(server.get("/demo").await.status, StatusCode::NOT_FOUND);
    server.stop().await;

    let server = Server::start(tracker, config().with_demo(true)).await;
    let reply = server.get("/demo").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let page = reply.body.as_str().unwrap_or_default();
    assert!(
        page.contains("<script src=\"/v1/tracker.js\"></script>"),
        "{page}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_page_is_the_catalog_as_html() {
    let (tracker, _memory) = memory_tracker();
    let server = Server::start(tracker, config()).await;
    let reply = server.get("/catalog").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let expected = eventtracking_collector::catalog_html(eventtracking::catalog().unwrap());
    assert_eq!(reply.body.as_str(), Some(expected.as_str()));
    server.stop().await;
}
