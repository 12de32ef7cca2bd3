//! The relay: a Kafka consumer in a consumer group that hands every event it
//! reads to a [`Tracker`](eventtracking::Tracker)'s backends, and commits the offsets only once the
//! backends have accepted the events (`eventtracking relay --config FILE`).
//!
//! # Config (`[source]`)
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `engine` | required | `"kafka"` |
//! | `brokers` | required | `bootstrap.servers`: comma-separated `host:port` list |
//! | `topics` | required | the topics to read (a name starting with `^` is a regular expression, as in librdkafka) |
//! | `group` | required | the consumer group: relays sharing it split the partitions between them |
//! | `properties` | none | librdkafka consumer properties, passed through (TLS, SASL, `session.timeout.ms`…); secret values are redacted as for the backend ([`KafkaProperties`](eventtracking::kafka::KafkaProperties)) |
//!
//! ```toml
//! [source]
//! engine = "kafka"
//! brokers = "127.0.0.1:19092"
//! topics = ["events"]
//! group = "relay"
//! properties = { "session.timeout.ms" = "6000" }
//!
//! [backends.warehouse]
//! engine = "mongo"
//! uri = "mongodb://127.0.0.1:27117"
//! ```
//!
//! Consumer settings: `bootstrap.servers` comes from `brokers`, `group.id`
//! from `group`; `enable.auto.commit` and `enable.auto.offset.store` are
//! always `false` (the relay commits itself). Defaults that `properties` may
//! override are in [`CONSUMER_DEFAULTS`] (`auto.offset.reset = "earliest"`: a
//! new group starts at the beginning of the topics).
//!
//! # Delivery guarantee
//!
//! At least once. Each message's value is parsed as an event
//! ([`Event`](eventtracking::Event)'s JSON, as the Kafka backend writes it) and emitted with
//! [`Tracker::emit_event`](eventtracking::Tracker::emit_event), keeping its id, timestamp and context. Every
//! commit interval (or after [`max_uncommitted`](RelayBuilder::with_max_uncommitted)
//! messages) the relay flushes the tracker and, only when the flush reports
//! that every event was delivered or dead-lettered and no event was dropped,
//! commits the offsets following the messages it handled. So:
//!
//! - a relay killed at any point resumes from its last commit: the events
//!   after it are delivered again (duplicates, never gaps); events keep their
//!   ids so consumers can de-duplicate, and the MongoDB backend treats a
//!   duplicate `_id` as delivered;
//! - the tracker's queues cannot overflow: at most `max_uncommitted`
//!   events (never more than the smallest `queue_capacity`) are emitted
//!   between two complete flushes;
//! - if anything is lost anyway (a processor error, an event dropped, a dead
//!   letter that could not be written), the relay stops without committing
//!   past it ([`StopReason::Failed`]): a restart delivers it again;
//! - partitions being revoked in a rebalance are flushed and committed first
//!   (in librdkafka's revoke callback); if the flush cannot finish in time,
//!   the new owner re-reads from the last commit (duplicates only).
//!
//! A message whose value is not an event (bad JSON, a missing field, no
//! value at all) is written to the dead-letter file as a
//! [`DeadLetterRecord`](eventtracking::DeadLetterRecord) (backend `relay`, reason naming topic, partition and
//! offset) wrapping an event named [`MALFORMED_EVENT_NAME`] whose data holds
//! `topic`, `partition`, `offset`, `key`, the raw `payload` (text, or
//! `payload_hex` when it is not UTF-8) and the parse `error`; it is counted
//! and logged, and its offset is committed like any other.
//!
//! # Usage
//!
//! ```no_run
//! use eventtracking::Config;
//! use eventtracking_cli::relay::RelayBuilder;
//!
//! let config = Config::from_path("relay.toml").unwrap();
//! let relay = RelayBuilder::from_config(&config).unwrap().build().unwrap();
//! let stop = relay.stop_handle(); // call stop.stop() from a signal handler
//! # drop(stop);
//! let report = relay.run(); // blocks until stopped; flushes, commits, shuts the tracker down
//! eprintln!("{report}");
//! ```
//!
//! # Layout
//!
//! `options.rs` ([`RelayOptions`], the constants), `builder.rs`
//! ([`RelayBuilder`], [`RelayError`]), `report.rs` ([`RelayStats`],
//! [`RelayReport`], [`StopReason`]), `commit.rs` (offset bookkeeping: the
//! flush-then-commit cycle and the rebalance context) and `run.rs`
//! ([`Relay::run`], handling each message, and `dead_letter_malformed`, the
//! relay's own dead-letter writer). This module was `eventtracking_kafka::relay`:
//! it drives a [`Tracker`](eventtracking::Tracker), and backend crates do not
//! depend on the delivery engine.

mod builder;
mod commit;
mod options;
mod report;
mod run;

pub use builder::{RelayBuilder, RelayError};
pub use options::{
    RelayOptions, CONSUMER_DEFAULTS, DEAD_LETTER_BACKEND, DEFAULT_COMMIT_INTERVAL,
    DEFAULT_MAX_UNCOMMITTED, DEFAULT_RELAY_FLUSH_TIMEOUT, MALFORMED_EVENT_NAME, MANAGED_PROPERTIES,
};
pub use report::{RelayMonitor, RelayReport, RelayStats, StopReason};
pub use run::{Relay, StopHandle};

use eventtracking::sync::lock;
