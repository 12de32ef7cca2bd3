//! Application extractors: their fields join the request context; a failing
//! or panicking extractor is logged and counted, and the request goes on.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{client, delivered, get, memory_tracker, only, probe_app, Server};
use eventtracking::JsonMap;
use eventtracking_tower::{BoxError, ContextExtractor, TrackingContextLayer};
use http::request::Parts;
use serde_json::json;

/// The organisation from `X-Org`; `bad` fails, `panic` panics, `array`
/// returns something that is not an object.
fn org(request: &Parts) -> Result<serde_json::Value, String> {
    match request
        .headers
        .get("x-org")
        .map(|v| v.to_str().unwrap_or("?"))
    {
        None => Ok(json!(null)),
        Some("bad") => Err("bad org header".to_owned()),
        Some("panic") => panic!("org extractor panicked"),
        Some("array") => Ok(json!(["not", "an", "object"])),
        Some(org) => Ok(json!({"org_id": org})),
    }
}

/// Implements the trait; its fields win over the default ones.
struct Overrides;

impl ContextExtractor for Overrides {
    fn extract(&self, request: &Parts) -> Result<JsonMap, BoxError> {
        let mut fields = JsonMap::new();
        if let Some(user) = request.headers.get("x-user-id") {
            fields.insert("user_id".into(), user.to_str()?.into());
        }
        if request.headers.contains_key("x-override") {
            fields.insert("method".into(), "OVERRIDDEN".into());
        }
        Ok(fields)
    }
}

/// Collects log lines.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_extractors_leave_their_fields_out_and_are_counted() {
    let logs = Logs::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let (tracker, memory) = memory_tracker();
    let layer = TrackingContextLayer::builder()
        .with_extractor(Overrides)
        .with_extractor(org)
        .build()
        .unwrap();
    let server = Server::start(probe_app(tracker.clone(), layer.clone())).await;
    let client = client();

    let mut expected_errors = 0;
    for (org_header, org_id) in [
        ("acme", Some("acme")),
        ("bad", None),
        ("panic", None),
        ("array", None),
        ("globex", Some("globex")),
    ] {
        memory.clear();
        let reply = get(
            &client,
            &server.url("/probe"),
            &[("x-user-id", "u-1"), ("x-org", org_header)],
        )
        .await;
        assert_eq!(
            reply.status, 200,
            "{org_header}: the request must not fail: {reply:?}"
        );
        let events = delivered(&tracker, &memory).await;
        let context = only(&events, "probe").context().clone();
        assert_eq!(
            context.get("org_id").and_then(|v| v.as_str()),
            org_id,
            "{org_header}"
        );
        // The other extractor and the default fields are unaffected.
        assert_eq!(context["user_id"], "u-1", "{org_header}");
        assert_eq!(context["path"], "/probe", "{org_header}");
        assert!(context.contains_key("request_id"), "{org_header}");
        if org_id.is_none() {
            expected_errors += 1;
        }
        assert_eq!(
            layer.stats().extractor_errors,
            expected_errors,
            "{org_header}"
        );
    }
    assert_eq!(layer.stats().requests, 5);

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("context extractor failed") && logs.contains("bad org header"),
        "{logs}"
    );
    assert!(logs.contains("context extractor panicked"), "{logs}");
    assert!(
        logs.contains("array"),
        "the not-an-object error names what it got: {logs}"
    );

    // Extractor fields win over the default ones.
    memory.clear();
    get(&client, &server.url("/probe"), &[("x-override", "1")]).await;
    let events = delivered(&tracker, &memory).await;
    assert_eq!(only(&events, "probe").context()["method"], "OVERRIDDEN");
}
