//! [`KafkaProperties`]: librdkafka's pass-through properties, with their
//! secret values redacted, and the producer defaults.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use eventtracking_core::redact::{is_secret_key, Redactor, REDACTED};
use rdkafka::config::ClientConfig;
use serde::{Deserialize, Deserializer};

/// The producer properties this backend sets unless `properties` overrides
/// them: `(key, value)`.
pub const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    ("acks", "all"),
    ("enable.idempotence", "true"),
    ("message.timeout.ms", "25000"),
    ("linger.ms", "0"),
    ("client.id", "eventtracking"),
];

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
