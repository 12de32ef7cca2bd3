//! Offset bookkeeping: what was handled and not committed yet per partition
//! ([`State`], [`Pending`]), the flush-then-commit cycle ([`Shared::settle`],
//! [`Settle`]), and the consumer context that commits before partitions are
//! revoked in a rebalance ([`RelayContext`]).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eventtracking::kafka::RedactingContext;
use eventtracking::redact::Redactor;
use eventtracking::{DeliveryReport, Tracker};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::lock;
use super::report::Counters;

/// Events the tracker lost: dropped for any reason or to processor errors
/// (filtered events are not lost: a processor dropped them on purpose).
pub(super) fn losses(report: &DeliveryReport) -> u64 {
    let tracker = &report.tracker;
    tracker.processor_errors
        + tracker.no_backend
        + tracker.after_shutdown
        + report
            .backends
            .values()
            .map(|b| b.dropped + b.processor_errors)
            .sum::<u64>()
}

#[derive(Debug)]
pub(super) struct State {
    /// Messages handled since the last complete flush.
    pub(super) unflushed: usize,
    /// The next offset to commit per partition (messages handled, not committed).
    pub(super) pending: BTreeMap<String, BTreeMap<i32, Pending>>,
    pub(super) baseline_losses: u64,
    pub(super) lost: u64,
    pub(super) fatal: Option<String>,
    /// Set once `run` is done: the close's revocation commits nothing more.
    pub(super) closing: bool,
    /// The last rebalance; `None` before the first assignment.
    pub(super) last_rebalance: Option<Instant>,
}

/// What was handled and not committed yet, for one partition.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pending {
    /// The offset after the last message handled: what a commit records.
    pub(super) next_offset: i64,
    /// How many messages.
    pub(super) messages: u64,
}

impl State {
    pub(super) fn pending_messages(&self) -> u64 {
        self.pending
            .values()
            .flat_map(BTreeMap::values)
            .map(|p| p.messages)
            .sum()
    }
}

/// The outcome of a flush-and-commit cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Settle {
    /// Everything handled is committed.
    Done,
    /// The backends have not accepted everything yet.
    Incomplete,
    /// Delivered, but the commit failed (retried next cycle).
    CommitFailed,
    /// Something was lost: nothing more is committed.
    Lost,
}

pub(super) struct Shared {
    pub(super) tracker: Tracker,
    pub(super) counters: Arc<Counters>,
    pub(super) state: Mutex<State>,
    pub(super) flush_timeout: Duration,
    pub(super) redactor: Redactor,
}

impl Shared {
    /// Flushes the tracker and, when every event handled so far is accepted
    /// (delivered or dead-lettered) and nothing was lost, commits the pending
    /// offsets.
    pub(super) fn settle(
        &self,
        consumer: &BaseConsumer<RelayContext>,
        state: &mut State,
        timeout: Duration,
    ) -> Settle {
        if state.fatal.is_some() {
            return Settle::Lost;
        }
        if state.unflushed > 0 {
            let report = self.tracker.flush(timeout);
            let lost = losses(&report).saturating_sub(state.baseline_losses);
            if lost > 0 {
                state.lost = lost;
                state.fatal = Some(format!(
                    "{lost} event(s) were lost in the tracker (dropped or processor errors, see the delivery report); \
                     offsets were not committed past them, so a restart delivers them again"
                ));
                tracing::error!(
                    lost,
                    "eventtracking relay: events lost in the tracker; stopping without committing"
                );
                return Settle::Lost;
            }
            if !report.complete {
                return Settle::Incomplete;
            }
            state.unflushed = 0;
        }
        if state.pending.is_empty() {
            return Settle::Done;
        }
        let mut list = TopicPartitionList::new();
        for (topic, partitions) in &state.pending {
            for (partition, pending) in partitions {
                if let Err(error) = list.add_partition_offset(
                    topic,
                    *partition,
                    Offset::Offset(pending.next_offset),
                ) {
                    tracing::error!(%error, "eventtracking relay: bad offset");
                }
            }
        }
        match consumer.commit(&list, CommitMode::Sync) {
            Ok(()) => {
                let messages = state.pending_messages();
                let committed = std::mem::take(&mut state.pending);
                lock(&self.counters.offsets).extend(committed.into_iter().flat_map(
                    |(topic, partitions)| {
                        partitions
                            .into_iter()
                            .map(move |(partition, p)| ((topic.clone(), partition), p.next_offset))
                    },
                ));
                self.counters.committed.fetch_add(messages, Relaxed);
                self.counters.uncommitted.store(0, Relaxed);
                self.counters.commits.fetch_add(1, Relaxed);
                Settle::Done
            }
            Err(error) => {
                self.counters.commit_errors.fetch_add(1, Relaxed);
                tracing::warn!(
                    error = %self.redactor.redact(&error.to_string()),
                    "eventtracking relay: offset commit failed (the events are delivered; retrying next cycle)"
                );
                Settle::CommitFailed
            }
        }
    }

    /// Partitions are being taken away: commit what was handled for them first.
    fn revoke(&self, consumer: &BaseConsumer<RelayContext>, revoked: &TopicPartitionList) {
        let mut state = lock(&self.state);
        state.last_rebalance = Some(Instant::now());
        self.counters.rebalances.fetch_add(1, Relaxed);
        if state.closing {
            // `run` already settled what it could and reports the rest.
            return;
        }
        if !state.pending.is_empty() {
            match self.settle(consumer, &mut state, self.flush_timeout) {
                Settle::Done => {}
                Settle::Incomplete => tracing::warn!(
                    "eventtracking relay: partitions revoked before the backends accepted every event; \
                     their new owner re-reads from the last commit (duplicates, no loss)"
                ),
                Settle::CommitFailed | Settle::Lost => {}
            }
        }
        // Whatever is still pending for the revoked partitions is re-read by
        // their next owner; never commit it from here.
        let mut released = 0;
        for element in revoked.elements() {
            if let Some(partitions) = state.pending.get_mut(element.topic()) {
                if let Some(pending) = partitions.remove(&element.partition()) {
                    released += pending.messages;
                }
                if partitions.is_empty() {
                    state.pending.remove(element.topic());
                }
            }
        }
        if released > 0 {
            self.counters.released.fetch_add(released, Relaxed);
            self.counters
                .uncommitted
                .store(state.pending_messages(), Relaxed);
        }
    }

    fn assigned(&self, consumer: &BaseConsumer<RelayContext>) {
        let mut state = lock(&self.state);
        state.last_rebalance = Some(Instant::now());
        drop(state);
        self.counters.rebalances.fetch_add(1, Relaxed);
        self.update_partitions(consumer);
    }

    fn update_partitions(&self, consumer: &BaseConsumer<RelayContext>) {
        let partitions = match consumer.assignment() {
            Ok(list) => list
                .elements()
                .iter()
                .map(|e| (e.topic().to_owned(), e.partition()))
                .collect(),
            Err(_) => Vec::new(),
        };
        tracing::info!(?partitions, "eventtracking relay: assignment");
        *lock(&self.counters.partitions) = partitions;
    }
}

/// The relay's rdkafka context: librdkafka's logs go to `tracing` with
/// secrets redacted (as [`RedactingContext`]), and a revocation commits the
/// delivered offsets of the revoked partitions first.
pub(super) struct RelayContext {
    pub(super) redacting: RedactingContext,
    pub(super) shared: Arc<Shared>,
}

impl ClientContext for RelayContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.redacting.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.redacting.error(error, reason);
    }
}

impl ConsumerContext for RelayContext {
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

/// Counts a handled message and makes its offset the next to commit.
pub(super) fn record_pending(shared: &Shared, topic: &str, partition: i32, offset: i64) {
    shared.counters.messages.fetch_add(1, Relaxed);
    shared.counters.uncommitted.fetch_add(1, Relaxed);
    let mut state = lock(&shared.state);
    state.unflushed += 1;
    let partitions = match state.pending.get_mut(topic) {
        Some(partitions) => partitions,
        None => state.pending.entry(topic.to_owned()).or_default(),
    };
    let pending = partitions.entry(partition).or_insert(Pending {
        next_offset: offset + 1,
        messages: 0,
    });
    pending.next_offset = offset + 1;
    pending.messages += 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losses_count_drops_and_processor_errors_not_filters() {
        let mut report = DeliveryReport::default();
        report.tracker.filtered = 5;
        assert_eq!(losses(&report), 0);
        report.tracker.processor_errors = 1;
        let mut backend = eventtracking::BackendStats::default();
        backend.dropped = 2;
        backend.processor_errors = 3;
        backend.filtered = 7;
        report.backends.insert("b".into(), backend);
        assert_eq!(losses(&report), 6);
    }
}
