//! Credentials never reach an event: `Authorization`, `Cookie` and the
//! like are not captured, even with every capture option turned on.

mod common;

use common::{client, delivered, get, memory_tracker, probe_app, Server};
use eventtracking_tower::{LayerBuildError, TrackingContextLayer, SENSITIVE_HEADERS};

const SECRETS: &[(&str, &str)] = &[
    ("authorization", "Bearer SECRET-bearer-token"),
    ("proxy-authorization", "Basic SECRET-proxy"),
    ("cookie", "session=SECRET-session; csrftoken=SECRET-csrf"),
    ("x-api-key", "SECRET-api-key"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_appear_in_any_event() {
    let (tracker, memory) = memory_tracker();
    let layer = TrackingContextLayer::builder()
        .with_captured_header("accept-language")
        .with_request_event("http.request")
        .with_tracker(tracker.clone())
        .build()
        .unwrap();
    let server = Server::start(probe_app(tracker.clone(), layer)).await;
    let client = client();
    let mut headers = SECRETS.to_vec();
    headers.extend([("accept-language", "fr-CH"), ("user-agent", "probe/1.0")]);
    for path in ["/probe", "/status/401"] {
        get(&client, &server.url(path), &headers).await;
    }

    let events = delivered(&tracker, &memory).await;
    let names: Vec<_> = events.iter().map(|e| e.name()).collect();
    assert_eq!(
        names.iter().filter(|n| **n == "http.request").count(),
        2,
        "{names:?}"
    );
    assert_eq!(
        names.iter().filter(|n| **n == "probe").count(),
        1,
        "{names:?}"
    );
    for event in &events {
        let json = String::from_utf8_lossy(event.to_json_bytes()).to_lowercase();
        assert!(!json.contains("secret"), "a credential leaked: {json}");
        assert!(!json.contains("authorization"), "{json}");
        assert!(!json.contains("cookie"), "{json}");
        assert!(
            !json.contains("api_key") && !json.contains("api-key"),
            "{json}"
        );
        // Headers that are captured still are, so this test sees captures at all.
        assert_eq!(event.context()["accept_language"], "fr-CH");
        assert_eq!(event.context()["user_agent"], "probe/1.0");
    }
}

#[test]
fn credential_headers_cannot_be_captured() {
    for name in SENSITIVE_HEADERS
        .iter()
        .chain(&["Authorization", "COOKIE", " cookie "])
    {
        let result = TrackingContextLayer::builder()
            .with_captured_header(*name)
            .build();
        assert!(
            matches!(result, Err(LayerBuildError::SensitiveHeader { .. })),
            "{name} was accepted"
        );
    }
}
