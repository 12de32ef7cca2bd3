//! The tracker's schema stage: with `validate_schemas` on any backend, each
//! untyped event whose name the catalog knows is checked once, on the emit
//! side, against the JSON Schema of its type's highest version. The verdict
//! travels with the event; the workers of backends with `validate_schemas`
//! dead-letter a failing event (counted as `schema_invalid`), the others
//! deliver it.

#[cfg(feature = "validate")]
use std::collections::HashMap;
use std::sync::Arc;
#[cfg(feature = "validate")]
use std::sync::{atomic::Ordering::Relaxed, RwLock};

use eventtracking_core::Event;

use crate::delivery::Route;

/// An event type's entry and its compiled schema.
#[cfg(feature = "validate")]
type Checker = (
    Arc<eventtracking_core::catalog::CatalogEntry>,
    jsonschema::Validator,
);

pub(crate) struct SchemaCheck {
    /// The routes that act on the verdict (where catalog problems are counted).
    #[cfg_attr(not(feature = "validate"), allow(dead_code))]
    routes: Vec<Arc<Route>>,
    /// Compiled validators by event name (`None`: no type of that name).
    #[cfg(feature = "validate")]
    validators: RwLock<HashMap<Arc<str>, Option<Arc<Checker>>>>,
}

impl std::fmt::Debug for SchemaCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaCheck").finish_non_exhaustive()
    }
}

impl SchemaCheck {
    /// The stage for these routes, if any of them validates.
    pub(crate) fn for_routes(routes: &[Arc<Route>]) -> Option<Self> {
        let routes: Vec<Arc<Route>> = routes
            .iter()
            .filter(|r| r.config().validate_schemas)
            .cloned()
            .collect();
        (!routes.is_empty()).then(|| SchemaCheck {
            routes,
            #[cfg(feature = "validate")]
            validators: RwLock::new(HashMap::new()),
        })
    }

    /// Why an untyped event breaks the schema of the highest version of
    /// its type, if it does.
    #[cfg(feature = "validate")]
    pub(crate) fn violation(&self, event: &Event) -> Option<Arc<str>> {
        if event.schema().is_some() {
            return None;
        }
        let known = self
            .validators
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(event.name())
            .cloned();
        let checker = match known {
            Some(checker) => checker,
            None => {
                let checker = self.compile(event.name());
                self.validators
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(event.shared_name(), checker.clone());
                checker
            }
        };
        let (entry, validator) = &*checker?;
        let problems: Vec<String> = validator
            .iter_errors(event.data())
            .take(5)
            .map(|error| {
                let path = error.instance_path().to_string();
                if path.is_empty() {
                    error.to_string()
                } else {
                    format!("at {path}: {error}")
                }
            })
            .collect();
        (!problems.is_empty()).then(|| {
            Arc::from(format!(
                "schema validation: data does not match `{}`: {}",
                entry.key,
                problems.join("; ")
            ))
        })
    }

    /// The validator of the highest version of the type named `name`.
    #[cfg(feature = "validate")]
    fn compile(&self, name: &str) -> Option<Arc<Checker>> {
        let count_error = || {
            for route in &self.routes {
                route.counters.catalog_errors.fetch_add(1, Relaxed);
            }
        };
        let catalog = match eventtracking_core::catalog::catalog() {
            Ok(catalog) => catalog,
            Err(error) => {
                count_error();
                tracing::error!(%error, "eventtracking: the event catalog is unusable; events are not validated");
                return None;
            }
        };
        let entry = catalog.latest(name)?;
        match jsonschema::validator_for(&entry.schema) {
            Ok(validator) => Some(Arc::new((entry.clone(), validator))),
            Err(error) => {
                count_error();
                tracing::error!(schema = %entry.key, %error, "eventtracking: an event type's JSON Schema does not compile; its events are not validated");
                None
            }
        }
    }

    #[cfg(not(feature = "validate"))]
    pub(crate) fn violation(&self, _event: &Event) -> Option<Arc<str>> {
        // `validate_schemas = true` is refused at config time without the feature.
        None
    }
}
