//! [`RelayOptions`]: the `[source]` table, its checks, the consumer
//! properties, and the relay's constants.

use eventtracking::kafka::{check_topic, is_topic_char, KafkaProperties, DEFAULT_CATALOG_TOPIC};
use eventtracking::registry::ComponentConfig;
use eventtracking::BuildError;
use serde::Deserialize;

#[cfg(doc)]
use super::RelayBuilder;
use super::RelayError;

/// Consumer properties the relay sets unless `properties` overrides them.
pub const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    ("auto.offset.reset", "earliest"),
    ("client.id", "eventtracking-relay"),
    ("enable.partition.eof", "false"),
    // librdkafka stops fetching a partition for this long once its local
    // queue passes `queued.min.messages`; at its default (1 s) a relay
    // slower than the broker emptied the queue and then sat idle for most
    // of a second, again and again (half the relay's throughput on the
    // local broker).
    ("fetch.queue.backoff.ms", "10"),
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
pub use eventtracking::kafka::MALFORMED_EVENT_NAME;

/// The `backend` of dead-letter records written by the relay.
pub use eventtracking::relay::RELAY_DEAD_LETTER_BACKEND as DEAD_LETTER_BACKEND;

/// Defaults of [`RelayBuilder::with_commit_interval`],
/// [`with_max_uncommitted`](RelayBuilder::with_max_uncommitted) (also
/// bounded by the backends' smallest `queue_capacity`) and
/// [`with_flush_timeout`](RelayBuilder::with_flush_timeout): the engine's relay loop's.
pub use eventtracking::relay::{
    DEFAULT_COMMIT_INTERVAL, DEFAULT_MAX_UNCOMMITTED, DEFAULT_RELAY_FLUSH_TIMEOUT,
};

/// The keys of the `[source]` table (see the [module docs](super)), parsed
/// with unknown keys refused.
///
/// ```
/// use eventtracking::registry::ComponentConfig;
/// use eventtracking_cli::relay::RelayOptions;
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
    DEFAULT_CATALOG_TOPIC.to_owned()
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
            if let Some(c) = topic.chars().find(|c| !is_topic_char(*c)) {
                return Err(invalid(
                    "topics",
                    format!("{topic:?}: character {c:?} is not allowed in a topic name, only [A-Za-z0-9._-] (or a regular expression starting with `^`)"),
                ));
            }
            check_topic(topic).map_err(|reason| invalid("topics", reason))?;
        }
        let catalog = self.catalog_topic.trim();
        if !catalog.is_empty() {
            if let Some(c) = catalog.chars().find(|c| !is_topic_char(*c)) {
                return Err(invalid(
                    "catalog_topic",
                    format!("{catalog:?}: character {c:?} is not allowed in a topic name, only [A-Za-z0-9._-]"),
                ));
            }
            check_topic(catalog).map_err(|reason| invalid("catalog_topic", reason))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        assert_eq!(properties.get("fetch.queue.backoff.ms"), Some("10"));
        assert!(!format!("{options:?}").contains("hunter2"));
        let slower =
            RelayOptions::new("h:1", ["e"], "g").with_property("fetch.queue.backoff.ms", "500");
        assert_eq!(
            slower
                .consumer_properties()
                .unwrap()
                .get("fetch.queue.backoff.ms"),
            Some("500")
        );
    }
}
