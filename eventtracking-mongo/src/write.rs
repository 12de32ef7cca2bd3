//! The insert path of [`MongoBackend`]: a batch as documents, unordered
//! `insert_many` calls, per-document failures, and duplicates counted as
//! delivered.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use eventtracking_core::{BackendError, BackendResult, Event, EventFailure};
use mongodb::bson::{Bson, RawDocumentBuf};
use mongodb::error::{ErrorKind, IndexedWriteError, InsertManyError};
use mongodb::Collection;

use crate::{classify, is_retryable, is_retryable_code, MongoBackend, MongoBackendError};

impl MongoBackend {
    /// Writes a batch ([`Backend::send_batch`](eventtracking_core::Backend::send_batch)).
    pub(crate) async fn write_batch(&self, batch: &[Arc<Event>]) -> BackendResult {
        if self.inner.shut_down.load(Ordering::SeqCst) {
            return Err(BackendError::AlreadyShutdown);
        }
        if batch.is_empty() {
            return Ok(());
        }
        let collection = self.collection().await.map_err(|error| match error {
            MongoBackendError::Operation {
                retryable: true,
                message,
            } => BackendError::Retryable(format!("mongo: {message}")),
            // An SRV lookup may fail for a moment.
            MongoBackendError::InvalidUri { .. } if self.is_srv() => {
                BackendError::Retryable(format!("mongo: {error}"))
            }
            error => BackendError::Permanent(format!("mongo: {error}")),
        })?;
        let mut failures = Vec::new();
        let mut docs = Vec::with_capacity(batch.len());
        let mut indices = Vec::with_capacity(batch.len());
        for (index, event) in batch.iter().enumerate() {
            match self.inner.layout.encode(event) {
                Ok(doc) => {
                    docs.push(doc);
                    indices.push(index);
                }
                Err(error) => failures.push(EventFailure::new(
                    index,
                    false,
                    self.redact(&format!("mongo: event `{}`: {error}", event.name())),
                )),
            }
        }
        let chunk = self.inner.batch_size.unwrap_or(usize::MAX);
        let mut whole_error: Option<(bool, String)> = None;
        let mut some_call_succeeded = false;
        for (docs, indices) in docs.chunks(chunk).zip(indices.chunks(chunk)) {
            if whole_error.is_none() {
                match self
                    .insert(&collection, batch, docs, indices, &mut failures)
                    .await
                {
                    Ok(()) => {
                        some_call_succeeded = true;
                        continue;
                    }
                    Err(error) => whole_error = Some(error),
                }
            }
            // This call and every later one share the first call error.
            if let Some((retryable, reason)) = &whole_error {
                failures.extend(
                    indices
                        .iter()
                        .map(|&index| EventFailure::new(index, *retryable, reason.clone())),
                );
            }
        }
        if some_call_succeeded {
            // After an insert, so the collection exists: building indexes
            // while the same call creates the collection is avoidable work
            // (and hangs some MongoDB-compatible servers).
            self.start_indexes(&collection);
        }
        if failures.is_empty() {
            return Ok(());
        }
        if let Some((retryable, reason)) = whole_error {
            if !some_call_succeeded
                && failures.len() == batch.len()
                && failures.iter().all(|f| f.reason == reason)
            {
                return Err(if retryable {
                    BackendError::Retryable(reason)
                } else {
                    BackendError::Permanent(reason)
                });
            }
        }
        failures.sort_by_key(|f| f.index);
        Err(BackendError::Partial(failures))
    }

    /// One `insert_many` of `docs` (the events at `indices` of the batch).
    /// `Err` is an error of the whole call: (retryable, reason).
    async fn insert(
        &self,
        collection: &Collection<RawDocumentBuf>,
        batch: &[Arc<Event>],
        docs: &[RawDocumentBuf],
        indices: &[usize],
        failures: &mut Vec<EventFailure>,
    ) -> Result<(), (bool, String)> {
        let error = match collection.insert_many(docs).ordered(false).await {
            Ok(_) => return Ok(()),
            Err(error) => error,
        };
        match &*error.kind {
            ErrorKind::InsertMany(insert) => {
                let unsure = self.write_failures(insert, batch, indices, failures);
                if !unsure.is_empty() {
                    self.resolve_duplicates(collection, batch, unsure, failures)
                        .await;
                }
                Ok(())
            }
            kind => Err((
                is_retryable(&error),
                self.redact(&format!("mongo: insert_many failed: {kind}")),
            )),
        }
    }

    /// The per-document failures of an unordered `insert_many`. Returns the
    /// duplicate-key failures on other unique indexes than `_id`: the event
    /// may be stored already (the server reports one violated index, not
    /// necessarily `_id`'s), which only a look-up can tell.
    fn write_failures(
        &self,
        insert: &InsertManyError,
        batch: &[Arc<Event>],
        indices: &[usize],
        failures: &mut Vec<EventFailure>,
    ) -> Vec<EventFailure> {
        let mut failed = vec![false; indices.len()];
        let mut unsure = Vec::new();
        for error in insert.write_errors.iter().flatten() {
            let Some(&index) = indices.get(error.index) else {
                continue;
            };
            failed[error.index] = true;
            match self.write_failure(error, index, &batch[index]) {
                WriteOutcome::Stored => {}
                WriteOutcome::Failed(failure) => failures.push(failure),
                WriteOutcome::OtherDuplicate(failure) => unsure.push(failure),
            }
        }
        if let Some(concern) = &insert.write_concern_error {
            let retryable = classify::is_retryable_write_concern(concern);
            let reason = self.redact(&format!(
                "mongo: write concern not satisfied: error {} ({}): {}",
                concern.code, concern.code_name, concern.message
            ));
            for (position, &index) in indices.iter().enumerate() {
                if !failed[position] {
                    failures.push(EventFailure::new(index, retryable, reason.clone()));
                }
            }
        }
        unsure
    }

    /// Of events refused as duplicates on another unique index, those whose
    /// `_id` is in the collection were stored before (delivered); the others
    /// collide with a different event (a permanent failure). If the look-up
    /// fails, they are retried.
    async fn resolve_duplicates(
        &self,
        collection: &Collection<RawDocumentBuf>,
        batch: &[Arc<Event>],
        unsure: Vec<EventFailure>,
        failures: &mut Vec<EventFailure>,
    ) {
        let ids: Vec<Bson> = unsure
            .iter()
            .map(|f| {
                Bson::Binary(mongodb::bson::Binary {
                    subtype: mongodb::bson::spec::BinarySubtype::Uuid,
                    bytes: batch[f.index].id().as_bytes().to_vec(),
                })
            })
            .collect();
        let stored = async {
            let mut cursor = collection
                .find(mongodb::bson::doc! {"_id": {"$in": ids}})
                .projection(mongodb::bson::doc! {"_id": 1})
                .await?;
            let mut stored = std::collections::HashSet::new();
            while cursor.advance().await? {
                if let Ok(id) = cursor.current().get_binary("_id") {
                    stored.insert(id.bytes.to_vec());
                }
            }
            Ok::<_, mongodb::error::Error>(stored)
        }
        .await;
        match stored {
            Ok(stored) => failures.extend(
                unsure
                    .into_iter()
                    .filter(|f| !stored.contains(&batch[f.index].id().as_bytes()[..])),
            ),
            Err(error) => {
                let reason = self.redact(&format!(
                    "mongo: duplicate key; cannot tell whether the event is stored already: {}",
                    error.kind
                ));
                failures.extend(
                    unsure
                        .into_iter()
                        .map(|f| EventFailure::new(f.index, true, reason.clone())),
                );
            }
        }
    }

    /// One document's write error.
    fn write_failure(
        &self,
        error: &IndexedWriteError,
        index: usize,
        event: &Event,
    ) -> WriteOutcome {
        let code_name = error.code_name.as_deref().unwrap_or("");
        if error.code == 11000 {
            return match duplicate_key_index(&error.message) {
                None | Some("_id_") => WriteOutcome::Stored,
                Some(other) => WriteOutcome::OtherDuplicate(EventFailure::new(
                    index,
                    false,
                    self.redact(&format!(
                        "mongo: event `{}`: duplicate key on unique index `{other}`: {}",
                        event.name(),
                        error.message
                    )),
                )),
            };
        }
        WriteOutcome::Failed(EventFailure::new(
            index,
            is_retryable_code(error.code),
            self.redact(&format!(
                "mongo: event `{}`: write error {} ({code_name}): {}",
                event.name(),
                error.code,
                error.message
            )),
        ))
    }
}

/// What a per-document write error means.
enum WriteOutcome {
    /// A duplicate `_id`: the event was stored before.
    Stored,
    /// A failure.
    Failed(EventFailure),
    /// A duplicate on another unique index: stored before, or a real clash.
    OtherDuplicate(EventFailure),
}

/// The index named in a duplicate key message (`... index: _id_ dup key: ...`).
fn duplicate_key_index(message: &str) -> Option<&str> {
    let at = message.find(" index: ")?;
    message[at + " index: ".len()..].split_whitespace().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_key_messages_name_their_index() {
        assert_eq!(
            duplicate_key_index(
                "E11000 duplicate key error collection: db.events index: _id_ dup key: { _id: 1 }"
            ),
            Some("_id_")
        );
        assert_eq!(
            duplicate_key_index(
                "E11000 duplicate key error collection: db.c index: u_1 dup key: { u: 1 }"
            ),
            Some("u_1")
        );
        assert_eq!(duplicate_key_index("E11000 duplicate key"), None);
    }
}
