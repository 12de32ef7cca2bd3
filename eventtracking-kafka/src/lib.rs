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
//!   [`Event::to_json_bytes`] gives (`{"id","name","timestamp","context","data"}`).
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
//! ([`BackendError::Partial`]): those that cannot succeed (message larger than
//! `message.max.bytes`, invalid or unknown topic, not authorized for the
//! topic…) are dead-lettered at once, the others (queue full, message timed
//! out, broker down…) are retried with backoff, and the rest count as
//! delivered. See [`is_retryable`]. A broker outage shorter than
//! `message.timeout.ms` is bridged by librdkafka without any failure; a longer
//! one becomes retries of the engine. An engine retry after a
//! `send_timeout_ms` timeout may produce a message twice (consumers should
//! de-duplicate on the `event-id` header or the key `id` when that matters).
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
//! [`Redactor`]. A property librdkafka
//! does not know, or refuses, is named in the error, its value only when the
//! name does not look secret.
//!
//! # Usage
//!
//! ```no_run
//! use std::time::Duration;
//! use eventtracking_core::Tracker;
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
//! with redaction, and [`RedactingContext`] forwards librdkafka's logs to
//! `tracing` with secrets removed.
//!
//! # Relay
//!
//! [`relay`] is the other direction: a consumer in a consumer group that
//! delivers the events of Kafka topics to a tracker's backends, committing
//! offsets only after the backends accepted the events (`eventtracking relay
//! --config FILE`, configured by the `[source]` table).
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

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, UNIX_EPOCH};

use eventtracking_core::redact::{is_secret_key, Redactor, REDACTED};
use eventtracking_core::registry::{BackendRegistration, ComponentConfig};
use eventtracking_core::{
    async_trait, Backend, BackendError, BackendResult, BuildError, CatalogEntry, Event,
    EventFailure,
};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::ClientContext;
use serde::{Deserialize, Deserializer};

pub mod relay;

/// The longest topic name Kafka accepts.
pub const MAX_TOPIC_LEN: usize = 249;

/// The producer properties this backend sets unless `properties` overrides
/// them: `(key, value)`.
pub const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    ("acks", "all"),
    ("enable.idempotence", "true"),
    ("message.timeout.ms", "25000"),
    ("linger.ms", "0"),
    ("client.id", "eventtracking"),
];

/// The default of `flush_timeout_ms`.
pub const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Properties and redaction
// ---------------------------------------------------------------------------

/// librdkafka properties (`key = value` strings) whose secret values never
/// show: `Debug` prints [`REDACTED`] for them, and [`redact`](Self::redact)
/// removes them from any text.
///
/// ```
/// use eventtracking_kafka::KafkaProperties;
///
/// let mut properties = KafkaProperties::new();
/// properties.set("sasl.username", "tracker");
/// properties.set("sasl.password", "hunter2");
/// assert_eq!(properties.get("sasl.password"), Some("hunter2"));
/// let debug = format!("{properties:?}");
/// assert!(debug.contains("tracker") && !debug.contains("hunter2"));
/// assert_eq!(properties.redact("login with hunter2 failed"), "login with [REDACTED] failed");
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KafkaProperties {
    values: BTreeMap<String, String>,
}

impl KafkaProperties {
    /// No properties.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a property (replacing an earlier value).
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.values.insert(key.into(), value.into());
        self
    }

    /// Sets a property unless it is already set.
    pub fn set_default(&mut self, key: &str, value: &str) -> &mut Self {
        if !self.values.contains_key(key) {
            self.values.insert(key.to_owned(), value.to_owned());
        }
        self
    }

    /// A property's value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// Removes a property, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.values.remove(key)
    }

    /// Whether no property is set.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The properties, sorted by key (secret values included: do not log them).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// A [`Redactor`] that also knows these properties' secret values.
    pub fn redactor(&self) -> Redactor {
        Redactor::new().with_secret_values(self.iter())
    }

    /// `text` with every secret value of these properties replaced by [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        self.redactor().redact(text).into_owned()
    }

    /// An rdkafka [`ClientConfig`] holding exactly these properties (no
    /// producer defaults): for consumers and admin clients that share the
    /// backend's connection settings.
    ///
    /// ```
    /// use eventtracking_kafka::KafkaProperties;
    /// let mut properties = KafkaProperties::new();
    /// properties.set("bootstrap.servers", "127.0.0.1:19092");
    /// let config = properties.client_config();
    /// assert_eq!(config.get("bootstrap.servers"), Some("127.0.0.1:19092"));
    /// ```
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        for (key, value) in &self.values {
            config.set(key, value);
        }
        config
    }
}

impl fmt::Debug for KafkaProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A secret value is hidden under any key (e.g. pasted into `acks` by mistake).
        let redactor = self.redactor();
        f.debug_map()
            .entries(self.values.iter().map(|(k, v)| {
                let shown = if is_secret_key(k) {
                    Cow::Borrowed(REDACTED)
                } else {
                    redactor.redact(v)
                };
                (k, shown)
            }))
            .finish()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for KafkaProperties {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut properties = KafkaProperties::new();
        for (k, v) in iter {
            properties.set(k, v);
        }
        properties
    }
}

/// A property value in a config file: a string, or a number or boolean
/// (turned into its text, as librdkafka takes only strings).
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    String(String),
    Bool(bool),
    Integer(i64),
    Float(f64),
}

impl<'de> Deserialize<'de> for KafkaProperties {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // The error of a bad value names the key (through the map's path) but
        // never the value, which may be a secret.
        let map = BTreeMap::<String, Scalar>::deserialize(deserializer)?;
        Ok(map
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    Scalar::String(s) => s,
                    Scalar::Bool(b) => b.to_string(),
                    Scalar::Integer(i) => i.to_string(),
                    Scalar::Float(f) => f.to_string(),
                };
                (k, v)
            })
            .collect())
    }
}

/// An rdkafka [`ClientContext`] that forwards librdkafka's log lines and
/// client errors to `tracing` (target `eventtracking_kafka::librdkafka`),
/// with secrets removed. Usable for consumers too.
///
/// ```
/// use eventtracking_kafka::{KafkaProperties, RedactingContext};
/// use rdkafka::consumer::BaseConsumer;
///
/// let mut properties = KafkaProperties::new();
/// properties.set("bootstrap.servers", "127.0.0.1:19092").set("group.id", "relay");
/// let context = RedactingContext::new(properties.redactor());
/// let _consumer: BaseConsumer<RedactingContext> =
///     properties.client_config().create_with_context(context).unwrap();
/// ```
#[derive(Debug, Clone, Default)]
pub struct RedactingContext {
    redactor: Redactor,
    repeats: Arc<RepeatFilter>,
}

/// How long a warning or error from librdkafka is not logged again (at its
/// level: repeats go to `debug`): about one retry round of the engine and of
/// librdkafka's reconnects (`reconnect.backoff.max.ms`, 10 s).
pub const LOG_REPEAT_INTERVAL: Duration = Duration::from_secs(10);

/// Holds back repeats of one librdkafka warning: a broker that is down is
/// reported through both the log and the error callback, and again on every
/// reconnect ("1/1 brokers are down" hundreds of times a minute).
#[derive(Default)]
struct RepeatFilter {
    /// Normalized message → when it was last logged, and repeats held back since.
    seen: Mutex<std::collections::HashMap<String, (std::time::Instant, u64)>>,
}

impl fmt::Debug for RepeatFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RepeatFilter").finish_non_exhaustive()
    }
}

impl RepeatFilter {
    /// `Some(held back)` when `message` is to be logged at its level (the
    /// first time, or again after [`LOG_REPEAT_INTERVAL`]); `None` for a repeat.
    fn admit(&self, message: &str) -> Option<u64> {
        let key = repeat_key(message);
        let now = std::time::Instant::now();
        let mut seen = lock(&self.seen);
        if seen.len() > 256 {
            seen.retain(|_, (at, _)| now.duration_since(*at) < LOG_REPEAT_INTERVAL);
        }
        match seen.get_mut(&key) {
            Some((at, held)) if now.duration_since(*at) < LOG_REPEAT_INTERVAL => {
                *held += 1;
                None
            }
            Some((at, held)) => {
                *at = now;
                Some(std::mem::take(held))
            }
            None => {
                seen.insert(key, (now, 0));
                Some(0)
            }
        }
    }
}

/// What makes two librdkafka messages the same report: without the thread
/// prefix (`[thrd:…]: `, absent from the error callback's text), the timing
/// remark (`(after 0ms in state CONNECT…)`) and a leading broker count
/// (`1/1 brokers are down`, `0/1 brokers are down`).
fn repeat_key(message: &str) -> String {
    let mut text = message.trim();
    if text.starts_with("[thrd:") {
        if let Some(at) = text.find("]: ") {
            text = &text[at + 3..];
        }
    }
    if let Some(at) = text.find(" (after ") {
        text = &text[..at];
    }
    match text.split_once(' ') {
        Some((count, rest))
            if count.contains('/') && count.chars().all(|c| c.is_ascii_digit() || c == '/') =>
        {
            format!("#/# {rest}")
        }
        _ => text.to_owned(),
    }
}

impl RedactingContext {
    /// A context removing the redactor's secrets.
    pub fn new(redactor: Redactor) -> Self {
        RedactingContext {
            redactor,
            repeats: Arc::default(),
        }
    }

    /// The redactor.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }
}

impl ClientContext for RedactingContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        let message = self.redactor.redact(log_message);
        let level = match level {
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info | RDKafkaLogLevel::Debug => level,
            _ => match self.repeats.admit(&message) {
                Some(0) => level,
                Some(held_back) => {
                    let message =
                        format!("{message} (and {held_back} times more since it was last logged)");
                    return self.log_at(level, fac, &message);
                }
                None => RDKafkaLogLevel::Debug,
            },
        };
        self.log_at(level, fac, &message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let error = self.redactor.redact(&error.to_string()).into_owned();
        let reason = self.redactor.redact(reason);
        // The same failure usually came through `log` just before.
        match self.repeats.admit(&reason) {
            Some(0) => {
                tracing::warn!(target: "eventtracking_kafka::librdkafka", %error, "librdkafka: {reason}")
            }
            Some(held_back) => {
                tracing::warn!(target: "eventtracking_kafka::librdkafka", %error, held_back, "librdkafka: {reason}")
            }
            None => {
                tracing::debug!(target: "eventtracking_kafka::librdkafka", %error, "librdkafka: {reason}")
            }
        }
    }
}

impl RedactingContext {
    fn log_at(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "eventtracking_kafka::librdkafka", facility = fac, "{message}")
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(target: "eventtracking_kafka::librdkafka", facility = fac, "{message}")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "eventtracking_kafka::librdkafka", facility = fac, "{message}")
            }
            RDKafkaLogLevel::Debug => {
                tracing::debug!(target: "eventtracking_kafka::librdkafka", facility = fac, "{message}")
            }
        }
    }
}

impl rdkafka::consumer::ConsumerContext for RedactingContext {}

/// librdkafka's refusal of a client configuration, as text for an error: it
/// names the property, and its value only when the name does not look
/// secret (librdkafka's own text quotes the value, e.g. of a misspelt
/// `sasl.passwd`, which the properties' redactor cannot know is a secret).
fn client_error_text(error: &KafkaError, redactor: &Redactor) -> String {
    let text = match error {
        KafkaError::ClientConfig(_, description, key, value) if is_secret_key(key) => {
            let redactor = redactor.clone().with_secret(value.as_str());
            format!(
                "property `{key}` = {REDACTED}: {}",
                redactor.redact(description)
            )
        }
        KafkaError::ClientConfig(_, description, key, value) => {
            format!("property `{key}` = {value:?}: {description}")
        }
        other => other.to_string(),
    };
    redactor.redact(&text).into_owned()
}

// ---------------------------------------------------------------------------
// Topic template and message key
// ---------------------------------------------------------------------------

/// Whether Kafka allows this character in a topic name.
fn topic_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// `text` with every character outside `[A-Za-z0-9._-]` replaced by `_`.
///
/// ```
/// assert_eq!(eventtracking_kafka::sanitize_topic_part("user/signup:ok é"), "user_signup_ok__");
/// ```
pub fn sanitize_topic_part(text: &str) -> Cow<'_, str> {
    if text.chars().all(topic_char) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(
            text.chars()
                .map(|c| if topic_char(c) { c } else { '_' })
                .collect(),
        )
    }
}

fn check_topic(topic: &str) -> Result<(), String> {
    if topic.is_empty() {
        return Err("the topic is empty".into());
    }
    if topic == "." || topic == ".." {
        return Err(format!("topic {topic:?} is not allowed by Kafka"));
    }
    if topic.len() > MAX_TOPIC_LEN {
        return Err(format!(
            "topic `{}…` is {} characters long, Kafka allows at most {MAX_TOPIC_LEN}",
            &topic[..32],
            topic.len()
        ));
    }
    Ok(())
}

/// The topic of each message: a fixed name, or a template in which `{name}`
/// stands for the event name with every character outside
/// `[A-Za-z0-9._-]` replaced by `_` (see [`sanitize_topic_part`]).
///
/// The template's own text must consist of `[A-Za-z0-9._-]`. An event whose
/// topic would be longer than [`MAX_TOPIC_LEN`] (or `.` / `..`) fails
/// permanently and is dead-lettered.
///
/// ```
/// use eventtracking_kafka::TopicTemplate;
/// let template: TopicTemplate = "events.{name}".parse().unwrap();
/// assert_eq!(template.topic_for("page.view").unwrap(), "events.page.view");
/// assert_eq!(template.topic_for("user/signup").unwrap(), "events.user_signup");
/// let fixed: TopicTemplate = "events".parse().unwrap();
/// assert_eq!(fixed.topic_for("anything").unwrap(), "events");
/// assert!("events.{id}".parse::<TopicTemplate>().is_err());
/// assert!("my topic".parse::<TopicTemplate>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicTemplate {
    text: String,
    /// Literal parts; `{name}` goes between consecutive parts. One part: a fixed topic.
    parts: Vec<String>,
}

impl TopicTemplate {
    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the topic is the same for every event.
    pub fn is_fixed(&self) -> bool {
        self.parts.len() == 1
    }

    /// The topic for an event name, or why there is none.
    pub fn topic_for(&self, event_name: &str) -> Result<Cow<'_, str>, String> {
        if self.is_fixed() {
            return Ok(Cow::Borrowed(&self.text));
        }
        let name = sanitize_topic_part(event_name);
        let mut topic = String::with_capacity(self.text.len() + name.len());
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                topic.push_str(&name);
            }
            topic.push_str(part);
        }
        check_topic(&topic).map_err(|reason| format!("event `{event_name}`: {reason}"))?;
        Ok(Cow::Owned(topic))
    }
}

impl FromStr for TopicTemplate {
    type Err = KafkaBackendError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: String| KafkaBackendError::InvalidTopic {
            template: text.to_owned(),
            reason,
        };
        let parts: Vec<String> = text.split("{name}").map(str::to_owned).collect();
        for part in &parts {
            if let Some(c) = part.chars().find(|c| !topic_char(*c)) {
                let hint = if c == '{' || c == '}' {
                    " (the only placeholder is `{name}`)"
                } else {
                    ""
                };
                return Err(invalid(format!(
                    "character {c:?} is not allowed in a topic name, only [A-Za-z0-9._-]{hint}"
                )));
            }
        }
        if parts.len() == 1 {
            check_topic(text).map_err(invalid)?;
        } else if parts.concat().len() + parts.len() - 1 > MAX_TOPIC_LEN {
            return Err(invalid(format!(
                "longer than {MAX_TOPIC_LEN} characters even with one-character names"
            )));
        }
        Ok(TopicTemplate {
            text: text.to_owned(),
            parts,
        })
    }
}

/// The key of each message.
///
/// ```
/// use eventtracking_kafka::MessageKey;
/// assert_eq!("id".parse::<MessageKey>().unwrap(), MessageKey::EventId);
/// assert_eq!("context.user_id".parse::<MessageKey>().unwrap(), MessageKey::context_field("user_id"));
/// assert!("data.user_id".parse::<MessageKey>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum MessageKey {
    /// The event id, hyphenated lower-case UUID text (config `"id"`, the default).
    #[default]
    EventId,
    /// A field of the event's context, by dotted path (config
    /// `"context.user_id"`, `"context.session.id"`): a string is used as is,
    /// another JSON value as its compact JSON text. An event without the field,
    /// or with `null` there, is keyed by its id.
    ContextField(Vec<String>),
}

impl MessageKey {
    /// [`MessageKey::ContextField`] from a dotted path such as `user_id` or `session.id`.
    pub fn context_field(path: &str) -> Self {
        MessageKey::ContextField(path.split('.').map(str::to_owned).collect())
    }
}

impl FromStr for MessageKey {
    type Err = KafkaBackendError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "id" {
            return Ok(MessageKey::EventId);
        }
        match text.strip_prefix("context.") {
            Some(path) if !path.is_empty() && path.split('.').all(|p| !p.is_empty()) => {
                Ok(MessageKey::context_field(path))
            }
            _ => Err(KafkaBackendError::InvalidKey {
                key: text.to_owned(),
                reason: "expected \"id\" or \"context.FIELD\" (e.g. \"context.user_id\")".into(),
            }),
        }
    }
}

impl fmt::Display for MessageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageKey::EventId => f.write_str("id"),
            MessageKey::ContextField(path) => write!(f, "context.{}", path.join(".")),
        }
    }
}

/// The event id as hyphenated lower-case text.
fn id_text<'b>(event: &Event, buffer: &'b mut [u8; 45]) -> &'b str {
    event.id().hyphenated().encode_lower(buffer)
}

/// Writes the key of `event` into `out`.
fn write_key(key: &MessageKey, event: &Event, out: &mut Vec<u8>) {
    out.clear();
    if let MessageKey::ContextField(path) = key {
        let mut value = event.context().get(&path[0]);
        for part in &path[1..] {
            value = value.and_then(|v| v.get(part));
        }
        match value {
            Some(serde_json::Value::String(s)) => {
                out.extend_from_slice(s.as_bytes());
                return;
            }
            Some(serde_json::Value::Null) | None => {}
            Some(other) => {
                if serde_json::to_writer(&mut *out, other).is_ok() {
                    return;
                }
                out.clear();
            }
        }
    }
    let mut buffer = [0u8; 45];
    out.extend_from_slice(id_text(event, &mut buffer).as_bytes());
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Why a [`KafkaBackend`] could not be built. Messages never hold secret values.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum KafkaBackendError {
    /// `brokers` is empty.
    #[error("`brokers` is empty: give a comma-separated list of host:port")]
    NoBrokers,
    /// The topic or topic template is not usable.
    #[error("`topic` = {template:?}: {reason}")]
    InvalidTopic {
        /// The template as given.
        template: String,
        /// What is wrong.
        reason: String,
    },
    /// The key setting is not usable.
    #[error("`key` = {key:?}: {reason}")]
    InvalidKey {
        /// The key setting as given.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A property conflicts with another setting.
    #[error("property `{key}`: {reason}")]
    InvalidProperty {
        /// The property key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// librdkafka refused the configuration (an unknown property, a bad
    /// value…). The message is librdkafka's, with secret values redacted;
    /// the driver error itself is not kept because its text could hold them.
    #[error("librdkafka refused the producer configuration: {message}")]
    Client {
        /// librdkafka's message, secrets redacted.
        message: String,
    },
}

/// Whether a failed produce may succeed when retried.
///
/// Not retryable: the message is too large (`MessageSizeTooLarge`,
/// `InvalidMessageSize`, `MessageBatchTooLarge`), the topic is invalid or
/// unknown (`InvalidTopic`, `UnknownTopic`, `UnknownTopicOrPartition` — these
/// reach the caller only after librdkafka's own metadata retries), the
/// producer may not write to it (`TopicAuthorizationFailed`), or the broker
/// refuses the record (`InvalidRecord`, `UnsupportedForMessageFormat`,
/// `InvalidRequiredAcks`). Everything else (queue full, message timed out,
/// broker transport failures, not enough replicas, …) is retryable.
///
/// ```
/// use eventtracking_kafka::is_retryable;
/// use rdkafka::error::{KafkaError, RDKafkaErrorCode};
/// assert!(is_retryable(&KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)));
/// assert!(!is_retryable(&KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge)));
/// ```
pub fn is_retryable(error: &KafkaError) -> bool {
    use RDKafkaErrorCode::*;
    !matches!(
        error.rdkafka_error_code(),
        Some(
            MessageSizeTooLarge
                | InvalidMessageSize
                | MessageBatchTooLarge
                | InvalidTopic
                | UnknownTopic
                | UnknownTopicOrPartition
                | TopicAuthorizationFailed
                | InvalidRecord
                | UnsupportedForMessageFormat
                | InvalidRequiredAcks
        )
    )
}

// ---------------------------------------------------------------------------
// Options (config keys)
// ---------------------------------------------------------------------------

/// The config keys of engine `kafka` (see the crate docs), for
/// [`ComponentConfig::parse_options`]; also usable by other Kafka tools that
/// take the same keys.
///
/// ```
/// use eventtracking_kafka::KafkaOptions;
/// let options: KafkaOptions = serde_json::from_value(serde_json::json!({
///     "brokers": "127.0.0.1:19092",
///     "topic": "events.{name}",
///     "key": "context.user_id",
///     "properties": {"sasl.password": "hunter2", "batch.num.messages": 10000},
/// }))
/// .unwrap();
/// assert_eq!(options.properties.get("batch.num.messages"), Some("10000"));
/// assert!(!format!("{options:?}").contains("hunter2"));
/// let backend = options.into_builder().unwrap().build().unwrap();
/// # drop(backend);
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct KafkaOptions {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// A fixed topic or a template such as `events.{name}`.
    pub topic: String,
    /// `"id"` or `"context.FIELD"`.
    #[serde(default = "default_key")]
    pub key: String,
    /// librdkafka properties, passed through.
    #[serde(default)]
    pub properties: KafkaProperties,
    /// The longest `flush` waits, in milliseconds.
    pub flush_timeout_ms: Option<u64>,
    /// The topic of event type documentation (`""`: none; default `event_types`).
    #[serde(default = "default_catalog_topic")]
    pub catalog_topic: String,
}

fn default_catalog_topic() -> String {
    DEFAULT_CATALOG_TOPIC.to_owned()
}

/// The default of `catalog_topic`.
pub const DEFAULT_CATALOG_TOPIC: &str = "event_types";

fn default_key() -> String {
    "id".to_owned()
}

impl KafkaOptions {
    /// A [`KafkaBackendBuilder`] set up from these options (checks topic and key).
    pub fn into_builder(self) -> Result<KafkaBackendBuilder, KafkaBackendError> {
        let topic: TopicTemplate = self.topic.parse()?;
        let key: MessageKey = self.key.parse()?;
        let mut builder = KafkaBackend::builder(self.brokers)
            .with_topic_template(topic)
            .with_key(key)
            .with_properties(self.properties.iter());
        if let Some(ms) = self.flush_timeout_ms {
            builder = builder.with_flush_timeout(Duration::from_millis(ms));
        }
        let catalog_topic = self.catalog_topic.trim();
        builder = builder
            .with_catalog_topic((!catalog_topic.is_empty()).then(|| catalog_topic.to_owned()));
        Ok(builder)
    }
}

// ---------------------------------------------------------------------------
// Builder
// ---------------------------------------------------------------------------

/// Builds a [`KafkaBackend`]; see [`KafkaBackend::builder`].
///
/// ```
/// use std::time::Duration;
/// use eventtracking_kafka::{KafkaBackend, MessageKey};
///
/// let builder = KafkaBackend::builder("127.0.0.1:19092")
///     .with_topic("events")
///     .with_key(MessageKey::EventId)
///     .with_property("message.max.bytes", "1000000")
///     .with_flush_timeout(Duration::from_secs(5));
/// let config = builder.producer_config().unwrap();
/// assert_eq!(config.get("acks"), Some("all"));
/// assert_eq!(config.get("enable.idempotence"), Some("true"));
/// assert_eq!(config.get("bootstrap.servers"), Some("127.0.0.1:19092"));
/// let backend = builder.build().unwrap();
/// # drop(backend);
/// ```
#[derive(Debug, Clone)]
pub struct KafkaBackendBuilder {
    brokers: String,
    topic: Result<TopicTemplate, KafkaBackendError>,
    key: MessageKey,
    properties: KafkaProperties,
    flush_timeout: Duration,
    catalog_topic: Option<String>,
}

impl KafkaBackendBuilder {
    /// Where the documentation of event types is published (default
    /// `event_types`; `None`: nowhere).
    pub fn with_catalog_topic(mut self, topic: Option<String>) -> Self {
        self.catalog_topic = topic;
        self
    }

    /// The topic: fixed (`"events"`) or a template (`"events.{name}"`). Checked by [`build`](Self::build).
    pub fn with_topic(mut self, topic: &str) -> Self {
        self.topic = topic.parse();
        self
    }

    /// The topic, already parsed.
    pub fn with_topic_template(mut self, topic: TopicTemplate) -> Self {
        self.topic = Ok(topic);
        self
    }

    /// The message key (default [`MessageKey::EventId`]).
    pub fn with_key(mut self, key: MessageKey) -> Self {
        self.key = key;
        self
    }

    /// Sets one librdkafka property (overriding this backend's defaults).
    pub fn with_property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.set(key, value);
        self
    }

    /// Sets several librdkafka properties.
    pub fn with_properties<K: Into<String>, V: Into<String>>(
        mut self,
        properties: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        for (k, v) in properties {
            self.properties.set(k, v);
        }
        self
    }

    /// The longest `flush` and shutdown wait for queued messages (default 10 s).
    pub fn with_flush_timeout(mut self, timeout: Duration) -> Self {
        self.flush_timeout = timeout;
        self
    }

    /// Every producer property: `bootstrap.servers`, [`PRODUCER_DEFAULTS`],
    /// then the given properties.
    pub fn producer_properties(&self) -> Result<KafkaProperties, KafkaBackendError> {
        if self.brokers.trim().is_empty() {
            return Err(KafkaBackendError::NoBrokers);
        }
        let mut properties = self.properties.clone();
        if properties.get("bootstrap.servers").is_some()
            || properties.get("metadata.broker.list").is_some()
        {
            return Err(KafkaBackendError::InvalidProperty {
                key: "bootstrap.servers".into(),
                reason: "set the brokers with `brokers`, not in `properties`".into(),
            });
        }
        properties.set("bootstrap.servers", self.brokers.trim());
        for (key, value) in PRODUCER_DEFAULTS {
            properties.set_default(key, value);
        }
        Ok(properties)
    }

    /// The rdkafka [`ClientConfig`] the producer is created from.
    pub fn producer_config(&self) -> Result<ClientConfig, KafkaBackendError> {
        Ok(self.producer_properties()?.client_config())
    }

    /// Creates the producer. Does not connect: an unreachable broker shows as
    /// retryable delivery failures, not as a build error.
    pub fn build(self) -> Result<KafkaBackend, KafkaBackendError> {
        let topic = self.topic.clone()?;
        if let Some(catalog) = &self.catalog_topic {
            let fixed: TopicTemplate = catalog.parse()?;
            if !fixed.is_fixed() {
                return Err(KafkaBackendError::InvalidProperty {
                    key: "catalog_topic".into(),
                    reason: format!("`{catalog}` must be a fixed topic name, not a template"),
                });
            }
        }
        let properties = self.producer_properties()?;
        let config = properties.client_config();
        let context = RedactingContext::new(properties.redactor());
        let producer = create_producer(&config, &context)?;
        Ok(KafkaBackend {
            producer: Mutex::new(producer),
            config,
            context,
            brokers: self.brokers.trim().to_owned(),
            topic,
            key: self.key,
            properties,
            flush_timeout: self.flush_timeout,
            catalog_topic: self.catalog_topic,
            catalog_topic_prepared: std::sync::atomic::AtomicBool::new(false),
        })
    }
}

fn create_producer(
    config: &ClientConfig,
    context: &RedactingContext,
) -> Result<FutureProducer<RedactingContext>, KafkaBackendError> {
    config
        .create_with_context(context.clone())
        .map_err(|error| KafkaBackendError::Client {
            message: client_error_text(&error, &context.redactor),
        })
}

// ---------------------------------------------------------------------------
// The backend
// ---------------------------------------------------------------------------

/// Produces events to Kafka; see the crate docs for the message layout and guarantees.
pub struct KafkaBackend {
    /// Replaced by a fresh producer after a fatal (idempotence) error.
    producer: Mutex<FutureProducer<RedactingContext>>,
    config: ClientConfig,
    context: RedactingContext,
    brokers: String,
    topic: TopicTemplate,
    key: MessageKey,
    properties: KafkaProperties,
    flush_timeout: Duration,
    catalog_topic: Option<String>,
    /// Whether creating the compacted catalog topic was tried.
    catalog_topic_prepared: std::sync::atomic::AtomicBool,
}

impl fmt::Debug for KafkaBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaBackend")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic.as_str())
            .field("key", &self.key.to_string())
            .field("properties", &self.properties)
            .field("flush_timeout", &self.flush_timeout)
            .field("catalog_topic", &self.catalog_topic)
            .finish()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl KafkaBackend {
    /// A builder producing to `brokers` (`host:port[,host:port…]`), topic
    /// `events` unless [`with_topic`](KafkaBackendBuilder::with_topic) says otherwise.
    pub fn builder(brokers: impl Into<String>) -> KafkaBackendBuilder {
        KafkaBackendBuilder {
            brokers: brokers.into(),
            topic: "events".parse(),
            key: MessageKey::EventId,
            properties: KafkaProperties::new(),
            flush_timeout: DEFAULT_FLUSH_TIMEOUT,
            catalog_topic: Some(DEFAULT_CATALOG_TOPIC.to_owned()),
        }
    }

    /// The topic template.
    pub fn topic(&self) -> &TopicTemplate {
        &self.topic
    }

    /// The message key setting.
    pub fn key(&self) -> &MessageKey {
        &self.key
    }

    /// The producer's properties (secret values included: do not log them;
    /// their `Debug` is redacted).
    pub fn properties(&self) -> &KafkaProperties {
        &self.properties
    }

    /// The producer in use (a clone shares it).
    pub fn producer(&self) -> FutureProducer<RedactingContext> {
        lock(&self.producer).clone()
    }

    fn redact(&self, text: &str) -> String {
        self.context.redactor.redact(text).into_owned()
    }

    fn failure(&self, index: usize, event: &Event, error: &KafkaError) -> EventFailure {
        EventFailure {
            index,
            retryable: is_retryable(error),
            reason: self.redact(&format!("kafka: event `{}`: {error}", event.name())),
        }
    }

    /// A fatal error leaves the producer unusable: start a new one.
    fn catalog_error(&self, entry: &CatalogEntry, error: &KafkaError) -> BackendError {
        let reason = self.redact(&format!(
            "kafka: cannot publish event type `{}` to the catalog topic: {error}",
            entry.key
        ));
        if is_retryable(error) {
            BackendError::Retryable(reason)
        } else {
            BackendError::Permanent(reason)
        }
    }

    fn replace_producer(&self, error: &KafkaError) {
        tracing::error!(
            brokers = %self.brokers,
            error = %self.redact(&error.to_string()),
            "eventtracking-kafka: fatal producer error; creating a new producer"
        );
        match create_producer(&self.config, &self.context) {
            Ok(producer) => *lock(&self.producer) = producer,
            Err(error) => {
                tracing::error!(%error, "eventtracking-kafka: cannot create a new producer")
            }
        }
    }

    /// Creates the catalog topic compacted, once; a broker that refuses
    /// (or one without the admin API) leaves it to auto-creation.
    async fn prepare_catalog_topic(&self, topic: &str) {
        use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
        if self
            .catalog_topic_prepared
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return;
        }
        let admin: AdminClient<RedactingContext> = match self
            .config
            .create_with_context(self.context.clone())
        {
            Ok(admin) => admin,
            Err(error) => {
                tracing::debug!(error = %self.redact(&error.to_string()), "eventtracking-kafka: no admin client for the catalog topic");
                return;
            }
        };
        let new_topic =
            NewTopic::new(topic, 1, TopicReplication::Fixed(-1)).set("cleanup.policy", "compact");
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        match admin.create_topics([&new_topic], &options).await {
            Ok(results) => {
                for result in results {
                    match result {
                        Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                        Err((name, code)) => {
                            tracing::debug!(topic = %name, %code, "eventtracking-kafka: catalog topic not created compacted; left to auto-creation")
                        }
                    }
                }
            }
            Err(error) => {
                tracing::debug!(error = %self.redact(&error.to_string()), "eventtracking-kafka: catalog topic not created compacted; left to auto-creation")
            }
        }
    }

    async fn flush_producer(&self) -> BackendResult {
        let producer = self.producer();
        if producer.in_flight_count() == 0 {
            return Ok(());
        }
        let timeout = self.flush_timeout;
        let flush = move || producer.flush(timeout);
        let result = match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle
                .spawn_blocking(flush)
                .await
                .map_err(|e| BackendError::Retryable(format!("kafka flush task failed: {e}")))?,
            Err(_) => flush(),
        };
        match result {
            Ok(()) => Ok(()),
            Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut)) => {
                Err(BackendError::Timeout(timeout))
            }
            Err(error) => Err(BackendError::Retryable(
                self.redact(&format!("kafka flush failed: {error}")),
            )),
        }
    }
}

fn millis_since_epoch(event: &Event) -> Option<i64> {
    event
        .timestamp()
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_millis()).ok())
}

#[async_trait]
impl Backend for KafkaBackend {
    /// Publishes each entry to the catalog topic, keyed by `NAME@VERSION`,
    /// and waits for the delivery reports.
    async fn publish_event_types(&self, types: &[Arc<CatalogEntry>]) -> BackendResult {
        let Some(topic) = self.catalog_topic.as_deref() else {
            return Ok(());
        };
        self.prepare_catalog_topic(topic).await;
        let producer = self.producer();
        let mut pending = Vec::with_capacity(types.len());
        for entry in types {
            let value = serde_json::to_vec(&entry.to_json())
                .map_err(|e| BackendError::Permanent(format!("kafka: catalog entry: {e}")))?;
            let headers = OwnedHeaders::new_with_capacity(1).insert(Header {
                key: "event-schema",
                value: Some(entry.key.as_str()),
            });
            let record = FutureRecord::to(topic)
                .payload(value.as_slice())
                .key(entry.key.as_str())
                .headers(headers);
            match producer.send_result(record) {
                Ok(delivery) => pending.push((entry, delivery)),
                Err((error, _)) => {
                    return Err(self.catalog_error(entry, &error));
                }
            }
        }
        for (entry, delivery) in pending {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((error, _))) => return Err(self.catalog_error(entry, &error)),
                Err(_canceled) => {
                    return Err(BackendError::Retryable(
                        "kafka: the producer was closed before the catalog's delivery report"
                            .into(),
                    ))
                }
            }
        }
        Ok(())
    }

    async fn send_batch(&self, batch: &[Arc<Event>]) -> BackendResult {
        let producer = self.producer();
        let mut failures = Vec::new();
        let mut pending = Vec::with_capacity(batch.len());
        let mut fatal = None;
        // librdkafka copies key and value, so two buffers serve the whole batch.
        let mut value = Vec::with_capacity(1024);
        let mut key = Vec::with_capacity(64);
        let mut id = [0u8; 45];
        for (index, event) in batch.iter().enumerate() {
            let topic = match self.topic.topic_for(event.name()) {
                Ok(topic) => topic,
                Err(reason) => {
                    failures.push(EventFailure {
                        index,
                        retryable: false,
                        reason: format!("kafka: {reason}"),
                    });
                    continue;
                }
            };
            value.clear();
            event.write_json(&mut value);
            write_key(&self.key, event, &mut key);
            let mut headers = OwnedHeaders::new_with_capacity(3)
                .insert(Header {
                    key: "event-name",
                    value: Some(event.name()),
                })
                .insert(Header {
                    key: "event-id",
                    value: Some(id_text(event, &mut id)),
                });
            if let Some(schema) = event.schema() {
                headers = headers.insert(Header {
                    key: "event-schema",
                    value: Some(schema),
                });
            }
            let mut record = FutureRecord::to(&topic)
                .payload(value.as_slice())
                .key(key.as_slice())
                .headers(headers);
            if let Some(ms) = millis_since_epoch(event) {
                record = record.timestamp(ms);
            }
            match producer.send_result(record) {
                Ok(delivery) => pending.push((index, delivery)),
                Err((error, _)) => {
                    if error.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal) {
                        fatal = Some(error.clone());
                    }
                    failures.push(self.failure(index, event, &error));
                }
            }
        }
        // Every message is in librdkafka's hands: wait for each report.
        for (index, delivery) in pending {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((error, _message))) => {
                    if error.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal) {
                        fatal = Some(error.clone());
                    }
                    failures.push(self.failure(index, &batch[index], &error));
                }
                Err(_canceled) => failures.push(EventFailure {
                    index,
                    retryable: true,
                    reason: "kafka: the producer was closed before the delivery report".into(),
                }),
            }
        }
        if let Some(error) = fatal {
            self.replace_producer(&error);
        }
        if failures.is_empty() {
            Ok(())
        } else {
            failures.sort_by_key(|f| f.index);
            Err(BackendError::Partial(failures))
        }
    }

    async fn flush(&self) -> BackendResult {
        self.flush_producer().await
    }

    async fn shutdown(&self) -> BackendResult {
        self.flush_producer().await
    }
}

// ---------------------------------------------------------------------------
// Registration
// ---------------------------------------------------------------------------

fn build(config: &ComponentConfig) -> Result<Box<dyn Backend>, BuildError> {
    let options: KafkaOptions = config.parse_options()?;
    let backend = options
        .into_builder()
        .and_then(KafkaBackendBuilder::build)
        .map_err(|error| config.invalid(error.to_string()))?;
    Ok(Box::new(backend))
}

eventtracking_core::register_backend! {
    BackendRegistration::new(
        "kafka",
        "one Kafka message per event (`brokers`, `topic` or \"prefix.{name}\", `key`), acks=all, idempotent",
        build,
    )
    // One batch is in flight per backend: large batches keep the producer
    // busy (see BENCHMARKS.md: 0.5-0.7x raw rdkafka at 512, 0.89x at 10000).
    .with_batch_size(DEFAULT_BATCH_SIZE)
}

/// The `batch_size` a config file gets for engine `kafka` when it sets none.
pub const DEFAULT_BATCH_SIZE: usize = 10_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_without_batch_size_gets_large_kafka_batches() {
        if std::env::var_os("EVENTTRACKING_BATCH_SIZE").is_some() {
            return;
        }
        let base =
            "[backends.stream]\nengine = \"kafka\"\nbrokers = \"127.0.0.1:1\"\ntopic = \"t\"\n";
        let tracker = eventtracking::Config::from_toml_str(base)
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(
            tracker.delivery_config("stream").unwrap().batch_size,
            DEFAULT_BATCH_SIZE
        );
        let text = format!("[delivery]\nbatch_size = 64\n{base}");
        let tracker = eventtracking::Config::from_toml_str(&text)
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(tracker.delivery_config("stream").unwrap().batch_size, 64);
    }
    use serde_json::json;

    fn event_with_context(context: serde_json::Value) -> Event {
        let mut event = Event::new("page.view", json!({})).unwrap();
        *event.context_mut() = context.as_object().unwrap().clone();
        event
    }

    #[test]
    fn keys_come_from_the_id_or_a_context_field_with_fallback() {
        let mut out = Vec::new();
        let event =
            event_with_context(json!({"user_id": "u1", "n": 7, "s": {"id": [1, 2]}, "z": null}));
        let id = event.id().to_string();
        write_key(&MessageKey::EventId, &event, &mut out);
        assert_eq!(out, id.as_bytes());
        write_key(&"context.user_id".parse().unwrap(), &event, &mut out);
        assert_eq!(out, b"u1");
        write_key(&"context.n".parse().unwrap(), &event, &mut out);
        assert_eq!(out, b"7");
        write_key(&"context.s.id".parse().unwrap(), &event, &mut out);
        assert_eq!(out, b"[1,2]");
        for missing in ["context.z", "context.nope", "context.user_id.x"] {
            write_key(&missing.parse().unwrap(), &event, &mut out);
            assert_eq!(out, id.as_bytes(), "{missing}");
        }
    }

    #[test]
    fn bad_keys_and_topics_are_refused() {
        for bad in ["", "context.", "context..a", "user_id", "data.x"] {
            assert!(bad.parse::<MessageKey>().is_err(), "{bad:?}");
        }
        for bad in ["", ".", "..", "a b", "events.{id}", "x{", &"a".repeat(250)] {
            assert!(bad.parse::<TopicTemplate>().is_err(), "{bad:?}");
        }
        let t: TopicTemplate = "{name}".parse().unwrap();
        assert!(t.topic_for(".").is_err());
        assert!(t.topic_for(&"a".repeat(250)).is_err());
        let t: TopicTemplate = "a.{name}.b.{name}".parse().unwrap();
        assert_eq!(t.topic_for("x y").unwrap(), "a.x_y.b.x_y");
    }

    #[test]
    fn brokers_are_required_and_not_in_properties() {
        assert!(matches!(
            KafkaBackend::builder(" ").build(),
            Err(KafkaBackendError::NoBrokers)
        ));
        let err = KafkaBackend::builder("h:1")
            .with_property("bootstrap.servers", "x:1")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("bootstrap.servers"), "{err}");
    }
}
