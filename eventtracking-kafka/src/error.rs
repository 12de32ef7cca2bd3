//! [`KafkaBackendError`], which produce failures are retryable, and
//! librdkafka's configuration errors as redacted text.

use eventtracking_core::redact::{is_secret_key, Redactor, REDACTED};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// Why a [`KafkaBackend`](crate::KafkaBackend) could not be built. Messages never hold secret values.
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

/// Whether `error` leaves the producer unable to send again: a fatal error,
/// or the broker fencing the producer's id or epoch (e.g. after messages
/// timed out during an outage). A new producer, with a new id, can.
pub fn needs_new_producer(error: &KafkaError) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        error.rdkafka_error_code(),
        Some(Fatal | Fenced | ProducerFenced | InvalidProducerEpoch)
    )
}

/// librdkafka's refusal of a client configuration, as text for an error: it
/// names the property, and its value only when the name does not look
/// secret (librdkafka's own text quotes the value, e.g. of a misspelt
/// `sasl.passwd`, which the properties' redactor cannot know is a secret).
/// For the errors of other clients built from [`KafkaProperties`](crate::KafkaProperties)
/// (consumers, admin clients), with the redactor of their
/// [`RedactingContext`](crate::RedactingContext).
pub fn client_error_text(error: &KafkaError, redactor: &Redactor) -> String {
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

#[cfg(test)]
mod tests {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};

    use super::{is_retryable, needs_new_producer};

    #[test]
    fn a_fenced_or_fatal_producer_is_replaced_and_the_messages_retried() {
        for code in [
            RDKafkaErrorCode::ProducerFenced,
            RDKafkaErrorCode::InvalidProducerEpoch,
            RDKafkaErrorCode::Fenced,
            RDKafkaErrorCode::Fatal,
        ] {
            let error = KafkaError::MessageProduction(code);
            assert!(needs_new_producer(&error), "{code:?}");
            assert!(is_retryable(&error), "{code:?}");
        }
        for code in [
            RDKafkaErrorCode::MessageTimedOut,
            RDKafkaErrorCode::QueueFull,
            RDKafkaErrorCode::MessageSizeTooLarge,
        ] {
            let error = KafkaError::MessageProduction(code);
            assert!(!needs_new_producer(&error), "{code:?}");
        }
    }
}
