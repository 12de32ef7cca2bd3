//! A bad URI and an unreachable server give clear errors, and the URI's
//! password shows in no error or `Debug` output. (That it shows in no log
//! line or dead letter either, with the server unreachable or checking the
//! credentials, is the conformance suite's `secrets` case.)

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use eventtracking::registry::{build_backend, ComponentConfig};
use eventtracking::{Backend, BackendError, Config, Event, Tracker};
use eventtracking_mongo::{MongoBackend, MongoOptions};
use serde_json::json;

const SECRET: &str = "s3cret";

fn assert_clean(text: &str) {
    assert!(!text.contains(SECRET), "the password leaked in: {text}");
}

#[test]
fn bad_uris_give_clear_errors_without_the_password() {
    let cases = [
        ("mongodb://user:s3cret@127.0.0.1:notaport/", "port"),
        ("mongodb://user:s3cret@/", "host"),
        ("mongodb://user:s3cret@h/?authMechanism=BOGUS", "BOGUS"),
        (
            "mongodb://user:s3cret@h/?socketTimeoutMS=5",
            "socketTimeoutMS",
        ),
        ("mongodb://us:er:s3cret@h/", "uri"),
        ("mongodb://user:s3cret@h/?w=0", "unacknowledged"),
        (
            "mongodb+srv://user:s3cret@cluster0.example.com/",
            "dns-resolver",
        ),
        ("postgres://user:s3cret@h/", "mongodb://"),
    ];
    for (uri, hint) in cases {
        let err = MongoBackend::builder(uri).build().unwrap_err().to_string();
        assert_clean(&err);
        assert!(
            err.to_lowercase().contains(&hint.to_lowercase()),
            "{uri}: {err}"
        );
        assert!(
            err.contains(":[REDACTED]@") || err.contains("w: 0"),
            "{uri}: {err}"
        );

        // Through a config file: the error names the entry too.
        let toml = format!("[backends.warehouse]\nengine = \"mongo\"\nuri = \"{uri}\"\n");
        let err = Config::from_toml_str(&toml)
            .unwrap()
            .build()
            .unwrap_err()
            .to_string();
        assert_clean(&err);
        assert!(
            err.contains("backends.warehouse") && err.contains("mongo"),
            "{err}"
        );
    }
    // Other bad keys next to a URI with a password.
    for (extra, word) in [
        ("colection = \"x\"", "colection"),
        ("database = \"a/b\"", "database"),
        ("write_concern = 0", "write_concern"),
        ("batch_size = -1", "batch_size"),
        ("uri2 = \"mongodb://user:s3cret@h/\"", "uri2"),
    ] {
        let toml = format!(
            "[backends.warehouse]\nengine = \"mongo\"\nuri = \"mongodb://user:s3cret@h/\"\n{extra}\n"
        );
        let config = Config::from_toml_str(&toml);
        let err = match config {
            Ok(config) => config.build().unwrap_err().to_string(),
            Err(err) => err.to_string(),
        };
        assert_clean(&err);
        assert!(err.contains(word), "{err}");
        let debug = format!("{:?}", Config::from_toml_str(&toml));
        assert_clean(&debug);
    }
}

#[test]
fn debug_output_hides_the_password() {
    let uri = "mongodb://user:s3cret@127.0.0.1:1/?authSource=admin";
    let options: MongoOptions = serde_json::from_value(json!({"uri": uri})).unwrap();
    let builder = options.clone().into_builder();
    let backend = builder.clone().build().unwrap();
    let component = ComponentConfig::new(
        "backends.warehouse",
        "mongo",
        json!({"uri": uri}).as_object().unwrap().clone(),
    );
    build_backend(&component).unwrap();
    for text in [
        format!("{options:?} {options:#?}"),
        format!("{builder:?}"),
        format!("{backend:?} {backend:#?}"),
        format!("{component:?}"),
    ] {
        assert_clean(&text);
        assert!(text.contains("user:[REDACTED]@127.0.0.1:1"), "{text}");
    }
    assert_clean(&format!("{:?}", backend.redactor()));
}

#[test]
fn an_unreachable_server_fails_a_send_in_bounded_time_as_retryable() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let backend = MongoBackend::builder("mongodb://user:s3cret@127.0.0.1:1/")
        .with_server_selection_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let batch = [Arc::new(Event::new("a", json!({})).unwrap())];
    let started = Instant::now();
    let result = runtime.block_on(backend.send_batch(&batch));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let Err(error @ BackendError::Retryable(_)) = result else {
        panic!("{result:?}");
    };
    let text = format!("{error} {error:?}");
    assert_clean(&text);
    assert!(text.to_lowercase().contains("server selection"), "{text}");
    assert!(text.contains("127.0.0.1:1"), "{text}");

    // Through a tracker: retried, then dead-lettered with a reason naming the address.
    let dir = tempfile::tempdir().unwrap();
    let tracker = Tracker::builder()
        .with_delivery(
            delivery(dir.path())
                .with_max_retries(1)
                .with_initial_backoff(std::time::Duration::from_millis(10)),
        )
        .with_backend(
            "warehouse",
            build_backend(&ComponentConfig::new(
                "backends.warehouse",
                "mongo",
                json!({
                    "uri": "mongodb://user:s3cret@127.0.0.1:1/",
                    "server_selection_timeout_ms": 300,
                })
                .as_object()
                .unwrap()
                .clone(),
            ))
            .unwrap(),
        )
        .build()
        .unwrap();
    tracker.emit("secret.test", json!({"i": 1})).unwrap();
    let report = tracker.shutdown(WAIT).unwrap();
    assert_eq!(report.backends["warehouse"].dead_lettered, 1, "{report}");
    let dead = std::fs::read_to_string(dir.path().join("dead-letter.jsonl")).unwrap();
    assert_clean(&dead);
    assert!(
        dead.contains("retries exhausted") && dead.contains("127.0.0.1:1"),
        "{dead}"
    );
}
