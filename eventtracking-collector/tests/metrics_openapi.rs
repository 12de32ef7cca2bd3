//! `/metrics` (OpenMetrics text) and `/openapi.json` (the answers match it).

mod common;

use common::{config, delivered, memory_tracker, Server, KEY};
use http::{Method, StatusCode};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_events_and_deliveries() {
    let (tracker, memory) = memory_tracker();
    let server = Server::start(tracker.clone(), config()).await;
    server
        .post(&json!([{"name": "a", "data": {}}, {"name": "b", "data": {}}, {"name": "bad name", "data": {}}]))
        .await;
    server.post(&json!({"name": "", "data": {}})).await;
    server
        .send(
            Method::POST,
            "/v1/events",
            &[("content-type", "application/json")],
            "{}",
        )
        .await;
    assert_eq!(delivered(&tracker, &memory).await.len(), 2);

    let reply = server.get("/metrics").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply
        .header("content-type")
        .unwrap()
        .starts_with("application/openmetrics-text; version=1.0.0"));
    let text = reply.body.as_str().unwrap().to_owned();
    for line in [
        "eventtracking_collector_http_requests_total{route=\"/v1/events\",status=\"202\"} 1",
        "eventtracking_collector_http_requests_total{route=\"/v1/events\",status=\"422\"} 1",
        "eventtracking_collector_http_requests_total{route=\"/v1/events\",status=\"401\"} 1",
        "eventtracking_collector_events_total{outcome=\"accepted\"} 2",
        "eventtracking_collector_events_total{outcome=\"rejected\"} 2",
        "eventtracking_collector_http_request_duration_seconds_bucket{le=\"+Inf\",route=\"/v1/events\"} 3",
        "eventtracking_collector_http_request_duration_seconds_count{route=\"/v1/events\"} 3",
        "eventtracking_backend_delivered_total{backend=\"memory\"} 2",
        "eventtracking_tracker_emitted_total 2",
        "# TYPE eventtracking_collector_http_request_duration_seconds histogram",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
    }
    // Buckets are cumulative: never decreasing, ending at the count.
    let buckets: Vec<u64> = text
        .lines()
        .filter(|l| {
            l.starts_with("eventtracking_collector_http_request_duration_seconds_bucket{")
                && l.contains("route=\"/v1/events\"")
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    assert_eq!(buckets.len(), 13, "12 bounds and +Inf: {buckets:?}");
    assert_eq!(buckets.last(), Some(&3));
    // OpenMetrics ends the exposition explicitly.
    assert_eq!(text.lines().last(), Some("# EOF"));
    server.stop().await;
}

/// A validator for one of the document's component schemas.
fn schema(document: &Value, name: &str) -> jsonschema::Validator {
    let root = json!({
        "components": document["components"],
        "$ref": format!("#/components/schemas/{name}"),
    });
    jsonschema::validator_for(&root).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn assert_valid(validator: &jsonschema::Validator, instance: &Value) {
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{instance} does not match: {errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_every_answer_and_the_answers_match_it() {
    let (tracker, _memory) = memory_tracker();
    let server = Server::start(tracker, config()).await;
    let reply = server.get("/openapi.json").await;
    assert_eq!(reply.status, StatusCode::OK);
    let document = reply.body;
    assert_eq!(document["openapi"], "3.0.3");
    let responses = &document["paths"]["/v1/events"]["post"]["responses"];
    for status in ["202", "400", "401", "413", "415", "422", "429", "503"] {
        assert!(
            responses.get(status).is_some(),
            "{status} is not documented"
        );
    }
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/catalog.json",
    ] {
        assert!(document["paths"].get(path).is_some(), "{path}");
    }

    let body = schema(&document, "Body");
    for shape in [
        json!({"name": "a", "data": 1}),
        json!([{"name": "a", "data": 1, "id": "0190f3a2-7b1c-7d4e-8f00-123456789abc"}]),
        json!({"events": [{"name": "a", "data": {}, "context": {"k": 1}, "timestamp": "2026-01-01T00:00:00Z"}]}),
    ] {
        assert_valid(&body, &shape);
    }
    assert!(!body.is_valid(&json!(42)));

    let accepted = server
        .post(&json!([{"name": "a", "data": {}}, {"name": "bad name", "data": {}}]))
        .await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED);
    assert_valid(&schema(&document, "Accepted"), &accepted.body);
    let refused = server.post(&json!({"name": "", "data": {}})).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_valid(&schema(&document, "Refused"), &refused.body);
    let bearer = format!("Bearer {KEY}");
    let malformed = server
        .send(
            Method::POST,
            "/v1/events",
            &[
                ("content-type", "application/json"),
                ("authorization", bearer.as_str()),
            ],
            "[",
        )
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_valid(&schema(&document, "Malformed"), &malformed.body);
    let unauthorized = server
        .send(
            Method::POST,
            "/v1/events",
            &[("content-type", "application/json")],
            "{}",
        )
        .await;
    assert_valid(&schema(&document, "Error"), &unauthorized.body);
    let ready = server.get("/readyz").await;
    assert_valid(&schema(&document, "Readiness"), &ready.body);
    server.collector.start_draining();
    let unavailable = server.post(&json!({"name": "a", "data": {}})).await;
    assert_eq!(unavailable.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_valid(&schema(&document, "Refused"), &unavailable.body);
    server.stop().await;
}

/// The document's patterns for an event's `name` and `timestamp` are the
/// rules the collector applies (`validate_event_name`, `parse_timestamp`),
/// so a generator such as schemathesis makes only names and timestamps the
/// collector takes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documents_name_and_timestamp_patterns_are_the_collectors_rules() {
    let (tracker, _memory) = memory_tracker();
    let server = Server::start(tracker, config()).await;
    let document = server.get("/openapi.json").await.body;
    server.stop().await;
    let event = schema(&document, "Event");
    let with_name = |name: &str| json!({"name": name, "data": 1});
    let mut names: Vec<String> = (0..=0x3100u32)
        .chain([0xFEFF, 0x10FFFF])
        .filter_map(char::from_u32)
        .map(|c| format!("a{c}b"))
        .collect();
    names.extend(["", "a", "navigation.request"].map(String::from));
    names.push("é".repeat(127));
    for name in &names {
        assert_eq!(
            event.is_valid(&with_name(name)),
            eventtracking::validate_event_name(name).is_ok(),
            "{name:?}"
        );
    }
    // The schema counts characters, the collector bytes: the pattern cannot
    // say "255 bytes", so a name of 128 two-byte characters fits the schema.
    assert!(event.is_valid(&with_name(&"é".repeat(128))));
    assert!(eventtracking::validate_event_name(&"é".repeat(128)).is_err());

    let with_timestamp = |timestamp: &str| json!({"name": "a", "data": 1, "timestamp": timestamp});
    for timestamp in [
        "2026-01-01T00:00:00Z",
        "2026-01-01T00:00:00+00:00",
        "2026-01-01T00:00:00.123456789Z",
        "2026-01-01T00:00:00.5+00:00",
        "1970-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
    ] {
        assert!(event.is_valid(&with_timestamp(timestamp)), "{timestamp}");
        assert!(
            eventtracking::parse_timestamp(timestamp).is_ok(),
            "{timestamp}"
        );
    }
    for timestamp in [
        "2026-01-01T00:00:00+05:00",
        "2026-01-01T00:00:00-00:00",
        "2026-01-01t00:00:00z",
        "2026-01-01 00:00:00Z",
        "1969-12-31T23:59:59Z",
        "2026-01-01T00:00:00",
    ] {
        assert!(!event.is_valid(&with_timestamp(timestamp)), "{timestamp}");
        assert!(
            eventtracking::parse_timestamp(timestamp).is_err(),
            "{timestamp}"
        );
    }
}
