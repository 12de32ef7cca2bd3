//! `TrackingLayer`: marked `tracing` events become tracked events, with the
//! enclosing spans' fields (and the explicit contexts) as their context.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventtracking::{context, Event, InMemoryBackend, Tracker};
use eventtracking_tracing::TrackingLayer;
use serde_json::{json, Value};
use tracing::instrument::WithSubscriber;
use tracing::Instrument;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{fmt, EnvFilter};

fn memory_tracker() -> (Tracker, InMemoryBackend) {
    let memory = InMemoryBackend::new();
    let tracker = Tracker::builder()
        .with_backend("memory", memory.clone())
        .build()
        .unwrap();
    (tracker, memory)
}

fn delivered(tracker: &Tracker, memory: &InMemoryBackend) -> Vec<Arc<Event>> {
    tracker.flush(Duration::from_secs(5));
    memory.events()
}

#[test]
fn marked_events_become_tracked_events_and_others_are_left_alone() {
    let (tracker, memory) = memory_tracker();
    let layer = TrackingLayer::builder()
        .with_tracker(tracker.clone())
        .build();
    let stats = layer.stats();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        // By target: the rest of the target is the name; every field is data.
        tracing::info!(
            target: "track.navigation.request",
            url = "http://www.edx.org/some/path/1",
            count = 3_i64,
            big = u64::MAX,
            ratio = 0.5,
            ok = true,
            huge = i128::MAX,
            debugged = ?vec![1, 2],
            shown = %"as text",
            "a message"
        );
        tracing::warn!(target: "track::address.create", title = "foo");
        // By field: the name in `name`, which also wins over a target's suffix.
        tracing::info!(
            tracked = true,
            name = "address.create",
            postal_code = "90210"
        );
        tracing::info!(target: "track.ignored.suffix", name = "problem.check");
        // Not marked: other targets, `tracked = false`, a prefix without a separator.
        tracing::info!(url = "/x");
        tracing::info!(target: "trackers", name = "x");
        tracing::info!(tracked = false, name = "x");
        // Marked but unnamed, or named against the rule: counted, not tracked.
        tracing::info!(target: "track", url = "/x");
        tracing::info!(tracked = true, name = "has space");
        tracing::info!(tracked = true, name = 5);
    });
    let events = delivered(&tracker, &memory);
    let seen: Vec<_> = events
        .iter()
        .map(|e| (e.name(), e.data().clone()))
        .collect();
    assert_eq!(
        seen,
        [
            (
                "navigation.request",
                json!({
                    "url": "http://www.edx.org/some/path/1", "count": 3, "big": u64::MAX,
                    "ratio": 0.5, "ok": true, "huge": i128::MAX.to_string(),
                    "debugged": "[1, 2]", "shown": "as text", "message": "a message"
                })
            ),
            ("address.create", json!({"title": "foo"})),
            ("address.create", json!({"postal_code": "90210"})),
            ("problem.check", json!({})),
        ]
    );
    assert!(events.iter().all(|e| e.context().is_empty()));
    assert_eq!((stats.tracked(), stats.refused()), (4, 3));
}

#[test]
fn the_marker_prefix_and_fields_can_be_renamed() {
    let (tracker, memory) = memory_tracker();
    let layer = TrackingLayer::builder()
        .with_tracker(tracker.clone())
        .with_target_prefix("analytics")
        .with_marker_field("audit")
        .with_name_field("event")
        .build();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::info!(target: "analytics.page.view", name = "kept as data");
        tracing::info!(audit = true, event = "login");
        tracing::info!(target: "track.x", tracked = true, name = "not marked any more");
    });
    let events = delivered(&tracker, &memory);
    let seen: Vec<_> = events
        .iter()
        .map(|e| (e.name(), e.data().clone()))
        .collect();
    assert_eq!(
        seen,
        [
            ("page.view", json!({"name": "kept as data"})),
            ("login", json!({})),
        ]
    );
}

#[test]
fn span_fields_are_the_context_inner_spans_winning() {
    let (tracker, memory) = memory_tracker();
    let layer = TrackingLayer::builder()
        .with_tracker(tracker.clone())
        .build();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let outer =
            tracing::info_span!("outer", user_id = 10938, course_id = tracing::field::Empty);
        let _outer = outer.enter();
        tracing::info!(target: "track.navigation.request", url = "/1");
        {
            let inner =
                tracing::info_span!("inner", user_id = 11111, session_id = "2987lkjdyoioey");
            let _inner = inner.enter();
            tracing::info!(target: "track.navigation.request", url = "/2");
        }
        // A field recorded later counts from then on.
        outer.record("course_id", "course-v1:edX+DemoX");
        tracing::info!(target: "track.address.create", name = "foo");
        // A span without fields adds nothing.
        let _bare = tracing::info_span!("bare").entered();
        tracing::info!(target: "track.bare", x = 1);
    });
    let contexts: Vec<_> = delivered(&tracker, &memory)
        .iter()
        .map(|e| Value::Object(e.context().clone()))
        .collect();
    assert_eq!(
        contexts,
        [
            json!({"user_id": 10938}),
            json!({"user_id": 11111, "session_id": "2987lkjdyoioey"}),
            json!({"user_id": 10938, "course_id": "course-v1:edX+DemoX"}),
            json!({"user_id": 10938, "course_id": "course-v1:edX+DemoX"}),
        ]
    );
}

#[test]
fn explicit_contexts_are_merged_under_the_span_fields() {
    let (tracker, memory) = memory_tracker();
    let layer = TrackingLayer::builder()
        .with_tracker(tracker.clone())
        .build();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let _context = tracker
            .context("app", json!({"user_id": 1, "org": "edX"}))
            .unwrap();
        tracing::info!(target: "track.a", n = 1);
        let _span = tracing::info_span!("request", user_id = 2).entered();
        tracing::info!(target: "track.b", n = 2);
        context::with_context(
            "job",
            json!({"job": 7, "user_id": 3}),
            || tracing::info!(target: "track.c", n = 3),
        )
        .unwrap();
    });
    let contexts: Vec<_> = delivered(&tracker, &memory)
        .iter()
        .map(|e| (e.name().to_owned(), Value::Object(e.context().clone())))
        .collect();
    assert_eq!(
        contexts,
        [
            ("a".into(), json!({"user_id": 1, "org": "edX"})),
            // The span's field wins over the explicit context's.
            ("b".into(), json!({"user_id": 2, "org": "edX"})),
            ("c".into(), json!({"user_id": 2, "org": "edX", "job": 7})),
        ]
    );
}

#[test]
fn spans_and_task_contexts_follow_across_await_on_any_worker_thread() {
    let (tracker, memory) = memory_tracker();
    let layer = TrackingLayer::builder()
        .with_tracker(tracker.clone())
        .build();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Spans are made under the subscriber (as under a global one); the
    // tasks run on the runtime's worker threads with it.
    let _default = tracing::dispatcher::set_default(&dispatch);
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for user in 0..8 {
            let tracker = tracker.clone();
            let request = async move {
                for step in 0..3 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    tracing::info!(target: "track.step", step);
                }
            }
            .instrument(tracing::info_span!("request", user_id = user));
            let job = async move {
                tracker
                    .in_context("task", json!({"task": user}), request)
                    .await
            };
            tasks.push(tokio::spawn(job.with_subscriber(dispatch.clone())));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
    });
    let events = delivered(&tracker, &memory);
    assert_eq!(events.len(), 24);
    for event in &events {
        let context = event.context();
        assert_eq!(context.get("user_id"), context.get("task"), "{context:?}");
    }
    for user in 0..8 {
        let steps: Vec<_> = events
            .iter()
            .filter(|e| e.context()["user_id"] == user)
            .map(|e| e.data()["step"].clone())
            .collect();
        assert_eq!(steps, [json!(0), json!(1), json!(2)], "user {user}");
    }
}

/// A `fmt` layer's output, for the test below.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[test]
fn it_stacks_beside_fmt_and_env_filter() {
    // A global filter: tracked events below its level are filtered out too.
    let (tracker, memory) = memory_tracker();
    let logs = Buffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::registry()
        .with(EnvFilter::new("info"))
        .with(
            fmt::layer()
                .with_ansi(false)
                .with_writer(move || writer.clone()),
        )
        .with(
            TrackingLayer::builder()
                .with_tracker(tracker.clone())
                .build(),
        );
    tracing::subscriber::with_default(subscriber, || {
        let _span = tracing::info_span!("request", user_id = 7).entered();
        tracing::info!(target: "track.page.view", url = "/a");
        tracing::debug!(target: "track.page.debug", url = "/b");
        tracing::info!(target: "app", "an ordinary log line");
    });
    let events = delivered(&tracker, &memory);
    let names: Vec<_> = events.iter().map(|e| e.name()).collect();
    assert_eq!(names, ["page.view"]);
    assert_eq!(events[0].context()["user_id"], 7);
    let text = logs.text();
    assert!(
        text.contains("track.page.view") && text.contains("url=\"/a\""),
        "{text}"
    );
    assert!(
        text.contains("an ordinary log line") && !text.contains("/b"),
        "{text}"
    );

    // The filter on the fmt layer only: every tracked event is tracked.
    let (tracker, memory) = memory_tracker();
    let logs = Buffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::registry()
        .with(
            fmt::layer()
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .with_filter(EnvFilter::new("info")),
        )
        .with(
            TrackingLayer::builder()
                .with_tracker(tracker.clone())
                .build(),
        );
    tracing::subscriber::with_default(subscriber, || {
        let _span = tracing::debug_span!("request", user_id = 8).entered();
        tracing::info!(target: "track.page.view", url = "/a");
        tracing::debug!(target: "track.page.debug", url = "/b");
    });
    let events = delivered(&tracker, &memory);
    let names: Vec<_> = events.iter().map(|e| e.name()).collect();
    assert_eq!(names, ["page.view", "page.debug"]);
    assert!(events.iter().all(|e| e.context()["user_id"] == 8));
    let text = logs.text();
    assert!(
        text.contains("url=\"/a\"") && !text.contains("/b"),
        "{text}"
    );
}

#[test]
fn without_a_tracker_it_emits_to_the_default_tracker() {
    let memory = InMemoryBackend::new();
    let tracker = Tracker::builder()
        .with_backend("memory", memory.clone())
        .build()
        .unwrap();
    let guard = eventtracking::init(tracker.clone());
    tracing::subscriber::with_default(
        tracing_subscriber::registry().with(TrackingLayer::builder().build()),
        || tracing::info!(target: "track.default", x = 1),
    );
    let events = delivered(&tracker, &memory);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].name(), "default");
    drop(guard);
}
