//! Secret property values never show in `Debug` output, build errors, delivery
//! errors or librdkafka's log lines.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use eventtracking::{Config, Tracker};
use eventtracking_kafka::{KafkaBackend, KafkaOptions};
use serde_json::json;

const SECRETS: [&str; 4] = [
    "pw-sasl-8d1f",
    "pw-keypass-77aa",
    "pw-keystore-31c0",
    "client-secret-9e2b",
];

/// Secret properties this build of librdkafka accepts (the TLS ones need
/// the `ssl` feature; OAuth/OIDC secrets need libcurl, not built here).
fn secret_properties() -> serde_json::Value {
    let mut properties = json!({
        "sasl.username": "tracker",
        "sasl.password": SECRETS[0],
    });
    if cfg!(feature = "ssl") {
        properties["ssl.key.password"] = json!(SECRETS[1]);
        properties["ssl.keystore.password"] = json!(SECRETS[2]);
    }
    properties
}

fn assert_clean(text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "secret {secret} leaked in: {text}");
    }
}

#[test]
fn debug_output_of_options_builder_and_backend_hides_secrets() {
    let options: KafkaOptions = serde_json::from_value(json!({
        "brokers": brokers(),
        "topic": "events",
        "properties": secret_properties(),
    }))
    .unwrap();
    let debug = format!("{options:?}");
    assert_clean(&debug);
    // Every kind of secret key, without building a producer.
    let all: eventtracking_kafka::KafkaProperties = [
        ("sasl.password", SECRETS[0]),
        ("ssl.key.password", SECRETS[1]),
        ("ssl.keystore.password", SECRETS[2]),
        ("sasl.oauthbearer.client.secret", SECRETS[3]),
        ("ssl.key.pem", SECRETS[3]),
    ]
    .into_iter()
    .collect();
    assert_clean(&format!("{all:?} {all:#?} {:?}", all.redactor()));
    assert!(
        debug.contains("tracker") && debug.contains("[REDACTED]"),
        "{debug}"
    );
    let builder = options.into_builder().unwrap();
    assert_clean(&format!("{builder:?}"));
    let backend = builder.build().unwrap();
    let debug = format!("{backend:?} {:#?}", backend.properties());
    assert_clean(&debug);
    assert!(debug.contains("sasl.password"), "{debug}");
}

#[test]
fn build_errors_hide_secrets_even_when_librdkafka_quotes_the_value() {
    // librdkafka quotes a refused value; here that value is also a secret.
    let err = KafkaBackend::builder(brokers())
        .with_property("sasl.password", "pw-bad-acks-4242")
        .with_property("acks", "pw-bad-acks-4242")
        .build()
        .unwrap_err()
        .to_string();
    assert!(!err.contains("pw-bad-acks-4242"), "{err}");
    assert!(err.contains("[REDACTED]") && err.contains("acks"), "{err}");

    // Through a config file: the error names the entry and the property, not the secret.
    let toml = format!(
        "[backends.stream]\nengine = \"kafka\"\nbrokers = {:?}\ntopic = \"events\"\n\
         [backends.stream.properties]\n\"sasl.password\" = \"{}\"\n\"no.such.property\" = \"{}\"\n",
        brokers(),
        SECRETS[0],
        SECRETS[0],
    );
    let err = Config::from_toml_str(&toml)
        .unwrap()
        .build()
        .unwrap_err()
        .to_string();
    assert_clean(&err);
    assert!(
        err.contains("backends.stream") && err.contains("no.such.property"),
        "{err}"
    );

    // A secret given as a table is refused without echoing anything inside it.
    let toml = "[backends.stream]\nengine = \"kafka\"\nbrokers = \"h:1\"\ntopic = \"events\"\n\
                [backends.stream.properties.\"sasl.password\"]\nx = \"pw-sasl-8d1f\"\n";
    let err = Config::from_toml_str(toml)
        .unwrap()
        .build()
        .unwrap_err()
        .to_string();
    assert_clean(&err);
}

/// Collects everything `tracing` writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn librdkafka_logs_and_delivery_errors_hide_secrets() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let topic = unique("secrets");
    let mut properties = secret_properties();
    // Log everything librdkafka does, configuration included; the secrets are
    // set but unused on this plaintext connection.
    properties["debug"] = json!("all");
    let tracker = Tracker::builder()
        .with_delivery(delivery(dir.path()))
        .with_backend(
            "stream",
            kafka_backend(json!({"topic": topic, "properties": properties})),
        )
        .build()
        .unwrap();
    tracker.emit("secret.test", json!({"i": 1})).unwrap();
    let report = tracker.shutdown(WAIT).unwrap();
    assert_eq!(report.backends["stream"].delivered, 1, "{report:?}");

    // A SASL producer against a plaintext listener: every attempt fails, and
    // the failure reasons (logged, and in the dead-letter file) stay clean.
    let tracker = Tracker::builder()
        .with_delivery(
            delivery(dir.path())
                .with_max_retries(1)
                .with_initial_backoff(std::time::Duration::from_millis(10))
                .with_send_timeout(std::time::Duration::from_millis(20_000)),
        )
        .with_backend(
            "sasl",
            kafka_backend(json!({
                "topic": topic,
                "properties": {
                    "security.protocol": "SASL_PLAINTEXT",
                    "sasl.mechanisms": "PLAIN",
                    "sasl.username": "tracker",
                    "sasl.password": SECRETS[0],
                    "message.timeout.ms": "3000",
                    "debug": "security,broker,msg",
                },
            })),
        )
        .build()
        .unwrap();
    tracker.emit("secret.sasl", json!({"i": 2})).unwrap();
    let report = tracker.shutdown(WAIT).unwrap();
    assert_eq!(report.backends["sasl"].delivered, 0, "{report:?}");
    std::thread::sleep(Duration::from_millis(200));

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("librdkafka") && logs.lines().count() > 20,
        "librdkafka's logs were not captured: {logs}"
    );
    assert_clean(&logs);
    let dead = std::fs::read_to_string(dir.path().join("dead-letter.jsonl")).unwrap_or_default();
    assert_clean(&dead);
}
