//! (6) A secret in the options never shows in errors, logs or dead letters.

use eventtracking::registry::ComponentConfig;
use eventtracking::{Config, JsonMap};
use serde_json::{json, Value};

use crate::harness::{shared_store, Run, BACKEND, WAIT};
use crate::logs::capture_logs;
use crate::target::{Case, ConformanceTarget};

/// The secret: distinctive, and valid anywhere (a URI's password, a property).
const SECRET: &str = "S3cretConformance7f3a";

fn assert_clean(what: &str, text: &str) {
    if let Some(at) = text.find(SECRET) {
        let start = text[..at]
            .char_indices()
            .rev()
            .nth(120)
            .map_or(0, |(i, _)| i);
        panic!(
            "the secret leaked in {what}: …{}…",
            &text[start..at + SECRET.len()]
        );
    }
}

/// The target's [`secret_options`](ConformanceTarget::secret_options)
/// with a secret: those that must be refused are, by the registry and by a
/// whole config, without the secret in the error or in `Debug` output;
/// through each of those that build one event is sent (delivered or, with
/// retries, dead-lettered), and the secret shows neither in the report,
/// the dead-letter file, nor in anything
/// logged meanwhile (captured with [`capture_logs`]), which must contain
/// what the target says is bound to be logged.
pub fn secrets<T: ConformanceTarget>() {
    let _store = shared_store();
    let logs = capture_logs();
    let run = Run::<T>::new(Case::Secrets);
    let options = run.target.secret_options(&run.namespace, SECRET);
    let with_engine = |options: &JsonMap| {
        let mut table = options.clone();
        table.insert("engine".into(), json!(T::ENGINE));
        table
    };
    for refused in &options.refused {
        let component =
            ComponentConfig::new(format!("backends.{BACKEND}"), T::ENGINE, refused.clone());
        assert_clean("a component's Debug output", &format!("{component:?}"));
        match eventtracking::registry::build_backend(&component) {
            Ok(_) => panic!("built, though it should be refused: {component:?}"),
            Err(error) => assert_clean("a build error", &format!("{error} {error:?}")),
        }
        let config: Result<Config, _> = serde_json::from_value(
            json!({"backends": {BACKEND: Value::Object(with_engine(refused))}}),
        );
        match config {
            Ok(config) => {
                assert_clean("a config's Debug output", &format!("{config:?}"));
                let Err(error) = config.build() else {
                    panic!("a config with refused options builds");
                };
                let text = format!("{error} {error:?}");
                assert_clean("a config's build error", &text);
                assert!(
                    text.contains(BACKEND),
                    "the error does not name the entry: {text}"
                );
            }
            Err(error) => assert_clean("a config error", &format!("{error} {error:?}")),
        }
    }
    for built in &options.built {
        let component =
            ComponentConfig::new(format!("backends.{BACKEND}"), T::ENGINE, built.clone());
        assert_clean("a component's Debug output", &format!("{component:?}"));
        let backend = run.build(built.clone());
        let tracker = eventtracking::Tracker::builder()
            .with_delivery(run.delivery(|d| {
                d.with_max_retries(1)
                    .with_initial_backoff(std::time::Duration::from_millis(10))
            }))
            .with_backend(BACKEND, backend)
            .build()
            .expect("the tracker builds");
        tracker
            .emit("conformance.secret", json!({"i": 1}))
            .expect("accepted");
        let report = tracker.shutdown(WAIT).expect("the first shutdown");
        let stats = &report.backends[BACKEND];
        assert_eq!(stats.delivered + stats.dead_lettered, 1, "{report}");
        assert_clean("the report", &format!("{report} {report:?}"));
        assert_clean("the dead-letter file", &run.dead_letter_text());
    }
    let logged = logs.text();
    if let Some(expected) = options.logged {
        assert!(
            logged.contains(expected),
            "the logs do not contain {expected:?}; were they captured? {logged}"
        );
    }
    assert_clean("the logs", &logged);
}
