//! [`KafkaBackendBuilder`] and [`KafkaBackend`]: the producer and its
//! [`Backend`] implementation.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use eventtracking_core::{
    async_trait, Backend, BackendError, BackendResult, CatalogEntry, Event, EventFailure,
};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use crate::key::{id_text, write_key};
use crate::{
    client_error_text, is_retryable, lock, needs_new_producer, KafkaBackendError, KafkaProperties,
    MessageKey, RedactingContext, TopicTemplate, DEFAULT_CATALOG_TOPIC, PRODUCER_DEFAULTS,
};

/// The delivery engine's default `max_in_flight` for this backend: batches
/// sent at once, so that a round trip to the broker does not idle the route.
/// `send_batch` waits for every delivery report of its batch, so this bounds
/// how many events librdkafka holds: at the default `batch_size` of 512, 4
/// batches reached about 0.7× a raw producer and 16 about 1.4× (see
/// BENCHMARKS.md).
pub const SUGGESTED_MAX_IN_FLIGHT: usize = 16;

/// The default of `flush_timeout_ms`.
pub const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

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
            message: client_error_text(&error, context.redactor()),
        })
}

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
        self.context.redactor().redact(text).into_owned()
    }

    fn failure(&self, index: usize, event: &Event, error: &KafkaError) -> EventFailure {
        EventFailure::new(
            index,
            is_retryable(error),
            self.redact(&format!("kafka: event `{}`: {error}", event.name())),
        )
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

    /// Replaces `failed` (the producer a send used) after an error it cannot
    /// recover from; once, however many batches in flight saw the error.
    fn replace_producer(&self, failed: &FutureProducer<RedactingContext>, error: &KafkaError) {
        let mut current = lock(&self.producer);
        if current.client().native_ptr() != failed.client().native_ptr() {
            return;
        }
        tracing::error!(
            brokers = %self.brokers,
            error = %self.redact(&error.to_string()),
            "eventtracking-kafka: the producer cannot send again (fatal error, or fenced by the broker); creating a new producer"
        );
        match create_producer(&self.config, &self.context) {
            Ok(producer) => *current = producer,
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

    /// Batches overlap: the producer takes records from several sends at
    /// once. Records of one batch keep their per-partition order (the
    /// idempotent producer neither reorders nor duplicates what it is
    /// handed); batches in flight together may interleave.
    fn max_concurrent_sends(&self) -> usize {
        SUGGESTED_MAX_IN_FLIGHT
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
                    failures.push(EventFailure::new(index, false, format!("kafka: {reason}")));
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
                    if needs_new_producer(&error) {
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
                    if needs_new_producer(&error) {
                        fatal = Some(error.clone());
                    }
                    failures.push(self.failure(index, &batch[index], &error));
                }
                Err(_canceled) => failures.push(EventFailure::new(
                    index,
                    true,
                    "kafka: the producer was closed before the delivery report",
                )),
            }
        }
        if let Some(error) = fatal {
            self.replace_producer(&producer, &error);
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

#[cfg(test)]
mod tests {
    use super::*;

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
