//! Compile-time registration of backend and processor engines.
//!
//! A backend crate registers its engine once with [`register_backend!`](crate::register_backend); a
//! config file then names the engine (`engine = "file"`). Add the crate as
//! a dependency and name it once (`use eventtracking_file as _;`, or enable
//! the facade's feature) so the linker keeps its registration.
//!
//! ```
//! use eventtracking_core::registry::{self, BackendRegistration, ComponentConfig};
//! use eventtracking_core::{register_backend, Backend, BuildError, DiscardBackend};
//!
//! fn build_null(config: &ComponentConfig) -> Result<Box<dyn Backend>, BuildError> {
//!     config.parse_options::<registry::NoOptions>()?;
//!     Ok(Box::new(DiscardBackend))
//! }
//! register_backend!(BackendRegistration::new("null-doc-example", "drops everything", build_null));
//!
//! assert!(registry::backend_engines().unwrap().iter().any(|r| r.name() == "null-doc-example"));
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::backend::Backend;
use crate::error::BuildError;
use crate::event::JsonMap;
use crate::processor::Processor;

/// One config entry handed to a factory: who asked, for which engine, with which options.
///
/// Its `Debug` output hides secrets (see [`redact`](crate::redact)).
#[derive(Clone)]
pub struct ComponentConfig {
    owner: String,
    engine: String,
    options: JsonMap,
}

impl std::fmt::Debug for ComponentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComponentConfig")
            .field("owner", &self.owner)
            .field("engine", &self.engine)
            .field(
                "options",
                &crate::redact::redact_value(&serde_json::Value::Object(self.options.clone())),
            )
            .finish()
    }
}

impl ComponentConfig {
    /// An entry with the given options.
    pub fn new(owner: impl Into<String>, engine: impl Into<String>, options: JsonMap) -> Self {
        ComponentConfig {
            owner: owner.into(),
            engine: engine.into(),
            options,
        }
    }

    /// Where in the config this entry is, e.g. `backends.local` or `processors[0]`.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The engine name.
    pub fn engine(&self) -> &str {
        &self.engine
    }

    /// The entry's other keys.
    pub fn options(&self) -> &JsonMap {
        &self.options
    }

    /// Deserializes the options into the engine's own type. Use
    /// `#[serde(deny_unknown_fields)]` there so that a misspelt key is an
    /// error naming it.
    pub fn parse_options<T: DeserializeOwned>(&self) -> Result<T, BuildError> {
        // The path names the offending key even for type errors
        // ("max_bytes: invalid type: string \"big\", expected u64").
        serde_path_to_error::deserialize(serde_json::Value::Object(self.options.clone())).map_err(
            |e| {
                let path = e.path().to_string();
                // serde quotes bad values, and a bad value may be a secret.
                let inner = if crate::redact::is_secret_key(&path) {
                    format!("invalid value ({})", crate::redact::REDACTED)
                } else {
                    crate::redact::Redactor::new()
                        .redact(&e.inner().to_string())
                        .into_owned()
                };
                let message = if path == "." {
                    inner
                } else {
                    format!("`{path}`: {inner}")
                };
                BuildError::InvalidOption {
                    owner: self.owner.clone(),
                    engine: self.engine.clone(),
                    message,
                }
            },
        )
    }

    /// A [`BuildError::InvalidOption`] for this entry.
    pub fn invalid(&self, message: impl Into<String>) -> BuildError {
        BuildError::InvalidOption {
            owner: self.owner.clone(),
            engine: self.engine.clone(),
            message: message.into(),
        }
    }

    /// A [`BuildError::Startup`] for this entry.
    pub fn startup_error(
        &self,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> BuildError {
        BuildError::Startup {
            owner: self.owner.clone(),
            engine: self.engine.clone(),
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

/// Options of an engine that takes none: any key is an error.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoOptions {}

/// Builds a backend from its config entry.
pub type BackendFactory = fn(&ComponentConfig) -> Result<Box<dyn Backend>, BuildError>;
/// Builds a processor from its config entry.
pub type ProcessorFactory = fn(&ComponentConfig) -> Result<Arc<dyn Processor>, BuildError>;

/// A backend engine, registered at compile time with [`register_backend!`](crate::register_backend).
#[derive(Debug)]
pub struct BackendRegistration {
    name: &'static str,
    description: &'static str,
    factory: BackendFactory,
    batch_size: Option<usize>,
}

impl BackendRegistration {
    /// A registration, for [`register_backend!`](crate::register_backend).
    pub const fn new(
        name: &'static str,
        description: &'static str,
        factory: BackendFactory,
    ) -> Self {
        BackendRegistration {
            name,
            description,
            factory,
            batch_size: None,
        }
    }

    /// Suggests the batch size config files get for this engine by
    /// default, for stores that want larger batches than the engine's
    /// default (the Kafka backend: a producer kept busy needs many
    /// messages per batch). Batching itself stays the engine's.
    pub const fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = Some(batch_size);
        self
    }

    /// The engine name used in config files.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// One line for `eventtracking engines`.
    pub fn description(&self) -> &'static str {
        self.description
    }

    /// The `batch_size` a config file gets for this engine when it sets
    /// none (neither in `[delivery]`, nor in the backend's `delivery`
    /// table, nor through `EVENTTRACKING_BATCH_SIZE`); `None`: the delivery
    /// engine's default.
    pub fn batch_size(&self) -> Option<usize> {
        self.batch_size
    }

    /// Builds the backend for a config entry.
    pub fn build(&self, config: &ComponentConfig) -> Result<Box<dyn Backend>, BuildError> {
        (self.factory)(config)
    }
}

/// A processor engine, registered at compile time with [`register_processor!`](crate::register_processor).
#[derive(Debug)]
pub struct ProcessorRegistration {
    name: &'static str,
    description: &'static str,
    factory: ProcessorFactory,
}

impl ProcessorRegistration {
    /// The engine name used in config files.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// One line for `eventtracking engines`.
    pub fn description(&self) -> &'static str {
        self.description
    }

    /// Builds the processor for a config entry.
    pub fn build(&self, config: &ComponentConfig) -> Result<Arc<dyn Processor>, BuildError> {
        (self.factory)(config)
    }

    /// A registration, for [`register_processor!`](crate::register_processor).
    pub const fn new(
        name: &'static str,
        description: &'static str,
        factory: ProcessorFactory,
    ) -> Self {
        ProcessorRegistration {
            name,
            description,
            factory,
        }
    }
}

inventory::collect!(BackendRegistration);
inventory::collect!(ProcessorRegistration);

/// Registers a backend engine at compile time, so that config files can
/// name it (`engine = "..."`). Give it a [`BackendRegistration`]; see the
/// [module docs](self).
#[macro_export]
macro_rules! register_backend {
    ($registration:expr $(,)?) => {
        $crate::__private::inventory::submit! {
            $registration
        }
    };
}

/// Registers a processor engine at compile time, so that config files can
/// name it in `[[processors]]`. Give it a [`ProcessorRegistration`].
///
/// ```
/// use std::sync::Arc;
/// use eventtracking_core::registry::{self, ComponentConfig, ProcessorRegistration};
/// use eventtracking_core::{processor_fn, register_processor, BuildError, Processor};
///
/// fn build_keep(config: &ComponentConfig) -> Result<Arc<dyn Processor>, BuildError> {
///     config.parse_options::<registry::NoOptions>()?;
///     Ok(Arc::new(processor_fn("keep", |event| Ok(Some(event)))))
/// }
/// register_processor!(ProcessorRegistration::new("keep-doc-example", "keeps everything", build_keep));
///
/// assert!(registry::processor_engines().unwrap().iter().any(|r| r.name() == "keep-doc-example"));
/// ```
#[macro_export]
macro_rules! register_processor {
    ($registration:expr $(,)?) => {
        $crate::__private::inventory::submit! {
            $registration
        }
    };
}

fn sorted<T>(
    kind: &'static str,
    items: impl Iterator<Item = &'static T>,
    name: fn(&T) -> &'static str,
) -> Result<Vec<&'static T>, BuildError> {
    let mut by_name = BTreeMap::new();
    for item in items {
        if by_name.insert(name(item), item).is_some() {
            return Err(BuildError::DuplicateEngine {
                kind,
                name: name(item),
            });
        }
    }
    Ok(by_name.into_values().collect())
}

/// Every backend engine linked into this binary, sorted by name.
/// Two registrations with one name are an error.
pub fn backend_engines() -> Result<Vec<&'static BackendRegistration>, BuildError> {
    sorted("backend", inventory::iter::<BackendRegistration>(), |r| {
        r.name
    })
}

/// Every processor engine linked into this binary, sorted by name.
pub fn processor_engines() -> Result<Vec<&'static ProcessorRegistration>, BuildError> {
    sorted(
        "processor",
        inventory::iter::<ProcessorRegistration>(),
        |r| r.name,
    )
}

/// Builds a backend by engine name.
pub fn build_backend(config: &ComponentConfig) -> Result<Box<dyn Backend>, BuildError> {
    let engines = backend_engines()?;
    match engines.iter().find(|r| r.name == config.engine) {
        Some(registration) => registration.build(config),
        None => Err(BuildError::UnknownEngine {
            kind: "backend",
            engine: config.engine.clone(),
            owner: config.owner.clone(),
            registered: engines.iter().map(|r| r.name).collect(),
        }),
    }
}

/// Builds a processor by engine name.
pub fn build_processor(config: &ComponentConfig) -> Result<Arc<dyn Processor>, BuildError> {
    let engines = processor_engines()?;
    match engines.iter().find(|r| r.name == config.engine) {
        Some(registration) => registration.build(config),
        None => Err(BuildError::UnknownEngine {
            kind: "processor",
            engine: config.engine.clone(),
            owner: config.owner.clone(),
            registered: engines.iter().map(|r| r.name).collect(),
        }),
    }
}
