//! Processors (tracker-level and per backend), routing, and the emit path's
//! refusals (bad names, data that is not JSON).

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use common::{assert_accounted, map, DEADLINE};
use eventtracking::{
    EmitError, Enrich, Event, InMemoryBackend, InvalidEventName, NameFilter, ProcessResult,
    Processor, ProcessorError, Redact, Sample, Tracker, TrackerBuilder,
};
use serde_json::json;

fn builder(dir: &tempfile::TempDir) -> TrackerBuilder {
    Tracker::builder().with_delivery(common::delivery(dir.path()))
}

fn names(memory: &InMemoryBackend) -> Vec<String> {
    memory
        .events()
        .iter()
        .map(|e| e.name().to_owned())
        .collect()
}

/// Fails on events whose name starts with `bad.`.
#[derive(Debug)]
struct FailOnBad;

impl Processor for FailOnBad {
    fn name(&self) -> &str {
        "fail-on-bad"
    }

    fn process(&self, event: Arc<Event>) -> ProcessResult {
        if event.name().starts_with("bad.") {
            return Err(ProcessorError::new(
                self.name(),
                event.name(),
                "refusing bad events",
            ));
        }
        Ok(Some(event))
    }
}

fn emit_mixed(tracker: &Tracker) {
    for name in [
        "navigation.request",
        "address.create",
        "debug.trace",
        "navigation.click",
    ] {
        tracker.emit(name, json!({"n": name})).unwrap();
    }
}

#[test]
fn tracker_level_allow_keeps_only_matching_names() {
    let dir = tempfile::tempdir().unwrap();
    let memory = InMemoryBackend::new();
    let tracker = builder(&dir)
        .with_processor(Arc::new(
            NameFilter::allow(&["navigation.*".into()], Some("^address\\.")).unwrap(),
        ))
        .with_backend("memory", memory.clone())
        .build()
        .unwrap();
    emit_mixed(&tracker);
    let report = tracker.flush(DEADLINE);
    assert_eq!(
        names(&memory),
        ["navigation.request", "address.create", "navigation.click"]
    );
    assert_eq!(report.tracker.emitted, 4);
    assert_eq!(report.tracker.filtered, 1);
    assert_eq!(report.backends["memory"].accepted, 3);
}

#[test]
fn tracker_level_block_drops_matching_names() {
    let dir = tempfile::tempdir().unwrap();
    let memory = InMemoryBackend::new();
    let tracker = builder(&dir)
        .with_processor(Arc::new(
            NameFilter::block(&["debug.*".into(), "*.click".into()], None).unwrap(),
        ))
        .with_backend("memory", memory.clone())
        .build()
        .unwrap();
    emit_mixed(&tracker);
    let report = tracker.flush(DEADLINE);
    assert_eq!(names(&memory), ["navigation.request", "address.create"]);
    assert_eq!(report.tracker.filtered, 2);
}

#[test]
fn tracker_level_enrich_adds_fields_without_overwriting_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let memory = InMemoryBackend::new();
    let tracker = builder(&dir)
        .with_processor(Arc::new(Enrich::new(
            map(json!({"host": "web-1", "user_id": 0})),
            false,
        )))
        .with_backend("memory", memory.clone())
        .build()
        .unwrap();
    tracker.emit("plain", json!({})).unwrap();
    {
        let _ctx = tracker.context("request", json!({"user_id": 42})).unwrap();
        tracker.emit("in.context", json!({})).unwrap();
    }
    tracker.flush(DEADLINE);
    let events = memory.events();
    assert_eq!(
        events[0].context(),
        &map(json!({"host": "web-1", "user_id": 0}))
    );
    assert_eq!(
        events[1].context(),
        &map(json!({"host": "web-1", "user_id": 42}))
    );
    // Enrichment changes the event, not the ambient context.
    assert!(tracker.current_context().is_empty());

    let memory = InMemoryBackend::new();
    let overwriting = builder(&dir)
        .with_processor(Arc::new(Enrich::new(map(json!({"user_id": 0})), true)))
        .with_backend("memory", memory.clone())
        .build()
        .unwrap();
    let _ctx = overwriting
        .context("request", json!({"user_id": 42}))
        .unwrap();
    overwriting.emit("in.context", json!({})).unwrap();
    overwriting.flush(DEADLINE);
    assert_eq!(memory.events()[0].context()["user_id"], 0);
}

#[test]
fn tracker_level_redact_replaces_and_removes_fields() {
    let dir = tempfile::tempdir().unwrap();
    let memory = InMemoryBackend::new();
    let tracker = builder(&dir)
        .with_processor(Arc::new(
            Redact::new(
                &["data.user.password".into(), "context.session_id".into()],
                json!("[REDACTED]"),
                false,
            )
            .unwrap(),
        ))
        .with_processor(Arc::new(
            Redact::new(&["data.card".into()], json!(null), true).unwrap(),
        ))
        .with_backend("memory", memory.clone())
        .build()
        .unwrap();
    let _ctx = tracker
        .context("session", json!({"session_id": "s3cr3t", "user_id": 1}))
        .unwrap();
    tracker
        .emit(
            "login",
            json!({"user": {"name": "ann", "password": "hunter2"}, "card": "4111"}),
        )
        .unwrap();
    tracker.emit("no.secrets", json!({"x": 1})).unwrap();
    tracker.flush(DEADLINE);
    let events = memory.events();
    assert_eq!(
        events[0].data(),
        &json!({"user": {"name": "ann", "password": "[REDACTED]"}})
    );
    assert_eq!(
        events[0].context(),
        &map(json!({"session_id": "[REDACTED]", "user_id": 1}))
    );
    assert_eq!(events[1].data(), &json!({"x": 1}));
    // The ambient context is untouched.
    assert_eq!(tracker.current_context()["session_id"], "s3cr3t");
}

#[test]
fn tracker_level_sample_keeps_a_fraction() {
    let dir = tempfile::tempdir().unwrap();
    let none = InMemoryBackend::new();
    let tracker = builder(&dir)
        .with_processor(Arc::new(Sample::new(0.0).unwrap()))
        .with_backend("memory", none.clone())
        .build()
        .unwrap();
    for i in 0..100 {
        tracker.emit("sampled", json!({"i": i})).unwrap();
    }
    let report = tracker.flush(DEADLINE);
    assert!(none.events().is_empty());
    assert_eq!(report.tracker.filtered, 100);

    let all = InMemoryBackend::new();
    let tracker = builder(&dir)
        .with_processor(Arc::new(Sample::new(1.0).unwrap()))
        .with_backend("memory", all.clone())
        .build()
        .unwrap();
    for i in 0..100 {
        tracker.emit("sampled", json!({"i": i})).unwrap();
    }
    tracker.flush(DEADLINE);
    assert_eq!(all.events().len(), 100);

    let half = InMemoryBackend::new();
    let tracker = builder(&dir)
        .with_processor(Arc::new(Sample::new(0.5).unwrap()))
        .with_backend("memory", half.clone())
        .build()
        .unwrap();
    for i in 0..2_000 {
        tracker.emit("sampled", json!({"i": i})).unwrap();
    }
    let report = tracker.flush(DEADLINE);
    let kept = half.events().len() as u64;
    assert!((700..1_300).contains(&kept), "kept {kept} of 2000");
    assert_eq!(kept + report.tracker.filtered, 2_000);
}

#[test]
fn per_backend_samples_agree_on_which_events_to_keep() {
    let dir = tempfile::tempdir().unwrap();
    let a = InMemoryBackend::new();
    let b = InMemoryBackend::new();
    let tracker = builder(&dir)
        .with_route(
            "a",
            a.clone(),
            vec![Arc::new(Sample::new(0.3).unwrap())],
            None,
        )
        .with_route(
            "b",
            b.clone(),
            vec![Arc::new(Sample::new(0.3).unwrap())],
            None,
        )
        .build()
        .unwrap();
    for i in 0..1_000 {
        tracker.emit("sampled", json!({"i": i})).unwrap();
    }
    let report = tracker.flush(DEADLINE);
    let ids = |m: &InMemoryBackend| m.events().iter().map(|e| e.id()).collect::<Vec<_>>();
    assert_eq!(ids(&a), ids(&b));
    assert!(!ids(&a).is_empty());
    assert_eq!(
        report.backends["a"].filtered + report.backends["a"].delivered,
        1_000
    );
    assert_accounted(&report.backends["a"]);
}

#[test]
fn per_backend_redaction_leaves_other_backends_and_the_original_alone() {
    let dir = tempfile::tempdir().unwrap();
    let redacted = InMemoryBackend::new();
    let raw = InMemoryBackend::new();
    let tracker = builder(&dir)
        .with_route(
            "redacted",
            redacted.clone(),
            vec![Arc::new(
                Redact::new(&["data.password".into()], json!("***"), false).unwrap(),
            )],
            None,
        )
        .with_backend("raw", raw.clone())
        .build()
        .unwrap();
    let original =
        Arc::new(Event::new("login", json!({"user": "ann", "password": "hunter2"})).unwrap());
    tracker.emit_event(original.clone()).unwrap();
    let report = tracker.flush(DEADLINE);
    assert_eq!(report.backends["redacted"].delivered, 1);
    assert_eq!(report.backends["raw"].delivered, 1);

    let seen_redacted = &redacted.events()[0];
    assert_eq!(
        seen_redacted.data(),
        &json!({"user": "ann", "password": "***"})
    );
    assert_eq!(seen_redacted.id(), original.id());
    let seen_raw = &raw.events()[0];
    assert_eq!(
        seen_raw.data(),
        &json!({"user": "ann", "password": "hunter2"})
    );
    // The shared original was never mutated, and the raw backend got it as is.
    assert_eq!(original.data()["password"], "hunter2");
    assert!(Arc::ptr_eq(seen_raw, &original));
    assert!(!Arc::ptr_eq(seen_redacted, &original));
    // Its cached JSON is the original too.
    let line: serde_json::Value = serde_json::from_slice(original.to_json_bytes()).unwrap();
    assert_eq!(line["data"]["password"], "hunter2");
}

#[test]
fn per_backend_filters_route_events() {
    let dir = tempfile::tempdir().unwrap();
    let navigation = InMemoryBackend::new();
    let everything = InMemoryBackend::new();
    let tracker = builder(&dir)
        .with_route(
            "navigation",
            navigation.clone(),
            vec![Arc::new(
                NameFilter::allow(&["navigation.*".into()], None).unwrap(),
            )],
            None,
        )
        .with_backend("everything", everything.clone())
        .build()
        .unwrap();
    emit_mixed(&tracker);
    let report = tracker.flush(DEADLINE);
    assert_eq!(
        names(&navigation),
        ["navigation.request", "navigation.click"]
    );
    assert_eq!(everything.events().len(), 4);
    let stats = &report.backends["navigation"];
    assert_eq!((stats.accepted, stats.filtered, stats.delivered), (4, 2, 2));
    assert_eq!(report.tracker.filtered, 0);
    assert_accounted(stats);
}

#[test]
fn a_failing_tracker_processor_drops_the_event_and_counts_it() {
    let dir = tempfile::tempdir().unwrap();
    let memory = InMemoryBackend::new();
    let tracker = builder(&dir)
        .with_processor(Arc::new(FailOnBad))
        .with_backend("memory", memory.clone())
        .build()
        .unwrap();
    tracker.emit("good.one", json!({})).unwrap();
    // A processor failure is not the caller's error: emit succeeds, the event is counted.
    tracker.emit("bad.one", json!({})).unwrap();
    tracker.emit("good.two", json!({})).unwrap();
    let report = tracker.flush(DEADLINE);
    assert_eq!(names(&memory), ["good.one", "good.two"]);
    assert_eq!(report.tracker.processor_errors, 1);
    assert_eq!(report.tracker.emitted, 3);
    assert_eq!(report.backends["memory"].accepted, 2);
}

#[test]
fn a_failing_backend_processor_only_affects_its_backend() {
    let dir = tempfile::tempdir().unwrap();
    let picky = InMemoryBackend::new();
    let other = InMemoryBackend::new();
    let tracker = builder(&dir)
        .with_route("picky", picky.clone(), vec![Arc::new(FailOnBad)], None)
        .with_backend("other", other.clone())
        .build()
        .unwrap();
    tracker.emit("good.one", json!({})).unwrap();
    tracker.emit("bad.one", json!({})).unwrap();
    tracker.emit("good.two", json!({})).unwrap();
    let report = tracker.flush(DEADLINE);
    assert_eq!(names(&picky), ["good.one", "good.two"]);
    assert_eq!(names(&other), ["good.one", "bad.one", "good.two"]);
    let stats = &report.backends["picky"];
    assert_eq!(stats.processor_errors, 1);
    assert_eq!(stats.delivered, 2);
    assert_eq!(report.backends["other"].processor_errors, 0);
    assert_eq!(report.tracker.processor_errors, 0);
    assert_accounted(stats);
}

#[test]
fn processors_run_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let memory = InMemoryBackend::new();
    // Enrich first, then redact what enrich added: the order is visible.
    let tracker = builder(&dir)
        .with_processor(Arc::new(Enrich::new(map(json!({"token": "t"})), false)))
        .with_processor(Arc::new(
            Redact::new(&["context.token".into()], json!(null), true).unwrap(),
        ))
        .with_backend("memory", memory.clone())
        .build()
        .unwrap();
    tracker.emit("a", json!({})).unwrap();
    tracker.flush(DEADLINE);
    assert!(memory.events()[0].context().is_empty());
}

#[test]
fn invalid_names_are_refused_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let memory = InMemoryBackend::new();
    let tracker = builder(&dir)
        .with_backend("memory", memory.clone())
        .build()
        .unwrap();
    let long = "n".repeat(256);
    type Check = fn(&InvalidEventName) -> bool;
    let cases: [(&str, Check); 4] = [
        ("", |e| matches!(e, InvalidEventName::Empty)),
        (&long, |e| {
            matches!(e, InvalidEventName::TooLong { len: 256, .. })
        }),
        ("has space", |e| {
            matches!(
                e,
                InvalidEventName::BadCharacter {
                    character: ' ',
                    position: 3,
                    ..
                }
            )
        }),
        ("tab\there", |e| {
            matches!(
                e,
                InvalidEventName::BadCharacter {
                    character: '\t',
                    ..
                }
            )
        }),
    ];
    for (name, check) in cases {
        match tracker.emit(name, json!({})) {
            Err(EmitError::InvalidName(e)) => assert!(check(&e), "{name:?}: {e:?}"),
            other => panic!("{name:?}: expected InvalidName, got {other:?}"),
        }
    }
    // The longest valid name passes.
    tracker.emit(&"n".repeat(255), json!({})).unwrap();
    let report = tracker.flush(DEADLINE);
    assert_eq!(report.tracker.invalid, 4);
    assert_eq!(report.tracker.emitted, 1);
    assert_eq!(memory.events().len(), 1);
}

#[test]
fn data_that_is_not_json_is_refused_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let memory = InMemoryBackend::new();
    let tracker = builder(&dir)
        .with_backend("memory", memory.clone())
        .build()
        .unwrap();
    let mut by_pair: HashMap<(i32, i32), i32> = HashMap::new();
    by_pair.insert((1, 2), 3);
    let err = tracker.emit("grid.update", &by_pair).unwrap_err();
    match &err {
        EmitError::InvalidData { name, reason } => {
            assert_eq!(name, "grid.update");
            assert!(reason.contains("key must be a string"), "{reason}");
        }
        other => panic!("expected InvalidData, got {other:?}"),
    }
    assert!(err.to_string().contains("grid.update"), "{err}");

    // Serializable structs (by reference or by value) are fine.
    #[derive(serde::Serialize)]
    struct Address<'a> {
        postal_code: &'a str,
        tags: HashSet<&'a str>,
    }
    let address = Address {
        postal_code: "90210",
        tags: ["home"].into_iter().collect(),
    };
    tracker.emit("address.create", &address).unwrap();
    tracker.emit("address.create", address).unwrap();
    let report = tracker.flush(DEADLINE);
    assert_eq!(report.tracker.invalid, 1);
    assert_eq!(report.tracker.emitted, 2);
    let events = memory.events();
    assert_eq!(
        events[0].data(),
        &json!({"postal_code": "90210", "tags": ["home"]})
    );
}

#[test]
fn a_tracker_without_backends_counts_what_it_is_given() {
    let tracker = Tracker::builder()
        .with_processor(Arc::new(
            NameFilter::block(&["debug.*".into()], None).unwrap(),
        ))
        .build()
        .unwrap();
    tracker.emit("a", json!({})).unwrap();
    tracker.emit("debug.x", json!({})).unwrap();
    let report = tracker.flush(DEADLINE);
    assert!(report.complete);
    assert_eq!(report.tracker.no_backend, 1);
    assert_eq!(report.tracker.filtered, 1);
    assert!(report.backends.is_empty());
}

#[test]
fn duplicate_backend_names_are_refused() {
    let err = Tracker::builder()
        .with_backend("same", InMemoryBackend::new())
        .with_backend("same", InMemoryBackend::new())
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("`same`"), "{err}");
}
