//! The relay as a library (`eventtracking_cli::relay`), against the real broker: two relays in one group
//! split the partitions (with a rebalance mid-way) and together deliver every
//! event; malformed messages are dead-lettered with topic, partition and
//! offset while their neighbours are delivered; a restart resumes after the
//! last commit; an event lost in the tracker stops the relay without
//! committing past it; another emitter's losses on the same tracker do not
//! touch the relay; a dead-lettered event is committed past.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{brokers, require_broker, unique};
use eventtracking::registry::{build_backend, ComponentConfig};
use eventtracking::{
    Backend, DeadLetterRecord, DeliveryConfig, Event, InMemoryBackend, ProcessResult, Processor,
    ProcessorError, Tracker,
};
use eventtracking_cli::relay::{
    Relay, RelayBuilder, RelayMonitor, RelayOptions, RelayReport, StopHandle, StopReason,
    MALFORMED_EVENT_NAME,
};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

/// Fast batching and a dead-letter file in `dir`.
fn delivery(dir: &std::path::Path) -> DeliveryConfig {
    DeliveryConfig::default()
        .with_linger(Duration::from_millis(5))
        .with_initial_backoff(Duration::from_millis(50))
        .with_dead_letter_path(dir.join("dead-letter.jsonl"))
}

/// The Kafka backend built through the registry, as a config file would.
fn kafka_backend(options: serde_json::Value) -> Box<dyn Backend> {
    require_broker();
    let mut options = options.as_object().unwrap().clone();
    options.entry("brokers").or_insert(json!(brokers()));
    build_backend(&ComponentConfig::new("backends.stream", "kafka", options)).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Creates `topic` with `partitions` partitions (not left to auto-creation,
/// whose partition count depends on the broker).
fn create_topic(topic: &str, partitions: i32) {
    require_broker();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    let results = runtime()
        .block_on(admin.create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        ))
        .expect("create topic");
    for result in results {
        result.expect("create topic");
    }
}

/// Source options for tests: a short session timeout, so that joins (held
/// about half of it by Tansu) and a dead member's expiry stay quick.
fn options(topic: &str, group: &str) -> RelayOptions {
    RelayOptions::new(brokers(), [topic], group)
        .with_catalog_topic("")
        .with_property("session.timeout.ms", "3000")
        .with_property("heartbeat.interval.ms", "500")
}

/// A relay delivering into its own in-memory backend.
fn relay(
    topic: &str,
    group: &str,
    dir: &std::path::Path,
    configure: impl FnOnce(RelayBuilder) -> RelayBuilder,
) -> (Relay, InMemoryBackend) {
    let memory = InMemoryBackend::new();
    let tracker = Tracker::builder()
        .with_delivery(delivery(dir))
        .with_backend("memory", memory.clone())
        .build()
        .unwrap();
    let builder = RelayBuilder::new(options(topic, group), tracker)
        .with_commit_interval(Duration::from_millis(200))
        .with_dead_letter_path(dir.join("dead-letter.jsonl"));
    (configure(builder).build().unwrap(), memory)
}

struct Running {
    stop: StopHandle,
    monitor: RelayMonitor,
    memory: InMemoryBackend,
    thread: JoinHandle<RelayReport>,
}

fn start(relay: Relay, memory: InMemoryBackend) -> Running {
    Running {
        stop: relay.stop_handle(),
        monitor: relay.monitor(),
        memory,
        thread: std::thread::spawn(move || relay.run()),
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Produces `n` events to `topic` through a tracker and the Kafka backend;
/// returns them as emitted.
fn produce_events(topic: &str, dir: &std::path::Path, n: usize, tag: &str) -> Vec<Arc<Event>> {
    let sent = InMemoryBackend::new();
    let tracker = Tracker::builder()
        .with_delivery(delivery(dir))
        .with_backend("sent", sent.clone())
        .with_backend("stream", kafka_backend(json!({"topic": topic})))
        .build()
        .unwrap();
    let _ctx = tracker
        .context("relay-test", json!({"user_id": 42, "tag": tag}))
        .unwrap();
    for i in 0..n {
        tracker
            .emit("relay.test", json!({"i": i, "tag": tag}))
            .unwrap();
    }
    let report = tracker.shutdown(WAIT).unwrap();
    assert!(report.complete, "{report:?}");
    assert_eq!(report.backends["stream"].delivered, n as u64, "{report:?}");
    sent.events()
}

#[test]
fn two_relays_in_one_group_split_the_partitions_and_deliver_every_event() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("relay-share");
    let group = unique("relay-share-group");
    create_topic(&topic, 4);

    // Relay A alone gets every partition and delivers the first half.
    let (a, memory_a) = relay(&topic, &group, &dir.path().join("a"), |b| b);
    let a = start(a, memory_a);
    wait_for("relay A to be assigned 4 partitions", || {
        a.monitor.snapshot().partitions.len() == 4
    });
    let mut sent = produce_events(&topic, dir.path(), 1_000, "first");
    wait_for("relay A to deliver the first half", || {
        a.memory.events().len() >= 1_000
    });

    // Relay B joins: a rebalance gives each two partitions.
    let (b, memory_b) = relay(&topic, &group, &dir.path().join("b"), |b| b);
    let b = start(b, memory_b);
    wait_for("both relays to hold 2 partitions", || {
        a.monitor.snapshot().partitions.len() == 2 && b.monitor.snapshot().partitions.len() == 2
    });
    let a_partitions: HashSet<_> = a.monitor.snapshot().partitions.into_iter().collect();
    let b_partitions: HashSet<_> = b.monitor.snapshot().partitions.into_iter().collect();
    assert!(
        a_partitions.is_disjoint(&b_partitions),
        "{a_partitions:?} {b_partitions:?}"
    );
    let a_before = a.memory.events().len();
    sent.extend(produce_events(&topic, dir.path(), 1_000, "second"));

    let expected: HashMap<_, _> = sent.iter().map(|e| (e.id(), e.clone())).collect();
    wait_for(
        "every event to be delivered by one relay or the other",
        || {
            let ids: HashSet<_> = a
                .memory
                .events()
                .iter()
                .chain(b.memory.events().iter())
                .map(|e| e.id())
                .collect();
            expected.keys().all(|id| ids.contains(id))
        },
    );
    a.stop.stop();
    b.stop.stop();
    let report_a = a.thread.join().unwrap();
    let report_b = b.thread.join().unwrap();
    assert!(report_a.is_clean(), "{report_a}");
    assert!(report_b.is_clean(), "{report_b}");
    assert_eq!(report_a.stop, StopReason::Requested);

    let delivered_a = a.memory.events();
    let delivered_b = b.memory.events();
    assert!(
        delivered_a.len() > a_before,
        "relay A got nothing after the rebalance"
    );
    assert!(!delivered_b.is_empty(), "relay B got no events");
    // Each relay got the events of its own partitions only, unchanged (id,
    // timestamp, context, data: the same JSON bytes).
    let mut seen = HashMap::new();
    for event in delivered_a.iter().chain(delivered_b.iter()) {
        let original = &expected[&event.id()];
        assert_eq!(
            String::from_utf8_lossy(event.to_json_bytes()),
            String::from_utf8_lossy(original.to_json_bytes())
        );
        *seen.entry(event.id()).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), expected.len());
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    eprintln!(
        "relay A: {} events, relay B: {} events, duplicates: {duplicates}",
        delivered_a.len(),
        delivered_b.len()
    );
    assert_eq!(
        report_a.stats.messages + report_b.stats.messages,
        delivered_a.len() as u64 + delivered_b.len() as u64
    );
    assert_eq!(report_a.stats.uncommitted + report_b.stats.uncommitted, 0);
}

/// Sends raw values to partition 0 of `topic`; returns each one's offset.
fn produce_raw(topic: &str, values: &[Option<&[u8]>]) -> Vec<i64> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    let runtime = runtime();
    values
        .iter()
        .map(|value| {
            let mut record = FutureRecord::<str, [u8]>::to(topic).partition(0).key("k");
            if let Some(value) = value {
                record = record.payload(value);
            }
            let delivery = runtime
                .block_on(producer.send(record, Duration::from_secs(10)))
                .map_err(|(e, _)| e)
                .expect("produce");
            assert_eq!(delivery.partition, 0);
            delivery.offset
        })
        .collect()
}

#[test]
fn malformed_messages_are_dead_lettered_with_their_coordinates_and_a_restart_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("relay-malformed");
    let group = unique("relay-malformed-group");
    create_topic(&topic, 1);

    let events: Vec<Event> = (0..3)
        .map(|i| {
            let mut event = Event::new("relay.good", json!({"i": i})).unwrap();
            event
                .context_mut()
                .insert("user_id".into(), json!(format!("u{i}")));
            event
        })
        .collect();
    let good: Vec<Vec<u8>> = events.iter().map(|e| e.to_json_bytes().to_vec()).collect();
    let missing_id = br#"{"name":"x","timestamp":"2026-01-01T00:00:00Z","context":{},"data":1}"#;
    let binary = [0xff_u8, 0x00, 0x7b];
    let values: Vec<Option<&[u8]>> = vec![
        Some(&good[0]),
        Some(b"not json at all"),
        Some(&good[1]),
        Some(missing_id),
        None,
        Some(&binary),
        Some(&good[2]),
    ];
    let offsets = produce_raw(&topic, &values);

    let (relay_1, memory) = relay(&topic, &group, dir.path(), |b| {
        b.with_exit_when_idle(Duration::from_secs(2))
    });
    let report = relay_1.run();
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.stop, StopReason::Idle);
    assert_eq!(report.stats.messages, 7, "{report}");
    assert_eq!(report.stats.events, 3, "{report}");
    assert_eq!(report.stats.malformed, 4, "{report}");
    assert_eq!(report.stats.committed, 7, "{report}");
    assert_eq!(
        report.committed_offsets[&(topic.clone(), 0)],
        offsets[6] + 1,
        "{report}"
    );

    // The neighbours arrive, byte for byte.
    let delivered: Vec<Vec<u8>> = memory
        .events()
        .iter()
        .map(|e| e.to_json_bytes().to_vec())
        .collect();
    assert_eq!(delivered, good);

    // The malformed ones are dead-lettered, in the engine's format.
    let text = std::fs::read_to_string(dir.path().join("dead-letter.jsonl")).unwrap();
    let records: Vec<DeadLetterRecord> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(records.len(), 4, "{text}");
    for (record, index) in records.iter().zip([1usize, 3, 4, 5]) {
        let offset = offsets[index];
        assert_eq!(record.backend, "relay");
        assert!(
            record
                .reason
                .contains(&format!("topic {topic} partition 0 offset {offset}")),
            "{}",
            record.reason
        );
        assert_eq!(record.event.name(), MALFORMED_EVENT_NAME);
        let data = record.event.data();
        assert_eq!(data["topic"], json!(topic));
        assert_eq!(data["partition"], json!(0));
        assert_eq!(data["offset"], json!(offset));
        assert_eq!(data["key"], json!("k"));
        assert!(data["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    assert_eq!(records[0].event.data()["payload"], json!("not json at all"));
    assert_eq!(
        records[1].event.data()["payload"],
        json!(std::str::from_utf8(missing_id).unwrap())
    );
    assert_eq!(records[2].event.data()["payload"], json!(null));
    assert_eq!(records[3].event.data()["payload_hex"], json!("ff007b"));

    // A restart in the same group resumes after the last commit: nothing
    // again, then only what is new.
    let more = Event::new("relay.good", json!({"i": 3})).unwrap();
    let more_bytes = more.to_json_bytes().to_vec();
    produce_raw(&topic, &[Some(&more_bytes)]);
    let (relay_2, memory_2) = relay(&topic, &group, dir.path(), |b| {
        b.with_exit_when_idle(Duration::from_secs(2))
    });
    let report = relay_2.run();
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.stats.messages, 1, "{report}");
    let delivered: Vec<Vec<u8>> = memory_2
        .events()
        .iter()
        .map(|e| e.to_json_bytes().to_vec())
        .collect();
    assert_eq!(delivered, vec![more_bytes]);
}

/// Fails on the event whose `data.i` is 5: the tracker counts a processor
/// error and drops it.
#[derive(Debug)]
struct FailOnFive;

impl Processor for FailOnFive {
    fn name(&self) -> &str {
        "fail-on-five"
    }

    fn process(&self, event: Arc<Event>) -> ProcessResult {
        if event.data()["i"] == 5 {
            return Err(ProcessorError::new("fail-on-five", event.name(), "test"));
        }
        Ok(Some(event))
    }
}

#[test]
fn a_relay_that_loses_an_event_stops_without_committing_past_it() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("relay-loss");
    let group = unique("relay-loss-group");
    create_topic(&topic, 1);
    let sent = produce_events(&topic, dir.path(), 20, "loss");

    let memory = InMemoryBackend::new();
    let tracker = Tracker::builder()
        .with_delivery(delivery(dir.path()))
        .with_processor(Arc::new(FailOnFive))
        .with_backend("memory", memory.clone())
        .build()
        .unwrap();
    let report = RelayBuilder::new(options(&topic, &group), tracker)
        .with_max_uncommitted(3)
        .with_exit_when_idle(Duration::from_secs(5))
        .build()
        .unwrap()
        .run();
    assert_eq!(report.stop, StopReason::Failed, "{report}");
    assert!(!report.is_clean());
    assert_eq!(report.lost, 1, "{report}");
    assert!(
        report.error.as_deref().unwrap().contains("lost"),
        "{report}"
    );
    // Events 0..4 were settled: the commit stops exactly before event 5
    // (offset 5), the highest contiguous settled offset.
    let committed = report.committed_offsets[&(topic.clone(), 0)];
    assert_eq!(committed, 5, "{report}");
    assert!(!memory.events().iter().any(|e| e.data()["i"] == 5));

    // A restart (here without the failing processor) delivers it.
    let (relay_2, memory_2) = relay(&topic, &group, dir.path(), |b| {
        b.with_exit_when_idle(Duration::from_secs(2))
    });
    let report = relay_2.run();
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.stats.messages, 20 - committed as u64, "{report}");
    let ids: HashSet<_> = memory
        .events()
        .iter()
        .chain(memory_2.events().iter())
        .map(|e| e.id())
        .collect();
    assert!(sent.iter().all(|e| ids.contains(&e.id())));
}

/// Drops (a processor error at the backend) every event named `other.bad`.
fn drop_other_bad() -> Arc<dyn Processor> {
    Arc::new(eventtracking::processor_fn("drop-other-bad", |event| {
        if event.name() == "other.bad" {
            return Err(ProcessorError::new("drop-other-bad", event.name(), "test"));
        }
        Ok(Some(event))
    }))
}

#[test]
fn another_emitter_losing_events_on_the_same_tracker_neither_stops_nor_stalls_the_relay() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("relay-neighbour");
    let group = unique("relay-neighbour-group");
    create_topic(&topic, 2);
    let sent = produce_events(&topic, dir.path(), 300, "neighbour");

    let memory = InMemoryBackend::new();
    let tracker = Tracker::builder()
        .with_delivery(delivery(dir.path()))
        .with_route("memory", memory.clone(), vec![drop_other_bad()], None)
        .build()
        .unwrap();
    // Another part of the program emits on the same tracker all along, and
    // some of its events are lost at the backend.
    let neighbour_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let neighbour = {
        let (tracker, stop) = (tracker.clone(), neighbour_stop.clone());
        std::thread::spawn(move || {
            let mut emitted = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let name = if emitted % 3 == 0 {
                    "other.bad"
                } else {
                    "other.ok"
                };
                if tracker.emit(name, json!({"n": emitted})).is_err() {
                    break; // the relay shut the tracker down at its end
                }
                emitted += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            emitted
        })
    };
    let relay = RelayBuilder::new(options(&topic, &group), tracker.clone())
        .with_commit_interval(Duration::from_millis(100))
        .with_max_uncommitted(20)
        .with_exit_when_idle(Duration::from_secs(3))
        .build()
        .unwrap();
    let report = relay.run();
    neighbour_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let emitted = neighbour.join().unwrap();

    assert_eq!(report.stop, StopReason::Idle, "{report}");
    assert!(report.error.is_none(), "{report}");
    assert_eq!(report.lost, 0, "{report}");
    assert_eq!(report.stats.messages, 300, "{report}");
    assert_eq!(report.stats.committed, 300, "{report}");
    assert_eq!(report.stats.uncommitted, 0, "{report}");
    // The neighbour's losses happened, and were the tracker's, not the relay's.
    assert!(emitted > 3, "the neighbour emitted {emitted}");
    assert!(
        report.delivery.backends["memory"].processor_errors > 0,
        "{report}"
    );
    let relayed: HashSet<_> = memory
        .events()
        .iter()
        .filter(|e| e.name() == "relay.test")
        .map(|e| e.id())
        .collect();
    assert!(sent.iter().all(|e| relayed.contains(&e.id())));
}

/// A backend that refuses, for good, events whose data has `"poison": true`
/// (a partial failure: the rest of the batch is stored).
#[derive(Debug, Clone, Default)]
struct RefusesPoison(InMemoryBackend);

#[eventtracking::async_trait]
impl Backend for RefusesPoison {
    async fn send_batch(&self, batch: &[Arc<Event>]) -> eventtracking::BackendResult {
        let poisoned: Vec<_> = batch
            .iter()
            .enumerate()
            .filter(|(_, e)| e.data()["poison"] == true)
            .map(|(i, _)| eventtracking::EventFailure::permanent(i, "poison refused by the store"))
            .collect();
        let kept: Vec<Arc<Event>> = batch
            .iter()
            .filter(|e| e.data()["poison"] != true)
            .cloned()
            .collect();
        self.0.send_batch(&kept).await?;
        if poisoned.is_empty() {
            Ok(())
        } else {
            Err(eventtracking::BackendError::Partial(poisoned))
        }
    }
}

#[test]
fn a_dead_lettered_event_in_the_middle_is_committed_past_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("relay-poison");
    let group = unique("relay-poison-group");
    create_topic(&topic, 1);
    // 10 events, the 5th poisoned, all on the one partition.
    let producer = InMemoryBackend::new();
    let tracker = Tracker::builder()
        .with_delivery(delivery(dir.path()))
        .with_backend("sent", producer.clone())
        .with_backend("stream", kafka_backend(json!({"topic": topic})))
        .build()
        .unwrap();
    for i in 0..10 {
        tracker
            .emit("relay.test", json!({"i": i, "poison": i == 4}))
            .unwrap();
    }
    assert!(tracker.shutdown(WAIT).unwrap().complete);
    let poison_id = producer.events()[4].id();

    let store = RefusesPoison::default();
    let relay_dir = tempfile::tempdir().unwrap();
    let tracker = Tracker::builder()
        .with_delivery(delivery(relay_dir.path()))
        .with_backend("store", store.clone())
        .build()
        .unwrap();
    let report = RelayBuilder::new(options(&topic, &group), tracker)
        .with_exit_when_idle(Duration::from_secs(2))
        .build()
        .unwrap()
        .run();
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.stats.dead_lettered, 1, "{report}");
    // Committed past the dead-lettered event: a restart reads nothing again.
    assert_eq!(
        report.committed_offsets[&(topic.clone(), 0)],
        10,
        "{report}"
    );
    let stored: Vec<u64> = store
        .0
        .events()
        .iter()
        .map(|e| e.data()["i"].as_u64().unwrap())
        .collect();
    assert_eq!(stored, [0, 1, 2, 3, 5, 6, 7, 8, 9]);
    let dead: Vec<DeadLetterRecord> =
        std::fs::read_to_string(relay_dir.path().join("dead-letter.jsonl"))
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].event.id(), poison_id);
    assert!(
        dead[0].reason.contains("poison refused"),
        "{}",
        dead[0].reason
    );
}

#[test]
fn a_config_without_a_source_or_backends_is_refused() {
    let config =
        eventtracking::Config::from_toml_str("[backends.a]\nengine = \"discard\"").unwrap();
    let error = RelayBuilder::from_config(&config).unwrap_err().to_string();
    assert!(error.contains("[source]"), "{error}");
    let config = eventtracking::Config::from_toml_str(
        "[source]\nengine = \"kafka\"\nbrokers = \"h:1\"\ntopics = [\"e\"]\ngroup = \"g\"",
    )
    .unwrap();
    let error = RelayBuilder::from_config(&config).unwrap_err().to_string();
    assert!(error.contains("backends"), "{error}");
    let config = eventtracking::Config::from_toml_str(
        "[source]\nengine = \"kafka\"\nbrokers = \"h:1\"\ntopics = [\"e\"]\ngroup = \"g\"\ngroupp = 1\n[backends.a]\nengine = \"discard\"",
    )
    .unwrap();
    let error = RelayBuilder::from_config(&config).unwrap_err().to_string();
    assert!(
        error.contains("groupp") && error.contains("source"),
        "{error}"
    );
}
