//! [`RedactingContext`]: librdkafka's log lines and client errors forwarded
//! to `tracing` with secrets removed, and repeats held back.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventtracking_core::redact::Redactor;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::ClientContext;

use crate::lock;

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
