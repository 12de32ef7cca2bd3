//! The `[collector]` table of the config file, and its checks.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use eventtracking_tower::IpNetwork;
use serde::Deserialize;

use crate::auth::WriteKeys;

/// Where the collector listens unless `listen` says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The largest request body (after gzip decoding too): 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;
/// The most events one request may carry.
pub const DEFAULT_MAX_EVENTS_PER_REQUEST: usize = 500;
/// The longest string (value or object key) in an event's `data` or
/// `context`, in bytes: 16 KiB.
pub const DEFAULT_MAX_STRING_BYTES: usize = 16 * 1024;
/// The most keys one JSON object in an event's `data` or `context` may hold.
pub const DEFAULT_MAX_OBJECT_KEYS: usize = 256;
/// The deepest nesting of arrays and objects in an event's `data` or `context`.
pub const MAX_DEPTH: usize = 64;
/// The longest a client may take to send its body: 30 s.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// The `source` context value unless `source` says otherwise.
pub const DEFAULT_SOURCE: &str = "browser";

/// A rate limit: a token bucket refilled at `per_second` events a second,
/// holding at most `burst` events.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct RateLimit {
    /// Events per second, sustained.
    pub per_second: f64,
    /// Events that may arrive at once (the bucket's size).
    pub burst: NonZeroU32,
}

impl RateLimit {
    /// `per_second` events a second with a burst of `burst` events; `None`
    /// unless `per_second` is positive and finite.
    pub fn new(per_second: f64, burst: NonZeroU32) -> Option<Self> {
        (per_second.is_finite() && per_second > 0.0).then_some(RateLimit { per_second, burst })
    }

    /// The default burst for a rate: two seconds' worth, at least one event.
    fn default_burst(per_second: f64) -> NonZeroU32 {
        let burst = (per_second * 2.0).ceil().min(f64::from(u32::MAX)) as u32;
        NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN)
    }
}

/// The collector's settings: the `[collector]` table (see the crate docs
/// for every key). Its `Debug` output never shows the write keys.
///
/// ```
/// use eventtracking_collector::CollectorConfig;
///
/// let table: toml::Table = toml::from_str(r#"
///     listen = "0.0.0.0:8080"
///     write_keys = ["k-123"]
///     rate_limit_per_ip = 50
/// "#).unwrap();
/// let config = CollectorConfig::from_table(Some(&table)).unwrap();
/// assert_eq!(config.rate_limit_per_ip.unwrap().burst.get(), 100);
/// assert!(!format!("{config:?}").contains("k-123"));
///
/// let table: toml::Table = toml::from_str("lisen = \"127.0.0.1:1\"").unwrap();
/// let err = CollectorConfig::from_table(Some(&table)).unwrap_err();
/// assert!(err.to_string().contains("collector.lisen"), "{err}");
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CollectorConfig {
    /// The address to listen on (`listen`).
    pub listen: SocketAddr,
    /// The keys a client must present (`write_keys`); empty: no key needed
    /// (allowed on a loopback `listen` only).
    pub write_keys: WriteKeys,
    /// Origins answered with CORS headers (`allowed_origins`), e.g.
    /// `https://www.example.com`; `"*"` allows every origin.
    pub allowed_origins: Vec<String>,
    /// The largest body, compressed and decoded (`max_body_bytes`).
    pub max_body_bytes: usize,
    /// The most events in one request (`max_events_per_request`).
    pub max_events_per_request: usize,
    /// Events a second per write key (`rate_limit_per_key`, `rate_limit_per_key_burst`).
    pub rate_limit_per_key: Option<RateLimit>,
    /// Events a second per client address (`rate_limit_per_ip`, `rate_limit_per_ip_burst`).
    pub rate_limit_per_ip: Option<RateLimit>,
    /// Proxies whose `X-Forwarded-For` is believed (`trusted_proxies`).
    pub trusted_proxies: Vec<IpNetwork>,
    /// The `source` context value of every event (`source`).
    pub source: String,
    /// Check events against the catalog's JSON Schemas (`validate`; needs
    /// the crate feature `validate`).
    pub validate: bool,
    /// Serve the demo page at `GET /demo` (`demo`): it loads the browser
    /// tracker and emits events into this collector's backends.
    pub demo: bool,
    /// The longest string in `data` or `context` (`max_string_bytes`).
    pub max_string_bytes: usize,
    /// The most keys of one object in `data` or `context` (`max_object_keys`).
    pub max_object_keys: usize,
    /// The longest a client may take to send its body (`body_timeout_ms`);
    /// then the answer is 408.
    pub body_timeout: Duration,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            write_keys: WriteKeys::default(),
            allowed_origins: Vec::new(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_events_per_request: DEFAULT_MAX_EVENTS_PER_REQUEST,
            rate_limit_per_key: None,
            rate_limit_per_ip: None,
            trusted_proxies: Vec::new(),
            source: DEFAULT_SOURCE.to_owned(),
            validate: false,
            demo: false,
            max_string_bytes: DEFAULT_MAX_STRING_BYTES,
            max_object_keys: DEFAULT_MAX_OBJECT_KEYS,
            body_timeout: DEFAULT_BODY_TIMEOUT,
        }
    }
}

/// Why a `[collector]` table (or a [`CollectorConfig`]) was refused. It
/// names the key, and never shows a write key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CollectorConfigError {
    /// A key has a bad value, or is unknown.
    #[error("{key}: {reason}")]
    Invalid {
        /// The key, as `collector.NAME`.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

fn invalid(key: &str, reason: impl Into<String>) -> CollectorConfigError {
    CollectorConfigError::Invalid {
        key: format!("collector.{key}"),
        reason: reason.into(),
    }
}

/// The table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    listen: Option<String>,
    write_keys: Option<Vec<String>>,
    allowed_origins: Option<Vec<String>>,
    max_body_bytes: Option<usize>,
    max_events_per_request: Option<usize>,
    rate_limit_per_key: Option<f64>,
    rate_limit_per_key_burst: Option<u32>,
    rate_limit_per_ip: Option<f64>,
    rate_limit_per_ip_burst: Option<u32>,
    trusted_proxies: Option<Vec<String>>,
    source: Option<String>,
    validate: Option<bool>,
    demo: Option<bool>,
    max_string_bytes: Option<usize>,
    max_object_keys: Option<usize>,
    body_timeout_ms: Option<u64>,
}

impl CollectorConfig {
    /// The settings of a `[collector]` table (all defaults when `None`),
    /// checked (see [`check`](Self::check)). An unknown key is an error
    /// naming it.
    pub fn from_table(table: Option<&toml::Table>) -> Result<Self, CollectorConfigError> {
        let Some(table) = table else {
            let config = CollectorConfig::default();
            config.check()?;
            return Ok(config);
        };
        let raw: Raw = serde_path_to_error::deserialize(toml::Value::Table(table.clone()))
            .map_err(|error| {
                let path = error.path().to_string();
                let key = path.split(['.', '[']).next().unwrap_or_default();
                if key == "write_keys" {
                    // serde quotes the value it refused: never a key.
                    invalid("write_keys", "must be a list of strings")
                } else if key.is_empty() || key == "?" {
                    // An unknown key: serde's message names it.
                    let message = error.inner().to_string();
                    let unknown = message
                        .split('`')
                        .nth(1)
                        .map(str::to_owned)
                        .unwrap_or_else(|| "?".to_owned());
                    invalid(&unknown, message)
                } else {
                    invalid(&path, error.inner().to_string())
                }
            })?;
        let mut config = CollectorConfig::default();
        if let Some(listen) = raw.listen {
            config.listen = listen.parse().map_err(|_| {
                invalid(
                    "listen",
                    format!("`{listen}` is not an address and port such as \"127.0.0.1:8080\""),
                )
            })?;
        }
        if let Some(keys) = raw.write_keys {
            config.write_keys = WriteKeys::new(keys)
                .map_err(|index| invalid(&format!("write_keys[{index}]"), WriteKeys::RULE))?;
        }
        config.allowed_origins = raw.allowed_origins.unwrap_or_default();
        if let Some(bytes) = raw.max_body_bytes {
            config.max_body_bytes = bytes;
        }
        if let Some(events) = raw.max_events_per_request {
            config.max_events_per_request = events;
        }
        config.rate_limit_per_key = rate_limit(
            "rate_limit_per_key",
            raw.rate_limit_per_key,
            raw.rate_limit_per_key_burst,
        )?;
        config.rate_limit_per_ip = rate_limit(
            "rate_limit_per_ip",
            raw.rate_limit_per_ip,
            raw.rate_limit_per_ip_burst,
        )?;
        for (index, proxy) in raw.trusted_proxies.unwrap_or_default().iter().enumerate() {
            let network = proxy
                .parse()
                .map_err(|reason: String| invalid(&format!("trusted_proxies[{index}]"), reason))?;
            config.trusted_proxies.push(network);
        }
        if let Some(source) = raw.source {
            config.source = source;
        }
        config.validate = raw.validate.unwrap_or(false);
        config.demo = raw.demo.unwrap_or(false);
        if let Some(bytes) = raw.max_string_bytes {
            config.max_string_bytes = bytes;
        }
        if let Some(keys) = raw.max_object_keys {
            config.max_object_keys = keys;
        }
        if let Some(ms) = raw.body_timeout_ms {
            config.body_timeout = Duration::from_millis(ms);
        }
        config.check()?;
        Ok(config)
    }

    /// Checks settings made in code as [`from_table`](Self::from_table)
    /// checks a file: write keys on a non-loopback address, sizes above
    /// zero, origins without a path, a non-empty source, and `validate`
    /// only with the crate feature `validate`. An empty `write_keys` on
    /// loopback is allowed (and logged as a warning when serving).
    pub fn check(&self) -> Result<(), CollectorConfigError> {
        if self.write_keys.is_empty() && !self.listen.ip().is_loopback() {
            return Err(invalid(
                "write_keys",
                format!(
                    "required when `listen` ({}) is not a loopback address: list the keys clients must send",
                    self.listen
                ),
            ));
        }
        for (key, value) in [
            ("max_body_bytes", self.max_body_bytes),
            ("max_events_per_request", self.max_events_per_request),
            ("max_string_bytes", self.max_string_bytes),
            ("max_object_keys", self.max_object_keys),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        for (index, origin) in self.allowed_origins.iter().enumerate() {
            if !valid_origin(origin) {
                return Err(invalid(
                    &format!("allowed_origins[{index}]"),
                    format!("`{origin}` is not \"*\" or an origin such as \"https://www.example.com\" (scheme, host, optional port; no path)"),
                ));
            }
        }
        if self.body_timeout.is_zero() {
            return Err(invalid("body_timeout_ms", "must be at least 1"));
        }
        if self.source.trim().is_empty() {
            return Err(invalid("source", "must not be empty"));
        }
        if self.validate && !cfg!(feature = "validate") {
            return Err(invalid(
                "validate",
                "this build has no schema validation (crate feature `validate` of eventtracking-collector)",
            ));
        }
        Ok(())
    }

    /// Sets [`write_keys`](Self::write_keys).
    pub fn with_write_keys<I>(mut self, keys: I) -> Result<Self, CollectorConfigError>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.write_keys = WriteKeys::new(keys.into_iter().map(Into::into).collect())
            .map_err(|index| invalid(&format!("write_keys[{index}]"), WriteKeys::RULE))?;
        Ok(self)
    }

    /// Sets [`allowed_origins`](Self::allowed_origins).
    pub fn with_allowed_origins<I>(mut self, origins: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.allowed_origins = origins.into_iter().map(Into::into).collect();
        self
    }

    /// Sets [`max_body_bytes`](Self::max_body_bytes).
    pub fn with_max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// Sets [`max_events_per_request`](Self::max_events_per_request).
    pub fn with_max_events_per_request(mut self, events: usize) -> Self {
        self.max_events_per_request = events;
        self
    }

    /// Sets [`rate_limit_per_key`](Self::rate_limit_per_key).
    pub fn with_rate_limit_per_key(mut self, limit: Option<RateLimit>) -> Self {
        self.rate_limit_per_key = limit;
        self
    }

    /// Sets [`rate_limit_per_ip`](Self::rate_limit_per_ip).
    pub fn with_rate_limit_per_ip(mut self, limit: Option<RateLimit>) -> Self {
        self.rate_limit_per_ip = limit;
        self
    }

    /// Adds to [`trusted_proxies`](Self::trusted_proxies).
    pub fn with_trusted_proxies(mut self, proxies: impl IntoIterator<Item = IpNetwork>) -> Self {
        self.trusted_proxies.extend(proxies);
        self
    }

    /// Sets [`source`](Self::source).
    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.source = source.into();
        self
    }

    /// Sets [`demo`](Self::demo).
    pub fn with_demo(mut self, demo: bool) -> Self {
        self.demo = demo;
        self
    }

    /// Sets [`validate`](Self::validate).
    pub fn with_validate(mut self, validate: bool) -> Self {
        self.validate = validate;
        self
    }

    /// Sets [`max_string_bytes`](Self::max_string_bytes).
    pub fn with_max_string_bytes(mut self, bytes: usize) -> Self {
        self.max_string_bytes = bytes;
        self
    }

    /// Sets [`max_object_keys`](Self::max_object_keys).
    pub fn with_max_object_keys(mut self, keys: usize) -> Self {
        self.max_object_keys = keys;
        self
    }

    /// Sets [`body_timeout`](Self::body_timeout).
    pub fn with_body_timeout(mut self, timeout: Duration) -> Self {
        self.body_timeout = timeout;
        self
    }
}

fn rate_limit(
    key: &str,
    per_second: Option<f64>,
    burst: Option<u32>,
) -> Result<Option<RateLimit>, CollectorConfigError> {
    let burst_key = format!("{key}_burst");
    let Some(per_second) = per_second else {
        return match burst {
            Some(_) => Err(invalid(&burst_key, format!("set without `{key}`"))),
            None => Ok(None),
        };
    };
    let burst = match burst {
        None => RateLimit::default_burst(per_second),
        Some(burst) => {
            NonZeroU32::new(burst).ok_or_else(|| invalid(&burst_key, "must be at least 1"))?
        }
    };
    RateLimit::new(per_second, burst).map(Some).ok_or_else(|| {
        invalid(
            key,
            format!("{per_second} is not a positive number of events a second"),
        )
    })
}

/// `*`, or `scheme://host[:port]` with nothing after.
fn valid_origin(origin: &str) -> bool {
    if origin == "*" {
        return true;
    }
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        && !rest.is_empty()
        && !rest.contains(['/', '?', '#', ' '])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<CollectorConfig, CollectorConfigError> {
        let table: toml::Table = toml::from_str(text).unwrap();
        CollectorConfig::from_table(Some(&table))
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn defaults() {
        let config = CollectorConfig::from_table(None).unwrap();
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.max_body_bytes, 1 << 20);
        assert_eq!(config.max_events_per_request, 500);
        assert_eq!(config.source, "browser");
        assert!(config.write_keys.is_empty());
        assert!(config.rate_limit_per_ip.is_none());
    }

    #[test]
    fn every_key_is_read() {
        let config = parse(
            r#"
            listen = "0.0.0.0:9000"
            write_keys = ["a-key", "b-key"]
            allowed_origins = ["https://www.example.com", "http://localhost:3000"]
            max_body_bytes = 1000
            max_events_per_request = 7
            rate_limit_per_key = 10
            rate_limit_per_key_burst = 15
            rate_limit_per_ip = 0.5
            trusted_proxies = ["10.0.0.0/8", "::1"]
            source = "mobile"
            validate = false
            max_string_bytes = 99
            max_object_keys = 9
            body_timeout_ms = 1500
            demo = true
            "#,
        )
        .unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.write_keys.len(), 2);
        assert_eq!(config.allowed_origins.len(), 2);
        assert_eq!(
            (config.max_body_bytes, config.max_events_per_request),
            (1000, 7)
        );
        let key = config.rate_limit_per_key.unwrap();
        assert_eq!((key.per_second, key.burst.get()), (10.0, 15));
        assert_eq!(config.rate_limit_per_ip.unwrap().burst.get(), 1);
        assert_eq!(config.trusted_proxies.len(), 2);
        assert_eq!(config.source, "mobile");
        assert_eq!((config.max_string_bytes, config.max_object_keys), (99, 9));
        assert_eq!(config.body_timeout, Duration::from_millis(1500));
        assert!(config.demo);
    }

    #[test]
    fn errors_name_the_key_and_never_a_write_key() {
        assert!(err("lisen = 1").contains("collector.lisen"));
        assert!(err("listen = \"nowhere\"").contains("collector.listen"));
        assert!(err("listen = \"0.0.0.0:80\"").contains("collector.write_keys"));
        assert!(err("max_body_bytes = \"big\"").contains("collector.max_body_bytes"));
        assert!(err("max_body_bytes = 0").contains("collector.max_body_bytes"));
        assert!(err("rate_limit_per_ip = -1").contains("collector.rate_limit_per_ip"));
        assert!(err("rate_limit_per_ip_burst = 3").contains("collector.rate_limit_per_ip_burst"));
        assert!(err("trusted_proxies = [\"10.0.0.0/99\"]").contains("collector.trusted_proxies[0]"));
        assert!(err("allowed_origins = [\"https://x.com/path\"]")
            .contains("collector.allowed_origins[0]"));
        assert!(err("source = \"\"").contains("collector.source"));
        assert!(err("body_timeout_ms = 0").contains("collector.body_timeout_ms"));
        let text = err("write_keys = \"s3cret-key\"");
        assert!(
            text.contains("collector.write_keys") && !text.contains("s3cret"),
            "{text}"
        );
        let text = err("write_keys = [\"ok-key\", \"has space\"]");
        assert!(
            text.contains("collector.write_keys[1]") && !text.contains("has space"),
            "{text}"
        );
    }

    #[test]
    fn an_empty_key_list_is_fine_on_loopback() {
        assert!(parse("listen = \"127.0.0.1:0\"\nwrite_keys = []").is_ok());
        assert!(parse("listen = \"[::1]:0\"").is_ok());
        assert!(parse("listen = \"0.0.0.0:0\"\nwrite_keys = [\"k\"]").is_ok());
    }
}
