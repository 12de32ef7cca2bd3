//! `validate = true`: each event's data checked against the JSON Schema of
//! the highest version of its type in the catalog; a name the catalog does
//! not know is refused.

/// A refusal: the JSON pointer below `data` and why.
pub(crate) type Violation = (String, String);

#[cfg(feature = "validate")]
mod imp {
    use std::collections::HashMap;
    use std::sync::{Arc, RwLock};

    use eventtracking_core::catalog::catalog;
    use serde_json::Value;

    use super::Violation;

    type Checker = Option<Arc<(String, jsonschema::Validator)>>;

    /// Compiled validators by event name (`None`: no such type, or its
    /// schema does not compile).
    #[derive(Default)]
    pub(crate) struct CatalogCheck {
        validators: RwLock<HashMap<String, Checker>>,
    }

    impl std::fmt::Debug for CatalogCheck {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("CatalogCheck").finish_non_exhaustive()
        }
    }

    impl CatalogCheck {
        pub(crate) fn new() -> Self {
            Self::default()
        }

        pub(crate) fn violation(&self, name: &str, data: &Value) -> Option<Violation> {
            let known = self
                .validators
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(name)
                .cloned();
            let checker = match known {
                Some(checker) => checker,
                None => {
                    let compiled = compile(name);
                    self.validators
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(name.to_owned(), compiled.clone());
                    compiled
                }
            };
            let Some(checker) = checker else {
                return Some((
                    String::new(),
                    format!("the catalog has no event type named {name:?} (validate = true)"),
                ));
            };
            let (key, validator) = &*checker;
            let error = validator.iter_errors(data).next()?;
            Some((
                error.instance_path().to_string(),
                format!("does not match `{key}`: {error}"),
            ))
        }
    }

    fn compile(name: &str) -> Checker {
        let catalog = match catalog() {
            Ok(catalog) => catalog,
            Err(error) => {
                tracing::error!(%error, "eventtracking-collector: the event catalog is unusable");
                return None;
            }
        };
        let entry = catalog.latest(name)?;
        match jsonschema::validator_for(&entry.schema) {
            Ok(validator) => Some(Arc::new((entry.key.clone(), validator))),
            Err(error) => {
                tracing::error!(schema = %entry.key, %error, "eventtracking-collector: an event type's JSON Schema does not compile");
                None
            }
        }
    }
}

#[cfg(feature = "validate")]
pub(crate) use imp::CatalogCheck;

/// Without the feature, nothing is checked (`validate = true` is refused
/// when the config is read).
#[cfg(not(feature = "validate"))]
#[derive(Debug)]
pub(crate) struct CatalogCheck;

#[cfg(not(feature = "validate"))]
impl CatalogCheck {
    pub(crate) fn new() -> Self {
        CatalogCheck
    }

    pub(crate) fn violation(&self, _name: &str, _data: &serde_json::Value) -> Option<Violation> {
        None
    }
}
