//! `enrich`: static fields added to every context.

use std::sync::Arc;

use eventtracking_core::{Event, JsonMap, ProcessResult, Processor};

/// Adds static fields to every event's context (e.g. host, app version).
#[derive(Debug, Clone)]
pub struct Enrich {
    fields: JsonMap,
    overwrite: bool,
}

impl Enrich {
    /// Adds `fields`; with `overwrite` false a key the context already has is kept.
    pub fn new(fields: JsonMap, overwrite: bool) -> Self {
        Enrich { fields, overwrite }
    }
}

impl Processor for Enrich {
    fn name(&self) -> &str {
        "enrich"
    }

    fn process(&self, mut event: Arc<Event>) -> ProcessResult {
        let needed = self
            .fields
            .iter()
            .any(|(k, v)| match event.context().get(k) {
                None => true,
                Some(existing) => self.overwrite && existing != v,
            });
        if needed {
            let context = Arc::make_mut(&mut event).context_mut();
            for (key, value) in &self.fields {
                if self.overwrite || !context.contains_key(key) {
                    context.insert(key.clone(), value.clone());
                }
            }
        }
        Ok(Some(event))
    }
}
