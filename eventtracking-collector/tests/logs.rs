//! Write keys never reach the logs, errors or `Debug` output. One test in
//! this binary: it installs the global subscriber (at TRACE) and reads back
//! everything logged by the server, the tracker and the clients.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{config, delivered, memory_tracker, Server, KEY};
use eventtracking_collector::{Collector, CollectorConfig};
use http::{Method, StatusCode};
use serde_json::json;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const WRONG: &str = "wk_wrong_0c4e9b";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_never_appear_in_logs_errors_or_debug() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let (tracker, memory) = memory_tracker();
    let server = Server::start(tracker.clone(), config()).await;
    let body = json!({"name": "a", "data": {}}).to_string();
    let json = ("content-type", "application/json");
    let wrong_bearer = format!("Bearer {WRONG}");
    let good_bearer = format!("Bearer {KEY}");
    for (path, headers) in [
        (
            "/v1/events".to_owned(),
            vec![json, ("authorization", good_bearer.as_str())],
        ),
        (
            "/v1/events".to_owned(),
            vec![json, ("authorization", wrong_bearer.as_str())],
        ),
        (
            "/v1/events".to_owned(),
            vec![json, ("x-eventtracking-key", WRONG)],
        ),
        (format!("/v1/events?key={WRONG}"), vec![json]),
        (format!("/v1/events?key={KEY}"), vec![json]),
        // Refused after the key was accepted: malformed, wrong type.
        (
            format!("/v1/events?key={KEY}"),
            vec![("content-type", "image/png")],
        ),
    ] {
        server
            .send(Method::POST, &path, &headers, body.clone())
            .await;
    }
    let reply = server
        .send(
            Method::POST,
            &format!("/v1/events?key={KEY}"),
            &[json],
            "{oops",
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(delivered(&tracker, &memory).await.len(), 2);

    // Debug output and config errors.
    let debug = format!("{:?} {:?}", server.collector, server.collector.config());
    let table: toml::Table = toml::from_str(&format!("write_keys = \"{KEY}\"")).unwrap();
    let error = CollectorConfig::from_table(Some(&table))
        .unwrap_err()
        .to_string();
    let table: toml::Table = toml::from_str(&format!(
        "listen = \"0.0.0.0:1\"\nwrite_keys = [\"{KEY}\", \"bad {WRONG}\"]"
    ))
    .unwrap();
    let error2 = CollectorConfig::from_table(Some(&table))
        .unwrap_err()
        .to_string();
    let engine =
        eventtracking::Config::from_toml_str(&format!("[collector]\nwrite_keys = [\"{KEY}\"]"))
            .unwrap();
    let engine_debug = format!("{engine:?}");
    let parse_error = eventtracking::Config::from_toml_str(&format!(
        "[collector]\nwrite_keys = [\n  \"{KEY}\",\n  \"{WRONG}\n]"
    ))
    .unwrap_err()
    .to_string();
    let collector = Collector::new(tracker.clone(), config()).unwrap();
    let debug2 = format!("{collector:?}");
    server.stop().await;
    // No keys on loopback: allowed, with a warning.
    let open = Server::start(tracker.clone(), CollectorConfig::default()).await;
    open.stop().await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("request refused"),
        "the refusals are logged: {logs}"
    );
    assert!(logs.contains("listening"), "{logs}");
    assert!(
        logs.contains("WARN") && logs.contains("no write_keys"),
        "{logs}"
    );
    for text in [
        &logs,
        &debug,
        &error,
        &error2,
        &engine_debug,
        &parse_error,
        &debug2,
    ] {
        assert!(!text.contains(KEY), "a key leaked: {text}");
        assert!(!text.contains(WRONG), "a presented key leaked: {text}");
    }
    assert!(error.contains("collector.write_keys"), "{error}");
    assert!(error2.contains("collector.write_keys[1]"), "{error2}");
}
