//! Relay throughput, Kafka → file, beside the file backend fed directly with
//! the same events, measured in the same run.
//!
//! Before timing, `EVENTTRACKING_BENCH_EVENTS` events (default 200,000; the
//! seed's three shapes in a context) are produced to a fresh topic
//! (`EVENTTRACKING_BENCH_PARTITIONS` partitions, default 4) through a
//! tracker with the Kafka backend, which also keeps them in memory. Then,
//! alternating, `ROUNDS` times:
//!
//! - file directly: `emit_event` of those same events into a tracker whose
//!   only backend is a file backend, until `flush` reports them delivered;
//! - relay: `eventtracking_cli::relay::Relay` (a fresh consumer group, so it
//!   reads the topic from the start) into a tracker with the same delivery
//!   settings and a file backend. Timed from the first message handled to
//!   every message's offset committed (so delivered into the file and
//!   acknowledged); the consumer group's join before the first message is
//!   not timed (Tansu holds a join for about half the session timeout).
//!
//! - for reference, what the broker gives one consumer: a raw rdkafka
//!   `BaseConsumer` (fresh group, same consumer properties as the relay's)
//!   reading all N messages, once without and once with
//!   `Event::from_json_slice` of each payload (what the relay does to each
//!   message before `emit_event`); timed from the first message.
//!
//! Both trackers: default delivery settings (the file backend's batch 512,
//! linger 50 ms, max_in_flight 1) with `overflow = "block"`.
//! The relay commits every `EVENTTRACKING_BENCH_COMMIT_MS` (default 100) and
//! after `EVENTTRACKING_BENCH_MAX_UNCOMMITTED` messages (default: the
//! relay's own, 10,000).
//!
//! The bench process uses mimalloc as its global allocator, as the
//! `eventtracking` binary does (the relay's thread allocates each parsed
//! event and the delivery thread frees it; glibc's malloc is slow at that).
//!
//! Run (the broker must be up: `scripts/services start kafka`):
//! `cargo bench -p eventtracking-cli --bench relay` (prints figures).
//! `EVENTTRACKING_TEST_KAFKA_BROKERS` points it elsewhere;
//! `EVENTTRACKING_BENCH_FETCH_WAIT_MS` sets the relay consumer's
//! `fetch.wait.max.ms` (librdkafka's default: 500).

use std::sync::Arc;
use std::time::{Duration, Instant};

use eventtracking::file::FileBackend;
use eventtracking::kafka::KafkaBackend;
use eventtracking::{DeliveryConfig, Event, InMemoryBackend, Overflow, Tracker};
use eventtracking_cli::relay::{RelayBuilder, RelayOptions};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::ClientConfig;
use serde_json::json;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ROUNDS: usize = 3;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn delivery(dir: &std::path::Path) -> DeliveryConfig {
    DeliveryConfig::default()
        .with_overflow(Overflow::Block)
        .with_block_timeout(Duration::from_secs(60))
        .with_dead_letter_path(dir.join("dead-letter.jsonl"))
}

fn create_topic(brokers: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for result in runtime
        .block_on(admin.create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        ))
        .expect("create topic")
    {
        result.expect("create topic");
    }
}

/// Produces `n` seed-shaped events to `topic`; returns them as emitted.
fn produce(brokers: &str, topic: &str, dir: &std::path::Path, n: usize) -> Vec<Arc<Event>> {
    let sent = InMemoryBackend::new();
    let kafka = KafkaBackend::builder(brokers)
        .with_topic(topic)
        .build()
        .unwrap();
    let tracker = Tracker::builder()
        .with_delivery(delivery(dir).with_batch_size(10_000))
        .with_backend("sent", sent.clone())
        .with_backend("kafka", kafka)
        .build()
        .unwrap();
    let _ctx = tracker.context("outer", json!({"user_id": 10938})).unwrap();
    for i in 0..n {
        let data = match i % 3 {
            0 => json!({"url": "http://www.edx.org/some/path/1"}),
            1 => json!({"url": "http://www.edx.org/some/path/2"}),
            _ => {
                json!({"name": "foo", "address": {"postal_code": "90210", "country": "United States"}})
            }
        };
        let name = if i % 3 == 2 {
            "address.create"
        } else {
            "navigation.request"
        };
        tracker.emit(name, data).unwrap();
    }
    let report = tracker.shutdown(Duration::from_secs(300)).unwrap();
    assert!(report.complete, "{report:?}");
    assert_eq!(report.backends["kafka"].delivered, n as u64, "{report:?}");
    let events = sent.events();
    for event in &events {
        event.to_json_bytes();
    }
    events
}

fn file_tracker(dir: &std::path::Path, path: &std::path::Path) -> Tracker {
    let _ = std::fs::remove_file(path);
    Tracker::builder()
        .with_delivery(delivery(dir))
        .with_backend("file", FileBackend::builder(path).build().unwrap())
        .build()
        .unwrap()
}

fn lines(path: &std::path::Path) -> usize {
    let text = std::fs::read(path).unwrap();
    text.iter().filter(|&&b| b == b'\n').count()
}

fn direct_round(dir: &std::path::Path, events: &[Arc<Event>]) -> Duration {
    let path = dir.join("direct.jsonl");
    let tracker = file_tracker(dir, &path);
    let start = Instant::now();
    for event in events {
        tracker.emit_event(event.clone()).unwrap();
    }
    let report = tracker.flush(Duration::from_secs(300));
    let elapsed = start.elapsed();
    assert!(report.complete, "{report}");
    tracker.shutdown(Duration::from_secs(10)).unwrap();
    assert_eq!(lines(&path), events.len());
    elapsed
}

fn relay_round(
    brokers: &str,
    topic: &str,
    dir: &std::path::Path,
    round: usize,
    n: usize,
) -> Duration {
    let path = dir.join("relayed.jsonl");
    let tracker = file_tracker(dir, &path);
    let suffix = format!("{:016x}", fastrand::u64(..));
    let options = RelayOptions::new(brokers, [topic], format!("et-bench-relay-{round}-{suffix}"))
        .with_catalog_topic("")
        .with_property("session.timeout.ms", "3000")
        .with_property("heartbeat.interval.ms", "500");
    // `EVENTTRACKING_BENCH_FETCH_WAIT_MS`: librdkafka's `fetch.wait.max.ms` for the relay's consumer.
    let options = match std::env::var("EVENTTRACKING_BENCH_FETCH_WAIT_MS") {
        Ok(ms) => options.with_property("fetch.wait.max.ms", ms),
        Err(_) => options,
    };
    let commit_ms = env_usize("EVENTTRACKING_BENCH_COMMIT_MS", 100) as u64;
    let mut builder = RelayBuilder::new(options, tracker);
    if let Ok(max) = std::env::var("EVENTTRACKING_BENCH_MAX_UNCOMMITTED") {
        builder = builder.with_max_uncommitted(max.parse().unwrap());
    }
    let relay = builder
        .with_commit_interval(Duration::from_millis(commit_ms))
        .with_dead_letter_path(dir.join("dead-letter.jsonl"))
        .build()
        .unwrap();
    let monitor = relay.monitor();
    let stop = relay.stop_handle();
    let thread = std::thread::spawn(move || relay.run());
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut start = None;
    let mut handled = None;
    // Messages handled 0.1, 0.3 and 0.6 s after the first one.
    let mut progress: [Option<u64>; 3] = [None; 3];
    loop {
        let stats = monitor.snapshot();
        let now = Instant::now();
        assert!(now < deadline, "relay timed out: {stats:?}");
        if start.is_none() && stats.messages > 0 {
            start = Some(now);
        }
        if let Some(start) = start {
            let at = now - start;
            for (i, mark) in [100u64, 300, 600].into_iter().enumerate() {
                if progress[i].is_none() && at >= Duration::from_millis(mark) {
                    progress[i] = Some(stats.messages);
                }
            }
        }
        if handled.is_none() && stats.messages >= n as u64 {
            handled = Some(now);
        }
        if stats.committed >= n as u64 {
            break;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    let start = start.unwrap();
    let elapsed = start.elapsed();
    stop.stop();
    let report = thread.join().unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.stats.events, n as u64, "{report}");
    assert_eq!(lines(&path), n);
    eprintln!(
        "    (relay round {round}: all {n} handled after {:.3} s, committed after {:.3} s, {} commits, {} rebalances; handled by 0.1 / 0.3 / 0.6 s: {:?})",
        (handled.unwrap() - start).as_secs_f64(),
        elapsed.as_secs_f64(),
        report.stats.commits,
        report.stats.rebalances,
        progress
    );
    elapsed
}

/// A raw consumer reading `n` messages of `topic` (parsing each as an event
/// if `parse`), timed from the first message to the last.
fn consumer_round(brokers: &str, topic: &str, n: usize, parse: bool) -> Duration {
    let suffix = format!("{:016x}", fastrand::u64(..));
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("et-bench-raw-consumer-{suffix}"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("fetch.queue.backoff.ms", "10")
        .set("session.timeout.ms", "3000")
        .set("heartbeat.interval.ms", "500")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut start = None;
    let mut seen = 0usize;
    while seen < n {
        assert!(
            Instant::now() < deadline,
            "raw consumer timed out at {seen}"
        );
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.unwrap();
            start.get_or_insert_with(Instant::now);
            if parse {
                let event = Event::from_json_slice(message.payload().unwrap()).unwrap();
                std::hint::black_box(Arc::new(event));
            }
            seen += 1;
        }
    }
    start.unwrap().elapsed()
}

fn main() {
    let brokers = std::env::var("EVENTTRACKING_TEST_KAFKA_BROKERS")
        .unwrap_or_else(|_| "127.0.0.1:19092".into());
    let n = env_usize("EVENTTRACKING_BENCH_EVENTS", 200_000);
    let partitions = env_usize("EVENTTRACKING_BENCH_PARTITIONS", 4) as i32;
    let dir = tempfile::tempdir().unwrap();
    let topic = format!("et-bench-relay-{:016x}", fastrand::u64(..));
    create_topic(&brokers, &topic, partitions);
    let events = produce(&brokers, &topic, dir.path(), n);

    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    let mut direct = Vec::new();
    let mut relayed = Vec::new();
    let mut consumed = Vec::new();
    let mut parsed = Vec::new();
    for round in 1..=ROUNDS {
        let d = direct_round(dir.path(), &events);
        let r = relay_round(&brokers, &topic, dir.path(), round, n);
        let c = consumer_round(&brokers, &topic, n, false);
        let p = consumer_round(&brokers, &topic, n, true);
        println!(
            "  round {round}: file directly {:>9.0} events/s, relay kafka -> file {:>9.0} events/s = {:.2}x; \
             raw consumer {:>9.0}/s, raw consumer + parse {:>9.0}/s",
            rate(d),
            rate(r),
            d.as_secs_f64() / r.as_secs_f64(),
            rate(c),
            rate(p),
        );
        direct.push(d);
        relayed.push(r);
        consumed.push(c);
        parsed.push(p);
    }
    let direct = direct.into_iter().min().unwrap();
    let relayed = relayed.into_iter().min().unwrap();
    let consumed = consumed.into_iter().min().unwrap();
    let parsed = parsed.into_iter().min().unwrap();
    println!("relay throughput, {n} seed events, {partitions} partitions, {brokers}, best of {ROUNDS} (alternating):");
    println!(
        "  file backend fed directly (emit_event, until flushed): {:>9.0} events/s",
        rate(direct)
    );
    println!(
        "  relay kafka -> file (first message to all committed):  {:>9.0} events/s  = {:.2}x direct",
        rate(relayed),
        direct.as_secs_f64() / relayed.as_secs_f64()
    );
    println!(
        "  for reference, raw rdkafka BaseConsumer reading them:  {:>9.0} events/s  = {:.2}x direct",
        rate(consumed),
        direct.as_secs_f64() / consumed.as_secs_f64()
    );
    println!(
        "  raw consumer + Event::from_json_slice of each:        {:>9.0} events/s  = {:.2}x direct; relay = {:.2}x this",
        rate(parsed),
        direct.as_secs_f64() / parsed.as_secs_f64(),
        parsed.as_secs_f64() / relayed.as_secs_f64()
    );
}
