//! Catalog publishing: each typed event type's entry upserted into the
//! catalog collection, keyed by `NAME@VERSION`.

use std::sync::Arc;

use eventtracking_core::{BackendError, BackendResult, CatalogEntry, FieldLocation};
use mongodb::bson::{Bson, Document};
use mongodb::Collection;

use crate::{classify, MongoBackend};

impl MongoBackend {
    /// Upserts each entry into the catalog collection
    /// ([`Backend::publish_event_types`](eventtracking_core::Backend::publish_event_types)).
    pub(crate) async fn publish_catalog(&self, types: &[Arc<CatalogEntry>]) -> BackendResult {
        let Some(catalog) = &self.inner.catalog_collection else {
            return Ok(());
        };
        let events = self.collection().await.map_err(|error| {
            BackendError::Retryable(format!(
                "mongo: catalog: {}",
                self.redact(&error.to_string())
            ))
        })?;
        let collection: Collection<Document> = events
            .client()
            .database(&self.inner.database)
            .collection(catalog);
        for entry in types {
            let document = catalog_document(entry);
            collection
                .replace_one(mongodb::bson::doc! {"_id": entry.key.as_str()}, document)
                .upsert(true)
                .await
                .map_err(|error| {
                    let reason = self.redact(&format!(
                        "mongo: cannot upsert event type `{}` into `{catalog}`: {}",
                        entry.key, error.kind
                    ));
                    if classify::is_retryable(&error) {
                        BackendError::Retryable(reason)
                    } else {
                        BackendError::Permanent(reason)
                    }
                })?;
        }
        Ok(())
    }
}

/// A catalog entry as a document of the catalog collection.
fn catalog_document(entry: &CatalogEntry) -> Document {
    let fields: Vec<Bson> = entry
        .fields
        .iter()
        .map(|field| {
            Bson::Document(mongodb::bson::doc! {
                "name": field.name.as_str(),
                "location": match field.location {
                    FieldLocation::Data => "data",
                    FieldLocation::Context => "context",
                },
                "description": field.description.as_str(),
                "required": field.required,
            })
        })
        .collect();
    let mut document = mongodb::bson::doc! {
        "_id": entry.key.as_str(),
        "name": entry.name.as_str(),
        "version": i64::from(entry.version),
        "description": entry.description.as_str(),
        "rust_type": entry.rust_type.as_str(),
        "fields": fields,
        "schema": entry.schema.to_string(),
        "published_at": mongodb::bson::DateTime::now(),
    };
    if let Some(context_schema) = &entry.context_schema {
        document.insert("context_schema", context_schema.to_string());
    }
    document
}
