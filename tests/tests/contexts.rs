//! Context stack semantics, scoped and async forms, and no bleed between tasks or threads.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use eventtracking::context::{self, ContextSnapshot};
use eventtracking::{ContextError, InMemoryBackend, Tracker};
use serde_json::json;

fn memory_tracker() -> (Tracker, InMemoryBackend) {
    let memory = InMemoryBackend::new();
    let tracker = Tracker::builder()
        .with_backend("memory", memory.clone())
        .build()
        .unwrap();
    (tracker, memory)
}

#[test]
fn later_contexts_win_and_exiting_restores_the_outer_value() {
    let t = Tracker::builder().build().unwrap();
    t.enter_context("a", json!({"user_id": 1, "org": "x"}))
        .unwrap();
    t.enter_context("b", json!({"user_id": 2})).unwrap();
    assert_eq!(
        *t.current_context(),
        *json!({"user_id": 2, "org": "x"}).as_object().unwrap()
    );
    // Same name twice, exit once: the outer value comes back (the Python original deleted the key).
    t.enter_context("b", json!({"user_id": 3})).unwrap();
    t.exit_context("b").unwrap();
    assert_eq!(t.current_context()["user_id"], 2);
    t.exit_context("b").unwrap();
    assert_eq!(t.current_context()["user_id"], 1);
    // Exiting an inner name out of order keeps the rest.
    t.enter_context("c", json!({"k": "c"})).unwrap();
    t.exit_context("a").unwrap();
    assert_eq!(
        *t.current_context(),
        *json!({"k": "c"}).as_object().unwrap()
    );
    t.exit_context("c").unwrap();
    assert!(t.current_context().is_empty());
}

#[test]
fn exiting_an_unknown_context_is_an_error_naming_it() {
    let t = Tracker::builder().build().unwrap();
    t.enter_context("outer", json!({"a": 1})).unwrap();
    let err = t.exit_context("nope").unwrap_err();
    assert_eq!(
        err,
        ContextError::NotEntered {
            name: "nope".into(),
            entered: vec!["outer".into()]
        }
    );
    assert!(err.to_string().contains("nope"));
    t.exit_context("outer").unwrap();
    assert!(t.enter_context("bad", json!([1, 2])).is_err());
}

#[test]
fn guard_and_closure_forms_restore_on_exit_and_on_panic() {
    let t = Tracker::builder().build().unwrap();
    {
        let _guard = t.context("g", json!({"user_id": 5})).unwrap();
        assert_eq!(t.current_context()["user_id"], 5);
    }
    assert!(t.current_context().is_empty());
    let inside = context::with_context("c", json!({"user_id": 6}), || {
        context::current()["user_id"].clone()
    })
    .unwrap();
    assert_eq!(inside, 6);
    let result = std::panic::catch_unwind(|| {
        context::with_context("p", json!({"user_id": 7}), || panic!("boom")).unwrap()
    });
    assert!(result.is_err());
    assert!(
        context::current().is_empty(),
        "a panic still exits the context"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_context_survives_await_and_never_bleeds_between_100_tasks() {
    let (tracker, memory) = memory_tracker();
    let mut handles = Vec::new();
    for task in 0..100u64 {
        let tracker = tracker.clone();
        handles.push(tokio::spawn(async move {
            tracker
                .in_context("request", json!({"user_id": task}), async {
                    for step in 0..5 {
                        tracker
                            .emit("step", json!({"task": task, "step": step}))
                            .unwrap();
                        tokio::time::sleep(Duration::from_millis(fastrand_ms(task, step))).await;
                        tokio::task::yield_now().await;
                    }
                })
                .await
                .unwrap();
            // Outside the scope the task sees no context.
            assert!(context::current().get("user_id").is_none());
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
    tracker.flush_async(common::WAIT).await;
    let events = memory.events();
    assert_eq!(events.len(), 500);
    let mut per_task: HashMap<u64, usize> = HashMap::new();
    for event in &events {
        assert_eq!(
            event.context()["user_id"],
            event.data()["task"],
            "bleed: {event:?}"
        );
        *per_task
            .entry(event.data()["task"].as_u64().unwrap())
            .or_default() += 1;
    }
    assert!(per_task.values().all(|n| *n == 5) && per_task.len() == 100);
}

fn fastrand_ms(task: u64, step: u64) -> u64 {
    (task * 7 + step * 13) % 5
}

#[test]
fn threads_have_their_own_stacks() {
    let (tracker, memory) = memory_tracker();
    let threads: Vec<_> = (0..8u64)
        .map(|n| {
            let tracker = tracker.clone();
            std::thread::spawn(move || {
                tracker
                    .enter_context("thread", json!({"thread": n}))
                    .unwrap();
                for _ in 0..100 {
                    tracker.emit("work", json!({"n": n})).unwrap();
                }
                tracker.exit_context("thread").unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    tracker.flush(common::WAIT);
    let events = memory.events();
    assert_eq!(events.len(), 800);
    assert!(events
        .iter()
        .all(|e| e.context()["thread"] == e.data()["n"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_carry_contexts_into_spawned_tasks_and_threads() {
    let (tracker, memory) = memory_tracker();
    context::in_context("job", json!({"job_id": 42}), async {
        // Plain tokio::spawn does not inherit task-locals...
        let plain = tokio::spawn(async { context::current().get("job_id").cloned() });
        assert_eq!(plain.await.unwrap(), None);
        // ...a snapshot scope and context::spawn do.
        let scoped = tokio::spawn(
            ContextSnapshot::current().scope(async { context::current()["job_id"].clone() }),
        );
        assert_eq!(scoped.await.unwrap(), 42);
        let spawned = context::spawn(async { context::current()["job_id"].clone() });
        assert_eq!(spawned.await.unwrap(), 42);
        let snapshot = ContextSnapshot::current();
        let t = tracker.clone();
        std::thread::spawn(move || {
            let _attached = snapshot.attach();
            t.emit("from.thread", json!({})).unwrap();
        })
        .join()
        .unwrap();
    })
    .await
    .unwrap();
    tracker.flush_async(common::WAIT).await;
    assert_eq!(memory.events()[0].context()["job_id"], 42);
}

#[test]
fn attach_restores_what_the_thread_had() {
    let _mine = context::context("mine", json!({"a": 1})).unwrap();
    let other = std::thread::spawn(|| {
        let _ctx = context::context("other", json!({"b": 2})).unwrap();
        ContextSnapshot::current()
    })
    .join()
    .unwrap();
    {
        let _attached = other.attach();
        assert_eq!(*context::current(), *json!({"b": 2}).as_object().unwrap());
    }
    assert_eq!(*context::current(), *json!({"a": 1}).as_object().unwrap());
}
