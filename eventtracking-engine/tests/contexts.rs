//! Context stack semantics: merge order, exit, the guard, closure and async
//! forms, and no bleed between threads or tasks.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::{map, DEADLINE};
use eventtracking::context::{self, ContextSnapshot};
use eventtracking::{ContextError, InMemoryBackend, Tracker};
use serde_json::json;

fn memory_tracker() -> (Tracker, InMemoryBackend, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let memory = InMemoryBackend::new();
    let tracker = Tracker::builder()
        .with_delivery(common::delivery(dir.path()))
        .with_backend("memory", memory.clone())
        .build()
        .unwrap();
    (tracker, memory, dir)
}

#[test]
fn later_contexts_win_and_exiting_restores_outer_values() {
    assert!(context::current().is_empty());
    context::enter_context("a", map(json!({"user_id": 1, "org": "edx"})));
    context::enter_context("b", map(json!({"user_id": 2, "course": "c1"})));
    assert_eq!(
        *context::current(),
        map(json!({"user_id": 2, "org": "edx", "course": "c1"}))
    );
    context::enter_context("c", map(json!({"course": "c2"})));
    assert_eq!(
        *context::current(),
        map(json!({"user_id": 2, "org": "edx", "course": "c2"}))
    );
    // Exiting an outer context while inner ones remain: the inner values still win.
    context::exit_context("a").unwrap();
    assert_eq!(
        *context::current(),
        map(json!({"user_id": 2, "course": "c2"}))
    );
    context::exit_context("c").unwrap();
    assert_eq!(
        *context::current(),
        map(json!({"user_id": 2, "course": "c1"}))
    );
    context::exit_context("b").unwrap();
    assert!(context::current().is_empty());
}

#[test]
fn same_name_twice_then_one_exit_restores_the_outer_value() {
    // The Python original deleted the key here instead of restoring it.
    let tracker = Tracker::builder().build().unwrap();
    tracker
        .enter_context("request", json!({"user_id": 1, "org": "edx"}))
        .unwrap();
    tracker
        .enter_context("request", json!({"user_id": 2}))
        .unwrap();
    assert_eq!(tracker.current_context()["user_id"], 2);
    tracker.exit_context("request").unwrap();
    assert_eq!(
        *tracker.current_context(),
        map(json!({"user_id": 1, "org": "edx"}))
    );
    tracker.exit_context("request").unwrap();
    assert!(tracker.current_context().is_empty());
}

#[test]
fn exiting_an_unknown_context_names_it() {
    let _outer = context::context("outer", json!({"k": 1})).unwrap();
    let err = context::exit_context("nope").unwrap_err();
    assert_eq!(
        err,
        ContextError::NotEntered {
            name: "nope".into(),
            entered: vec!["outer".into()],
        }
    );
    assert!(err.to_string().contains("`nope`"), "{err}");
    // The failed exit changed nothing.
    assert_eq!(context::current()["k"], 1);
    drop(_outer);
    let err = context::exit_context("outer").unwrap_err();
    assert!(
        matches!(&err, ContextError::NotEntered { name, entered } if name == "outer" && entered.is_empty()),
        "{err:?}"
    );
}

#[test]
fn a_context_must_be_an_object() {
    let err = context::context("bad", json!([1, 2])).unwrap_err();
    assert!(
        matches!(&err, ContextError::NotAnObject { name, .. } if name == "bad"),
        "{err:?}"
    );
    let tracker = Tracker::builder().build().unwrap();
    assert!(matches!(
        tracker.enter_context("bad", json!(5)),
        Err(ContextError::NotAnObject {
            kind: "a number",
            ..
        })
    ));
    assert!(matches!(
        tracker.enter_context("bad", context::serialized(vec![1, 2])),
        Err(ContextError::NotAnObject {
            kind: "an array",
            ..
        })
    ));
    assert!(context::current().is_empty());
}

#[test]
fn contexts_from_maps_values_references_and_serializable_structs() {
    #[derive(serde::Serialize)]
    struct Request {
        request_id: &'static str,
    }
    let owned_map = map(json!({"a": 1}));
    let borrowed = json!({"b": 2});
    let _a = context::context("a", owned_map).unwrap();
    let _b = context::context("b", &borrowed).unwrap();
    let borrowed_map = map(json!({"c": 3}));
    let _c = context::context("c", &borrowed_map).unwrap();
    let _d = context::context("d", context::serialized(Request { request_id: "r-1" })).unwrap();
    assert_eq!(
        *context::current(),
        map(json!({"a": 1, "b": 2, "c": 3, "request_id": "r-1"}))
    );
    // References are copied: the caller keeps its values.
    assert_eq!(borrowed["b"], 2);
    assert_eq!(borrowed_map["c"], 3);
}

#[test]
fn entering_the_same_contexts_again_shares_the_merges_made_before() {
    let cycle = || {
        let _outer = context::context("outer", json!({"user_id": 10938})).unwrap();
        let outer = context::current();
        let _inner =
            context::context("inner", json!({"user_id": 11111, "session_id": "s"})).unwrap();
        (outer, context::current())
    };
    let (outer, inner) = cycle();
    assert_eq!(*inner, map(json!({"user_id": 11111, "session_id": "s"})));
    let (outer_again, inner_again) = cycle();
    assert!(Arc::ptr_eq(&outer, &outer_again), "the outer map is reused");
    assert!(Arc::ptr_eq(&inner, &inner_again), "the merge is reused");

    // A different value, or the same values under another name or over
    // other contexts, is a context of its own.
    let _other = context::context("outer", json!({"user_id": 1})).unwrap();
    assert_eq!(context::current()["user_id"], 1);
    let _inner = context::context("inner", json!({"user_id": 11111, "session_id": "s"})).unwrap();
    assert!(!Arc::ptr_eq(&context::current(), &inner));
    assert_eq!(
        *context::current(),
        map(json!({"user_id": 11111, "session_id": "s"}))
    );
    drop(_inner);
    let _renamed = context::context("renamed", json!({"user_id": 10938})).unwrap();
    assert!(!Arc::ptr_eq(&context::current(), &outer));
    assert!(context::exit_context("renamed").is_ok());
}

#[test]
fn exiting_a_middle_context_then_the_inner_one_restores_the_right_merge() {
    context::enter_context("a", map(json!({"k": "a", "a": 1})));
    context::enter_context("b", map(json!({"k": "b", "b": 1})));
    context::enter_context("c", map(json!({"k": "c", "c": 1})));
    context::exit_context("b").unwrap();
    assert_eq!(*context::current(), map(json!({"k": "c", "a": 1, "c": 1})));
    context::exit_context("c").unwrap();
    assert_eq!(*context::current(), map(json!({"k": "a", "a": 1})));
    context::exit_context("a").unwrap();
    assert!(context::current().is_empty());
}

#[test]
fn guard_restores_on_drop() {
    let _outer = context::context("outer", json!({"user_id": 1})).unwrap();
    {
        let _inner = context::context("inner", json!({"user_id": 2, "extra": true})).unwrap();
        assert_eq!(context::current()["user_id"], 2);
        assert_eq!(context::current()["extra"], true);
    }
    assert_eq!(*context::current(), map(json!({"user_id": 1})));
    drop(_outer);
    assert!(context::current().is_empty());
}

#[test]
fn guards_dropped_out_of_order_remove_their_own_frame() {
    let outer = context::context("ctx", json!({"v": "outer", "a": 1})).unwrap();
    let inner = context::context("ctx", json!({"v": "inner"})).unwrap();
    drop(outer);
    assert_eq!(*context::current(), map(json!({"v": "inner"})));
    drop(inner);
    assert!(context::current().is_empty());
}

#[test]
fn with_context_restores_after_the_closure_and_on_panic() {
    let _outer = context::context("outer", json!({"user_id": 1})).unwrap();
    let seen = context::with_context("inner", json!({"user_id": 2}), || {
        context::current()["user_id"].clone()
    })
    .unwrap();
    assert_eq!(seen, 2);
    assert_eq!(*context::current(), map(json!({"user_id": 1})));

    let result = std::panic::catch_unwind(|| {
        context::with_context("inner", json!({"user_id": 3}), || {
            assert_eq!(context::current()["user_id"], 3);
            panic!("boom");
        })
    });
    assert!(result.is_err());
    assert_eq!(*context::current(), map(json!({"user_id": 1})));
    assert!(context::exit_context("inner").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_context_survives_await_on_a_multi_thread_runtime() {
    let result = context::in_context("request", json!({"user_id": 7}), async {
        let mut seen = Vec::new();
        for i in 0..20u64 {
            if i % 2 == 0 {
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            seen.push(context::current()["user_id"].clone());
            // A nested async context sees both and is gone afterwards.
            let inner = context::in_context("step", json!({"step": i}), async {
                tokio::task::yield_now().await;
                (*context::current()).clone()
            })
            .await
            .unwrap();
            assert_eq!(inner, map(json!({"user_id": 7, "step": i})));
            assert!(context::current().get("step").is_none());
        }
        seen
    })
    .await
    .unwrap();
    assert_eq!(result, vec![json!(7); 20]);
    assert!(context::current().get("user_id").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_bleed_between_one_hundred_concurrent_tasks() {
    let (tracker, memory, _dir) = memory_tracker();
    const TASKS: u64 = 100;
    const STEPS: u64 = 10;
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let tracker = tracker.clone();
        handles.push(tokio::spawn(async move {
            let work = async {
                let mut rng = fastrand::Rng::with_seed(task);
                for step in 0..STEPS {
                    tokio::time::sleep(Duration::from_micros(rng.u64(0..3_000))).await;
                    tracker
                        .emit("task.step", json!({"task": task, "step": step}))
                        .unwrap();
                    if rng.bool() {
                        tokio::task::yield_now().await;
                    }
                    {
                        // A synchronous guard inside the task scope stays in the task.
                        let _g = tracker.context("inner", json!({"step": step})).unwrap();
                        tracker
                            .emit("task.inner", json!({"task": task, "step": step}))
                            .unwrap();
                    }
                }
            };
            tracker
                .in_context("request", json!({"user_id": task}), work)
                .await
                .unwrap();
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
    let report = tracker.flush_async(DEADLINE).await;
    assert!(report.complete);
    let events = memory.events();
    assert_eq!(events.len() as u64, TASKS * STEPS * 2);
    let mut per_task: HashMap<u64, u64> = HashMap::new();
    for event in &events {
        let task = event.data()["task"].as_u64().unwrap();
        let step = &event.data()["step"];
        let expected = match event.name() {
            "task.step" => map(json!({"user_id": task})),
            "task.inner" => map(json!({"user_id": task, "step": step})),
            other => panic!("unexpected event {other}"),
        };
        assert_eq!(event.context(), &expected, "event {:?}", event.to_value());
        *per_task.entry(task).or_default() += 1;
    }
    assert_eq!(per_task.len() as u64, TASKS);
    assert!(per_task.values().all(|n| *n == STEPS * 2));
}

#[test]
fn no_bleed_between_threads() {
    let (tracker, memory, _dir) = memory_tracker();
    let threads: Vec<_> = (0..8u64)
        .map(|thread| {
            let tracker = tracker.clone();
            std::thread::spawn(move || {
                tracker
                    .enter_context("thread", json!({"user_id": thread}))
                    .unwrap();
                for step in 0..100u64 {
                    if step % 10 == 0 {
                        std::thread::sleep(Duration::from_micros(200));
                    } else {
                        std::thread::yield_now();
                    }
                    tracker
                        .emit("thread.step", json!({"thread": thread, "step": step}))
                        .unwrap();
                }
                tracker.exit_context("thread").unwrap();
                assert!(tracker.current_context().is_empty());
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(tracker.flush(DEADLINE).complete);
    let events = memory.events();
    assert_eq!(events.len(), 800);
    for event in &events {
        assert_eq!(
            event.context(),
            &map(json!({"user_id": event.data()["thread"]})),
        );
    }
    // The test thread never entered anything.
    assert!(context::current().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_scope_carries_contexts_into_spawned_tasks() {
    let snapshot = {
        let _job = context::context("job", json!({"job_id": 42})).unwrap();
        ContextSnapshot::current()
    };
    assert!(context::current().is_empty());
    assert_eq!(snapshot.merged(), &map(json!({"job_id": 42})));

    let carried = tokio::spawn(snapshot.clone().scope(async {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
        (*context::current()).clone()
    }))
    .await
    .unwrap();
    assert_eq!(carried, map(json!({"job_id": 42})));

    // A plain spawn does not inherit anything.
    let plain = tokio::spawn(async { (*context::current()).clone() })
        .await
        .unwrap();
    assert!(plain.is_empty(), "{plain:?}");

    // A snapshot scope carries the current (task) contexts into a spawned task.
    let spawned = context::in_context("request", json!({"user_id": 5}), async {
        tokio::spawn(ContextSnapshot::current().scope(async {
            tokio::task::yield_now().await;
            (*context::current()).clone()
        }))
        .await
        .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(spawned, map(json!({"user_id": 5})));
}

#[test]
fn snapshot_attach_carries_contexts_into_threads_and_restores_theirs() {
    let _ctx = context::context("job", json!({"job_id": 42, "shared": "parent"})).unwrap();
    let snapshot = ContextSnapshot::current();
    std::thread::spawn(move || {
        let _own = context::context("own", json!({"shared": "child", "mine": 1})).unwrap();
        {
            let _attached = snapshot.attach();
            assert_eq!(
                *context::current(),
                map(json!({"job_id": 42, "shared": "parent"}))
            );
            // Contexts entered while attached are the thread's own.
            let _extra = context::context("extra", json!({"x": 1})).unwrap();
            assert_eq!(context::current()["x"], 1);
        }
        assert_eq!(
            *context::current(),
            map(json!({"shared": "child", "mine": 1}))
        );
    })
    .join()
    .unwrap();
    // The parent is untouched.
    assert_eq!(
        *context::current(),
        map(json!({"job_id": 42, "shared": "parent"}))
    );
}

#[test]
fn events_carry_the_context_of_their_emit() {
    let (tracker, memory, _dir) = memory_tracker();
    tracker.emit("bare", json!({})).unwrap();
    {
        let _a = tracker.context("a", json!({"user_id": 1})).unwrap();
        tracker.emit("in.a", json!({})).unwrap();
        context::with_context("b", json!({"user_id": 2}), || {
            tracker.emit("in.b", json!({})).unwrap();
        })
        .unwrap();
        tracker.emit("in.a.again", json!({})).unwrap();
    }
    let report = tracker.shutdown(DEADLINE).unwrap();
    assert_eq!(report.backends["memory"].delivered, 4);
    let contexts: Vec<_> = memory
        .events()
        .iter()
        .map(|e| (e.name().to_owned(), e.context().clone()))
        .collect();
    assert_eq!(
        contexts,
        vec![
            ("bare".to_owned(), map(json!({}))),
            ("in.a".to_owned(), map(json!({"user_id": 1}))),
            ("in.b".to_owned(), map(json!({"user_id": 2}))),
            ("in.a.again".to_owned(), map(json!({"user_id": 1}))),
        ]
    );
}

/// A scoped future dropped before it completes (a cancelled request) is
/// dropped inside its contexts: clean-up code that emits still says whose
/// request it was.
#[test]
fn a_scoped_future_is_dropped_inside_its_contexts() {
    struct RecordsContextOnDrop(std::sync::Arc<std::sync::Mutex<Option<serde_json::Value>>>);
    impl Drop for RecordsContextOnDrop {
        fn drop(&mut self) {
            *self.0.lock().unwrap() = context::current().get("request_id").cloned();
        }
    }
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
    let probe = RecordsContextOnDrop(seen.clone());
    let future = context::in_context_map("request", map(json!({"request_id": 7})), async move {
        let _probe = probe;
        std::future::pending::<()>().await;
    });
    drop(future);
    assert_eq!(*seen.lock().unwrap(), Some(json!(7)));
    assert!(context::current().get("request_id").is_none());
}
