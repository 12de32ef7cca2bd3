//! The relay: a Kafka consumer in a consumer group that hands every event it
//! reads to a [`Tracker`]'s backends, and commits the offsets only once the
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
//! | `properties` | none | librdkafka consumer properties, passed through (TLS, SASL, `session.timeout.ms`…); secret values are redacted as for the backend ([`KafkaProperties`]) |
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
//! ([`Event`]'s JSON, as the Kafka backend writes it) and emitted with
//! [`Tracker::emit_event`], keeping its id, timestamp and context. Every
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
//! [`DeadLetterRecord`] (backend `relay`, reason naming topic, partition and
//! offset) wrapping an event named [`MALFORMED_EVENT_NAME`] whose data holds
//! `topic`, `partition`, `offset`, `key`, the raw `payload` (text, or
//! `payload_hex` when it is not UTF-8) and the parse `error`; it is counted
//! and logged, and its offset is committed like any other.
//!
//! # Usage
//!
//! ```no_run
//! use eventtracking_core::Config;
//! use eventtracking_kafka::relay::RelayBuilder;
//!
//! let config = Config::from_path("relay.toml").unwrap();
//! let relay = RelayBuilder::from_config(&config).unwrap().build().unwrap();
//! let stop = relay.stop_handle(); // call stop.stop() from a signal handler
//! # drop(stop);
//! let report = relay.run(); // blocks until stopped; flushes, commits, shuts the tracker down
//! eprintln!("{report}");
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eventtracking_core::registry::ComponentConfig;
use eventtracking_core::{BuildError, CatalogEntry, Event};
use eventtracking_engine::{Config, ConfigError, DeadLetterWriter, DeliveryReport, Tracker};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::Deserialize;
use serde_json::json;

use crate::{lock, topic_char, KafkaProperties, RedactingContext};

/// Consumer properties the relay sets unless `properties` overrides them.
pub const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    ("auto.offset.reset", "earliest"),
    ("client.id", "eventtracking-relay"),
    ("enable.partition.eof", "false"),
];

/// Properties the relay manages itself and that `properties` may not set.
pub const MANAGED_PROPERTIES: &[&str] = &[
    "bootstrap.servers",
    "metadata.broker.list",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
];

/// The name of the event wrapping a malformed message in the dead-letter file.
pub const MALFORMED_EVENT_NAME: &str = "eventtracking.relay.malformed";

/// The `backend` of dead-letter records written by the relay.
pub const DEAD_LETTER_BACKEND: &str = "relay";

/// Default of [`RelayBuilder::with_commit_interval`].
pub const DEFAULT_COMMIT_INTERVAL: Duration = Duration::from_secs(1);

/// Default (and upper bound, with the backends' smallest `queue_capacity`)
/// of [`RelayBuilder::with_max_uncommitted`].
pub const DEFAULT_MAX_UNCOMMITTED: usize = 10_000;

/// Default of [`RelayBuilder::with_flush_timeout`].
pub const DEFAULT_RELAY_FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// How long one flush of the regular commit cycle waits before the relay
/// looks at its stop flag again.
const FLUSH_SLICE: Duration = Duration::from_secs(1);

/// The longest one `poll` waits, so that a stop request is seen quickly.
const POLL_SLICE: Duration = Duration::from_millis(100);

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

/// The keys of the `[source]` table (see the [module docs](self)), parsed
/// with unknown keys refused.
///
/// ```
/// use eventtracking_core::registry::ComponentConfig;
/// use eventtracking_kafka::relay::RelayOptions;
///
/// let source = ComponentConfig::new("source", "kafka", serde_json::json!({
///     "brokers": "127.0.0.1:19092",
///     "topics": ["events"],
///     "group": "relay",
///     "properties": {"session.timeout.ms": 6000, "sasl.password": "hunter2"},
/// }).as_object().unwrap().clone());
/// let options = RelayOptions::from_component(&source).unwrap();
/// assert_eq!(options.group, "relay");
/// assert!(!format!("{options:?}").contains("hunter2"));
/// let properties = options.consumer_properties().unwrap();
/// assert_eq!(properties.get("group.id"), Some("relay"));
/// assert_eq!(properties.get("enable.auto.commit"), Some("false"));
/// assert_eq!(properties.get("session.timeout.ms"), Some("6000"));
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RelayOptions {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// The topics to subscribe to.
    pub topics: Vec<String>,
    /// The consumer group.
    pub group: String,
    /// librdkafka consumer properties, passed through.
    #[serde(default)]
    pub properties: KafkaProperties,
    /// The catalog topic the Kafka backend publishes event type
    /// documentation to (default `event_types`; `""`: none). The relay reads
    /// it too and hands each entry to its backends'
    /// `publish_event_types`, so the documentation follows the events.
    #[serde(default = "default_catalog_topic")]
    pub catalog_topic: String,
}

fn default_catalog_topic() -> String {
    crate::DEFAULT_CATALOG_TOPIC.to_owned()
}

impl RelayOptions {
    /// Options without extra properties.
    pub fn new(
        brokers: impl Into<String>,
        topics: impl IntoIterator<Item = impl Into<String>>,
        group: impl Into<String>,
    ) -> Self {
        RelayOptions {
            brokers: brokers.into(),
            topics: topics.into_iter().map(Into::into).collect(),
            group: group.into(),
            properties: KafkaProperties::new(),
            catalog_topic: default_catalog_topic(),
        }
    }

    /// Sets one librdkafka consumer property.
    pub fn with_property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.set(key, value);
        self
    }

    /// Parses and checks the `[source]` table (engine `kafka`).
    pub fn from_component(config: &ComponentConfig) -> Result<Self, BuildError> {
        if config.engine() != "kafka" {
            return Err(config.invalid(format!(
                "the relay reads from engine \"kafka\" only, not {:?}",
                config.engine()
            )));
        }
        let options: RelayOptions = config.parse_options()?;
        options
            .check()
            .map_err(|error| config.invalid(error.to_string()))?;
        Ok(options)
    }

    /// Refuses empty or unusable settings.
    pub fn check(&self) -> Result<(), RelayError> {
        let invalid = |key: &str, reason: String| RelayError::Invalid {
            key: key.to_owned(),
            reason,
        };
        if self.brokers.trim().is_empty() {
            return Err(invalid(
                "brokers",
                "is empty: give a comma-separated list of host:port".into(),
            ));
        }
        if self.group.trim().is_empty() {
            return Err(invalid("group", "is empty: name the consumer group".into()));
        }
        if self.topics.is_empty() {
            return Err(invalid(
                "topics",
                "is empty: name at least one topic".into(),
            ));
        }
        for topic in &self.topics {
            if topic.starts_with('^') {
                continue; // a librdkafka regular expression
            }
            if let Some(c) = topic.chars().find(|c| !topic_char(*c)) {
                return Err(invalid(
                    "topics",
                    format!("{topic:?}: character {c:?} is not allowed in a topic name, only [A-Za-z0-9._-] (or a regular expression starting with `^`)"),
                ));
            }
            crate::check_topic(topic).map_err(|reason| invalid("topics", reason))?;
        }
        let catalog = self.catalog_topic.trim();
        if !catalog.is_empty() {
            if let Some(c) = catalog.chars().find(|c| !topic_char(*c)) {
                return Err(invalid(
                    "catalog_topic",
                    format!("{catalog:?}: character {c:?} is not allowed in a topic name, only [A-Za-z0-9._-]"),
                ));
            }
            crate::check_topic(catalog).map_err(|reason| invalid("catalog_topic", reason))?;
        }
        for key in MANAGED_PROPERTIES {
            if self.properties.get(key).is_some() {
                return Err(invalid(
                    &format!("properties.{key}"),
                    "is set by the relay itself (`brokers`, `group`; offsets are committed only after delivery)".into(),
                ));
            }
        }
        Ok(())
    }

    /// Sets the catalog topic (`""`: none).
    pub fn with_catalog_topic(mut self, topic: impl Into<String>) -> Self {
        self.catalog_topic = topic.into();
        self
    }

    /// Every consumer property: the given ones, the managed ones and
    /// [`CONSUMER_DEFAULTS`].
    pub fn consumer_properties(&self) -> Result<KafkaProperties, RelayError> {
        self.check()?;
        let mut properties = self.properties.clone();
        properties
            .set("bootstrap.servers", self.brokers.trim())
            .set("group.id", self.group.trim())
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        for (key, value) in CONSUMER_DEFAULTS {
            properties.set_default(key, value);
        }
        Ok(properties)
    }
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Why a relay could not be set up. Messages never hold secret values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The config has no `[source]` table.
    #[error("the config{} has no [source] table; the relay needs one, e.g. [source] engine = \"kafka\", brokers = \"127.0.0.1:19092\", topics = [\"events\"], group = \"relay\"", .origin.as_deref().map(|o| format!(" `{o}`")).unwrap_or_default())]
    NoSource {
        /// Where the config came from.
        origin: Option<String>,
    },
    /// The config has no backend to deliver to.
    #[error(
        "the config has no [backends.NAME] table: the relay would have nowhere to deliver events"
    )]
    NoBackends,
    /// A `[source]` setting is unusable.
    #[error("[source] `{key}` {reason}")]
    Invalid {
        /// The key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The config could not be read or built.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The `[source]` options are invalid.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// librdkafka refused the consumer configuration or the subscription
    /// (its message, secrets redacted).
    #[error("librdkafka refused the relay's consumer: {message}")]
    Client {
        /// librdkafka's message, secrets redacted.
        message: String,
    },
}

// ---------------------------------------------------------------------------
// Builder
// ---------------------------------------------------------------------------

/// Builds a [`Relay`]: [`RelayBuilder::from_config`] (what the CLI uses) or
/// [`RelayBuilder::new`] with a tracker of your own.
///
/// ```
/// use std::time::Duration;
/// use eventtracking_core::{DiscardBackend, Tracker};
/// use eventtracking_kafka::relay::{RelayBuilder, RelayOptions};
///
/// let tracker = Tracker::builder().with_backend("archive", DiscardBackend).build().unwrap();
/// let options = RelayOptions::new("127.0.0.1:19092", ["events"], "relay")
///     .with_property("session.timeout.ms", "6000");
/// let builder = RelayBuilder::new(options, tracker)
///     .with_commit_interval(Duration::from_millis(500))
///     .with_exit_when_idle(Duration::from_secs(10));
/// assert_eq!(builder.max_uncommitted(), 10_000);
/// let relay = builder.build().unwrap(); // does not connect yet
/// # drop(relay);
/// ```
#[derive(Debug)]
pub struct RelayBuilder {
    options: RelayOptions,
    tracker: Tracker,
    commit_interval: Duration,
    max_uncommitted: Option<usize>,
    flush_timeout: Duration,
    exit_when_idle: Option<Duration>,
    max_rate: Option<u64>,
    dead_letter_path: Option<PathBuf>,
}

impl RelayBuilder {
    /// A relay reading as `options` says into `tracker` (which [`Relay::run`]
    /// shuts down at the end). Malformed messages are only logged and counted
    /// unless [`with_dead_letter_path`](Self::with_dead_letter_path) is set.
    pub fn new(options: RelayOptions, tracker: Tracker) -> Self {
        RelayBuilder {
            options,
            tracker,
            commit_interval: DEFAULT_COMMIT_INTERVAL,
            max_uncommitted: None,
            flush_timeout: DEFAULT_RELAY_FLUSH_TIMEOUT,
            exit_when_idle: None,
            max_rate: None,
            dead_letter_path: None,
        }
    }

    /// The relay of a config file: `[source]` parsed into [`RelayOptions`],
    /// the tracker built from the rest ([`Config::build`]), malformed
    /// messages dead-lettered to the `[delivery]` `dead_letter_path` (with its
    /// default and environment override, the file the backends use too).
    pub fn from_config(config: &Config) -> Result<Self, RelayError> {
        let source = config.source()?.ok_or_else(|| RelayError::NoSource {
            origin: config.origin().map(str::to_owned),
        })?;
        let options = RelayOptions::from_component(&source)?;
        if config.backend_names().next().is_none() {
            return Err(RelayError::NoBackends);
        }
        let dead_letter_path = config.delivery_config()?.dead_letter_path;
        let tracker = config.build()?;
        Ok(RelayBuilder::new(options, tracker).with_dead_letter_path(dead_letter_path))
    }

    /// How often handled messages are flushed and committed (default 1 s).
    pub fn with_commit_interval(mut self, interval: Duration) -> Self {
        self.commit_interval = interval;
        self
    }

    /// The most messages handled between two complete flushes (default
    /// [`DEFAULT_MAX_UNCOMMITTED`]); values above the smallest
    /// `queue_capacity` of the tracker's backends are lowered to it, so that
    /// no queue can overflow.
    pub fn with_max_uncommitted(mut self, max: usize) -> Self {
        self.max_uncommitted = Some(max.max(1));
        self
    }

    /// The longest the flush before a commit waits in a rebalance and at
    /// the end of [`Relay::run`] (default 30 s); also the tracker's shutdown timeout.
    pub fn with_flush_timeout(mut self, timeout: Duration) -> Self {
        self.flush_timeout = timeout;
        self
    }

    /// Stop (as on [`StopHandle::stop`]) once no message arrived for this
    /// long, counted from the last message or the last rebalance. The clock
    /// starts with the first partition assignment: a relay that is never
    /// assigned a partition does not stop on its own.
    pub fn with_exit_when_idle(mut self, idle: Duration) -> Self {
        self.exit_when_idle = Some(idle);
        self
    }

    /// Handle at most this many messages per second (to spare the backends).
    pub fn with_max_rate(mut self, per_second: u64) -> Self {
        self.max_rate = Some(per_second.max(1));
        self
    }

    /// Where malformed messages are dead-lettered.
    pub fn with_dead_letter_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.dead_letter_path = Some(path.into());
        self
    }

    /// The effective `max_uncommitted` (see [`with_max_uncommitted`](Self::with_max_uncommitted)).
    pub fn max_uncommitted(&self) -> usize {
        let capacity = self
            .tracker
            .backend_names()
            .iter()
            .filter_map(|name| self.tracker.delivery_config(name))
            .map(|delivery| delivery.queue_capacity)
            .min()
            .unwrap_or(usize::MAX);
        self.max_uncommitted
            .unwrap_or(DEFAULT_MAX_UNCOMMITTED)
            .min(capacity)
            .max(1)
    }

    /// Creates the consumer and subscribes to the topics (connecting happens
    /// in the background: an unreachable broker is retried, not an error).
    pub fn build(self) -> Result<Relay, RelayError> {
        if self.tracker.backend_names().is_empty() {
            return Err(RelayError::NoBackends);
        }
        let max_uncommitted = self.max_uncommitted();
        let properties = self.options.consumer_properties()?;
        let redacting = RedactingContext::new(properties.redactor());
        let client_error = |error: KafkaError| RelayError::Client {
            message: crate::client_error_text(&error, redacting.redactor()),
        };
        let baseline = losses(&self.tracker.report());
        let counters = Arc::new(Counters::default());
        let shared = Arc::new(Shared {
            tracker: self.tracker,
            counters: counters.clone(),
            state: Mutex::new(State {
                unflushed: 0,
                pending: BTreeMap::new(),
                baseline_losses: baseline,
                lost: 0,
                fatal: None,
                closing: false,
                last_rebalance: None,
            }),
            flush_timeout: self.flush_timeout,
            redactor: redacting.redactor().clone(),
        });
        let context = RelayContext {
            redacting: redacting.clone(),
            shared: shared.clone(),
        };
        let consumer: BaseConsumer<RelayContext> = properties
            .client_config()
            .create_with_context(context)
            .map_err(client_error)?;
        let mut topics: Vec<&str> = self.options.topics.iter().map(String::as_str).collect();
        let catalog_topic = Some(self.options.catalog_topic.trim()).filter(|t| !t.is_empty());
        if let Some(catalog) = catalog_topic {
            if !topics.contains(&catalog) {
                topics.push(catalog);
            }
        }
        let catalog_topic = catalog_topic.map(str::to_owned);
        consumer.subscribe(&topics).map_err(client_error)?;
        Ok(Relay {
            consumer,
            shared,
            options: self.options,
            settings: Settings {
                catalog_topic,
                commit_interval: self.commit_interval,
                max_uncommitted,
                flush_timeout: self.flush_timeout,
                exit_when_idle: self.exit_when_idle,
                max_rate: self.max_rate,
                dead_letter_path: self.dead_letter_path,
            },
            stop: StopHandle::default(),
        })
    }
}

#[derive(Debug, Clone)]
struct Settings {
    /// Messages of this topic are catalog entries, not events.
    catalog_topic: Option<String>,
    commit_interval: Duration,
    max_uncommitted: usize,
    flush_timeout: Duration,
    exit_when_idle: Option<Duration>,
    max_rate: Option<u64>,
    dead_letter_path: Option<PathBuf>,
}

// ---------------------------------------------------------------------------
// Stop handle, monitor, report
// ---------------------------------------------------------------------------

/// Asks a running [`Relay::run`] to stop: it stops reading, flushes,
/// commits and returns. Cheap to clone; safe from any thread (e.g. a signal
/// handler's).
#[derive(Debug, Clone, Default)]
pub struct StopHandle {
    stopped: Arc<AtomicBool>,
}

impl StopHandle {
    /// Requests the stop.
    pub fn stop(&self) {
        self.stopped.store(true, Relaxed);
    }

    /// Whether a stop was requested.
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Relaxed)
    }
}

#[derive(Debug, Default)]
struct Counters {
    messages: AtomicU64,
    events: AtomicU64,
    event_types: AtomicU64,
    malformed: AtomicU64,
    committed: AtomicU64,
    uncommitted: AtomicU64,
    commits: AtomicU64,
    commit_errors: AtomicU64,
    rebalances: AtomicU64,
    released: AtomicU64,
    partitions: Mutex<Vec<(String, i32)>>,
    offsets: Mutex<BTreeMap<(String, i32), i64>>,
}

impl Counters {
    fn snapshot(&self) -> RelayStats {
        RelayStats {
            messages: self.messages.load(Relaxed),
            events: self.events.load(Relaxed),
            event_types: self.event_types.load(Relaxed),
            malformed: self.malformed.load(Relaxed),
            committed: self.committed.load(Relaxed),
            uncommitted: self.uncommitted.load(Relaxed),
            commits: self.commits.load(Relaxed),
            commit_errors: self.commit_errors.load(Relaxed),
            rebalances: self.rebalances.load(Relaxed),
            released: self.released.load(Relaxed),
            partitions: lock(&self.partitions).clone(),
        }
    }
}

/// Reads a relay's counters while it runs (for progress output). Cheap to clone.
#[derive(Debug, Clone)]
pub struct RelayMonitor {
    counters: Arc<Counters>,
}

impl RelayMonitor {
    /// The counters right now.
    pub fn snapshot(&self) -> RelayStats {
        self.counters.snapshot()
    }
}

/// A relay's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayStats {
    /// Messages read from Kafka and handled (emitted or dead-lettered).
    pub messages: u64,
    /// Of those, events emitted into the tracker.
    pub events: u64,
    /// Of those, catalog entries (from the catalog topic) handed to the
    /// backends' `publish_event_types`.
    pub event_types: u64,
    /// Of those, malformed messages (dead-lettered or, without a
    /// dead-letter path, logged).
    pub malformed: u64,
    /// Messages whose offsets are committed.
    pub committed: u64,
    /// Messages handled whose offsets are not committed (yet).
    pub uncommitted: u64,
    /// Successful offset commits.
    pub commits: u64,
    /// Failed offset commits (retried with the next cycle; a failed commit
    /// costs duplicates after a restart, never events).
    pub commit_errors: u64,
    /// Rebalances seen (assignments and revocations).
    pub rebalances: u64,
    /// Messages handled but not committed when their partition was revoked
    /// (the backends had not accepted them in time): the partition's next
    /// owner reads them again, so they may arrive twice.
    pub released: u64,
    /// The partitions assigned right now, as `(topic, partition)`.
    pub partitions: Vec<(String, i32)>,
}

/// Why [`Relay::run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// [`StopHandle::stop`] was called (SIGINT/SIGTERM in the CLI).
    Requested,
    /// No message arrived for [`with_exit_when_idle`](RelayBuilder::with_exit_when_idle).
    Idle,
    /// Something was lost or could not be dead-lettered: the relay stopped
    /// without committing past it (see [`RelayReport::error`]).
    Failed,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StopReason::Requested => "stop requested",
            StopReason::Idle => "idle",
            StopReason::Failed => "FAILED",
        })
    }
}

/// What [`Relay::run`] did. Its `Display` is the report the CLI prints.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RelayReport {
    /// Why it stopped.
    pub stop: StopReason,
    /// What went wrong, if anything (a loss, a dead letter that could not be
    /// written, a final flush that did not finish).
    pub error: Option<String>,
    /// Events lost in the tracker (dropped, processor errors) while relaying.
    pub lost: u64,
    /// The relay's counters at the end.
    pub stats: RelayStats,
    /// The offsets committed last, per `(topic, partition)`: the next offset
    /// a restart reads.
    pub committed_offsets: BTreeMap<(String, i32), i64>,
    /// The tracker's final report (from its shutdown).
    pub delivery: DeliveryReport,
}

impl RelayReport {
    /// Whether every handled message was delivered (or dead-lettered) and
    /// committed, nothing was lost, and the tracker shut down in time.
    pub fn is_clean(&self) -> bool {
        self.error.is_none()
            && self.lost == 0
            && self.stats.uncommitted == 0
            && self.delivery.complete
    }
}

impl fmt::Display for RelayReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.stats;
        writeln!(
            f,
            "relay report ({}): messages {}, events {}, event types {}, malformed {}, committed {}, uncommitted {}, commits {}, commit errors {}, rebalances {}",
            self.stop, s.messages, s.events, s.event_types, s.malformed, s.committed, s.uncommitted,
            s.commits, s.commit_errors, s.rebalances
        )?;
        if s.released > 0 {
            writeln!(
                f,
                "  released uncommitted in rebalances: {} (their partitions' next owner reads them again)",
                s.released
            )?;
        }
        if let Some(error) = &self.error {
            writeln!(f, "  error: {error}")?;
        }
        if !self.committed_offsets.is_empty() {
            let offsets: Vec<String> = self
                .committed_offsets
                .iter()
                .map(|((topic, partition), offset)| format!("{topic}/{partition}={offset}"))
                .collect();
            writeln!(f, "  committed offsets: {}", offsets.join(", "))?;
        }
        write!(f, "{}", self.delivery)
    }
}

// ---------------------------------------------------------------------------
// Shared state, consumer context
// ---------------------------------------------------------------------------

/// Events the tracker lost: dropped for any reason or to processor errors
/// (filtered events are not lost: a processor dropped them on purpose).
fn losses(report: &DeliveryReport) -> u64 {
    let tracker = &report.tracker;
    tracker.processor_errors
        + tracker.no_backend
        + tracker.after_shutdown
        + report
            .backends
            .values()
            .map(|b| b.dropped + b.processor_errors)
            .sum::<u64>()
}

#[derive(Debug)]
struct State {
    /// Messages handled since the last complete flush.
    unflushed: usize,
    /// The next offset to commit per partition (messages handled, not committed).
    pending: BTreeMap<String, BTreeMap<i32, Pending>>,
    baseline_losses: u64,
    lost: u64,
    fatal: Option<String>,
    /// Set once `run` is done: the close's revocation commits nothing more.
    closing: bool,
    /// The last rebalance; `None` before the first assignment.
    last_rebalance: Option<Instant>,
}

/// What was handled and not committed yet, for one partition.
#[derive(Debug, Clone, Copy)]
struct Pending {
    /// The offset after the last message handled: what a commit records.
    next_offset: i64,
    /// How many messages.
    messages: u64,
}

impl State {
    fn pending_messages(&self) -> u64 {
        self.pending
            .values()
            .flat_map(BTreeMap::values)
            .map(|p| p.messages)
            .sum()
    }
}

/// The outcome of a flush-and-commit cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settle {
    /// Everything handled is committed.
    Done,
    /// The backends have not accepted everything yet.
    Incomplete,
    /// Delivered, but the commit failed (retried next cycle).
    CommitFailed,
    /// Something was lost: nothing more is committed.
    Lost,
}

struct Shared {
    tracker: Tracker,
    counters: Arc<Counters>,
    state: Mutex<State>,
    flush_timeout: Duration,
    redactor: eventtracking_core::redact::Redactor,
}

impl Shared {
    /// Flushes the tracker and, when every event handled so far is accepted
    /// (delivered or dead-lettered) and nothing was lost, commits the pending
    /// offsets.
    fn settle(
        &self,
        consumer: &BaseConsumer<RelayContext>,
        state: &mut State,
        timeout: Duration,
    ) -> Settle {
        if state.fatal.is_some() {
            return Settle::Lost;
        }
        if state.unflushed > 0 {
            let report = self.tracker.flush(timeout);
            let lost = losses(&report).saturating_sub(state.baseline_losses);
            if lost > 0 {
                state.lost = lost;
                state.fatal = Some(format!(
                    "{lost} event(s) were lost in the tracker (dropped or processor errors, see the delivery report); \
                     offsets were not committed past them, so a restart delivers them again"
                ));
                tracing::error!(
                    lost,
                    "eventtracking relay: events lost in the tracker; stopping without committing"
                );
                return Settle::Lost;
            }
            if !report.complete {
                return Settle::Incomplete;
            }
            state.unflushed = 0;
        }
        if state.pending.is_empty() {
            return Settle::Done;
        }
        let mut list = TopicPartitionList::new();
        for (topic, partitions) in &state.pending {
            for (partition, pending) in partitions {
                if let Err(error) = list.add_partition_offset(
                    topic,
                    *partition,
                    Offset::Offset(pending.next_offset),
                ) {
                    tracing::error!(%error, "eventtracking relay: bad offset");
                }
            }
        }
        match consumer.commit(&list, CommitMode::Sync) {
            Ok(()) => {
                let messages = state.pending_messages();
                let committed = std::mem::take(&mut state.pending);
                lock(&self.counters.offsets).extend(committed.into_iter().flat_map(
                    |(topic, partitions)| {
                        partitions
                            .into_iter()
                            .map(move |(partition, p)| ((topic.clone(), partition), p.next_offset))
                    },
                ));
                self.counters.committed.fetch_add(messages, Relaxed);
                self.counters.uncommitted.store(0, Relaxed);
                self.counters.commits.fetch_add(1, Relaxed);
                Settle::Done
            }
            Err(error) => {
                self.counters.commit_errors.fetch_add(1, Relaxed);
                tracing::warn!(
                    error = %self.redactor.redact(&error.to_string()),
                    "eventtracking relay: offset commit failed (the events are delivered; retrying next cycle)"
                );
                Settle::CommitFailed
            }
        }
    }

    /// Partitions are being taken away: commit what was handled for them first.
    fn revoke(&self, consumer: &BaseConsumer<RelayContext>, revoked: &TopicPartitionList) {
        let mut state = lock(&self.state);
        state.last_rebalance = Some(Instant::now());
        self.counters.rebalances.fetch_add(1, Relaxed);
        if state.closing {
            // `run` already settled what it could and reports the rest.
            return;
        }
        if !state.pending.is_empty() {
            match self.settle(consumer, &mut state, self.flush_timeout) {
                Settle::Done => {}
                Settle::Incomplete => tracing::warn!(
                    "eventtracking relay: partitions revoked before the backends accepted every event; \
                     their new owner re-reads from the last commit (duplicates, no loss)"
                ),
                Settle::CommitFailed | Settle::Lost => {}
            }
        }
        // Whatever is still pending for the revoked partitions is re-read by
        // their next owner; never commit it from here.
        let mut released = 0;
        for element in revoked.elements() {
            if let Some(partitions) = state.pending.get_mut(element.topic()) {
                if let Some(pending) = partitions.remove(&element.partition()) {
                    released += pending.messages;
                }
                if partitions.is_empty() {
                    state.pending.remove(element.topic());
                }
            }
        }
        if released > 0 {
            self.counters.released.fetch_add(released, Relaxed);
            self.counters
                .uncommitted
                .store(state.pending_messages(), Relaxed);
        }
    }

    fn assigned(&self, consumer: &BaseConsumer<RelayContext>) {
        let mut state = lock(&self.state);
        state.last_rebalance = Some(Instant::now());
        drop(state);
        self.counters.rebalances.fetch_add(1, Relaxed);
        self.update_partitions(consumer);
    }

    fn update_partitions(&self, consumer: &BaseConsumer<RelayContext>) {
        let partitions = match consumer.assignment() {
            Ok(list) => list
                .elements()
                .iter()
                .map(|e| (e.topic().to_owned(), e.partition()))
                .collect(),
            Err(_) => Vec::new(),
        };
        tracing::info!(?partitions, "eventtracking relay: assignment");
        *lock(&self.counters.partitions) = partitions;
    }
}

/// The relay's rdkafka context: librdkafka's logs go to `tracing` with
/// secrets redacted (as [`RedactingContext`]), and a revocation commits the
/// delivered offsets of the revoked partitions first.
struct RelayContext {
    redacting: RedactingContext,
    shared: Arc<Shared>,
}

impl ClientContext for RelayContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.redacting.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.redacting.error(error, reason);
    }
}

impl ConsumerContext for RelayContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(revoked) => self.shared.revoke(consumer, revoked),
            Rebalance::Assign(_) => {}
            Rebalance::Error(error) => tracing::warn!(
                error = %self.shared.redactor.redact(&error.to_string()),
                "eventtracking relay: rebalance error"
            ),
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(_) => self.shared.assigned(consumer),
            Rebalance::Revoke(_) => self.shared.update_partitions(consumer),
            Rebalance::Error(_) => {}
        }
    }
}

// ---------------------------------------------------------------------------
// The relay
// ---------------------------------------------------------------------------

/// A Kafka consumer delivering events to a tracker's backends; see the
/// [module docs](self). Made by [`RelayBuilder`]; [`run`](Self::run) does the work.
pub struct Relay {
    consumer: BaseConsumer<RelayContext>,
    shared: Arc<Shared>,
    options: RelayOptions,
    settings: Settings,
    stop: StopHandle,
}

impl fmt::Debug for Relay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Relay")
            .field("options", &self.options)
            .field("settings", &self.settings)
            .field("stats", &self.shared.counters.snapshot())
            .finish_non_exhaustive()
    }
}

/// Logs consumer errors, the same text at most every 10 s.
#[derive(Default)]
struct ErrorLog {
    last: Option<(String, Instant)>,
    suppressed: u64,
}

impl ErrorLog {
    fn warn(&mut self, text: String) {
        if let Some((last, at)) = &self.last {
            if *last == text && at.elapsed() < Duration::from_secs(10) {
                self.suppressed += 1;
                return;
            }
        }
        let repeated = std::mem::take(&mut self.suppressed);
        tracing::warn!(error = %text, repeated, "eventtracking relay: consumer error");
        self.last = Some((text, Instant::now()));
    }
}

impl Relay {
    /// A handle that stops [`run`](Self::run).
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// A handle reading the counters while [`run`](Self::run) runs.
    pub fn monitor(&self) -> RelayMonitor {
        RelayMonitor {
            counters: self.shared.counters.clone(),
        }
    }

    /// The tracker the events go to.
    pub fn tracker(&self) -> &Tracker {
        &self.shared.tracker
    }

    /// The `[source]` options.
    pub fn options(&self) -> &RelayOptions {
        &self.options
    }

    /// The effective most messages handled between two complete flushes.
    pub fn max_uncommitted(&self) -> usize {
        self.settings.max_uncommitted
    }

    /// Reads, delivers and commits until stopped ([`StopHandle::stop`], idle
    /// time, or a loss); then flushes, commits, leaves the group and shuts
    /// the tracker down. Blocks the calling thread (librdkafka's rebalance
    /// callbacks run on it).
    pub fn run(self) -> RelayReport {
        let Relay {
            consumer,
            shared,
            settings,
            stop,
            ..
        } = self;
        // With `max_rate`: when the next message may be handled.
        let mut next_slot = Instant::now();
        let mut last_cycle = Instant::now();
        let mut last_message = Instant::now();
        let mut blocked_since: Option<Instant> = None;
        let mut last_block_warning = Instant::now();
        let mut errors = ErrorLog::default();
        let mut failure: Option<String> = None;

        let reason = loop {
            if stop.is_stopped() {
                break StopReason::Requested;
            }
            // A cycle is due when the interval passed with something to
            // commit, or when as many messages as the queues may hold were
            // handled since the last complete flush.
            let (due, full, idle_since) = {
                let state = lock(&shared.state);
                if state.fatal.is_some() {
                    break StopReason::Failed;
                }
                let full = state.unflushed >= settings.max_uncommitted;
                let waiting = state.unflushed > 0 || !state.pending.is_empty();
                let due = full || (waiting && last_cycle.elapsed() >= settings.commit_interval);
                (due, full, state.last_rebalance.map(|r| r.max(last_message)))
            };
            if due {
                let outcome = {
                    let mut state = lock(&shared.state);
                    shared.settle(&consumer, &mut state, FLUSH_SLICE)
                };
                last_cycle = Instant::now();
                match outcome {
                    Settle::Lost => break StopReason::Failed,
                    Settle::Incomplete if full => {
                        // The queues may hold no more: wait for the backends.
                        let since = *blocked_since.get_or_insert_with(Instant::now);
                        if last_block_warning.elapsed() >= Duration::from_secs(10)
                            && since.elapsed() >= Duration::from_secs(10)
                        {
                            last_block_warning = Instant::now();
                            tracing::warn!(
                                waiting_secs = since.elapsed().as_secs(),
                                max_uncommitted = settings.max_uncommitted,
                                "eventtracking relay: the backends have not accepted the last events yet; \
                                 not reading more, offsets not committed"
                            );
                        }
                        continue;
                    }
                    _ => blocked_since = None,
                }
            }
            if let Some(idle) = settings.exit_when_idle {
                if idle_since.is_some_and(|since| since.elapsed() >= idle) {
                    break StopReason::Idle;
                }
            }
            if settings.max_rate.is_some() {
                let now = Instant::now();
                if next_slot > now {
                    std::thread::sleep((next_slot - now).min(POLL_SLICE));
                    continue;
                }
            }
            let until_cycle = settings
                .commit_interval
                .saturating_sub(last_cycle.elapsed())
                .max(Duration::from_millis(1));
            match consumer.poll(POLL_SLICE.min(until_cycle)) {
                None => {}
                Some(Err(error)) => {
                    errors.warn(shared.redactor.redact(&error.to_string()).into_owned())
                }
                Some(Ok(message)) => {
                    last_message = Instant::now();
                    if let Some(rate) = settings.max_rate {
                        // Time not used (waiting for messages) is not saved up
                        // beyond a 100 ms burst.
                        let earliest = last_message.checked_sub(POLL_SLICE).unwrap_or(last_message);
                        next_slot =
                            next_slot.max(earliest) + Duration::from_secs_f64(1.0 / rate as f64);
                    }
                    if let Err(error) = handle(&shared, &settings, &message) {
                        failure = Some(error);
                        break StopReason::Failed;
                    }
                }
            }
        };

        // Stop reading; deliver and commit what was handled. After a message
        // that could not be handled, what came before it is still committed
        // (it is not pending itself); after a loss in the tracker nothing is.
        let error = {
            let mut state = lock(&shared.state);
            let mut outcome = shared.settle(&consumer, &mut state, settings.flush_timeout);
            for _ in 0..3 {
                if outcome != Settle::CommitFailed {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
                outcome = shared.settle(&consumer, &mut state, settings.flush_timeout);
            }
            let unfinished = match outcome {
                Settle::Done | Settle::Lost => None,
                Settle::Incomplete => Some(format!(
                    "the backends did not accept every event within {:?}; {} message(s) left uncommitted \
                     (a restart delivers them again)",
                    settings.flush_timeout,
                    state.pending_messages()
                )),
                Settle::CommitFailed => Some(format!(
                    "the final offset commit failed; {} delivered message(s) left uncommitted \
                     (a restart delivers them again)",
                    state.pending_messages()
                )),
            };
            state.closing = true;
            failure.or_else(|| state.fatal.clone()).or(unfinished)
        };
        // Leaving the group hands the partitions to the other relays at once.
        drop(consumer);
        let delivery = shared
            .tracker
            .shutdown(settings.flush_timeout)
            .unwrap_or_else(|| shared.tracker.report());
        let lost = lock(&shared.state).lost;
        let stats = shared.counters.snapshot();
        let committed_offsets = lock(&shared.counters.offsets).clone();
        RelayReport {
            stop: reason,
            error,
            lost,
            stats,
            committed_offsets,
            delivery,
        }
    }
}

/// Emits or dead-letters one message and records its offset as pending.
fn handle(
    shared: &Shared,
    settings: &Settings,
    message: &BorrowedMessage<'_>,
) -> Result<(), String> {
    let topic = message.topic();
    let partition = message.partition();
    let offset = message.offset();
    if settings.catalog_topic.as_deref() == Some(topic) {
        let entry = message
            .payload()
            .ok_or_else(|| "the message has no value".to_owned())
            .and_then(|payload| {
                serde_json::from_slice::<CatalogEntry>(payload).map_err(|e| e.to_string())
            });
        match entry {
            Ok(entry) => {
                shared.tracker.publish_event_types(&[Arc::new(entry)]);
                shared.counters.event_types.fetch_add(1, Relaxed);
            }
            Err(error) => tracing::warn!(
                topic,
                partition,
                offset,
                %error,
                "eventtracking relay: a message of the catalog topic is not a catalog entry; skipped"
            ),
        }
        record_pending(shared, topic, partition, offset);
        return Ok(());
    }
    let parsed = match message.payload() {
        None => Err("the message has no value".to_owned()),
        // The payload's bytes are kept: relayed events are written out as they came.
        Some(payload) => Event::from_json_slice(payload).map_err(|e| e.to_string()),
    };
    match parsed {
        Ok(event) => {
            if let Err(error) = shared.tracker.emit_event(Arc::new(event)) {
                return Err(format!(
                    "the tracker refused the event of {topic}/{partition}@{offset}: {error}"
                ));
            }
            shared.counters.events.fetch_add(1, Relaxed);
        }
        Err(error) => {
            let reason = format!(
                "malformed message: topic {topic} partition {partition} offset {offset}: not an event: {error}"
            );
            match &settings.dead_letter_path {
                Some(path) => tracing::error!(
                    topic,
                    partition,
                    offset,
                    %error,
                    dead_letter_path = %path.display(),
                    "eventtracking relay: malformed message (not an event); dead-lettered"
                ),
                None => tracing::error!(
                    topic,
                    partition,
                    offset,
                    %error,
                    "eventtracking relay: malformed message (not an event); skipped (no dead-letter path)"
                ),
            }
            if let Some(path) = &settings.dead_letter_path {
                dead_letter(path, message, &reason, &error).map_err(|io| {
                    format!(
                        "cannot write the dead letter of {topic}/{partition}@{offset} to {}: {io}; \
                         not committing past it",
                        path.display()
                    )
                })?;
            }
            shared.counters.malformed.fetch_add(1, Relaxed);
        }
    }
    record_pending(shared, topic, partition, offset);
    Ok(())
}

/// Counts a handled message and makes its offset the next to commit.
fn record_pending(shared: &Shared, topic: &str, partition: i32, offset: i64) {
    shared.counters.messages.fetch_add(1, Relaxed);
    shared.counters.uncommitted.fetch_add(1, Relaxed);
    let mut state = lock(&shared.state);
    state.unflushed += 1;
    let partitions = match state.pending.get_mut(topic) {
        Some(partitions) => partitions,
        None => state.pending.entry(topic.to_owned()).or_default(),
    };
    let pending = partitions.entry(partition).or_insert(Pending {
        next_offset: offset + 1,
        messages: 0,
    });
    pending.next_offset = offset + 1;
    pending.messages += 1;
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A byte string as JSON: text when it is UTF-8, else `{"hex": ...}`.
fn bytes_json(bytes: Option<&[u8]>) -> serde_json::Value {
    match bytes {
        None => serde_json::Value::Null,
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => json!(text),
            Err(_) => json!({ "hex": hex(bytes) }),
        },
    }
}

/// Appends the dead-letter record of a malformed message (one line, one write).
fn dead_letter(
    path: &Path,
    message: &BorrowedMessage<'_>,
    reason: &str,
    error: &str,
) -> std::io::Result<()> {
    let mut data = json!({
        "topic": message.topic(),
        "partition": message.partition(),
        "offset": message.offset(),
        "key": bytes_json(message.key()),
        "error": error,
    });
    match message.payload() {
        None => data["payload"] = serde_json::Value::Null,
        Some(payload) => match std::str::from_utf8(payload) {
            Ok(text) => data["payload"] = json!(text),
            Err(_) => data["payload_hex"] = json!(hex(payload)),
        },
    }
    let event = Event::new(MALFORMED_EVENT_NAME, data).map_err(std::io::Error::other)?;
    // The engine's one writer: whole records, shared with the tracker's
    // routes when they name the same file.
    let outcome =
        DeadLetterWriter::shared(path).write(DEAD_LETTER_BACKEND, reason, 0, &[Arc::new(event)]);
    match outcome.error {
        None => Ok(()),
        Some(error) => Err(std::io::Error::other(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn component(options: serde_json::Value) -> ComponentConfig {
        ComponentConfig::new("source", "kafka", options.as_object().unwrap().clone())
    }

    #[test]
    fn source_options_are_checked_and_name_the_key() {
        let base = json!({"brokers": "h:1", "topics": ["events"], "group": "g"});
        assert!(RelayOptions::from_component(&component(base.clone())).is_ok());
        let cases = [
            (
                json!({"brokers": "h:1", "topics": ["events"], "group": "g", "topic": "x"}),
                "topic",
            ),
            (
                json!({"brokers": "h:1", "topics": [], "group": "g"}),
                "topics",
            ),
            (
                json!({"brokers": "h:1", "topics": ["a b"], "group": "g"}),
                "topics",
            ),
            (
                json!({"brokers": "", "topics": ["e"], "group": "g"}),
                "brokers",
            ),
            (
                json!({"brokers": "h:1", "topics": ["e"], "group": " "}),
                "group",
            ),
            (json!({"brokers": "h:1", "topics": ["e"]}), "group"),
            (
                json!({"brokers": "h:1", "topics": ["e"], "group": "g", "properties": {"enable.auto.commit": true}}),
                "enable.auto.commit",
            ),
            (
                json!({"brokers": "h:1", "topics": ["e"], "group": "g", "properties": {"group.id": "x"}}),
                "group.id",
            ),
        ];
        for (options, key) in cases {
            let error = RelayOptions::from_component(&component(options.clone()))
                .unwrap_err()
                .to_string();
            assert!(
                error.contains(key) && error.contains("source"),
                "{options}: {error}"
            );
        }
        let mongo = ComponentConfig::new("source", "mongo", base.as_object().unwrap().clone());
        assert!(RelayOptions::from_component(&mongo)
            .unwrap_err()
            .to_string()
            .contains("kafka"));
        // A regular expression subscription passes through.
        let regex = json!({"brokers": "h:1", "topics": ["^events\\..*"], "group": "g"});
        assert!(RelayOptions::from_component(&component(regex)).is_ok());
    }

    #[test]
    fn consumer_properties_fix_commits_and_default_the_rest() {
        let options = RelayOptions::new(" h:1 ", ["e"], "g")
            .with_property("auto.offset.reset", "latest")
            .with_property("sasl.password", "hunter2");
        let properties = options.consumer_properties().unwrap();
        assert_eq!(properties.get("bootstrap.servers"), Some("h:1"));
        assert_eq!(properties.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(properties.get("auto.offset.reset"), Some("latest"));
        assert_eq!(properties.get("client.id"), Some("eventtracking-relay"));
        assert!(!format!("{options:?}").contains("hunter2"));
    }

    #[test]
    fn losses_count_drops_and_processor_errors_not_filters() {
        let mut report = DeliveryReport::default();
        report.tracker.filtered = 5;
        assert_eq!(losses(&report), 0);
        report.tracker.processor_errors = 1;
        let mut backend = eventtracking_engine::BackendStats::default();
        backend.dropped = 2;
        backend.processor_errors = 3;
        backend.filtered = 7;
        report.backends.insert("b".into(), backend);
        assert_eq!(losses(&report), 6);
    }

    #[test]
    fn bytes_are_text_or_hex() {
        assert_eq!(bytes_json(Some(b"abc")), json!("abc"));
        assert_eq!(bytes_json(Some(&[0xff, 0x01])), json!({"hex": "ff01"}));
        assert_eq!(bytes_json(None), serde_json::Value::Null);
    }
}
