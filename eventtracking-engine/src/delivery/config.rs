//! Delivery settings: queue, overflow, batching, retry, dead-letter.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// What `emit` does when a backend's queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Overflow {
    /// Refuse the new event (counted as dropped, reason `queue_full`). The default:
    /// `emit` never waits.
    #[default]
    DropNewest,
    /// Evict the oldest queued event to make room (counted as dropped, reason `evicted`).
    DropOldest,
    /// Wait up to `block_timeout_ms` for room, then drop the new event
    /// (reason `block_timeout`). Only this policy can make `emit` wait.
    Block,
}

impl std::str::FromStr for Overflow {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "drop_newest" => Ok(Overflow::DropNewest),
            "drop_oldest" => Ok(Overflow::DropOldest),
            "block" => Ok(Overflow::Block),
            _ => Err(format!(
                "unknown overflow policy {s:?}; expected \"drop_newest\", \"drop_oldest\" or \"block\""
            )),
        }
    }
}

/// Where a backend's accepted events wait for its worker (`buffer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BufferKind {
    /// The in-memory queue (`queue_capacity` events): lost in a crash. The default.
    #[default]
    Memory,
    /// A durable disk buffer in `buffer_path/<backend name>` (bounded by
    /// `buffer_max_bytes`, synced per `buffer_fsync`): what it holds
    /// survives a crash and a restart, and is delivered by the next tracker
    /// built on that path. See [`crate::buffer`].
    Disk,
}

impl std::str::FromStr for BufferKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "memory" => Ok(BufferKind::Memory),
            "disk" => Ok(BufferKind::Disk),
            _ => Err(format!(
                "buffer = {s:?}: unknown buffer; expected \"memory\" or \"disk\""
            )),
        }
    }
}

impl BufferKind {
    fn as_str(self) -> &'static str {
        match self {
            BufferKind::Memory => "memory",
            BufferKind::Disk => "disk",
        }
    }
}

/// When a disk buffer fsyncs what is appended (`buffer_fsync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BufferFsync {
    /// Before `emit` returns: an event whose receipt says
    /// [`Buffered`](crate::Outcome::Buffered) survives a power loss.
    Always,
    /// At most every `buffer_fsync_interval_ms` (the default): a crash
    /// loses about the last interval.
    #[default]
    Interval,
    /// Never by the tracker: the OS writes the pages back when it likes.
    Never,
}

impl std::str::FromStr for BufferFsync {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "always" => Ok(BufferFsync::Always),
            "interval" => Ok(BufferFsync::Interval),
            "never" => Ok(BufferFsync::Never),
            _ => Err(format!(
                "buffer_fsync = {s:?}: unknown fsync policy; expected \"always\", \"interval\" or \"never\""
            )),
        }
    }
}

impl BufferFsync {
    fn as_str(self) -> &'static str {
        match self {
            BufferFsync::Always => "always",
            BufferFsync::Interval => "interval",
            BufferFsync::Never => "never",
        }
    }
}

/// Serde for the string-valued enums through `FromStr`, so that a bad value's
/// error names its key (serde's own would only list the variants).
macro_rules! serde_via_str {
    ($($ty:ty),*) => {$(
        impl Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

serde_via_str!(BufferKind, BufferFsync);

/// How events are queued, batched, retried and dead-lettered, for one backend.
///
/// Every field has a default (below) and can be set in the `[delivery]`
/// table of a config file, overridden per backend in
/// `[backends.NAME.delivery]`, and overridden for all backends by the
/// environment variable in the last column.
///
/// | key | default | env |
/// |---|---|---|
/// | `queue_capacity` | 65536 | `EVENTTRACKING_QUEUE_CAPACITY` |
/// | `overflow` | `"drop_newest"` | `EVENTTRACKING_OVERFLOW` |
/// | `block_timeout_ms` | 1000 | `EVENTTRACKING_BLOCK_TIMEOUT_MS` |
/// | `batch_size` | 512 | `EVENTTRACKING_BATCH_SIZE` |
/// | `batch_bytes` | none | `EVENTTRACKING_BATCH_BYTES` |
/// | `linger_ms` | 50 | `EVENTTRACKING_LINGER_MS` |
/// | `max_retries` | 8 | `EVENTTRACKING_MAX_RETRIES` |
/// | `initial_backoff_ms` | 100 | `EVENTTRACKING_INITIAL_BACKOFF_MS` |
/// | `max_backoff_ms` | 10000 | `EVENTTRACKING_MAX_BACKOFF_MS` |
/// | `retry_budget_ms` | 30000 | `EVENTTRACKING_RETRY_BUDGET_MS` |
/// | `send_timeout_ms` | 30000 | `EVENTTRACKING_SEND_TIMEOUT_MS` |
/// | `max_event_bytes` | none | `EVENTTRACKING_MAX_EVENT_BYTES` |
/// | `dead_letter_path` | `"eventtracking-dead-letter.jsonl"` | `EVENTTRACKING_DEAD_LETTER_PATH` |
/// | `validate_schemas` | `false` | `EVENTTRACKING_VALIDATE_SCHEMAS` |
/// | `max_in_flight` | the backend's own (1; 16 for Kafka, 4 for MongoDB) | `EVENTTRACKING_MAX_IN_FLIGHT` |
/// | `buffer` | `"memory"` (or `"disk"`) | `EVENTTRACKING_BUFFER` |
/// | `buffer_path` | `"eventtracking-buffer"` (each backend in `<path>/<name>`) | `EVENTTRACKING_BUFFER_PATH` |
/// | `buffer_max_bytes` | 1073741824 (1 GiB) | `EVENTTRACKING_BUFFER_MAX_BYTES` |
/// | `buffer_fsync` | `"interval"` (or `"always"`, `"never"`) | `EVENTTRACKING_BUFFER_FSYNC` |
/// | `buffer_fsync_interval_ms` | 100 | `EVENTTRACKING_BUFFER_FSYNC_INTERVAL_MS` |
///
/// With `buffer = "disk"` the backend's accepted events are appended to a
/// durable disk buffer instead of waiting in memory: `overflow` applies
/// when the buffer holds `buffer_max_bytes` (`queue_capacity` then bounds
/// only the events read ahead of the worker), an
/// [`emit_acked`](crate::Tracker::emit_acked) receipt answers
/// [`Buffered`](crate::Outcome::Buffered) once the event is written (and
/// fsynced under `"always"`), and what is still buffered at the shutdown
/// deadline stays there (not dead-lettered) for the next tracker built on
/// the same `buffer_path`, which delivers it first.
///
/// ```
/// use eventtracking::{DeliveryConfig, Overflow};
/// let config = DeliveryConfig::default().with_batch_size(100).with_overflow(Overflow::Block);
/// assert_eq!(config.batch_size, 100);
/// assert_eq!(config.queue_capacity, 65536);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct DeliveryConfig {
    /// Events a backend's queue holds before the overflow policy applies.
    pub queue_capacity: usize,
    /// What to do when the queue is full.
    pub overflow: Overflow,
    /// With `overflow = "block"`: the longest `emit` waits for room.
    #[serde(rename = "block_timeout_ms", with = "millis")]
    pub block_timeout: Duration,
    /// The most events in one batch.
    pub batch_size: usize,
    /// The most bytes (of event JSON) in one batch; one larger event still goes alone.
    /// Unset by default: measuring needs each event's JSON, which backends
    /// that write JSON compute anyway but others (e.g. BSON) would not.
    pub batch_bytes: Option<usize>,
    /// How long a batch waits to fill up before it is sent anyway.
    #[serde(rename = "linger_ms", with = "millis")]
    pub linger: Duration,
    /// Retries of a retryable failure before the events are dead-lettered.
    pub max_retries: u32,
    /// The first backoff; it doubles each retry, with jitter.
    #[serde(rename = "initial_backoff_ms", with = "millis")]
    pub initial_backoff: Duration,
    /// The longest backoff.
    #[serde(rename = "max_backoff_ms", with = "millis")]
    pub max_backoff: Duration,
    /// The longest a batch is retried, from its first attempt: no retry
    /// starts (and no attempt runs) past it; then the events are
    /// dead-lettered (`retries exhausted`). The default, 30 s, is also the
    /// CLI's default `--timeout`, so a batch failing at the end of a bulk
    /// command is given up by its retry budget rather than by the deadline.
    /// Either way it ends in the dead-letter file.
    #[serde(rename = "retry_budget_ms", with = "millis")]
    pub retry_budget: Duration,
    /// The longest one `send_batch` may take; past it the attempt counts as a retryable timeout.
    #[serde(rename = "send_timeout_ms", with = "millis")]
    pub send_timeout: Duration,
    /// Events whose JSON is larger go straight to the dead-letter file (reason
    /// `oversized`). Unset by default: backends report what their store refuses.
    pub max_event_bytes: Option<usize>,
    /// The JSON-lines file that receives events that could not be delivered.
    pub dead_letter_path: PathBuf,
    /// Check untyped events whose name the [`catalog`](eventtracking_core::catalog()) knows
    /// against its JSON Schema (the highest version) before sending; a
    /// failing event is dead-lettered with the validation error and counted
    /// as `schema_invalid`. Needs the `validate` feature.
    pub validate_schemas: bool,
    /// How many batches a backend may have in flight at once. Unset, it is
    /// the backend's own choice ([`Backend::max_concurrent_sends`](eventtracking_core::Backend::max_concurrent_sends)):
    /// 1 for backends that keep order (the file backend), more for stores
    /// with a long round trip (Kafka, MongoDB). Per-backend order is kept
    /// only with 1; a backend whose sends cannot overlap refuses more.
    pub max_in_flight: Option<usize>,
    /// Where accepted events wait: in memory (the default) or in a durable disk buffer.
    pub buffer: BufferKind,
    /// With `buffer = "disk"`: the directory of the disk buffers, one
    /// subdirectory per backend (named after it).
    pub buffer_path: PathBuf,
    /// With `buffer = "disk"`: the most bytes the backend's buffer holds
    /// on disk; past it, `overflow` applies. At least
    /// [`smallest_event_buffer_bytes`](crate::buffer::smallest_event_buffer_bytes)
    /// (a smaller bound holds no event: [`validate`](Self::validate) refuses it).
    pub buffer_max_bytes: u64,
    /// With `buffer = "disk"`: when appended events are fsynced.
    pub buffer_fsync: BufferFsync,
    /// With `buffer_fsync = "interval"`: the longest between two fsyncs.
    #[serde(rename = "buffer_fsync_interval_ms", with = "millis")]
    pub buffer_fsync_interval: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            queue_capacity: 65_536,
            overflow: Overflow::DropNewest,
            block_timeout: Duration::from_millis(1_000),
            batch_size: 512,
            batch_bytes: None,
            linger: Duration::from_millis(50),
            max_retries: 8,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(10_000),
            retry_budget: Duration::from_millis(30_000),
            send_timeout: Duration::from_millis(30_000),
            max_event_bytes: None,
            dead_letter_path: PathBuf::from("eventtracking-dead-letter.jsonl"),
            validate_schemas: false,
            max_in_flight: None,
            buffer: BufferKind::Memory,
            buffer_path: PathBuf::from("eventtracking-buffer"),
            buffer_max_bytes: 1 << 30,
            buffer_fsync: BufferFsync::Interval,
            buffer_fsync_interval: Duration::from_millis(100),
        }
    }
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $field:ident: $ty:ty;)*) => {
        impl DeliveryConfig {
            $(
                $(#[$doc])*
                pub fn $name(mut self, value: $ty) -> Self {
                    self.$field = value.into();
                    self
                }
            )*
        }
    };
}

setters! {
    /// Sets `queue_capacity`.
    with_queue_capacity: queue_capacity: usize;
    /// Sets `overflow`.
    with_overflow: overflow: Overflow;
    /// Sets `block_timeout` (`block_timeout_ms` in config files).
    with_block_timeout: block_timeout: Duration;
    /// Sets `batch_size`.
    with_batch_size: batch_size: usize;
    /// Sets `batch_bytes`.
    with_batch_bytes: batch_bytes: usize;
    /// Sets `linger` (`linger_ms` in config files).
    with_linger: linger: Duration;
    /// Sets `max_retries`.
    with_max_retries: max_retries: u32;
    /// Sets `initial_backoff` (`initial_backoff_ms` in config files).
    with_initial_backoff: initial_backoff: Duration;
    /// Sets `max_backoff` (`max_backoff_ms` in config files).
    with_max_backoff: max_backoff: Duration;
    /// Sets `retry_budget` (`retry_budget_ms` in config files).
    with_retry_budget: retry_budget: Duration;
    /// Sets `send_timeout` (`send_timeout_ms` in config files).
    with_send_timeout: send_timeout: Duration;
    /// Sets `max_event_bytes`.
    with_max_event_bytes: max_event_bytes: usize;
    /// Sets `validate_schemas`.
    with_validate_schemas: validate_schemas: bool;
    /// Sets `max_in_flight`.
    with_max_in_flight: max_in_flight: usize;
    /// Sets `buffer`.
    with_buffer: buffer: BufferKind;
    /// Sets `buffer_max_bytes`.
    with_buffer_max_bytes: buffer_max_bytes: u64;
    /// Sets `buffer_fsync`.
    with_buffer_fsync: buffer_fsync: BufferFsync;
    /// Sets `buffer_fsync_interval` (`buffer_fsync_interval_ms` in config files).
    with_buffer_fsync_interval: buffer_fsync_interval: Duration;
}

impl DeliveryConfig {
    /// Sets `dead_letter_path`.
    pub fn with_dead_letter_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.dead_letter_path = path.into();
        self
    }

    /// Sets `buffer_path` (each backend's buffer is in `<path>/<name>`).
    pub fn with_buffer_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.buffer_path = path.into();
        self
    }

    /// The disk buffer's options, from the `buffer_*` keys.
    /// The directory of backend `backend`'s disk buffer: `buffer_path/<backend>`.
    pub fn buffer_dir(&self, backend: &str) -> PathBuf {
        self.buffer_path.join(backend)
    }

    /// The storage options of a disk buffer with these settings
    /// (`buffer_max_bytes`, `buffer_fsync`, `buffer_fsync_interval_ms`).
    pub fn disk_buffer_options(&self) -> crate::buffer::DiskBufferOptions {
        use crate::buffer::{DiskBufferOptions, FsyncPolicy};
        let fsync = match self.buffer_fsync {
            BufferFsync::Always => FsyncPolicy::Always,
            BufferFsync::Interval => FsyncPolicy::Interval(self.buffer_fsync_interval),
            BufferFsync::Never => FsyncPolicy::Never,
        };
        // Segments stay the storage layer's default (64 MiB, at most a
        // quarter of the bound).
        DiskBufferOptions::default()
            .with_max_bytes(self.buffer_max_bytes)
            .with_fsync(fsync)
    }
}

impl DeliveryConfig {
    /// Refuses values that cannot work, naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("queue_capacity", self.queue_capacity as u64),
            ("batch_size", self.batch_size as u64),
            ("batch_bytes", self.batch_bytes.unwrap_or(1) as u64),
            ("send_timeout_ms", self.send_timeout.as_millis() as u64),
            ("max_event_bytes", self.max_event_bytes.unwrap_or(1) as u64),
            ("max_in_flight", self.max_in_flight.unwrap_or(1) as u64),
            ("buffer_max_bytes", self.buffer_max_bytes),
            (
                "buffer_fsync_interval_ms",
                self.buffer_fsync_interval.as_millis().min(u64::MAX as u128) as u64,
            ),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(ConfigError::Invalid {
                    key: format!("delivery.{key}"),
                    value: "0".into(),
                    reason: "must be at least 1".into(),
                });
            }
        }
        if self.validate_schemas && !cfg!(feature = "validate") {
            return Err(ConfigError::Invalid {
                key: "delivery.validate_schemas".into(),
                value: "true".into(),
                reason: "needs the `validate` feature of eventtracking-core (feature `validate` of the facade)".into(),
            });
        }
        if self.initial_backoff > self.max_backoff {
            return Err(ConfigError::Invalid {
                key: "delivery.initial_backoff_ms".into(),
                value: self.initial_backoff.as_millis().to_string(),
                reason: format!(
                    "is larger than max_backoff_ms ({})",
                    self.max_backoff.as_millis()
                ),
            });
        }
        let smallest = crate::buffer::smallest_event_buffer_bytes();
        if self.buffer == BufferKind::Disk && self.buffer_max_bytes < smallest {
            return Err(ConfigError::Invalid {
                key: "delivery.buffer_max_bytes".into(),
                value: self.buffer_max_bytes.to_string(),
                reason: format!(
                    "can hold no event: the smallest event takes {smallest} bytes of a disk buffer"
                ),
            });
        }
        if self.buffer == BufferKind::Disk && self.buffer_path.as_os_str().is_empty() {
            return Err(ConfigError::Invalid {
                key: "delivery.buffer_path".into(),
                value: "\"\"".into(),
                reason: "must name a directory".into(),
            });
        }
        Ok(())
    }

    /// Applies the `EVENTTRACKING_*` environment overrides (see the table above).
    pub fn apply_env(&mut self) -> Result<(), ConfigError> {
        self.apply_env_from(|var| std::env::var(var).ok())
    }

    /// Like [`apply_env`](Self::apply_env), reading variables through `lookup`.
    pub fn apply_env_from(
        &mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        fn parse<T: std::str::FromStr>(var: &'static str, value: &str) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            value.trim().parse().map_err(|e: T::Err| ConfigError::Env {
                var,
                value: value.to_owned(),
                reason: e.to_string(),
            })
        }
        macro_rules! env_override {
            ($($var:literal => $field:ident),* $(,)?) => {
                $(if let Some(value) = lookup($var) {
                    self.$field = parse($var, &value)?;
                })*
            };
        }
        macro_rules! env_override_millis {
            ($($var:literal => $field:ident),* $(,)?) => {
                $(if let Some(value) = lookup($var) {
                    self.$field = Duration::from_millis(parse($var, &value)?);
                })*
            };
        }
        env_override! {
            "EVENTTRACKING_QUEUE_CAPACITY" => queue_capacity,
            "EVENTTRACKING_OVERFLOW" => overflow,
            "EVENTTRACKING_BATCH_SIZE" => batch_size,
            "EVENTTRACKING_MAX_RETRIES" => max_retries,
            "EVENTTRACKING_DEAD_LETTER_PATH" => dead_letter_path,
            "EVENTTRACKING_VALIDATE_SCHEMAS" => validate_schemas,
            "EVENTTRACKING_BUFFER" => buffer,
            "EVENTTRACKING_BUFFER_PATH" => buffer_path,
            "EVENTTRACKING_BUFFER_MAX_BYTES" => buffer_max_bytes,
            "EVENTTRACKING_BUFFER_FSYNC" => buffer_fsync,
        }
        env_override_millis! {
            "EVENTTRACKING_BLOCK_TIMEOUT_MS" => block_timeout,
            "EVENTTRACKING_LINGER_MS" => linger,
            "EVENTTRACKING_INITIAL_BACKOFF_MS" => initial_backoff,
            "EVENTTRACKING_MAX_BACKOFF_MS" => max_backoff,
            "EVENTTRACKING_RETRY_BUDGET_MS" => retry_budget,
            "EVENTTRACKING_SEND_TIMEOUT_MS" => send_timeout,
            "EVENTTRACKING_BUFFER_FSYNC_INTERVAL_MS" => buffer_fsync_interval,
        }
        // Optional settings (byte limits, max_in_flight): the variable sets them.
        for (var, field) in [
            ("EVENTTRACKING_BATCH_BYTES", &mut self.batch_bytes),
            ("EVENTTRACKING_MAX_EVENT_BYTES", &mut self.max_event_bytes),
            ("EVENTTRACKING_MAX_IN_FLIGHT", &mut self.max_in_flight),
        ] {
            if let Some(value) = lookup(var) {
                *field = Some(parse(var, &value)?);
            }
        }
        Ok(())
    }

    /// The backoff before retry number `attempt` (1-based): exponential, capped, with full jitter
    /// over its upper half so that many workers do not retry in step.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let initial = self.initial_backoff.as_millis().min(u64::MAX as u128) as u64;
        let base = initial
            .saturating_mul(1u64 << attempt.saturating_sub(1).min(20))
            .min(self.max_backoff.as_millis().min(u64::MAX as u128) as u64);
        let jittered = base / 2 + fastrand::u64(0..=base / 2);
        Duration::from_millis(jittered)
    }
}

/// `Duration` fields kept as whole milliseconds in config files (`*_ms` keys).
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        value: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(value.as_millis().min(u64::MAX as u128) as u64)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_name_the_variable() {
        let mut config = DeliveryConfig::default();
        config
            .apply_env_from(|v| match v {
                "EVENTTRACKING_BATCH_SIZE" => Some("7".into()),
                "EVENTTRACKING_OVERFLOW" => Some("block".into()),
                _ => None,
            })
            .unwrap();
        assert_eq!(config.batch_size, 7);
        assert_eq!(config.overflow, Overflow::Block);
        let err = config
            .apply_env_from(|v| (v == "EVENTTRACKING_LINGER_MS").then(|| "soon".into()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("EVENTTRACKING_LINGER_MS") && err.contains("soon"),
            "{err}"
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let config = DeliveryConfig::default()
            .with_initial_backoff(Duration::from_millis(100))
            .with_max_backoff(Duration::from_millis(1_000));
        for _ in 0..50 {
            let first = config.backoff(1).as_millis();
            assert!((50..=100).contains(&first), "{first}");
            let late = config.backoff(30).as_millis();
            assert!((500..=1_000).contains(&late), "{late}");
        }
    }

    #[test]
    fn validate_names_the_key() {
        let err = DeliveryConfig::default()
            .with_batch_size(0)
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("delivery.batch_size"), "{err}");
    }
}
