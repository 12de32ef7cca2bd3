//! Building trackers from TOML config through the engine registry, with a
//! user backend registered by this test binary; environment overrides.

mod common;

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use common::{map, Recorder, DEADLINE};
use eventtracking::registry::{self, BackendRegistration, ComponentConfig};
use eventtracking::{Backend, BuildError, Config, ConfigError, DeliveryConfig, Overflow, Tracker};
use serde::Deserialize;
use serde_json::json;

/// Recorders built by the `test-recorder` engine, by their `label` option.
static RECORDERS: LazyLock<Mutex<HashMap<String, Recorder>>> = LazyLock::new(Default::default);

fn recorder(label: &str) -> Recorder {
    RECORDERS
        .lock()
        .unwrap()
        .get(label)
        .unwrap_or_else(|| panic!("no test-recorder labelled {label}"))
        .clone()
}

fn build_test_recorder(config: &ComponentConfig) -> Result<Box<dyn Backend>, BuildError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Options {
        label: String,
    }
    let options: Options = config.parse_options()?;
    if options.label.is_empty() {
        return Err(config.invalid("`label` must not be empty"));
    }
    let recorder = Recorder::new();
    RECORDERS
        .lock()
        .unwrap()
        .insert(options.label, recorder.clone());
    Ok(Box::new(recorder))
}

eventtracking::register_backend! {
    BackendRegistration::new("test-recorder", "records batches for the tests", build_test_recorder)
}

fn toml_path(path: &std::path::Path) -> String {
    // A TOML basic string.
    serde_json::to_string(&path.display().to_string()).unwrap()
}

fn build(text: &str) -> Result<Tracker, ConfigError> {
    Config::from_toml_str(text)?.build()
}

fn build_err(text: &str) -> ConfigError {
    match build(text) {
        Ok(tracker) => panic!("expected an error, built {:?}", tracker.backend_names()),
        Err(e) => e,
    }
}

#[test]
fn a_config_with_every_documented_key_builds_and_works() {
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.jsonl");
    let text = format!(
        r#"
        [delivery]
        queue_capacity = 1000
        overflow = "block"
        block_timeout_ms = 250
        batch_size = 50
        batch_bytes = 100000
        linger_ms = 3
        max_retries = 2
        initial_backoff_ms = 1
        max_backoff_ms = 8
        retry_budget_ms = 4000
        send_timeout_ms = 5000
        max_event_bytes = 20000
        dead_letter_path = {dead}
        validate_schemas = true
        max_in_flight = 1

        [[processors]]
        engine = "allow"
        names = ["navigation.*", "address.*"]
        regex = "^login$"

        [[processors]]
        engine = "block"
        names = ["navigation.secret"]

        [[processors]]
        engine = "enrich"
        fields = {{ host = "web-1", user_id = 0 }}
        overwrite = false

        [[processors]]
        engine = "sample"
        rate = 1.0

        [backends.local]
        engine = "test-recorder"
        label = "every-key-local"

        [backends.local.delivery]
        batch_size = 7
        overflow = "drop_oldest"

        [[backends.local.processors]]
        engine = "redact"
        paths = ["data.password", "context.host"]
        replacement = "***"
        remove = false

        [[backends.local.processors]]
        engine = "block"
        regex = "^address\\."

        [backends.archive]
        engine = "test-recorder"
        label = "every-key-archive"

        [backends.nowhere]
        engine = "discard"
        "#,
        dead = toml_path(&dead),
    );
    let tracker = build(&text).unwrap();
    assert_eq!(tracker.backend_names(), ["archive", "local", "nowhere"]);

    let ms = std::time::Duration::from_millis;
    let expected = DeliveryConfig::default()
        .with_queue_capacity(1000)
        .with_overflow(Overflow::Block)
        .with_block_timeout(ms(250))
        .with_batch_size(50)
        .with_batch_bytes(100_000)
        .with_linger(ms(3))
        .with_max_retries(2)
        .with_initial_backoff(ms(1))
        .with_max_backoff(ms(8))
        .with_retry_budget(ms(4000))
        .with_send_timeout(ms(5000))
        .with_max_event_bytes(20_000)
        .with_dead_letter_path(dead.clone())
        .with_validate_schemas(true)
        .with_max_in_flight(1);
    // Environment overrides of delivery keys would change these (the test
    // servers' `EVENTTRACKING_TEST_*` addresses do not).
    let overridden: Vec<String> = std::env::vars()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("EVENTTRACKING_") && !k.starts_with("EVENTTRACKING_TEST_"))
        .collect();
    if !overridden.is_empty() {
        eprintln!("{overridden:?} set in the environment: skipping exact delivery checks");
        eprintln!("EVENTTRACKING_* set in the environment: skipping exact delivery checks");
    } else {
        assert_eq!(tracker.delivery_config("archive").unwrap(), expected);
        assert_eq!(tracker.delivery_config("nowhere").unwrap(), expected);
        // The per-backend table overrides only its own keys.
        assert_eq!(
            tracker.delivery_config("local").unwrap(),
            expected
                .with_batch_size(7)
                .with_overflow(Overflow::DropOldest)
        );
    }

    {
        let _ctx = tracker.context("request", json!({"user_id": 5})).unwrap();
        tracker
            .emit(
                "navigation.request",
                json!({"url": "/1", "password": "hunter2"}),
            )
            .unwrap();
        tracker.emit("navigation.secret", json!({})).unwrap();
        tracker
            .emit("address.create", json!({"name": "foo"}))
            .unwrap();
        tracker.emit("login", json!({})).unwrap();
        tracker.emit("debug.trace", json!({})).unwrap();
    }
    let report = tracker.shutdown(DEADLINE).unwrap();
    assert!(report.complete);
    assert_eq!(report.tracker.emitted, 5);
    assert_eq!(
        report.tracker.filtered, 2,
        "navigation.secret and debug.trace"
    );

    let archive = recorder("every-key-archive").events();
    let names: Vec<&str> = archive.iter().map(|e| e.name()).collect();
    assert_eq!(names, ["navigation.request", "address.create", "login"]);
    assert_eq!(
        archive[0].context(),
        &map(json!({"user_id": 5, "host": "web-1"}))
    );
    assert_eq!(archive[0].data()["password"], "hunter2");

    let local = recorder("every-key-local").events();
    let names: Vec<&str> = local.iter().map(|e| e.name()).collect();
    assert_eq!(names, ["navigation.request", "login"]);
    assert_eq!(local[0].data()["password"], "***");
    assert_eq!(local[0].context()["host"], "***");
    assert_eq!(report.backends["local"].filtered, 1);
    assert_eq!(report.backends["nowhere"].delivered, 3);
}

#[test]
fn a_per_backend_delivery_override_applies_to_that_backend_only() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
        [delivery]
        batch_size = 3
        linger_ms = 60000
        dead_letter_path = {dead}
        [backends.small]
        engine = "test-recorder"
        label = "override-small"
        [backends.large]
        engine = "test-recorder"
        label = "override-large"
        [backends.large.delivery]
        batch_size = 100
        "#,
        dead = toml_path(&dir.path().join("dead.jsonl")),
    );
    let tracker = build(&text).unwrap();
    for i in 0..30 {
        tracker.emit("e", json!({"i": i})).unwrap();
    }
    assert!(tracker.flush(DEADLINE).complete);
    let small = recorder("override-small").stored_batch_sizes();
    let large = recorder("override-large").stored_batch_sizes();
    assert!(small.iter().all(|n| *n <= 3), "{small:?}");
    assert_eq!(small.iter().sum::<usize>(), 30);
    assert!(large.iter().any(|n| *n > 3), "{large:?}");
    assert_eq!(large.iter().sum::<usize>(), 30);
    assert_eq!(
        tracker.delivery_config("large").unwrap().linger,
        std::time::Duration::from_secs(60)
    );
}

#[test]
fn unknown_engines_list_the_registered_ones() {
    let err = build_err("[backends.x]\nengine = \"nope\"");
    match &err {
        ConfigError::Build(BuildError::UnknownEngine {
            kind,
            engine,
            owner,
            registered,
        }) => {
            assert_eq!(
                (*kind, engine.as_str(), owner.as_str()),
                ("backend", "nope", "backends.x")
            );
            assert!(registered.contains(&"discard"), "{registered:?}");
            assert!(registered.contains(&"test-recorder"), "{registered:?}");
            assert!(registered.windows(2).all(|w| w[0] < w[1]), "{registered:?}");
        }
        other => panic!("expected UnknownEngine, got {other:?}"),
    }
    let text = err.to_string();
    // The engines linked in depend on the build (a workspace build links the
    // backends too); the message lists them, sorted.
    assert!(
        text.contains("nope")
            && text.contains("registered backend engines: discard, ")
            && text.contains("test-batchy, test-recorder"),
        "{text}"
    );

    let err = build_err("[[processors]]\nengine = \"teleport\"").to_string();
    assert!(
        err.contains("teleport")
            && err.contains("processors[0]")
            && err.contains("registered processor engines: allow, block, enrich, redact, sample"),
        "{err}"
    );
    let err =
        build_err("[backends.a]\nengine = \"discard\"\n[[backends.a.processors]]\nengine = \"x\"")
            .to_string();
    assert!(
        err.contains("backends.a.processors[0]") && err.contains("allow, block"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_errors_inside_a_runtime_are_returned_not_panics() {
    // Building happens on a runtime of its own; failing must not drop it
    // in a way that panics inside the caller's runtime.
    let err = build_err("[backends.x]\nengine = \"nope\"");
    assert!(matches!(
        err,
        ConfigError::Build(BuildError::UnknownEngine { .. })
    ));
    let err = build_err("[backends.x]\nengine = \"test-recorder\"\nlable = \"typo\"");
    assert!(err.to_string().contains("lable"), "{err}");
    // A config without backends builds and drops here too.
    let empty = build("[delivery]\nbatch_size = 3").unwrap();
    empty.emit("e", json!({})).unwrap();
    assert_eq!(empty.report().tracker.no_backend, 1);
    drop(empty);
    // And a good config builds, works and shuts down here too.
    let tracker = build("[backends.x]\nengine = \"test-recorder\"\nlabel = \"in-runtime\"\n[delivery]\nlinger_ms = 1").unwrap();
    tracker.emit("e", json!({})).unwrap();
    assert_eq!(
        tracker.flush_async(DEADLINE).await.backends["x"].delivered,
        1
    );
    drop(tracker);
}

#[test]
fn user_backend_options_are_checked() {
    let err = build_err("[backends.x]\nengine = \"test-recorder\"\nlable = \"typo\"");
    let text = err.to_string();
    assert!(
        text.contains("backends.x") && text.contains("test-recorder") && text.contains("lable"),
        "{text}"
    );
    let err = build_err("[backends.x]\nengine = \"test-recorder\"\nlabel = \"\"");
    assert!(
        matches!(&err, ConfigError::Build(BuildError::InvalidOption { message, .. }) if message.contains("label")),
        "{err:?}"
    );
    let err = build_err("[[processors]]\nengine = \"sample\"\nrate = 2.0").to_string();
    assert!(err.contains("processors[0]") && err.contains('2'), "{err}");
    let err = build_err("[[processors]]\nengine = \"redact\"\npaths = [\"password\"]").to_string();
    assert!(err.contains("password"), "{err}");
    let err =
        build_err("[backends.a]\nengine = \"discard\"\n[backends.a.delivery]\nbatch_size = 0")
            .to_string();
    assert!(err.contains("batch_size"), "{err}");
}

#[test]
fn max_in_flight_values_are_checked() {
    let discard = "[backends.a]\nengine = \"discard\"\n[backends.a.delivery]\n";
    for (value, expected) in [
        ("0", "must be at least 1"),
        ("\"four\"", "invalid type"),
        ("-2", "invalid value"),
        // `discard` keeps the one-send-at-a-time default.
        ("2", "cannot overlap"),
    ] {
        let err = build_err(&format!("{discard}max_in_flight = {value}")).to_string();
        assert!(
            err.contains("max_in_flight") && err.contains(expected),
            "max_in_flight = {value}: {err}"
        );
    }
    let tracker = build(&format!("{discard}max_in_flight = 1")).unwrap();
    assert_eq!(tracker.delivery_config("a").unwrap().max_in_flight, Some(1));
}

#[test]
fn the_registry_lists_engines_sorted() {
    let backends = registry::backend_engines().unwrap();
    let names: Vec<&str> = backends.iter().map(|r| r.name()).collect();
    assert!(names.contains(&"discard"), "{names:?}");
    assert!(names.contains(&"test-recorder"), "{names:?}");
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);
    assert!(backends.iter().all(|r| !r.description().is_empty()));

    let processors: Vec<&str> = registry::processor_engines()
        .unwrap()
        .iter()
        .map(|r| r.name())
        .collect();
    assert_eq!(processors, ["allow", "block", "enrich", "redact", "sample"]);
}

#[test]
fn a_user_backend_is_buildable_through_the_registry_directly() {
    let config = ComponentConfig::new(
        "backends.direct",
        "test-recorder",
        map(json!({"label": "direct"})),
    );
    let backend = registry::build_backend(&config).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tracker = Tracker::builder()
        .with_delivery(common::delivery(dir.path()))
        .with_backend("direct", backend)
        .build()
        .unwrap();
    tracker.emit("direct.event", json!({"k": 1})).unwrap();
    tracker.shutdown(DEADLINE).unwrap();
    let events = recorder("direct").events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].data(), &json!({"k": 1}));
    assert_eq!(recorder("direct").shutdowns(), 1);

    let processor = registry::build_processor(&ComponentConfig::new(
        "processors[0]",
        "allow",
        map(json!({"names": ["a.*"]})),
    ))
    .unwrap();
    assert_eq!(processor.name(), "allow");
}

#[test]
fn env_overrides_apply_through_a_lookup() {
    let env: HashMap<&str, &str> = [
        ("EVENTTRACKING_BATCH_SIZE", "7"),
        ("EVENTTRACKING_OVERFLOW", "drop_oldest"),
        ("EVENTTRACKING_MAX_EVENT_BYTES", "4096"),
        ("EVENTTRACKING_DEAD_LETTER_PATH", "/tmp/elsewhere.jsonl"),
        ("UNRELATED", "1"),
    ]
    .into_iter()
    .collect();
    let mut config = DeliveryConfig::default().with_linger(std::time::Duration::from_millis(9));
    config
        .apply_env_from(|var| env.get(var).map(|v| (*v).to_owned()))
        .unwrap();
    assert_eq!(
        config,
        DeliveryConfig::default()
            .with_batch_size(7)
            .with_overflow(Overflow::DropOldest)
            .with_max_event_bytes(4096)
            .with_dead_letter_path("/tmp/elsewhere.jsonl")
            .with_linger(std::time::Duration::from_millis(9))
    );

    let mut config = DeliveryConfig::default();
    let err = config
        .apply_env_from(|var| (var == "EVENTTRACKING_BATCH_SIZE").then(|| "lots".to_owned()))
        .unwrap_err();
    match &err {
        ConfigError::Env { var, value, .. } => {
            assert_eq!(*var, "EVENTTRACKING_BATCH_SIZE");
            assert_eq!(value, "lots");
        }
        other => panic!("expected an Env error, got {other:?}"),
    }
    assert_eq!(config.batch_size, DeliveryConfig::default().batch_size);
    // Surrounding whitespace is tolerated.
    config
        .apply_env_from(|var| (var == "EVENTTRACKING_BATCH_SIZE").then(|| " 12 ".to_owned()))
        .unwrap();
    assert_eq!(config.batch_size, 12);
}

#[test]
fn config_files_are_read_and_bad_ones_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("eventtracking.toml");
    std::fs::write(
        &path,
        "[backends.file-test]\nengine = \"test-recorder\"\nlabel = \"from-file\"\n",
    )
    .unwrap();
    let config = Config::from_path(&path).unwrap();
    assert_eq!(config.origin(), Some(path.display().to_string().as_str()));
    let tracker = config.build().unwrap();
    assert_eq!(tracker.backend_names(), ["file-test"]);
    drop(tracker);

    std::fs::write(&path, "[delivery]\nbatch_sise = 3\n").unwrap();
    let err = Config::from_path(&path)
        .and_then(|c| c.build())
        .unwrap_err()
        .to_string();
    assert!(err.contains("batch_sise"), "{err}");
    assert!(err.contains(&path.display().to_string()), "{err}");

    std::fs::write(&path, "[backends.x\nengine = 1\n").unwrap();
    let err = Config::from_path(&path).unwrap_err().to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");

    let err = build_err("[delivery]\noverflow = \"sometimes\"").to_string();
    assert!(err.contains("sometimes"), "{err}");
}

fn build_batchy(_: &ComponentConfig) -> Result<Box<dyn Backend>, BuildError> {
    Ok(Box::new(eventtracking::DiscardBackend))
}

eventtracking::register_backend! {
    BackendRegistration::new("test-batchy", "prefers large batches", build_batchy).with_batch_size(4096)
}

#[test]
fn an_engine_may_suggest_the_batch_size_a_config_gets_when_it_sets_none() {
    if std::env::var_os("EVENTTRACKING_BATCH_SIZE").is_some() {
        eprintln!("EVENTTRACKING_BATCH_SIZE set in the environment: skipping");
        return;
    }
    let batch = |text: &str, backend: &str| {
        build(text)
            .unwrap()
            .delivery_config(backend)
            .unwrap()
            .batch_size
    };
    let two = "[backends.big]\nengine = \"test-batchy\"\n[backends.plain]\nengine = \"discard\"\n";
    assert_eq!(batch(two, "big"), 4096);
    assert_eq!(
        batch(two, "plain"),
        512,
        "other engines keep the engine default"
    );
    // Any batch_size the config sets wins.
    assert_eq!(
        batch(&format!("[delivery]\nbatch_size = 7\n{two}"), "big"),
        7
    );
    let own = "[backends.big]\nengine = \"test-batchy\"\n[backends.big.delivery]\nbatch_size = 9\n";
    assert_eq!(batch(own, "big"), 9);
    // The suggestion keeps the rest of [delivery].
    let config = build(&format!("[delivery]\nlinger_ms = 3\n{two}")).unwrap();
    assert_eq!(
        config.delivery_config("big").unwrap().linger,
        std::time::Duration::from_millis(3)
    );
}
