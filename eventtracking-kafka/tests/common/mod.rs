//! Helpers shared by the integration tests: the broker address, unique topic
//! names, and a consumer reading topics from the beginning.
#![allow(dead_code, unreachable_pub, unused_imports)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventtracking::registry::{build_backend, ComponentConfig};
use eventtracking::Backend;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::json;

// Keep the crate (and so its `kafka` registration) linked.
use eventtracking_kafka as _;

/// The broker (`EVENTTRACKING_TEST_KAFKA_BROKERS`), how long a test waits
/// for anything, and fast batching with a dead-letter file in a directory.
pub use eventtracking_testkit::{
    fast_delivery as delivery, servers::kafka_brokers as brokers, WAIT,
};

/// A topic name no other test (or run) uses.
pub fn unique(prefix: &str) -> String {
    format!("et-test-{prefix}-{:016x}", fastrand::u64(..))
}

/// Fails the test at once, naming the address, when no broker answers there
/// (the tests never skip: start one with `scripts/services start kafka`).
pub fn require_broker() {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .expect("client");
    if let Err(error) = consumer.fetch_metadata(None, Duration::from_secs(10)) {
        panic!(
            "no Kafka broker answers at {} ({error}): run `scripts/services start kafka` \
             or set EVENTTRACKING_TEST_KAFKA_BROKERS",
            brokers()
        );
    }
}

/// The backend built through the registry, as a config file would.
pub fn kafka_backend(options: serde_json::Value) -> Box<dyn Backend> {
    require_broker();
    let mut options = options.as_object().unwrap().clone();
    options.entry("brokers").or_insert(json!(brokers()));
    build_backend(&ComponentConfig::new("backends.stream", "kafka", options)).unwrap()
}

/// One consumed message.
#[derive(Debug, Clone)]
pub struct Received {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: HashMap<String, String>,
    pub timestamp: Option<i64>,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload).unwrap()
    }
    pub fn key_str(&self) -> &str {
        std::str::from_utf8(self.key.as_deref().unwrap_or_default()).unwrap()
    }
}

/// A consumer assigned every partition of `topics` from the beginning
/// (no group join, so no rebalance wait). Waits until each topic exists.
pub fn consumer(topics: &[&str]) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", unique("group"))
        .set("session.timeout.ms", "6000")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for topic in topics {
        let deadline = Instant::now() + WAIT;
        let partitions = loop {
            let metadata = consumer
                .fetch_metadata(Some(topic), Duration::from_secs(5))
                .expect("metadata: is the broker running? (scripts/services start kafka)");
            let t = &metadata.topics()[0];
            if t.error().is_none() && !t.partitions().is_empty() {
                break t.partitions().iter().map(|p| p.id()).collect::<Vec<_>>();
            }
            assert!(Instant::now() < deadline, "topic {topic} never appeared");
            std::thread::sleep(Duration::from_millis(100));
        };
        for p in partitions {
            assignment
                .add_partition_offset(topic, p, Offset::Beginning)
                .unwrap();
        }
    }
    consumer.assign(&assignment).unwrap();
    consumer
}

/// Reads until `n` messages arrived (fails after `WAIT`), then a little more
/// to catch extras.
pub fn consume(consumer: &BaseConsumer, n: usize) -> Vec<Received> {
    let mut out = Vec::with_capacity(n);
    let deadline = Instant::now() + WAIT;
    let mut quiet_until = None;
    loop {
        if out.len() >= n && quiet_until.is_none() {
            quiet_until = Some(Instant::now() + Duration::from_millis(500));
        }
        if let Some(q) = quiet_until {
            if Instant::now() >= q {
                return out;
            }
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {n} messages arrived",
            out.len()
        );
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = message.expect("consume");
        let mut headers = HashMap::new();
        if let Some(h) = message.headers() {
            for header in h.iter() {
                headers.insert(
                    header.key.to_owned(),
                    String::from_utf8(header.value.unwrap_or_default().to_vec()).unwrap(),
                );
            }
        }
        out.push(Received {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().unwrap_or_default().to_vec(),
            headers,
            timestamp: message.timestamp().to_millis(),
        });
    }
}

/// Wraps a backend so a test can keep an `Arc` to it.
pub fn shared<B: Backend>(backend: B) -> Arc<B> {
    Arc::new(backend)
}
