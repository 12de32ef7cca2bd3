//! [`RelayBuilder`]: the relay's settings, the consumer and its
//! subscription; [`RelayError`]: why a relay could not be set up.

use std::path::PathBuf;
use std::time::Duration;

use eventtracking::kafka::KafkaSource;
use eventtracking::relay::{effective_max_uncommitted, RelayLoop};
use eventtracking::{BuildError, Config, ConfigError, Tracker};

#[cfg(doc)]
use super::DEFAULT_MAX_UNCOMMITTED;
use super::{Relay, RelayOptions, DEFAULT_COMMIT_INTERVAL, DEFAULT_RELAY_FLUSH_TIMEOUT};

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

/// Builds a [`Relay`]: [`RelayBuilder::from_config`] (what the CLI uses) or
/// [`RelayBuilder::new`] with a tracker of your own.
///
/// ```
/// use std::time::Duration;
/// use eventtracking::{DiscardBackend, Tracker};
/// use eventtracking_cli::relay::{RelayBuilder, RelayOptions};
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

    /// How often acknowledged messages are committed (default 1 s).
    pub fn with_commit_interval(mut self, interval: Duration) -> Self {
        self.commit_interval = interval;
        self
    }

    /// The most messages handed to the tracker and not committed yet; the
    /// relay stops reading above it until the backends settle more (default
    /// [`DEFAULT_MAX_UNCOMMITTED`]). Values above the smallest
    /// `queue_capacity` of the tracker's backends are lowered to it, so that
    /// no queue can overflow.
    pub fn with_max_uncommitted(mut self, max: usize) -> Self {
        self.max_uncommitted = Some(max.max(1));
        self
    }

    /// How long a rebalance waits for the acknowledgements of the revoked
    /// partitions, and the end of [`Relay::run`] for all outstanding ones
    /// (default 30 s); also the tracker's shutdown timeout.
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
        effective_max_uncommitted(&self.tracker, self.max_uncommitted)
    }

    /// Creates the consumer and subscribes to the topics (connecting happens
    /// in the background: an unreachable broker is retried, not an error).
    pub fn build(self) -> Result<Relay, RelayError> {
        if self.tracker.backend_names().is_empty() {
            return Err(RelayError::NoBackends);
        }
        let max_uncommitted = self.max_uncommitted();
        let properties = self.options.consumer_properties()?;
        let catalog_topic = Some(self.options.catalog_topic.trim()).filter(|t| !t.is_empty());
        let source = KafkaSource::subscribe(&properties, &self.options.topics, catalog_topic)
            .map_err(|error| RelayError::Client {
                message: error.to_string(),
            })?
            .with_revoke_timeout(self.flush_timeout);
        let source_monitor = source.monitor();
        let mut relay = RelayLoop::new(source, self.tracker)
            .with_commit_interval(self.commit_interval)
            .with_max_uncommitted(max_uncommitted)
            .with_flush_timeout(self.flush_timeout);
        if let Some(idle) = self.exit_when_idle {
            relay = relay.with_exit_when_idle(idle);
        }
        if let Some(rate) = self.max_rate {
            relay = relay.with_max_rate(rate);
        }
        if let Some(path) = self.dead_letter_path {
            relay = relay.with_dead_letter_path(path);
        }
        Ok(Relay {
            relay,
            source_monitor,
            options: self.options,
        })
    }
}
