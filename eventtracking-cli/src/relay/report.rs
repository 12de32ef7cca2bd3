//! The relay's counters ([`RelayStats`], read live through a
//! [`RelayMonitor`]) and what [`Relay::run`](super::Relay::run) returns
//! ([`RelayReport`], [`StopReason`]), with the `Display` the CLI prints.

use std::collections::BTreeMap;
use std::fmt;

use eventtracking::kafka::KafkaSourceMonitor;
use eventtracking::relay::RelayLoopMonitor;
use eventtracking::DeliveryReport;

#[cfg(doc)]
use super::{Relay, RelayBuilder};

/// Why [`Relay::run`] returned (the engine's relay loop's reason).
pub use eventtracking::relay::RelayStopReason as StopReason;

/// Reads a relay's counters while it runs (for progress output). Cheap to clone.
#[derive(Debug, Clone)]
pub struct RelayMonitor {
    pub(super) relay: RelayLoopMonitor,
    pub(super) source: KafkaSourceMonitor,
}

impl RelayMonitor {
    /// The counters right now.
    pub fn snapshot(&self) -> RelayStats {
        let relay = self.relay.snapshot();
        let source = self.source.snapshot();
        RelayStats {
            messages: relay.items,
            events: relay.events,
            event_types: relay.event_types,
            malformed: relay.malformed,
            committed: relay.committed,
            uncommitted: relay.uncommitted,
            commits: relay.commits,
            commit_errors: relay.commit_errors,
            dead_lettered: relay.dead_lettered,
            rebalances: source.rebalances,
            released: source.released,
            partitions: source.partitions,
        }
    }
}

/// A relay's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayStats {
    /// Messages read from Kafka and handled (emitted or dead-lettered).
    pub messages: u64,
    /// Of those, events emitted into the tracker.
    pub events: u64,
    /// Of those, catalog entries (from the catalog topic) handed to the
    /// backends' `publish_event_types`.
    pub event_types: u64,
    /// Of those, malformed messages (dead-lettered or, without a
    /// dead-letter path, logged).
    pub malformed: u64,
    /// Messages whose offsets are committed.
    pub committed: u64,
    /// Messages handled whose offsets are not committed (yet).
    pub uncommitted: u64,
    /// Successful offset commits.
    pub commits: u64,
    /// Failed offset commits (retried with the next cycle; a failed commit
    /// costs duplicates after a restart, never events).
    pub commit_errors: u64,
    /// Events some backend dead-lettered: settled (replayable), so their
    /// offsets are committed like the others.
    pub dead_lettered: u64,
    /// Rebalances seen (assignments and revocations).
    pub rebalances: u64,
    /// Messages handed out but not committed when their partition was
    /// revoked (the backends had not settled them in time): the partition's
    /// next owner reads them again, so they may arrive twice.
    pub released: u64,
    /// The partitions assigned right now, as `(topic, partition)`.
    pub partitions: Vec<(String, i32)>,
}

/// What [`Relay::run`] did. Its `Display` is the report the CLI prints.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RelayReport {
    /// Why it stopped.
    pub stop: StopReason,
    /// What went wrong, if anything (a loss, a dead letter that could not be
    /// written, a final flush that did not finish).
    pub error: Option<String>,
    /// Events of the relay that a backend lost (dropped, a processor
    /// error); the relay stops at the first and never commits past it.
    /// Other emitters' losses on the same tracker do not count.
    pub lost: u64,
    /// The relay's counters at the end.
    pub stats: RelayStats,
    /// The offsets committed last, per `(topic, partition)`: the next offset
    /// a restart reads.
    pub committed_offsets: BTreeMap<(String, i32), i64>,
    /// The tracker's final report (from its shutdown).
    pub delivery: DeliveryReport,
}

impl RelayReport {
    /// Whether every handled message was delivered (or dead-lettered) and
    /// committed, nothing was lost, and the tracker shut down in time.
    pub fn is_clean(&self) -> bool {
        self.error.is_none()
            && self.lost == 0
            && self.stats.uncommitted == 0
            && self.delivery.complete
    }
}

impl fmt::Display for RelayReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.stats;
        writeln!(
            f,
            "relay report ({}): messages {}, events {}, event types {}, malformed {}, committed {}, uncommitted {}, commits {}, commit errors {}, rebalances {}, dead-lettered {}",
            self.stop, s.messages, s.events, s.event_types, s.malformed, s.committed, s.uncommitted,
            s.commits, s.commit_errors, s.rebalances, s.dead_lettered
        )?;
        if s.released > 0 {
            writeln!(
                f,
                "  released uncommitted in rebalances: {} (their partitions' next owner reads them again)",
                s.released
            )?;
        }
        if let Some(error) = &self.error {
            writeln!(f, "  error: {error}")?;
        }
        if !self.committed_offsets.is_empty() {
            let offsets: Vec<String> = self
                .committed_offsets
                .iter()
                .map(|((topic, partition), offset)| format!("{topic}/{partition}={offset}"))
                .collect();
            writeln!(f, "  committed offsets: {}", offsets.join(", "))?;
        }
        write!(f, "{}", self.delivery)
    }
}
