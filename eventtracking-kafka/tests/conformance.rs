//! The backend conformance suite (`eventtracking-testkit`) for the Kafka
//! backend, against the test broker: a namespace is a topic prefix (events
//! in `PREFIX.events`, or `PREFIX.{name}` for the partial failure; the
//! catalog in `PREFIX-types`), read back from the beginning to the end.
//!
//! What the cases mean here:
//! - `idempotent_resend`: a topic is a log: an event sent twice is there
//!   twice (the producer's idempotence covers librdkafka's own resends, not
//!   a batch the engine sends again); consumers de-duplicate on the key or
//!   the `event-id` header ([`Idempotence::ReadersDeduplicate`]).
//! - `partial_failure`: an event whose templated topic would be longer than
//!   Kafka allows.
//! - `oversized_event`: larger than `message.max.bytes`, set to 100,000.
//! - `outage`: the broker paused (`kill -STOP`, `EVENTTRACKING_TEST_KAFKA_PID`);
//!   librdkafka holds the messages until it is back.
//! - `secrets`: SASL passwords among the producer's properties, with
//!   librdkafka logging everything, once delivering and once against a
//!   plaintext listener (every attempt fails).

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use eventtracking::{CatalogEntry, Event, JsonMap};
use eventtracking_testkit::servers::kafka_pid;
use eventtracking_testkit::{
    Case, ConformanceTarget, Idempotence, Outage, PausedProcess, RefusedEvent, SecretOptions,
    SizeLimit, Unsupported,
};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::{json, Value};

struct KafkaTarget;

/// A topic prefix no other test uses.
struct Topics {
    prefix: String,
}

impl Topics {
    fn events(&self) -> String {
        format!("{}.events", self.prefix)
    }

    fn catalog(&self) -> String {
        format!("{}-types", self.prefix)
    }
}

fn options(value: Value) -> JsonMap {
    value.as_object().cloned().expect("an object")
}

/// The payloads of every message in the topics `wanted` picks, from the
/// beginning to the end of each partition (as the broker reports it).
fn payloads(wanted: impl Fn(&str) -> bool) -> Vec<Vec<u8>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", unique("conformance"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .expect("a consumer");
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata: is the broker running? (scripts/services start kafka)");
    let mut payloads = Vec::new();
    // One topic at a time: an end-of-partition report names only the partition.
    for topic in metadata.topics().iter().filter(|t| wanted(t.name())) {
        let mut assignment = TopicPartitionList::new();
        let mut open = HashSet::new();
        for partition in topic.partitions() {
            assignment
                .add_partition_offset(topic.name(), partition.id(), Offset::Beginning)
                .expect("a partition");
            open.insert(partition.id());
        }
        consumer.assign(&assignment).expect("assigned");
        let deadline = Instant::now() + WAIT;
        while !open.is_empty() {
            assert!(
                Instant::now() < deadline,
                "never reached the end of partitions {open:?} of {}",
                topic.name()
            );
            match consumer.poll(Duration::from_millis(100)) {
                None => {}
                Some(Ok(message)) => {
                    payloads.push(message.payload().unwrap_or_default().to_vec());
                }
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    open.remove(&partition);
                }
                Some(Err(error)) => panic!("consume {}: {error}", topic.name()),
            }
        }
    }
    payloads
}

impl ConformanceTarget for KafkaTarget {
    const ENGINE: &'static str = "kafka";
    type Namespace = Topics;

    fn connect() -> Self {
        require_broker();
        KafkaTarget
    }

    fn namespace(&self, case: Case) -> Topics {
        Topics {
            prefix: unique(&format!("conformance-{}", case.name())).replace('_', "-"),
        }
    }

    fn options(&self, topics: &Topics, case: Case) -> JsonMap {
        let mut options = options(json!({
            "brokers": brokers(),
            "topic": topics.events(),
            "catalog_topic": topics.catalog(),
        }));
        match case {
            Case::PartialFailure => {
                options.insert("topic".into(), json!(format!("{}.{{name}}", topics.prefix)));
            }
            Case::OversizedEvent => {
                options.insert("properties".into(), json!({"message.max.bytes": "100000"}));
            }
            _ => {}
        }
        options
    }

    fn stored_events(&self, topics: &Topics) -> Vec<Event> {
        let prefix = format!("{}.", topics.prefix);
        payloads(|topic| topic.starts_with(&prefix))
            .iter()
            .map(|payload| {
                Event::from_json_slice(payload).unwrap_or_else(|e| {
                    panic!("not an event ({e}): {}", String::from_utf8_lossy(payload))
                })
            })
            .collect()
    }

    fn stored_catalog(&self, topics: &Topics) -> Vec<CatalogEntry> {
        let catalog = topics.catalog();
        payloads(|topic| topic == catalog)
            .iter()
            .map(|payload| serde_json::from_slice(payload).expect("a catalog entry"))
            .collect()
    }

    fn idempotence(&self) -> Idempotence {
        Idempotence::ReadersDeduplicate
    }

    fn refused_event(&self) -> Result<RefusedEvent, Unsupported> {
        Ok(RefusedEvent {
            // With the prefix, a topic longer than Kafka's 249 characters.
            name: "n".repeat(255),
            data: json!({"i": 0}),
            reason: "Kafka allows at most 249",
        })
    }

    fn size_limit(&self) -> SizeLimit {
        SizeLimit::Store {
            bytes: 100_000,
            reason: "size",
        }
    }

    fn outage(&self, _topics: &Topics) -> Result<Outage, Unsupported> {
        Ok(Outage::new(PausedProcess::pause(&kafka_pid())))
    }

    fn secret_options(&self, topics: &Topics, secret: &str) -> SecretOptions {
        let producer = |properties: Value| {
            options(json!({
                "brokers": brokers(),
                "topic": topics.events(),
                "catalog_topic": topics.catalog(),
                "properties": properties,
            }))
        };
        SecretOptions {
            refused: vec![
                // librdkafka quotes a value it refuses; here the value is the secret.
                producer(json!({"sasl.password": secret, "acks": secret})),
                producer(json!({"sasl.password": secret, "no.such.property": secret})),
                producer(json!({"sasl.password": {"x": secret}})),
                producer(json!({"sasl.passwd": secret})),
            ],
            built: vec![
                // Set but unused on this plaintext connection: delivered, with
                // librdkafka logging everything, configuration included.
                producer(json!({
                    "sasl.username": "tracker",
                    "sasl.password": secret,
                    "debug": "all",
                })),
                // A SASL producer against a plaintext listener: every attempt fails.
                producer(json!({
                    "security.protocol": "SASL_PLAINTEXT",
                    "sasl.mechanisms": "PLAIN",
                    "sasl.username": "tracker",
                    "sasl.password": secret,
                    "message.timeout.ms": "3000",
                    "debug": "security,broker,msg",
                })),
            ],
            logged: Some("librdkafka"),
        }
    }
}

eventtracking_testkit::conformance_tests!(KafkaTarget);
