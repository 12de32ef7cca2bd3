//! Secret property values never show in `Debug` output or build errors,
//! even where librdkafka quotes them. (That they show in no delivery error,
//! dead letter or librdkafka log line is the conformance suite's `secrets`
//! case.)

mod common;

use common::*;
use eventtracking::Config;
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
