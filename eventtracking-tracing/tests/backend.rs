//! The `tracing` backend engine: every event as one structured `tracing`
//! event, to the global subscriber (the delivery thread writes them).
//!
//! The global subscriber of this test binary (installed once): an
//! `EnvFilter` at `info`, a layer capturing every event it sees, and a
//! `TrackingLayer` into its own tracker (to show that the backend's events
//! are never tracked again).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use eventtracking::{registry, Config, InMemoryBackend, Tracker};
use eventtracking_testkit::{emit_seed_example, seed_example_events};
use eventtracking_tracing::{TracingBackend, TrackingLayer, TrackingLayerStats};
use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{EnvFilter, Layer};

/// One event the global subscriber saw: target, level, fields as text.
#[derive(Debug, Clone)]
struct Seen {
    target: String,
    level: tracing::Level,
    fields: BTreeMap<String, String>,
}

#[derive(Default)]
struct Capture(Arc<Mutex<Vec<Seen>>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}"));
    }
}

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        self.0.lock().unwrap().push(Seen {
            target: event.metadata().target().into(),
            level: *event.metadata().level(),
            fields,
        });
    }
}

struct Global {
    seen: Arc<Mutex<Vec<Seen>>>,
    tracked: InMemoryBackend,
    tracked_stats: TrackingLayerStats,
}

fn global() -> &'static Global {
    static GLOBAL: OnceLock<Global> = OnceLock::new();
    GLOBAL.get_or_init(|| {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let tracked = InMemoryBackend::new();
        let tracker = Tracker::builder()
            .with_backend("tracked", tracked.clone())
            .build()
            .unwrap();
        let layer = TrackingLayer::builder().with_tracker(tracker).build();
        let tracked_stats = layer.stats();
        tracing_subscriber::registry()
            .with(EnvFilter::new("info"))
            .with(Capture(seen.clone()))
            .with(layer)
            .init();
        Global {
            seen,
            tracked,
            tracked_stats,
        }
    })
}

fn seen_with_target(target: &str) -> Vec<Seen> {
    let seen = global().seen.lock().unwrap();
    seen.iter()
        .filter(|s| s.target == target)
        .cloned()
        .collect()
}

fn tracker_from(toml: &str) -> Tracker {
    Config::from_toml_str(toml).unwrap().build().unwrap()
}

#[test]
fn every_event_goes_out_as_one_structured_tracing_event() {
    global();
    let tracker = tracker_from(
        "[delivery]\nlinger_ms = 5\n[backends.log]\nengine = \"tracing\"\nlevel = \"warn\"\ntarget = \"audit.seed\"\n",
    );
    emit_seed_example(&tracker).unwrap();
    let report = tracker.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(report.backends["log"].delivered, 3);
    let seen = seen_with_target("audit.seed");
    assert_eq!(seen.len(), 3, "{seen:?}");
    for (seen, (name, context, data)) in seen.iter().zip(seed_example_events()) {
        assert_eq!(seen.level, tracing::Level::WARN);
        assert_eq!(seen.fields["name"], name);
        let json = |key: &str| serde_json::from_str::<Value>(&seen.fields[key]).unwrap();
        assert_eq!(json("context"), context);
        assert_eq!(json("data"), data);
        assert!(seen.fields["timestamp"].ends_with('Z'));
        assert_eq!(seen.fields["id"].len(), 36);
        assert!(!seen.fields.contains_key("schema"));
    }
}

#[test]
fn the_defaults_are_info_and_target_eventtracking_and_filters_apply() {
    global();
    let tracker = tracker_from("[delivery]\nlinger_ms = 5\n[backends.log]\nengine = \"tracing\"\n");
    tracker
        .emit("defaults.checked", serde_json::json!({"k": 1}))
        .unwrap();
    tracker.flush(Duration::from_secs(5));
    let seen: Vec<_> = seen_with_target(eventtracking_tracing::DEFAULT_TARGET)
        .into_iter()
        .filter(|s| s.fields["name"] == "defaults.checked")
        .collect();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].level, tracing::Level::INFO);

    // Below the subscriber's filter (info): not seen, still delivered.
    let backend = TracingBackend::new(tracing::Level::DEBUG, "audit.quiet").unwrap();
    let quiet = Tracker::builder()
        .with_backend("quiet", backend)
        .build()
        .unwrap();
    quiet.emit("quiet.event", serde_json::json!({})).unwrap();
    let report = quiet.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(report.backends["quiet"].delivered, 1);
    assert!(seen_with_target("audit.quiet").is_empty());
}

#[test]
fn its_events_are_never_tracked_again() {
    let global = global();
    // A target the TrackingLayer would take as tracked.
    let tracker = tracker_from(
        "[delivery]\nlinger_ms = 5\n[backends.log]\nengine = \"tracing\"\ntarget = \"track.loop\"\n",
    );
    tracker.emit("loop.event", serde_json::json!({})).unwrap();
    tracker.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(seen_with_target("track.loop").len(), 1);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(global.tracked_stats.tracked(), 0);
    assert!(global.tracked.events().is_empty());
}

#[test]
fn the_engine_is_registered_and_config_errors_name_the_key_and_value() {
    assert!(registry::backend_engines()
        .unwrap()
        .iter()
        .any(|r| r.name() == "tracing"));
    for (options, expected) in [
        (
            "level = \"loud\"",
            "`level` = \"loud\": expected \"trace\", \"debug\", \"info\", \"warn\" or \"error\"",
        ),
        ("target = \"\"", "`target` = \"\": must not be empty"),
        ("levle = \"info\"", "unknown field `levle`"),
        ("level = 3", "`level`: invalid type: integer `3`"),
    ] {
        let toml = format!("[backends.log]\nengine = \"tracing\"\n{options}\n");
        let error = match Config::from_toml_str(&toml).unwrap().build() {
            Ok(_) => panic!("{options}: built"),
            Err(error) => error.to_string(),
        };
        assert!(
            error.contains("`backends.log` (engine `tracing`)"),
            "{error}"
        );
        assert!(error.contains(expected), "{options}: {error}");
    }
    let warn = tracker_from("[backends.log]\nengine = \"tracing\"\nlevel = \"WARN\"\n");
    warn.shutdown(Duration::from_secs(1));
}
