//! Building a whole pipeline from a TOML file.
//!
//! ```toml
//! [delivery]                 # defaults for every backend; a backend may override
//! queue_capacity = 65536
//! overflow = "drop_newest"   # or "block", "drop_oldest"
//!
//! [[processors]]             # tracker-level, applied in order
//! engine = "allow"
//! names = ["navigation.*", "address.*"]
//!
//! [backends.local]
//! engine = "file"
//! path = "events.jsonl"      # "-" = stdout
//!
//! [backends.local.delivery]  # overrides [delivery] for this backend only
//! batch_size = 1000
//!
//! [[backends.local.processors]]   # this backend only, run in its delivery worker
//! engine = "redact"
//! paths = ["data.password"]
//!
//! [backends.archive]
//! engine = "discard"         # accepts and drops everything (for benchmarks)
//! ```
//!
//! The delivery keys are those of [`DeliveryConfig`]; every other key of a
//! backend or processor table is an option of its engine, and an unknown key
//! is an error that names it. `EVENTTRACKING_*` environment variables
//! override the delivery keys of every backend (see [`DeliveryConfig`]);
//! `EVENTTRACKING_CONFIG` names the file for [`Config::from_env`].
//!
//! Two more tables are kept for other parts and ignored by
//! [`Config::build`]: `[source]` (the relay's input, [`Config::source`]) and
//! `[collector]` (the HTTP collector of `eventtracking serve`, crate
//! `eventtracking-collector`, [`Config::collector`]), whose keys that crate
//! checks.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::delivery::{self, DeliveryConfig, Overflow};
use crate::error::ConfigError;
use crate::tracker::{Tracker, TrackerBuilder};
use eventtracking_core::registry::{build_backend, build_processor, ComponentConfig};
use eventtracking_core::BuildError;
use eventtracking_core::JsonMap;

/// The environment variable naming the config file.
pub const CONFIG_ENV: &str = "EVENTTRACKING_CONFIG";

/// A parsed config file; [`Config::build`] turns it into a [`Tracker`].
///
/// ```
/// use eventtracking::Config;
/// let config = Config::from_toml_str(r#"
///     [delivery]
///     batch_size = 10
///     [[processors]]
///     engine = "block"
///     names = ["debug.*"]
///     [backends.archive]
///     engine = "discard"
/// "#).unwrap();
/// let tracker = config.build().unwrap();
/// assert_eq!(tracker.backend_names(), ["archive"]);
/// assert_eq!(tracker.delivery_config("archive").unwrap().batch_size, 10);
///
/// let err = Config::from_toml_str("[backends.x]\nengine = \"nope\"").unwrap().build().unwrap_err();
/// assert!(err.to_string().contains("registered backend engines: discard"));
/// ```
///
/// Its `Debug` output hides secrets (see [`redact`](eventtracking_core::redact)). It
/// serializes back to the same TOML tables (`toml::to_string`), secrets
/// included, without [`origin`](Config::origin).
#[derive(Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Delivery defaults for every backend.
    #[serde(default)]
    delivery: toml::Table,
    /// Tracker-level processors, in order.
    #[serde(default)]
    processors: Vec<toml::Table>,
    /// Backends by name.
    #[serde(default)]
    backends: BTreeMap<String, toml::Table>,
    /// Where a relay reads events from (`[source]`, used by `eventtracking
    /// relay`); [`Config::build`] ignores it. See [`Config::source`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<toml::Table>,
    /// The HTTP collector's settings (`[collector]`, used by `eventtracking
    /// serve`); [`Config::build`] ignores it. See [`Config::collector`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    collector: Option<toml::Table>,
    /// Where the config came from, for error messages.
    #[serde(skip)]
    origin: Option<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |value: serde_json::Result<serde_json::Value>| {
            value
                .map(|v| eventtracking_core::redact::redact_value(&v))
                .unwrap_or_default()
        };
        f.debug_struct("Config")
            .field("delivery", &shown(serde_json::to_value(&self.delivery)))
            .field("processors", &shown(serde_json::to_value(&self.processors)))
            .field("backends", &shown(serde_json::to_value(&self.backends)))
            .field("source", &shown(serde_json::to_value(&self.source)))
            .field("collector", &shown(serde_json::to_value(&self.collector)))
            .field("origin", &self.origin)
            .finish()
    }
}

impl Config {
    /// Parses TOML text.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: None,
            message: crate::config_error::parse_error_message(text, &e),
        })
    }

    /// Reads and parses a file.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        let mut config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: Some(shown.clone()),
            message: crate::config_error::parse_error_message(&text, &e),
        })?;
        config.origin = Some(shown);
        Ok(config)
    }

    /// Reads the file named by `EVENTTRACKING_CONFIG`, if that is set.
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        match std::env::var_os(CONFIG_ENV) {
            Some(path) if !path.is_empty() => Self::from_path(path).map(Some),
            _ => Ok(None),
        }
    }

    /// Where the config came from (its file), if it was read from one.
    pub fn origin(&self) -> Option<&str> {
        self.origin.as_deref()
    }

    /// The names of the configured backends, sorted.
    pub fn backend_names(&self) -> impl Iterator<Item = &str> {
        self.backends.keys().map(String::as_str)
    }

    /// The engine a backend names (`engine = "file"`), if it names one.
    ///
    /// ```
    /// let config = eventtracking::Config::from_toml_str("[backends.out]\nengine = \"file\"").unwrap();
    /// assert_eq!(config.backend_engine("out"), Some("file"));
    /// assert_eq!(config.backend_engine("missing"), None);
    /// ```
    pub fn backend_engine(&self, name: &str) -> Option<&str> {
        self.backends.get(name)?.get("engine")?.as_str()
    }

    /// The tracker-level processors as registry entries (engine and options), in order.
    pub fn processor_configs(&self) -> Result<Vec<ComponentConfig>, ConfigError> {
        self.processors
            .iter()
            .enumerate()
            .map(|(index, table)| component(&format!("processors[{index}]"), table, &[]))
            .collect()
    }

    /// Uses `overflow` for every backend unless the config sets `overflow`
    /// itself (in `[delivery]`, a backend's `delivery` table, or
    /// `EVENTTRACKING_OVERFLOW`, which wins over both). The bulk commands
    /// use it to wait for room rather than drop.
    ///
    /// ```
    /// use eventtracking::{Config, Overflow};
    /// let config = Config::from_toml_str("").unwrap().with_default_overflow(Overflow::Block);
    /// # if std::env::var_os("EVENTTRACKING_OVERFLOW").is_none() {
    /// assert_eq!(config.delivery_config().unwrap().overflow, Overflow::Block);
    /// # }
    /// let set = Config::from_toml_str("[delivery]\noverflow = \"drop_oldest\"").unwrap();
    /// # if std::env::var_os("EVENTTRACKING_OVERFLOW").is_none() {
    /// let set = set.with_default_overflow(Overflow::Block);
    /// assert_eq!(set.delivery_config().unwrap().overflow, Overflow::DropOldest);
    /// # }
    /// ```
    pub fn with_default_overflow(mut self, overflow: Overflow) -> Self {
        if !self.delivery.contains_key("overflow") {
            let name = match overflow {
                Overflow::DropNewest => "drop_newest",
                Overflow::DropOldest => "drop_oldest",
                Overflow::Block => "block",
            };
            self.delivery
                .insert("overflow".into(), toml::Value::String(name.into()));
        }
        self
    }

    /// The global delivery settings, with environment overrides applied.
    pub fn delivery_config(&self) -> Result<DeliveryConfig, ConfigError> {
        self.delivery_for(None)
    }

    /// The delivery settings of backend `name` (the `[delivery]` table, its
    /// `[backends.NAME.delivery]` overrides and the environment), as the
    /// built tracker would use them; `None` when there is no such backend.
    ///
    /// ```
    /// use eventtracking::{BufferKind, Config};
    /// let config = Config::from_toml_str(r#"
    ///     [delivery]
    ///     batch_size = 100
    ///     [backends.archive]
    ///     engine = "discard"
    ///     [backends.archive.delivery]
    ///     buffer = "disk"
    /// "#).unwrap();
    /// let archive = config.backend_delivery_config("archive").unwrap().unwrap();
    /// assert_eq!((archive.batch_size, archive.buffer), (100, BufferKind::Disk));
    /// assert!(config.backend_delivery_config("nowhere").unwrap().is_none());
    /// ```
    pub fn backend_delivery_config(
        &self,
        name: &str,
    ) -> Result<Option<DeliveryConfig>, ConfigError> {
        let Some(table) = self.backends.get(name) else {
            return Ok(None);
        };
        match table.get("delivery") {
            None => self.delivery_for(None).map(Some),
            Some(toml::Value::Table(overrides)) => {
                self.delivery_for(Some((name, overrides))).map(Some)
            }
            Some(other) => Err(ConfigError::Invalid {
                key: format!("backends.{name}.delivery"),
                value: other.to_string(),
                reason: "must be a table".into(),
            }),
        }
    }

    fn delivery_for(
        &self,
        backend: Option<(&str, &toml::Table)>,
    ) -> Result<DeliveryConfig, ConfigError> {
        let mut table = self.delivery.clone();
        let mut origin = "delivery".to_owned();
        if let Some((name, overrides)) = backend {
            for (key, value) in overrides {
                table.insert(key.clone(), value.clone());
            }
            origin = format!("backends.{name}.delivery");
        }
        let mut config = DeliveryConfig::deserialize(toml::Value::Table(table)).map_err(|e| {
            ConfigError::Parse {
                path: self.origin.clone(),
                message: format!("[{origin}]: {e}"),
            }
        })?;
        config.apply_env()?;
        config.validate()?;
        Ok(config)
    }

    /// The `[source]` table as an engine name plus options, for a relay to
    /// build its reader from; `None` when the config has no `[source]`.
    ///
    /// ```
    /// use eventtracking::Config;
    /// let config = Config::from_toml_str(r#"
    ///     [source]
    ///     engine = "kafka"
    ///     brokers = "127.0.0.1:19092"
    ///     topics = ["events"]
    ///     group = "relay"
    /// "#).unwrap();
    /// let source = config.source().unwrap().unwrap();
    /// assert_eq!(source.engine(), "kafka");
    /// assert_eq!(source.options()["group"], "relay");
    /// assert!(Config::from_toml_str("").unwrap().source().unwrap().is_none());
    /// ```
    pub fn source(&self) -> Result<Option<ComponentConfig>, ConfigError> {
        self.source
            .as_ref()
            .map(|table| component("source", table, &[]))
            .transpose()
    }

    /// The `[collector]` table as written, for the HTTP collector
    /// (`eventtracking-collector`) to read its own keys from; `None` when
    /// the config has none. The engine does not check its keys: the
    /// collector does, naming any it does not know.
    ///
    /// ```
    /// use eventtracking::Config;
    /// let config = Config::from_toml_str("[collector]\nlisten = \"127.0.0.1:9000\"").unwrap();
    /// assert_eq!(config.collector().unwrap()["listen"].as_str(), Some("127.0.0.1:9000"));
    /// assert!(Config::from_toml_str("").unwrap().collector().is_none());
    /// ```
    pub fn collector(&self) -> Option<&toml::Table> {
        self.collector.as_ref()
    }

    /// Builds the tracker: processors, backends (by engine name through the
    /// registry) and their delivery workers.
    pub fn build(&self) -> Result<Tracker, ConfigError> {
        let mut builder = Tracker::builder().with_delivery(self.delivery_config()?);
        for component in self.processor_configs()? {
            builder = builder.with_processor(build_processor(&component)?);
        }
        // Backend factories run inside the delivery runtime, so drivers that
        // spawn background tasks bind them to it.
        let runtime = delivery::new_runtime().map_err(BuildError::Runtime)?;
        let entered = runtime.enter();
        let backends = self.add_backends(builder);
        drop(entered);
        match backends {
            Ok(builder) => Ok(builder.with_runtime(runtime).build()?),
            Err(error) => {
                // Dropping a runtime in place blocks, which panics inside async code.
                runtime.shutdown_background();
                Err(error)
            }
        }
    }

    /// Builds every backend and its processors into `builder`.
    fn add_backends(&self, mut builder: TrackerBuilder) -> Result<TrackerBuilder, ConfigError> {
        for (name, table) in &self.backends {
            let owner = format!("backends.{name}");
            let delivery = match table.get("delivery") {
                None => None,
                Some(toml::Value::Table(overrides)) => {
                    Some(self.delivery_for(Some((name, overrides)))?)
                }
                Some(other) => {
                    return Err(ConfigError::Invalid {
                        key: format!("{owner}.delivery"),
                        value: other.to_string(),
                        reason: "must be a table".into(),
                    })
                }
            };
            let processors = match table.get("processors") {
                None => Vec::new(),
                Some(toml::Value::Array(items)) => items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        let key = format!("{owner}.processors[{i}]");
                        match item {
                            toml::Value::Table(t) => {
                                Ok(build_processor(&component(&key, t, &[])?)?)
                            }
                            other => Err(ConfigError::Invalid {
                                key,
                                value: other.to_string(),
                                reason: "must be a table with an `engine` key".into(),
                            }),
                        }
                    })
                    .collect::<Result<Vec<_>, ConfigError>>()?,
                Some(other) => {
                    return Err(ConfigError::Invalid {
                        key: format!("{owner}.processors"),
                        value: other.to_string(),
                        reason: "must be an array of tables ([[backends.NAME.processors]])".into(),
                    })
                }
            };
            let component = component(&owner, table, &["delivery", "processors"])?;
            let delivery = self.preferred_batch_size(component.engine(), table, delivery)?;
            let backend = build_backend(&component)?;
            builder = builder.with_route(name.clone(), backend, processors, delivery);
        }
        Ok(builder)
    }
}

impl Config {
    /// Applies the engine's preferred batch size (see
    /// [`BackendRegistration::batch_size`](eventtracking_core::registry::BackendRegistration::batch_size))
    /// when the config sets none anywhere.
    fn preferred_batch_size(
        &self,
        engine: &str,
        table: &toml::Table,
        delivery: Option<DeliveryConfig>,
    ) -> Result<Option<DeliveryConfig>, ConfigError> {
        let Some(preferred) = eventtracking_core::registry::backend_engines()
            .ok()
            .and_then(|engines| engines.into_iter().find(|r| r.name() == engine))
            .and_then(|registration| registration.batch_size())
        else {
            return Ok(delivery);
        };
        let set_in_backend = match table.get("delivery") {
            Some(toml::Value::Table(overrides)) => overrides.contains_key("batch_size"),
            _ => false,
        };
        if self.delivery.contains_key("batch_size")
            || set_in_backend
            || std::env::var_os("EVENTTRACKING_BATCH_SIZE").is_some()
        {
            return Ok(delivery);
        }
        let mut delivery = match delivery {
            Some(delivery) => delivery,
            None => self.delivery_config()?,
        };
        delivery.batch_size = preferred;
        Ok(Some(delivery))
    }
}

fn component(
    owner: &str,
    table: &toml::Table,
    reserved: &[&str],
) -> Result<ComponentConfig, ConfigError> {
    let engine = match table.get("engine") {
        Some(toml::Value::String(engine)) => engine.clone(),
        Some(other) => {
            return Err(ConfigError::Invalid {
                key: format!("{owner}.engine"),
                value: other.to_string(),
                reason: "must be a string naming an engine".into(),
            })
        }
        None => {
            return Err(ConfigError::Invalid {
                key: format!("{owner}.engine"),
                value: "(missing)".into(),
                reason: "every backend and processor needs `engine = \"...\"`".into(),
            })
        }
    };
    let mut options = JsonMap::new();
    for (key, value) in table {
        if key == "engine" || reserved.contains(&key.as_str()) {
            continue;
        }
        let json = serde_json::to_value(value).map_err(|e| ConfigError::Invalid {
            key: format!("{owner}.{key}"),
            value: value.to_string(),
            reason: e.to_string(),
        })?;
        options.insert(key.clone(), json);
    }
    Ok(ComponentConfig::new(owner, engine, options))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build_err(text: &str) -> String {
        match Config::from_toml_str(text).and_then(|c| c.build()) {
            Ok(_) => panic!("expected an error for {text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn errors_name_the_offending_key() {
        let err = build_err("[backends.a]\nengine = \"discard\"\npth = 1");
        assert!(err.contains("backends.a") && err.contains("pth"), "{err}");
        let err = build_err("[backends.a]\npath = \"x\"");
        assert!(err.contains("backends.a.engine"), "{err}");
        let err = build_err("[delivery]\nbatch_sise = 3");
        assert!(err.contains("batch_sise"), "{err}");
        let err = build_err("[delivery]\noverflow = \"sometimes\"");
        assert!(
            err.contains("sometimes") || err.contains("overflow"),
            "{err}"
        );
        let err = build_err("[[processors]]\nengine = \"allow\"");
        assert!(
            err.contains("processors[0]") && err.contains("names"),
            "{err}"
        );
        let err = build_err("[[processors]]\nengine = \"teleport\"");
        assert!(
            err.contains("teleport") && err.contains("allow, block, enrich, redact, sample"),
            "{err}"
        );
        let err = build_err(
            "[backends.a]\nengine = \"discard\"\n[backends.a.delivery]\nqueue_capacity = 0",
        );
        assert!(err.contains("queue_capacity"), "{err}");
        let err = build_err("[backends.a]\nengine = \"discard\"\nprocessors = 3");
        assert!(err.contains("backends.a.processors"), "{err}");
        let err = build_err("unknown_section = 1");
        assert!(err.contains("unknown_section"), "{err}");
    }

    #[test]
    fn type_errors_in_engine_options_name_the_key() {
        let err = build_err("[[processors]]\nengine = \"sample\"\nrate = \"half\"");
        assert!(
            err.contains("processors[0]") && err.contains("`rate`") && err.contains("half"),
            "{err}"
        );
        let err =
            build_err("[[processors]]\nengine = \"enrich\"\nfields = { a = 1 }\noverwrite = 3");
        assert!(err.contains("`overwrite`"), "{err}");
    }

    #[test]
    fn per_backend_delivery_overrides_the_global_table() {
        let config = Config::from_toml_str(
            "[delivery]\nbatch_size = 10\nlinger_ms = 7\n[backends.a]\nengine = \"discard\"\n[backends.a.delivery]\nbatch_size = 99\n[backends.b]\nengine = \"discard\"",
        )
        .unwrap();
        let tracker = config.build().unwrap();
        let a = tracker.delivery_config("a").unwrap();
        assert_eq!(
            (a.batch_size, a.linger),
            (99, std::time::Duration::from_millis(7))
        );
        assert_eq!(tracker.delivery_config("b").unwrap().batch_size, 10);
    }

    #[test]
    fn config_debug_and_errors_hide_secrets() {
        let config = Config::from_toml_str(
            "[backends.w]\nengine = \"discard\"\nuri = \"mongodb://u:s3cret@h\"\n[backends.w.properties]\n\"sasl.password\" = \"hunter2\"",
        )
        .unwrap();
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("s3cret") && !debug.contains("hunter2"),
            "{debug}"
        );
        let err = build_err("[backends.w]\nengine = \"discard\"\nuri = \"mongodb://u:s3cret@h\"");
        assert!(!err.contains("s3cret"), "{err}");
        let err = Config::from_toml_str("[backends.w]\nsasl.password = \"hunter2")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = Config::from_path("/nonexistent/eventtracking.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/eventtracking.toml"), "{err}");
    }
}
