//! Processors at the tracker level and per backend, errors, and emit refusals.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use common::{fast_delivery, Scripted, WAIT};
use eventtracking::{
    EmitError, Enrich, Event, InvalidEventName, NameFilter, ProcessResult, Processor,
    ProcessorError, Redact, Sample, Tracker,
};
use serde_json::json;

#[derive(Debug)]
struct FailOn(&'static str);

impl Processor for FailOn {
    fn name(&self) -> &str {
        "fail-on"
    }
    fn process(&self, event: Arc<Event>) -> ProcessResult {
        if event.name() == self.0 {
            Err(ProcessorError {
                processor: "fail-on".into(),
                event: event.name().into(),
                reason: "refused".into(),
            })
        } else {
            Ok(Some(event))
        }
    }
}

fn map(value: serde_json::Value) -> eventtracking::JsonMap {
    value.as_object().unwrap().clone()
}

#[test]
fn tracker_level_processors_run_in_order_for_every_backend() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (Scripted::ok(), Scripted::ok());
    let tracker = Tracker::builder()
        .with_delivery(fast_delivery(dir.path()))
        .with_processor(Arc::new(
            NameFilter::block(&["debug.*".into()], None).unwrap(),
        ))
        .with_processor(Arc::new(Enrich::new(map(json!({"host": "web-1"})), false)))
        .with_processor(Arc::new(
            Redact::new(&["data.password".into()], json!("[REDACTED]"), false).unwrap(),
        ))
        .with_processor(Arc::new(Sample::new(1.0).unwrap()))
        .with_backend("a", a.clone())
        .with_backend("b", b.clone())
        .build()
        .unwrap();
    tracker.emit("debug.noise", json!({})).unwrap();
    tracker
        .emit("login", json!({"user": "u", "password": "hunter2"}))
        .unwrap();
    let report = tracker.flush(WAIT);
    assert_eq!(report.tracker.filtered, 1);
    for backend in [&a, &b] {
        let events = backend.stored();
        assert_eq!(events.len(), 1);
        assert_eq!(
            events[0].data(),
            &json!({"user": "u", "password": "[REDACTED]"})
        );
        assert_eq!(events[0].context()["host"], "web-1");
    }
    // Shared, not copied: both backends got the same allocation.
    assert!(Arc::ptr_eq(&a.stored()[0], &b.stored()[0]));
}

#[test]
fn per_backend_processors_change_only_their_backend_copy() {
    let dir = tempfile::tempdir().unwrap();
    let (redacted, original) = (Scripted::ok(), Scripted::ok());
    let redact: Arc<dyn Processor> =
        Arc::new(Redact::new(&["data.card".into()], json!(null), true).unwrap());
    let tracker = Tracker::builder()
        .with_delivery(fast_delivery(dir.path()))
        .with_route("analytics", redacted.clone(), vec![redact], None)
        .with_backend("audit", original.clone())
        .build()
        .unwrap();
    tracker
        .emit("payment", json!({"amount": 5, "card": "4111"}))
        .unwrap();
    tracker.flush(WAIT);
    assert_eq!(redacted.stored()[0].data(), &json!({"amount": 5}));
    assert_eq!(
        original.stored()[0].data(),
        &json!({"amount": 5, "card": "4111"})
    );
    assert_eq!(redacted.stored()[0].id(), original.stored()[0].id());
}

#[test]
fn processor_errors_are_counted_and_spare_other_backends() {
    let dir = tempfile::tempdir().unwrap();
    let (fragile, sturdy) = (Scripted::ok(), Scripted::ok());
    let tracker = Tracker::builder()
        .with_delivery(fast_delivery(dir.path()))
        .with_processor(Arc::new(FailOn("bad.everywhere")))
        .with_route(
            "fragile",
            fragile.clone(),
            vec![Arc::new(FailOn("bad.here"))],
            None,
        )
        .with_backend("sturdy", sturdy.clone())
        .build()
        .unwrap();
    tracker.emit("bad.everywhere", json!(1)).unwrap();
    tracker.emit("bad.here", json!(2)).unwrap();
    tracker.emit("fine", json!(3)).unwrap();
    let report = tracker.flush(WAIT);
    assert_eq!(report.tracker.processor_errors, 1);
    assert_eq!(report.backends["fragile"].processor_errors, 1);
    assert_eq!(report.backends["fragile"].delivered, 1);
    assert_eq!(report.backends["sturdy"].delivered, 2);
    let names: Vec<String> = sturdy
        .stored()
        .iter()
        .map(|e| e.name().to_owned())
        .collect();
    assert_eq!(names, ["bad.here", "fine"]);
}

#[test]
fn bad_names_and_data_are_refused_and_counted() {
    let tracker = Tracker::builder().build().unwrap();
    assert!(matches!(
        tracker.emit("", json!(1)),
        Err(EmitError::InvalidName(InvalidEventName::Empty))
    ));
    let err = tracker.emit("has space", json!(1)).unwrap_err();
    assert!(err.to_string().contains("has space"), "{err}");
    let long = "x".repeat(300);
    assert!(matches!(
        tracker.emit(&long, json!(1)),
        Err(EmitError::InvalidName(InvalidEventName::TooLong {
            len: 300,
            ..
        }))
    ));
    let mut bad_keys = HashMap::new();
    bad_keys.insert((1, 2), 3);
    let err = tracker.emit("tuple.keys", &bad_keys).unwrap_err();
    assert!(
        matches!(err, EmitError::InvalidData { ref name, .. } if name == "tuple.keys"),
        "{err}"
    );
    let report = tracker.report();
    assert_eq!(report.tracker.invalid, 4);
    assert_eq!(report.tracker.emitted, 0);
}

#[test]
fn a_tracker_without_backends_counts_what_it_is_given() {
    let tracker = Tracker::builder().build().unwrap();
    tracker.emit("nowhere", json!(1)).unwrap();
    assert_eq!(tracker.report().tracker.no_backend, 1);
}
