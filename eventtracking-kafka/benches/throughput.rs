//! Kafka throughput: this backend through a tracker against a raw rdkafka
//! producer, measured in the same run against the same broker.
//!
//! Both send the same events: the seed's three shapes, value = the event's
//! JSON (computed once before timing, so neither side pays for it), key = the
//! event id, headers `event-name` and `event-id`, with the same producer
//! properties (this backend's defaults: acks=all, idempotence, linger.ms=0).
//!
//! - raw: `FutureProducer::send_result` for every event (waiting briefly on a
//!   full local queue), then every delivery report awaited.
//! - eventtracking: `emit_event` of the same events → queue → delivery worker
//!   → `KafkaBackend::send_batch` per batch, until `flush` reports them delivered.
//!
//! Run (the broker must be up: `scripts/services start kafka`):
//! `cargo bench -p eventtracking-kafka --bench throughput` (prints figures).
//! `EVENTTRACKING_TEST_KAFKA_BROKERS` points it elsewhere;
//! `EVENTTRACKING_BENCH_EVENTS` (default 200000) and
//! `EVENTTRACKING_BENCH_BATCH` (the engine's batch_size, default 10000) and
//! `EVENTTRACKING_BENCH_LINGER_MS` (librdkafka's `linger.ms` for both sides)
//! and `EVENTTRACKING_BENCH_MAX_IN_FLIGHT` (the engine's `max_in_flight`;
//! unset = the backend's own, 4) tune it. Every round's figures are printed,
//! then the best of each side (`EVENTTRACKING_BENCH_ROUNDS` rounds, default 3).

use std::sync::Arc;
use std::time::{Duration, Instant};

use eventtracking::{DeliveryConfig, Event, Overflow, Tracker};
use eventtracking_kafka::KafkaBackend;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use serde_json::json;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn seed_events(n: usize) -> Vec<Arc<Event>> {
    let events = eventtracking_testkit::seed_example_stream(n);
    // Both sides copy the cached JSON: make it before timing.
    for event in &events {
        event.to_json_bytes();
    }
    events
}

fn raw_round(producer: &FutureProducer, topic: &str, events: &[Arc<Event>]) -> Duration {
    let start = Instant::now();
    let mut pending = Vec::with_capacity(events.len());
    for event in events {
        let id = event.id().to_string();
        loop {
            let headers = OwnedHeaders::new_with_capacity(2)
                .insert(Header {
                    key: "event-name",
                    value: Some(event.name()),
                })
                .insert(Header {
                    key: "event-id",
                    value: Some(&id),
                });
            let record = FutureRecord::to(topic)
                .payload(event.to_json_bytes())
                .key(id.as_bytes())
                .headers(headers);
            match producer.send_result(record) {
                Ok(delivery) => {
                    pending.push(delivery);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    producer.poll(Duration::from_millis(1));
                }
                Err((error, _)) => panic!("raw send failed: {error}"),
            }
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        for delivery in pending {
            delivery.await.unwrap().map_err(|(e, _)| e).unwrap();
        }
    });
    start.elapsed()
}

/// The backend's builder, with `EVENTTRACKING_BENCH_LINGER_MS` as `linger.ms` if set.
fn builder(brokers: &str) -> eventtracking_kafka::KafkaBackendBuilder {
    let builder = KafkaBackend::builder(brokers);
    match std::env::var("EVENTTRACKING_BENCH_LINGER_MS") {
        Ok(ms) => builder.with_property("linger.ms", ms),
        Err(_) => builder,
    }
}

fn tracker_round(
    brokers: &str,
    topic: &str,
    batch: usize,
    max_in_flight: Option<usize>,
    events: &[Arc<Event>],
) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let backend = builder(brokers).with_topic(topic).build().unwrap();
    let mut delivery = DeliveryConfig::default()
        .with_queue_capacity(events.len().max(1 << 16))
        .with_overflow(Overflow::Block)
        .with_block_timeout(std::time::Duration::from_millis(60_000))
        .with_batch_size(batch)
        .with_dead_letter_path(dir.path().join("dl.jsonl"));
    // Unset: the backend's own (`KafkaBackend::max_concurrent_sends`, 4).
    if let Some(n) = max_in_flight {
        delivery = delivery.with_max_in_flight(n);
    }
    let tracker = Tracker::builder()
        .with_delivery(delivery)
        .with_backend("kafka", backend)
        .build()
        .unwrap();
    // Connect and learn the topic's metadata before timing, like the raw producer's warm-up.
    tracker.emit("warm.up", json!({})).unwrap();
    assert!(tracker.flush(Duration::from_secs(60)).complete);
    let start = Instant::now();
    for event in events {
        tracker.emit_event(event.clone()).unwrap();
    }
    let report = tracker.flush(Duration::from_secs(300));
    let elapsed = start.elapsed();
    assert_eq!(
        report.backends["kafka"].delivered,
        events.len() as u64 + 1,
        "{report}"
    );
    tracker.shutdown(Duration::from_secs(10));
    elapsed
}

fn main() {
    let brokers = std::env::var("EVENTTRACKING_TEST_KAFKA_BROKERS")
        .unwrap_or_else(|_| "127.0.0.1:19092".into());
    let n = env_usize("EVENTTRACKING_BENCH_EVENTS", 200_000);
    let rounds = env_usize("EVENTTRACKING_BENCH_ROUNDS", 3).max(1);
    let batch = env_usize("EVENTTRACKING_BENCH_BATCH", 10_000);
    let max_in_flight = std::env::var("EVENTTRACKING_BENCH_MAX_IN_FLIGHT")
        .ok()
        .and_then(|v| v.parse().ok());
    let in_flight_label = max_in_flight.map_or_else(
        || {
            format!(
                "{} (the backend's default)",
                eventtracking_kafka::SUGGESTED_MAX_IN_FLIGHT
            )
        },
        |n: usize| n.to_string(),
    );
    let suffix = format!("{:016x}", fastrand::u64(..));
    let raw_topic = format!("et-bench-raw-{suffix}");
    let tracker_topic = format!("et-bench-tracker-{suffix}");
    let events = seed_events(n);

    // The raw producer gets exactly the backend's producer properties.
    let config = builder(&brokers).producer_config().unwrap();
    let producer: FutureProducer = config.create().unwrap();
    raw_round(&producer, &raw_topic, &events[..10]);

    let mut raw = Vec::new();
    let mut pipeline = Vec::new();
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    for round in 1..=rounds {
        let r = raw_round(&producer, &raw_topic, &events);
        let p = tracker_round(&brokers, &tracker_topic, batch, max_in_flight, &events);
        println!(
            "  round {round}: raw {:>9.0} events/s, eventtracking {:>9.0} events/s = {:.2}x",
            rate(r),
            rate(p),
            r.as_secs_f64() / p.as_secs_f64()
        );
        raw.push(r);
        pipeline.push(p);
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    let raw = raw.into_iter().min().unwrap();
    let pipeline = pipeline.into_iter().min().unwrap();

    println!(
        "kafka throughput, {n} seed events to {brokers}, max_in_flight {in_flight_label}, best of {rounds} (alternating):"
    );
    println!(
        "  raw rdkafka FutureProducer (send_result, await all):  {:>9.0} events/s",
        rate(raw)
    );
    println!(
        "  eventtracking (emit_event -> kafka, batch_size {batch}): {:>9.0} events/s  = {:.2}x raw",
        rate(pipeline),
        raw.as_secs_f64() / pipeline.as_secs_f64()
    );
}
