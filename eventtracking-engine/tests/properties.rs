//! Property tests (proptest): the context stack against a model, the
//! built-in processors, and the config round trip. Case counts stay modest
//! (`PROPTEST_CASES` raises them).

use std::sync::Arc;

use eventtracking::context::{self, ContextSnapshot};
use eventtracking::{Config, Enrich, Event, JsonMap, NameFilter, Processor, Redact, Sample};
use proptest::prelude::*;
use serde_json::{json, Value};

fn cases(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        // Failures are printed with their minimal input; no files written.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------
// The context stack against a Vec-of-frames model.
// ---------------------------------------------------------------------------

/// Steps of synchronous code: they never hold a guard across `.await`.
#[derive(Debug, Clone)]
enum SyncOp {
    Enter(&'static str, JsonMap),
    /// Exit by name, entered or not.
    Exit(&'static str),
    /// `context::context` guard around the inner steps.
    Guard(&'static str, JsonMap, Vec<SyncOp>),
}

/// Steps of async code and of threads.
#[derive(Debug, Clone)]
enum Op {
    Sync(SyncOp),
    /// `context::in_context` around the inner steps (a task-local stack).
    InContext(&'static str, JsonMap, Vec<Op>),
    /// `context::spawn`: a tokio task with a copy of the current stack.
    Spawn(Vec<Op>),
    /// `ContextSnapshot::current().scope(..)` of the inner steps, in place.
    Scope(Vec<Op>),
    /// `tokio::task::yield_now`, so that tasks move between worker threads.
    Yield,
    /// New threads, run at the same time: with `attach` each starts from a
    /// snapshot of the current stack, else from an empty one.
    Threads(bool, Vec<Vec<Op>>),
}

/// The model: frames in order (innermost last), each with its guard's id.
#[derive(Debug, Clone, Default)]
struct Model {
    frames: Vec<(u64, &'static str, JsonMap)>,
    next_id: u64,
}

impl Model {
    fn merged(&self) -> JsonMap {
        let mut merged = JsonMap::new();
        for (_, _, values) in &self.frames {
            for (k, v) in values {
                merged.insert(k.clone(), v.clone());
            }
        }
        merged
    }

    fn push(&mut self, name: &'static str, values: JsonMap) -> u64 {
        self.next_id += 1;
        self.frames.push((self.next_id, name, values));
        self.next_id
    }

    fn exit(&mut self, name: &str) -> bool {
        match self.frames.iter().rposition(|(_, n, _)| *n == name) {
            Some(index) => {
                self.frames.remove(index);
                true
            }
            None => false,
        }
    }

    fn drop_guard(&mut self, id: u64) {
        self.frames.retain(|(frame, _, _)| *frame != id);
    }

    fn check(&self, step: &str) {
        assert_eq!(*context::current(), self.merged(), "after {step}");
    }
}

fn run_sync(ops: &[SyncOp], model: &mut Model) {
    for op in ops {
        match op {
            SyncOp::Enter(name, values) => {
                context::enter_context(name, values.clone());
                model.push(name, values.clone());
            }
            SyncOp::Exit(name) => {
                let result = context::exit_context(name);
                let expected = model.exit(name);
                assert_eq!(result.is_ok(), expected, "exit {name}: {result:?}");
                if let Err(error) = result {
                    assert!(error.to_string().contains(name), "{error}");
                }
            }
            SyncOp::Guard(name, values, inner) => {
                let guard = context::context(name, Value::Object(values.clone())).unwrap();
                let id = model.push(name, values.clone());
                model.check("guard");
                run_sync(inner, model);
                drop(guard);
                model.drop_guard(id);
            }
        }
        model.check(&format!("{op:?}"));
    }
}

/// Runs the steps as one future (Send, so it may run inside `tokio::spawn`),
/// checking `context::current()` after each; returns the model as it ends.
fn run(ops: Vec<Op>, mut model: Model) -> futures_box::BoxFuture<Model> {
    Box::pin(async move {
        for op in ops {
            let step = format!("{op:?}");
            match op {
                Op::Sync(op) => run_sync(&[op], &mut model),
                Op::InContext(name, values, inner) => {
                    let mut scoped = model.clone();
                    scoped.push(name, values.clone());
                    context::in_context(name, Value::Object(values), async move {
                        scoped.check("in_context");
                        run(inner, scoped).await
                    })
                    .await
                    .unwrap();
                }
                Op::Spawn(inner) => {
                    let copy = model.clone();
                    tokio::spawn(ContextSnapshot::current().scope(run(inner, copy)))
                        .await
                        .unwrap();
                }
                Op::Scope(inner) => {
                    ContextSnapshot::current()
                        .scope(run(inner, model.clone()))
                        .await;
                }
                Op::Yield => tokio::task::yield_now().await,
                Op::Threads(attach, bodies) => {
                    let threads: Vec<_> = bodies
                        .into_iter()
                        .map(|inner| {
                            let snapshot = ContextSnapshot::current();
                            let start = if attach {
                                model.clone()
                            } else {
                                Model::default()
                            };
                            std::thread::spawn(move || {
                                let _attached = attach.then(|| snapshot.attach());
                                start.check("thread start");
                                tokio::runtime::Builder::new_current_thread()
                                    .build()
                                    .unwrap()
                                    .block_on(run(inner, start));
                            })
                        })
                        .collect();
                    for thread in threads {
                        if let Err(panic) = thread.join() {
                            std::panic::resume_unwind(panic);
                        }
                    }
                }
            }
            // Whatever happened inside, the outer stack is as the model says.
            model.check(&step);
        }
        model
    })
}

/// `Pin<Box<dyn Future + Send>>` without the `futures` crate.
mod futures_box {
    pub(crate) type BoxFuture<T> =
        std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'static>>;
}

fn name() -> impl Strategy<Value = &'static str> {
    prop::sample::select(&["a", "b", "c"][..])
}

fn values() -> impl Strategy<Value = JsonMap> {
    prop::collection::btree_map(
        prop::sample::select(&["user_id", "org", "course"][..]),
        0..100i64,
        0..3,
    )
    .prop_map(|m| {
        m.into_iter()
            .map(|(k, v)| (k.to_owned(), json!(v)))
            .collect()
    })
}

fn sync_op() -> impl Strategy<Value = SyncOp> {
    let leaf = prop_oneof![
        3 => (name(), values()).prop_map(|(n, v)| SyncOp::Enter(n, v)),
        2 => name().prop_map(SyncOp::Exit),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        (name(), values(), prop::collection::vec(inner, 0..4))
            .prop_map(|(n, v, ops)| SyncOp::Guard(n, v, ops))
    })
}

fn op() -> impl Strategy<Value = Op> {
    let leaf = prop_oneof![
        4 => sync_op().prop_map(Op::Sync),
        1 => Just(Op::Yield),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            (name(), values(), prop::collection::vec(inner.clone(), 0..4))
                .prop_map(|(n, v, ops)| Op::InContext(n, v, ops)),
            prop::collection::vec(inner.clone(), 0..4).prop_map(Op::Spawn),
            prop::collection::vec(inner.clone(), 0..4).prop_map(Op::Scope),
            (
                any::<bool>(),
                prop::collection::vec(prop::collection::vec(inner, 0..4), 1..3)
            )
                .prop_map(|(attach, bodies)| Op::Threads(attach, bodies)),
        ]
    })
}

proptest! {
    #![proptest_config(cases(64))]

    /// Synchronous code on a plain thread.
    #[test]
    fn the_thread_stack_follows_the_model(ops in prop::collection::vec(sync_op(), 0..12)) {
        // Each case starts empty and leaves the test thread as it was.
        let _clean = ContextSnapshot::default().attach();
        let mut model = Model::default();
        run_sync(&ops, &mut model);
    }

    /// Async code, threads and tasks on a multi-threaded runtime, from a
    /// thread-level start (the test thread) and from inside a spawned task.
    #[test]
    fn task_and_thread_stacks_follow_the_model(
        prefix in prop::collection::vec(sync_op(), 0..4),
        ops in prop::collection::vec(op(), 0..8),
    ) {
        let _clean = ContextSnapshot::default().attach();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let mut model = Model::default();
        run_sync(&prefix, &mut model);
        let after = runtime.block_on(run(ops.clone(), model));
        after.check("block_on");
        // The same steps inside a task that starts from the current stack.
        let start = after.clone();
        runtime.block_on(async { tokio::spawn(ContextSnapshot::current().scope(run(ops, start))).await.unwrap() });
        after.check("spawned run");
    }
}

// ---------------------------------------------------------------------------
// Processors.
// ---------------------------------------------------------------------------

fn event_name() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(&["nav", "a", "b", "req", "x1"][..]),
        1..4,
    )
    .prop_map(|parts| parts.join("."))
}

fn glob() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(&["nav", "a", "b", "req", ".", "*", "?", "[ab]", "{a,b}", "["][..]),
        1..5,
    )
    .prop_map(|parts| parts.concat())
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-z]{0,4}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map(prop::sample::select(&["a", "b", "c"][..]), inner, 0..4)
                .prop_map(|m| Value::Object(
                    m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
                )),
        ]
    })
}

fn redact_path() -> impl Strategy<Value = String> {
    (
        prop::sample::select(&["data", "context"][..]),
        prop::collection::vec(prop::sample::select(&["a", "b", "c"][..]), 1..4),
    )
        .prop_map(|(root, rest)| format!("{root}.{}", rest.join(".")))
}

fn lookup<'a>(event: &'a Event, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut value = match parts.next()? {
        "data" => event.data(),
        _ => event.context().get(parts.next()?)?,
    };
    for key in parts {
        value = value.as_object()?.get(key)?;
    }
    Some(value)
}

/// The model of one redaction: walk objects only; replace or remove the leaf.
fn redact_model(target: &mut Value, keys: &[&str], replacement: Option<&Value>) {
    let Some((last, parents)) = keys.split_last() else {
        return;
    };
    let mut value = target;
    for key in parents {
        match value.as_object_mut().and_then(|m| m.get_mut(*key)) {
            Some(next) => value = next,
            None => return,
        }
    }
    if let Some(map) = value.as_object_mut() {
        match replacement {
            None => {
                map.remove(*last);
            }
            Some(replacement) => {
                if let Some(slot) = map.get_mut(*last) {
                    *slot = replacement.clone();
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(cases(256))]

    /// `allow` and `block` of the same patterns split every name in two.
    #[test]
    fn allow_and_block_partition_names(
        globs in prop::collection::vec(glob(), 0..3),
        regex in prop::option::of(prop::sample::select(&["^nav", "req$", "a\\.b", "("][..])),
        names in prop::collection::vec(event_name(), 1..8),
    ) {
        let allow = NameFilter::allow(&globs, regex);
        let block = NameFilter::block(&globs, regex);
        prop_assert_eq!(allow.is_ok(), block.is_ok());
        let (Ok(allow), Ok(block)) = (allow, block) else { return Ok(()) };
        for name in names {
            let event = Arc::new(Event::new(&name, Value::Null).unwrap());
            let kept_by_allow = allow.process(event.clone()).unwrap().is_some();
            let kept_by_block = block.process(event.clone()).unwrap().is_some();
            prop_assert_ne!(kept_by_allow, kept_by_block, "{}", name);
            // A set of patterns matches what one of its patterns matches.
            let any_one = globs.iter().any(|g| {
                NameFilter::allow(std::slice::from_ref(g), None)
                    .is_ok_and(|f| f.process(event.clone()).unwrap().is_some())
            }) || regex.is_some_and(|r| {
                NameFilter::allow(&[], Some(r))
                    .is_ok_and(|f| f.process(event.clone()).unwrap().is_some())
            });
            prop_assert_eq!(kept_by_allow, any_one, "{}", name);
        }
    }

    /// A literal glob matches its own name.
    #[test]
    fn a_name_is_a_glob_matching_itself(name in event_name()) {
        let allow = NameFilter::allow(std::slice::from_ref(&name), None).unwrap();
        let event = Arc::new(Event::new(&name, Value::Null).unwrap());
        prop_assert!(allow.process(event).unwrap().is_some());
    }

    /// After `redact`, no redacted path holds anything but the replacement
    /// (or nothing, with `remove`), and the rest of the event is unchanged.
    #[test]
    fn redact_leaves_no_value_at_its_paths(
        data in json_value(),
        context in prop::collection::btree_map(prop::sample::select(&["a", "b", "c"][..]), json_value(), 0..3),
        paths in prop::collection::vec(redact_path(), 1..4),
        remove in any::<bool>(),
        replacement in prop_oneof![Just(json!("[REDACTED]")), Just(Value::Null), Just(json!(0))],
    ) {
        let context: JsonMap = context.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        let mut event = Event::new("login", data.clone()).unwrap();
        *event.context_mut() = context.clone();
        let event = Arc::new(event);
        let redact = Redact::new(&paths, replacement.clone(), remove).unwrap();
        let out = redact.process(event.clone()).unwrap().unwrap();
        for path in &paths {
            match lookup(&out, path) {
                None => {}
                Some(value) => {
                    prop_assert!(!remove, "{} still present: {:?}", path, value);
                    prop_assert_eq!(value, &replacement, "{}", path);
                }
            }
        }
        let (mut data_model, mut context_model) = (data, Value::Object(context));
        for path in &paths {
            let keys: Vec<&str> = path.split('.').collect();
            let target = if keys[0] == "data" { &mut data_model } else { &mut context_model };
            redact_model(target, &keys[1..], (!remove).then_some(&replacement));
        }
        prop_assert_eq!(out.data(), &data_model);
        prop_assert_eq!(&Value::Object(out.context().clone()), &context_model);
        prop_assert_eq!((out.id(), out.name(), out.timestamp()), (event.id(), event.name(), event.timestamp()));
    }

    /// `sample` decides by the event id alone, the same way every time, and
    /// what a lower rate keeps a higher rate keeps too.
    #[test]
    fn sample_keeps_a_stable_nested_subset_by_id(
        ids in prop::collection::vec(any::<u128>(), 1..32),
        low in 0.0..=1.0f64,
        high in 0.0..=1.0f64,
        names in (event_name(), event_name()),
    ) {
        let (low, high) = if low <= high { (low, high) } else { (high, low) };
        let (low_sample, high_sample) = (Sample::new(low).unwrap(), Sample::new(high).unwrap());
        let make = |id: u128, name: &str, data: Value| {
            Arc::new(Event::from_parts(
                uuid::Uuid::from_u128(id),
                Arc::from(name),
                std::time::SystemTime::UNIX_EPOCH,
                Arc::default(),
                data,
            ))
        };
        for id in ids {
            let event = make(id, &names.0, json!(1));
            let other = make(id, &names.1, json!({"x": 2}));
            let kept_low = low_sample.process(event.clone()).unwrap().is_some();
            prop_assert_eq!(kept_low, Sample::new(low).unwrap().process(other).unwrap().is_some());
            prop_assert_eq!(kept_low, low_sample.process(event.clone()).unwrap().is_some());
            let kept_high = high_sample.process(event.clone()).unwrap().is_some();
            prop_assert!(!kept_low || kept_high, "kept at {} but not at {}", low, high);
            prop_assert!(Sample::new(1.0).unwrap().process(event.clone()).unwrap().is_some());
            prop_assert!(Sample::new(0.0).unwrap().process(event).unwrap().is_none());
        }
    }

    /// `enrich` adds every field; without `overwrite` the event's own values win.
    #[test]
    fn enrich_adds_fields_and_respects_overwrite(
        fields in prop::collection::btree_map(prop::sample::select(&["a", "b", "c"][..]), json_value(), 0..3),
        context in prop::collection::btree_map(prop::sample::select(&["b", "c", "d"][..]), json_value(), 0..3),
        overwrite in any::<bool>(),
    ) {
        let fields: JsonMap = fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        let context: JsonMap = context.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        let mut event = Event::new("a", Value::Null).unwrap();
        *event.context_mut() = context.clone();
        let out = Enrich::new(fields.clone(), overwrite).process(Arc::new(event)).unwrap().unwrap();
        for (key, value) in &fields {
            let expected = match context.get(key) {
                Some(own) if !overwrite => own,
                _ => value,
            };
            prop_assert_eq!(out.context().get(key), Some(expected), "{}", key);
        }
        for (key, value) in &context {
            if !fields.contains_key(key) {
                prop_assert_eq!(out.context().get(key), Some(value));
            }
        }
        prop_assert_eq!(out.context().len(), fields.keys().chain(context.keys()).collect::<std::collections::BTreeSet<_>>().len());
    }
}

/// Over many real (UUIDv7) ids, `sample` keeps about its rate.
#[test]
fn sample_keeps_about_its_rate() {
    let events: Vec<_> = (0..4000)
        .map(|_| Arc::new(Event::new("a", Value::Null).unwrap()))
        .collect();
    for rate in [0.1, 0.5, 0.9] {
        let sample = Sample::new(rate).unwrap();
        let kept = events
            .iter()
            .filter(|e| sample.process((*e).clone()).unwrap().is_some())
            .count();
        let fraction = kept as f64 / events.len() as f64;
        // 4000 draws: the standard deviation is below 0.008.
        assert!(
            (fraction - rate).abs() < 0.05,
            "rate {rate}: kept {fraction}"
        );
    }
}

// ---------------------------------------------------------------------------
// The config round trip.
// ---------------------------------------------------------------------------

fn toml_key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z_]{1,8}",
        1 => "[a-z.\\- \"'\\\\]{0,6}",
        1 => any::<String>().prop_map(|s| s.chars().take(6).collect()),
    ]
}

fn toml_value() -> impl Strategy<Value = toml::Value> {
    let leaf = prop_oneof![
        any::<String>().prop_map(toml::Value::String),
        any::<i64>().prop_map(toml::Value::Integer),
        // Finite floats: NaN equals nothing, not even itself.
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(toml::Value::Float),
        any::<bool>().prop_map(toml::Value::Boolean),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(toml::Value::Array),
            toml_table(inner).prop_map(toml::Value::Table),
        ]
    })
}

fn toml_table(value: impl Strategy<Value = toml::Value>) -> impl Strategy<Value = toml::Table> {
    prop::collection::btree_map(toml_key(), value, 0..4).prop_map(|m| m.into_iter().collect())
}

fn component_table() -> impl Strategy<Value = toml::Table> {
    ("[a-z]{1,8}", toml_table(toml_value())).prop_map(|(engine, mut table)| {
        table.insert("engine".into(), toml::Value::String(engine));
        table
    })
}

fn config() -> impl Strategy<Value = Config> {
    (
        toml_table(toml_value()),
        prop::collection::vec(component_table(), 0..3),
        prop::collection::btree_map(toml_key(), component_table(), 0..3),
        prop::option::of(component_table()),
    )
        .prop_map(|(delivery, processors, backends, source)| {
            // Built through its serde form: the fields are private.
            let mut table = toml::Table::new();
            table.insert("delivery".into(), toml::Value::Table(delivery));
            let processors = processors.into_iter().map(toml::Value::Table).collect();
            table.insert("processors".into(), toml::Value::Array(processors));
            let backends = backends
                .into_iter()
                .map(|(name, backend)| (name, toml::Value::Table(backend)))
                .collect();
            table.insert("backends".into(), toml::Value::Table(backends));
            if let Some(source) = source {
                table.insert("source".into(), toml::Value::Table(source));
            }
            <Config as serde::Deserialize>::deserialize(toml::Value::Table(table)).unwrap()
        })
}

proptest! {
    #![proptest_config(cases(128))]

    /// A config written as TOML reads back equal.
    #[test]
    fn config_round_trips_through_toml(config in config()) {
        let text = toml::to_string(&config).unwrap();
        let back = Config::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        prop_assert_eq!(back, config, "{}", text);
    }
}
