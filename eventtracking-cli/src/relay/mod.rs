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
//! At least once, from per-event acknowledgements. The relay is the
//! engine's generic loop ([`RelayLoop`](eventtracking::relay::RelayLoop))
//! over the Kafka source of `eventtracking-kafka`
//! ([`KafkaSource`](eventtracking::kafka::KafkaSource)). Each message's
//! value is parsed as an event ([`Event`](eventtracking::Event)'s JSON, as
//! the Kafka backend writes it) and emitted with
//! [`Tracker::emit_event_acked`](eventtracking::Tracker::emit_event_acked),
//! keeping its id, timestamp and context. When every backend has delivered,
//! dead-lettered or filtered the event, its message is acknowledged. Every
//! commit interval the relay commits, per partition, the offset after the
//! highest contiguous run of acknowledged messages. So:
//!
//! - a relay killed at any point resumes from its last commit: the events
//!   after it are delivered again (duplicates, never gaps); events keep their
//!   ids so consumers can de-duplicate, and the MongoDB backend treats a
//!   duplicate `_id` as delivered;
//! - an event dead-lettered by a backend is settled (it is in the
//!   dead-letter file, replayable): the relay commits past it;
//! - the relay answers only for its own events: other emitters on the same
//!   tracker, and their drops, neither stop nor stall it;
//! - if one of its events is lost (dropped at a backend, a processor
//!   error), the relay stops ([`StopReason::Failed`]) and its partition is
//!   never committed past it: a restart delivers it again;
//! - the tracker's queues cannot overflow: reading pauses while
//!   `max_uncommitted` messages (never more than the smallest
//!   `queue_capacity`) are handed out and not committed;
//! - partitions being revoked in a rebalance wait (up to the flush timeout)
//!   for their outstanding acknowledgements and commit what settled (in
//!   librdkafka's revoke callback); the rest is re-read by the new owner
//!   (duplicates only).
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
//! ([`RelayBuilder`], [`RelayError`]: the Kafka source and the engine's
//! relay loop), `report.rs` ([`RelayStats`], [`RelayReport`]) and `run.rs`
//! ([`Relay::run`]). Offset bookkeeping and rebalances are the Kafka
//! source's (`eventtracking-kafka`); reading, acknowledging, back-pressure
//! and dead-lettering malformed messages are the engine's relay loop's.

mod builder;
mod options;
mod report;
mod run;

pub use builder::{RelayBuilder, RelayError};
pub use eventtracking::relay::StopHandle;
pub use options::{
    RelayOptions, CONSUMER_DEFAULTS, DEAD_LETTER_BACKEND, DEFAULT_COMMIT_INTERVAL,
    DEFAULT_MAX_UNCOMMITTED, DEFAULT_RELAY_FLUSH_TIMEOUT, MALFORMED_EVENT_NAME, MANAGED_PROPERTIES,
};
pub use report::{RelayMonitor, RelayReport, RelayStats, StopReason};
pub use run::Relay;
