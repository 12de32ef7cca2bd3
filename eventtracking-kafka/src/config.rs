//! [`KafkaOptions`]: the config keys of engine `kafka`, and the engine's
//! registration.

use std::time::Duration;

use eventtracking_core::registry::{BackendRegistration, ComponentConfig};
use eventtracking_core::{Backend, BuildError};
use serde::Deserialize;

use crate::{
    KafkaBackend, KafkaBackendBuilder, KafkaBackendError, KafkaProperties, MessageKey,
    TopicTemplate,
};

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
