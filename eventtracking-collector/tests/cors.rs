//! CORS: preflights from allowed origins, and nothing for the others.

mod common;

use common::{config, memory_tracker, Server};
use http::{Method, StatusCode};
use serde_json::json;

const PREFLIGHT: [(&str, &str); 2] = [
    ("access-control-request-method", "POST"),
    (
        "access-control-request-headers",
        "content-type, authorization",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_origin_gets_the_preflight_and_the_headers() {
    let (tracker, _memory) = memory_tracker();
    let server = Server::start(
        tracker,
        config().with_allowed_origins(["https://www.example.com"]),
    )
    .await;
    let mut headers = PREFLIGHT.to_vec();
    headers.push(("origin", "https://www.example.com"));
    let reply = server
        .send(Method::OPTIONS, "/v1/events", &headers, "")
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("https://www.example.com")
    );
    let allowed = reply.header("access-control-allow-headers").unwrap();
    for header in [
        "content-type",
        "authorization",
        "x-eventtracking-key",
        "content-encoding",
    ] {
        assert!(allowed.contains(header), "{allowed}");
    }
    assert!(reply
        .header("access-control-allow-methods")
        .unwrap()
        .contains("POST"));
    assert!(reply.header("vary").unwrap().contains("origin"));

    // The POST that follows can be read by the page, Retry-After included.
    let reply = server
        .post_with(
            &[("origin", "https://www.example.com")],
            &json!({"name": "a", "data": {}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("https://www.example.com")
    );
    assert!(reply
        .header("access-control-expose-headers")
        .unwrap()
        .contains("retry-after"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_origin_gets_no_cors_header() {
    let (tracker, _memory) = memory_tracker();
    let server = Server::start(
        tracker,
        config().with_allowed_origins(["https://www.example.com"]),
    )
    .await;
    let mut headers = PREFLIGHT.to_vec();
    headers.push(("origin", "https://evil.example"));
    let reply = server
        .send(Method::OPTIONS, "/v1/events", &headers, "")
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let cors: Vec<_> = reply
        .headers
        .keys()
        .filter(|name| name.as_str().starts_with("access-control-"))
        .collect();
    assert!(cors.is_empty(), "{cors:?}");

    let reply = server
        .post_with(
            &[("origin", "https://evil.example")],
            &json!({"name": "a", "data": {}}),
        )
        .await;
    assert!(reply.header("access-control-allow-origin").is_none());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_allows_every_origin() {
    let (tracker, _memory) = memory_tracker();
    let server = Server::start(tracker, config().with_allowed_origins(["*"])).await;
    let mut headers = PREFLIGHT.to_vec();
    headers.push(("origin", "https://anywhere.example"));
    let reply = server
        .send(Method::OPTIONS, "/v1/events", &headers, "")
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("https://anywhere.example")
    );
    server.stop().await;
}
