//! [`KafkaSource`]: a consumer in a consumer group as a [`Source`] of
//! events with acknowledgements (what `eventtracking relay` reads).
//!
//! Each message handed out is remembered by partition and offset until its
//! acknowledgement arrives. [`commit`](Source::commit) commits, per
//! partition, the offset after the highest contiguous run of settled
//! messages from the last commit: a message still in flight, or one that
//! was lost, holds its partition back, never the others. When partitions
//! are revoked in a rebalance, the source first waits (up to its revoke
//! timeout) for their outstanding acknowledgements and commits what
//! settled; the rest is read again by the partition's next owner
//! (duplicates, never gaps).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use eventtracking_core::catalog::CatalogEntry;
use eventtracking_core::redact::Redactor;
use eventtracking_core::source::{AckStatus, Source, SourceAck, SourceError, SourceItem};
use eventtracking_core::sync::lock;
use eventtracking_core::Event;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde_json::json;

use crate::{client_error_text, KafkaProperties, RedactingContext};

/// The name of the event wrapping a malformed message in the dead-letter file.
pub const MALFORMED_EVENT_NAME: &str = "eventtracking.relay.malformed";

/// Default of [`KafkaSource::with_revoke_timeout`].
pub const DEFAULT_REVOKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Settled,
    Lost,
}

/// The messages of one partition handed out and not committed, by offset.
#[derive(Debug, Default)]
struct PartitionLog {
    /// Tells acknowledgements of an earlier assignment from this one's.
    generation: u64,
    messages: VecDeque<(i64, State)>,
}

impl PartitionLog {
    /// The offset to commit (after the settled run at the front) and how
    /// many messages that covers.
    fn committable(&self) -> Option<(i64, usize)> {
        let run = self
            .messages
            .iter()
            .take_while(|(_, state)| *state == State::Settled)
            .count();
        (run > 0).then(|| (self.messages[run - 1].0 + 1, run))
    }

    fn mark(&mut self, offset: i64, status: AckStatus) {
        // Offsets are handed out in increasing order (with gaps where the
        // log has none to give): the log is sorted. A linear search here made
        // every acknowledgement cost the whole window of uncommitted messages.
        if let Ok(index) = self.messages.binary_search_by_key(&offset, |(o, _)| *o) {
            self.messages[index].1 = match status {
                AckStatus::Settled => State::Settled,
                _ => State::Lost,
            };
        }
    }

    /// Records `offset` as handed out, keeping the log sorted (a message
    /// handed out again, after a seek, is pending again).
    fn hand_out(&mut self, offset: i64) {
        match self.messages.back() {
            Some((last, _)) if *last >= offset => {
                match self.messages.binary_search_by_key(&offset, |(o, _)| *o) {
                    Ok(index) => self.messages[index].1 = State::Pending,
                    Err(index) => self.messages.insert(index, (offset, State::Pending)),
                }
            }
            _ => self.messages.push_back((offset, State::Pending)),
        }
    }

    fn pending(&self) -> usize {
        self.messages
            .iter()
            .filter(|(_, state)| *state == State::Pending)
            .count()
    }
}

/// A topic's name is shared by its partitions' keys and acknowledgement
/// handles (no allocation per message).
type PartitionKey = (Arc<str>, i32);

#[derive(Debug, Default)]
struct Offsets {
    partitions: BTreeMap<PartitionKey, PartitionLog>,
    /// The topics' names seen, each allocated once.
    topics: Vec<Arc<str>>,
    next_generation: u64,
    /// The last offset committed per partition.
    committed: BTreeMap<PartitionKey, i64>,
}

impl Offsets {
    fn uncommitted(&self) -> u64 {
        self.partitions
            .values()
            .map(|log| log.messages.len() as u64)
            .sum()
    }
}

/// What the source counts, readable while it runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KafkaSourceStats {
    /// Rebalances seen (assignments and revocations).
    pub rebalances: u64,
    /// Messages handed out and not committed when their partition was
    /// revoked: the partition's next owner reads them again.
    pub released: u64,
    /// The partitions assigned right now, as `(topic, partition)`.
    pub partitions: Vec<(String, i32)>,
    /// The offsets committed last, per `(topic, partition)`: the next offset a restart reads.
    pub committed_offsets: BTreeMap<(String, i32), i64>,
}

struct Shared {
    offsets: Mutex<Offsets>,
    acknowledged: Condvar,
    rebalances: AtomicU64,
    released: AtomicU64,
    partitions: Mutex<Vec<(String, i32)>>,
    last_assignment: Mutex<Option<Instant>>,
    redactor: Redactor,
    revoke_timeout: Mutex<Duration>,
}

impl Shared {
    fn acknowledge(&self, key: &PartitionKey, generation: u64, offset: i64, status: AckStatus) {
        let mut offsets = lock(&self.offsets);
        if let Some(log) = offsets.partitions.get_mut(key) {
            if log.generation == generation {
                log.mark(offset, status);
            }
        }
        drop(offsets);
        self.acknowledged.notify_all();
    }

    /// Commits the settled runs of `only` (every partition when `None`);
    /// returns how many messages the commit covered.
    fn commit(
        &self,
        consumer: &BaseConsumer<SourceContext>,
        only: Option<&TopicPartitionList>,
    ) -> Result<u64, SourceError> {
        let mut offsets = lock(&self.offsets);
        let mut list = TopicPartitionList::new();
        let mut covered = Vec::new();
        for (key, log) in &offsets.partitions {
            if let Some(only) = only {
                if only.find_partition(&key.0, key.1).is_none() {
                    continue;
                }
            }
            if let Some((next, run)) = log.committable() {
                if let Err(error) = list.add_partition_offset(&key.0, key.1, Offset::Offset(next)) {
                    tracing::error!(%error, "eventtracking relay: bad offset");
                    continue;
                }
                covered.push((key.clone(), next, run));
            }
        }
        if covered.is_empty() {
            return Ok(0);
        }
        consumer.commit(&list, CommitMode::Sync).map_err(|error| {
            SourceError::Transient(self.redactor.redact(&error.to_string()).into_owned())
        })?;
        let mut messages = 0;
        for (key, next, run) in covered {
            if let Some(log) = offsets.partitions.get_mut(&key) {
                log.messages.drain(..run);
            }
            offsets.committed.insert(key, next);
            messages += run as u64;
        }
        Ok(messages)
    }

    /// Partitions are being taken away: wait a moment for their outstanding
    /// acknowledgements, commit what settled, forget the rest.
    fn revoke(&self, consumer: &BaseConsumer<SourceContext>, revoked: &TopicPartitionList) {
        *lock(&self.last_assignment) = Some(Instant::now());
        self.rebalances.fetch_add(1, Relaxed);
        let timeout = *lock(&self.revoke_timeout);
        let deadline = Instant::now() + timeout;
        {
            let mut offsets = lock(&self.offsets);
            loop {
                let outstanding: usize = revoked
                    .elements()
                    .iter()
                    .filter_map(|e| {
                        offsets
                            .partitions
                            .get(&(Arc::from(e.topic()), e.partition()))
                    })
                    .map(PartitionLog::pending)
                    .sum();
                let now = Instant::now();
                if outstanding == 0 || now >= deadline {
                    break;
                }
                offsets = self
                    .acknowledged
                    .wait_timeout(offsets, deadline - now)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
        if let Err(error) = self.commit(consumer, Some(revoked)) {
            tracing::warn!(%error, "eventtracking relay: commit before a revocation failed; the new owner re-reads from the last commit");
        }
        let mut offsets = lock(&self.offsets);
        let mut released = 0;
        for element in revoked.elements() {
            if let Some(log) = offsets
                .partitions
                .remove(&(Arc::from(element.topic()), element.partition()))
            {
                released += log.messages.len() as u64;
            }
        }
        if released > 0 {
            self.released.fetch_add(released, Relaxed);
            tracing::warn!(
                released,
                "eventtracking relay: partitions revoked before the backends settled every event; \
                 their new owner re-reads them (duplicates, no loss)"
            );
        }
    }

    fn assigned(&self, consumer: &BaseConsumer<SourceContext>) {
        *lock(&self.last_assignment) = Some(Instant::now());
        self.rebalances.fetch_add(1, Relaxed);
        self.update_partitions(consumer);
    }

    fn update_partitions(&self, consumer: &BaseConsumer<SourceContext>) {
        let partitions = match consumer.assignment() {
            Ok(list) => list
                .elements()
                .iter()
                .map(|e| (e.topic().to_owned(), e.partition()))
                .collect(),
            Err(_) => Vec::new(),
        };
        tracing::info!(?partitions, "eventtracking relay: assignment");
        *lock(&self.partitions) = partitions;
    }
}

/// The source's rdkafka context: librdkafka's logs go to `tracing` with
/// secrets redacted (as [`RedactingContext`]), and a revocation commits
/// the settled offsets of the revoked partitions first.
struct SourceContext {
    redacting: RedactingContext,
    shared: Arc<Shared>,
}

impl ClientContext for SourceContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.redacting.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.redacting.error(error, reason);
    }
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(revoked) => self.shared.revoke(consumer, revoked),
            Rebalance::Assign(_) => {}
            Rebalance::Error(error) => tracing::warn!(
                error = %self.shared.redactor.redact(&error.to_string()),
                "eventtracking relay: rebalance error"
            ),
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(_) => self.shared.assigned(consumer),
            Rebalance::Revoke(_) => self.shared.update_partitions(consumer),
            Rebalance::Error(_) => {}
        }
    }
}

/// Reads a [`KafkaSource`]'s counters while it runs. Cheap to clone.
#[derive(Clone)]
pub struct KafkaSourceMonitor {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for KafkaSourceMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSourceMonitor")
            .field("stats", &self.snapshot())
            .finish()
    }
}

impl KafkaSourceMonitor {
    /// The counters right now.
    pub fn snapshot(&self) -> KafkaSourceStats {
        let shared = &*self.shared;
        KafkaSourceStats {
            rebalances: shared.rebalances.load(Relaxed),
            released: shared.released.load(Relaxed),
            partitions: lock(&shared.partitions).clone(),
            committed_offsets: lock(&shared.offsets)
                .committed
                .iter()
                .map(|((topic, partition), offset)| ((topic.to_string(), *partition), *offset))
                .collect(),
        }
    }
}

/// A Kafka consumer group member as a [`Source`] (what `eventtracking relay` reads).
///
/// Each message handed out is remembered by partition and offset until its
/// acknowledgement arrives. [`commit`](Source::commit) commits, per
/// partition, the offset after the highest contiguous run of settled
/// messages: a message still in flight, or one that was lost, holds its
/// partition back, never the others. When partitions are revoked in a
/// rebalance, the source first waits (up to
/// [`with_revoke_timeout`](Self::with_revoke_timeout)) for their outstanding
/// acknowledgements and commits what settled; the rest is read again by the
/// partition's next owner (duplicates, never gaps).
///
/// Message values are events as the Kafka backend writes them; messages of
/// the catalog topic are catalog entries; anything else is handed out as
/// [`SourceItem::Malformed`] with what was read (topic, partition, offset,
/// key, the raw payload or `payload_hex`, and the parse error).
pub struct KafkaSource {
    consumer: BaseConsumer<SourceContext>,
    shared: Arc<Shared>,
    catalog_topic: Option<String>,
}

impl std::fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource")
            .field("catalog_topic", &self.catalog_topic)
            .finish_non_exhaustive()
    }
}

impl KafkaSource {
    /// A consumer made from `properties` (which must set `group.id` and
    /// turn `enable.auto.commit` and `enable.auto.offset.store` off),
    /// subscribed to `topics` and, when given, the catalog topic.
    /// Connecting happens in the background: an unreachable broker is
    /// retried, not an error. Errors are librdkafka's, secrets redacted.
    pub fn subscribe(
        properties: &KafkaProperties,
        topics: &[String],
        catalog_topic: Option<&str>,
    ) -> Result<Self, SourceError> {
        let redacting = RedactingContext::new(properties.redactor());
        let shared = Arc::new(Shared {
            offsets: Mutex::default(),
            acknowledged: Condvar::new(),
            rebalances: AtomicU64::new(0),
            released: AtomicU64::new(0),
            partitions: Mutex::default(),
            last_assignment: Mutex::default(),
            redactor: redacting.redactor().clone(),
            revoke_timeout: Mutex::new(DEFAULT_REVOKE_TIMEOUT),
        });
        let client_error =
            |error: KafkaError| SourceError::Fatal(client_error_text(&error, redacting.redactor()));
        let consumer: BaseConsumer<SourceContext> = properties
            .client_config()
            .create_with_context(SourceContext {
                redacting: redacting.clone(),
                shared: shared.clone(),
            })
            .map_err(client_error)?;
        let mut subscribed: Vec<&str> = topics.iter().map(String::as_str).collect();
        let catalog_topic = catalog_topic.map(str::trim).filter(|t| !t.is_empty());
        if let Some(catalog) = catalog_topic {
            if !subscribed.contains(&catalog) {
                subscribed.push(catalog);
            }
        }
        consumer.subscribe(&subscribed).map_err(client_error)?;
        Ok(KafkaSource {
            consumer,
            shared,
            catalog_topic: catalog_topic.map(str::to_owned),
        })
    }

    /// How long a revocation waits for the outstanding acknowledgements of
    /// its partitions before committing what settled (default 30 s).
    pub fn with_revoke_timeout(self, timeout: Duration) -> Self {
        *lock(&self.shared.revoke_timeout) = timeout;
        self
    }

    /// A handle reading the counters while the source is read.
    pub fn monitor(&self) -> KafkaSourceMonitor {
        KafkaSourceMonitor {
            shared: self.shared.clone(),
        }
    }

    /// Records the message as handed out and returns its acknowledgement handle.
    fn track(&self, topic: &str, partition: i32, offset: i64) -> SourceAck {
        let (key, generation) = {
            let mut offsets = lock(&self.shared.offsets);
            let topic = match offsets.topics.iter().find(|known| ***known == *topic) {
                Some(known) => known.clone(),
                None => {
                    let new: Arc<str> = Arc::from(topic);
                    offsets.topics.push(new.clone());
                    new
                }
            };
            let key = (topic, partition);
            let next = offsets.next_generation;
            let log = offsets
                .partitions
                .entry(key.clone())
                .or_insert_with(|| PartitionLog {
                    generation: next,
                    messages: VecDeque::new(),
                });
            let generation = log.generation;
            log.hand_out(offset);
            if generation == next {
                offsets.next_generation += 1;
            }
            (key, generation)
        };
        let shared = Arc::downgrade(&self.shared);
        SourceAck::new(move |status| {
            if let Some(shared) = shared.upgrade() {
                shared.acknowledge(&key, generation, offset, status);
            }
        })
    }

    fn item(&self, message: &BorrowedMessage<'_>) -> SourceItem {
        let topic = message.topic();
        let (partition, offset) = (message.partition(), message.offset());
        let ack = self.track(topic, partition, offset);
        if self.catalog_topic.as_deref() == Some(topic) {
            let entry = message
                .payload()
                .ok_or_else(|| "the message has no value".to_owned())
                .and_then(|payload| {
                    serde_json::from_slice::<CatalogEntry>(payload).map_err(|e| e.to_string())
                });
            return match entry {
                Ok(entry) => SourceItem::EventTypes {
                    entries: vec![Arc::new(entry)],
                    ack,
                },
                Err(error) => {
                    tracing::warn!(topic, partition, offset, %error, "eventtracking relay: a message of the catalog topic is not a catalog entry; skipped");
                    ack.acknowledge(AckStatus::Settled);
                    SourceItem::EventTypes {
                        entries: Vec::new(),
                        ack: SourceAck::ignored(),
                    }
                }
            };
        }
        let parsed = match message.payload() {
            None => Err("the message has no value".to_owned()),
            // The payload's bytes are kept: relayed events are written out as they came.
            Some(payload) => Event::from_json_slice(payload).map_err(|e| e.to_string()),
        };
        match parsed {
            Ok(event) => SourceItem::Event {
                event: Arc::new(event),
                ack,
            },
            Err(error) => {
                let reason = format!(
                    "malformed message: topic {topic} partition {partition} offset {offset}: not an event: {error}"
                );
                SourceItem::Malformed {
                    record: Arc::new(malformed_record(message, &error)),
                    reason,
                    ack,
                }
            }
        }
    }
}

impl Source for KafkaSource {
    fn next(&mut self, timeout: Duration) -> Result<Option<SourceItem>, SourceError> {
        match self.consumer.poll(timeout) {
            None => Ok(None),
            Some(Err(error)) => Err(SourceError::Transient(
                self.shared.redactor.redact(&error.to_string()).into_owned(),
            )),
            Some(Ok(message)) => Ok(Some(self.item(&message))),
        }
    }

    fn commit(&mut self) -> Result<u64, SourceError> {
        self.shared.commit(&self.consumer, None)
    }

    fn uncommitted(&self) -> u64 {
        lock(&self.shared.offsets).uncommitted()
    }

    fn last_assignment(&self) -> Option<Instant> {
        *lock(&self.shared.last_assignment)
    }

    fn close(&mut self) {
        // What is still uncommitted is re-read after a restart; the close's
        // revocation must not wait for acknowledgements that cannot come.
        *lock(&self.shared.revoke_timeout) = Duration::ZERO;
        self.consumer.unsubscribe();
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A byte string as JSON: text when it is UTF-8, else `{"hex": ...}`.
fn bytes_json(bytes: Option<&[u8]>) -> serde_json::Value {
    match bytes {
        None => serde_json::Value::Null,
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => json!(text),
            Err(_) => json!({ "hex": hex(bytes) }),
        },
    }
}

/// The dead-letter record of a malformed message: an event named
/// [`MALFORMED_EVENT_NAME`] holding what was read.
fn malformed_record(message: &BorrowedMessage<'_>, error: &str) -> Event {
    let mut data = json!({
        "topic": message.topic(),
        "partition": message.partition(),
        "offset": message.offset(),
        "key": bytes_json(message.key()),
        "error": error,
    });
    match message.payload() {
        None => data["payload"] = serde_json::Value::Null,
        Some(payload) => match std::str::from_utf8(payload) {
            Ok(text) => data["payload"] = json!(text),
            Err(_) => data["payload_hex"] = json!(hex(payload)),
        },
    }
    Event::new(MALFORMED_EVENT_NAME, data).expect("the malformed-message event name is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_text_or_hex() {
        assert_eq!(bytes_json(Some(b"abc")), json!("abc"));
        assert_eq!(bytes_json(Some(&[0xff, 0x01])), json!({"hex": "ff01"}));
        assert_eq!(bytes_json(None), serde_json::Value::Null);
    }

    fn log(states: &[(i64, State)]) -> PartitionLog {
        PartitionLog {
            generation: 0,
            messages: states.iter().copied().collect(),
        }
    }

    #[test]
    fn a_partition_commits_its_settled_run_only() {
        use State::*;
        assert_eq!(log(&[]).committable(), None);
        assert_eq!(log(&[(5, Pending), (6, Settled)]).committable(), None);
        assert_eq!(
            log(&[(5, Settled), (6, Settled), (7, Pending), (8, Settled)]).committable(),
            Some((7, 2))
        );
        // A lost message holds its partition back for good.
        assert_eq!(
            log(&[(5, Settled), (6, Lost), (7, Settled)]).committable(),
            Some((6, 1))
        );
        // Offsets need not be contiguous (compaction, transaction markers).
        assert_eq!(
            log(&[(5, Settled), (9, Settled)]).committable(),
            Some((10, 2))
        );
    }

    #[test]
    fn an_acknowledgement_marks_its_offset() {
        let mut log = log(&[(1, State::Pending), (2, State::Pending)]);
        log.mark(2, AckStatus::Settled);
        assert_eq!(log.committable(), None);
        log.mark(1, AckStatus::Settled);
        assert_eq!(log.committable(), Some((3, 2)));
        log.mark(1, AckStatus::Lost);
        assert_eq!(log.committable(), None);
        assert_eq!(log.pending(), 0);
    }

    #[test]
    fn the_log_stays_sorted_when_a_message_is_handed_out_again() {
        let mut log = log(&[(4, State::Settled), (7, State::Settled)]);
        log.hand_out(9);
        log.hand_out(5);
        log.hand_out(7);
        let offsets: Vec<i64> = log.messages.iter().map(|(o, _)| *o).collect();
        assert_eq!(offsets, vec![4, 5, 7, 9]);
        assert_eq!(log.pending(), 3, "5, 7 (again) and 9");
        log.mark(5, AckStatus::Settled);
        log.mark(7, AckStatus::Settled);
        assert_eq!(log.committable(), Some((8, 3)));
    }
}
