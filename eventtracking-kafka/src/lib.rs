//! # eventtracking-kafka
//!
//! The Kafka backend of eventtracking, engine `kafka`: every event becomes one
//! Kafka message (value: the event's one-line JSON; key: its id or a context
//! field; headers `event-name` and `event-id`), produced with
//! [`rdkafka`](https://docs.rs/rdkafka) (bundled librdkafka, no system library
//! needed). Batching, retries with backoff and dead-lettering are done by the
//! delivery engine of `eventtracking-core`; this crate only produces a batch and
//! waits for the broker's delivery report of each of its messages.
//!
//! # Config keys
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `brokers` | required | `bootstrap.servers`: comma-separated `host:port` list |
//! | `topic` | required | a fixed topic, or a template on the event name such as `"events.{name}"` (see [`TopicTemplate`]) |
//! | `key` | `"id"` | the message key: `"id"` (the event id), or `"context.FIELD"` (dotted path into the event's context, e.g. `"context.user_id"`); see [`MessageKey`] |
//! | `properties` | none | a table of librdkafka properties (strings; numbers and booleans are turned into strings), passed through unchanged: TLS, SASL, compression, timeouts… |
//! | `flush_timeout_ms` | `10000` | the longest `flush` (and shutdown) waits for messages still in librdkafka's queue |
//! | `catalog_topic` | `"event_types"` | where the documentation of typed events is published (see below); `""` turns it off |
//!
//! Producer defaults, each overridable through `properties`:
//!
//! | librdkafka property | default here | why |
//! |---|---|---|
//! | `acks` | `all` | a message counts as delivered only once every in-sync replica has it |
//! | `enable.idempotence` | `true` | librdkafka's own resends never duplicate or reorder messages |
//! | `message.timeout.ms` | `25000` | a delivery report comes within this time; keep it below the engine's `send_timeout_ms` (default 30000) |
//! | `linger.ms` | `0` | the engine already batched the events: a batch goes out at once instead of waiting 5 ms (librdkafka's default) each time |
//! | `client.id` | `eventtracking` | names the producer in broker logs and metrics |
//!
//! `bootstrap.servers` is set from `brokers` and must not also be given in
//! `properties`.
//!
//! ```toml
//! [backends.stream]
//! engine = "kafka"
//! brokers = "127.0.0.1:19092"
//! topic = "events.{name}"      # or a fixed topic such as "events"
//! key = "context.user_id"      # one user's events stay in order; default "id"
//!
//! [backends.stream.properties]
//! "compression.type" = "zstd"
//! "security.protocol" = "SASL_SSL"
//! "sasl.mechanisms" = "SCRAM-SHA-512"
//! "sasl.username" = "tracker"
//! "sasl.password" = "…"         # never logged, never in Debug output or errors
//! ```
//!
//! Link the crate once so that its registration is kept (the `eventtracking`
//! facade's `kafka` feature does this for you):
//!
//! ```
//! use eventtracking_kafka as _;
//! ```
//!
//! # Messages
//!
//! - **Value**: the event's JSON, byte for byte what
//!   [`Event::to_json_bytes`](eventtracking_core::Event::to_json_bytes) gives (`{"id","name","timestamp","context","data"}`).
//! - **Key**: see [`MessageKey`]. With `key = "context.user_id"` an event
//!   without that field (or with `null` there) is keyed by its id instead.
//! - **Headers**: `event-name` and `event-id` (UTF-8), and for typed events
//!   `event-schema`: `NAME@VERSION`, also in the value's `schema` field.
//! - **Timestamp**: the event's timestamp (milliseconds since the epoch).
//!
//! # The event catalog
//!
//! Before the first event of each typed event type (see
//! [`eventtracking_core::catalog`](mod@eventtracking_core::catalog)) is produced, its catalog entry is
//! published to `catalog_topic` (default `event_types`), once per type per
//! process: key `NAME@VERSION` (the events' `event-schema` header), value the
//! entry as JSON (name, version, descriptions, JSON Schema; the format of
//! `eventtracking catalog --format json`). The backend first tries to create
//! the topic with `cleanup.policy=compact`, so that the latest entry of each
//! key is kept forever; where the broker refuses, the topic is left to
//! auto-creation. Publishing is idempotent: the same key and value again.
//!
//! # Delivery guarantee
//!
//! At least once. `send_batch` hands every message of the batch to
//! librdkafka and returns only when each has a delivery report: with the
//! defaults above a report of success means the message is on every in-sync
//! replica. Messages that failed are reported to the engine by index
//! ([`BackendError::Partial`](eventtracking_core::BackendError::Partial)): those that cannot succeed (message larger than
//! `message.max.bytes`, invalid or unknown topic, not authorized for the
//! topic…) are dead-lettered at once, the others (queue full, message timed
//! out, broker down…) are retried with backoff, and the rest count as
//! delivered. See [`is_retryable`]. A broker outage shorter than
//! `message.timeout.ms` is bridged by librdkafka without any failure; a longer
//! one becomes retries of the engine. When the broker then fences the
//! idempotent producer (its messages timed out, so its sequence is broken),
//! or librdkafka reports a fatal error, the backend replaces the producer
//! once and the engine retries the messages ([`needs_new_producer`]). An
//! engine retry after a `send_timeout_ms` timeout may produce a message
//! twice (consumers should de-duplicate on the `event-id` header or the key
//! `id` when that matters).
//!
//! # Secrets
//!
//! Property values whose key looks secret by the workspace's one rule
//! ([`eventtracking_core::redact::is_secret_key`]: `sasl.password`,
//! `sasl.passwd`, `ssl.key.*`, `sasl.oauthbearer.config`, anything with
//! `secret` or `token`…) are secrets: `Debug` output shows `[REDACTED]`, and
//! every message this crate logs or returns (build errors, delivery errors,
//! librdkafka's own log lines, which are forwarded to `tracing`) has their
//! values replaced by `[REDACTED]` by core's
//! [`Redactor`](eventtracking_core::redact::Redactor). A property librdkafka
//! does not know, or refuses, is named in the error, its value only when the
//! name does not look secret.
//!
//! # Usage
//!
//! ```no_run
//! use std::time::Duration;
//! use eventtracking::Tracker;
//! use eventtracking_kafka::{KafkaBackend, MessageKey};
//!
//! let backend = KafkaBackend::builder("127.0.0.1:19092")
//!     .with_topic("events.{name}")
//!     .with_key(MessageKey::context_field("user_id"))
//!     .with_property("compression.type", "lz4")
//!     .build()
//!     .unwrap();
//! let tracker = Tracker::builder().with_backend("stream", backend).build().unwrap();
//! tracker.emit("page.view", serde_json::json!({"url": "/"})).unwrap();
//! tracker.shutdown(Duration::from_secs(10));
//! ```
//!
//! For other Kafka clients (a relay, a consumer), [`KafkaOptions`] parses the
//! same config keys, [`KafkaProperties`] holds the pass-through properties
//! with redaction, [`RedactingContext`] forwards librdkafka's logs to
//! `tracing` with secrets removed, [`client_error_text`] turns librdkafka's
//! refusal of a configuration into redacted text, and [`is_topic_char`] and
//! [`check_topic`] check topic names.
//!
//! # Relay
//!
//! The other direction, a consumer in a consumer group that delivers the
//! events of Kafka topics to a tracker's backends and commits offsets only
//! after the backends accepted the events (`eventtracking relay --config
//! FILE`, configured by the `[source]` table), is the `relay` module of the
//! `eventtracking` command's library (crate `eventtracking-cli`,
//! `eventtracking_cli::relay`): it drives a tracker, and this backend crate
//! does not depend on the delivery engine.
//!
//! # Runtime
//!
//! librdkafka runs its own threads; delivery reports arrive on them and wake
//! the engine's tokio task. `flush` runs librdkafka's blocking flush on tokio's
//! blocking pool.
//!
//! # MSRV
//!
//! Rust 1.85.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(docsrs, deny(rustdoc::broken_intra_doc_links))]

mod backend;
mod config;
mod context;
mod error;
mod key;
mod properties;
mod source;
mod topic;

pub use backend::{
    KafkaBackend, KafkaBackendBuilder, DEFAULT_FLUSH_TIMEOUT, SUGGESTED_MAX_IN_FLIGHT,
};
pub use config::{KafkaOptions, DEFAULT_BATCH_SIZE, DEFAULT_CATALOG_TOPIC};
pub use context::{RedactingContext, LOG_REPEAT_INTERVAL};
pub use error::{client_error_text, is_retryable, needs_new_producer, KafkaBackendError};
pub use key::MessageKey;
pub use properties::{KafkaProperties, PRODUCER_DEFAULTS};
pub use source::{
    KafkaSource, KafkaSourceMonitor, KafkaSourceStats, DEFAULT_REVOKE_TIMEOUT, MALFORMED_EVENT_NAME,
};
pub use topic::{check_topic, is_topic_char, sanitize_topic_part, TopicTemplate, MAX_TOPIC_LEN};

use eventtracking_core::sync::lock;
