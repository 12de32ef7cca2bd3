//! The relay's counters ([`RelayStats`], read live through a
//! [`RelayMonitor`]) and what [`Relay::run`](super::Relay::run) returns
//! ([`RelayReport`], [`StopReason`]), with the `Display` the CLI prints.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use eventtracking::DeliveryReport;

use super::lock;
#[cfg(doc)]
use super::{Relay, RelayBuilder, StopHandle};

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) messages: AtomicU64,
    pub(super) events: AtomicU64,
    pub(super) event_types: AtomicU64,
    pub(super) malformed: AtomicU64,
    pub(super) committed: AtomicU64,
    pub(super) uncommitted: AtomicU64,
    pub(super) commits: AtomicU64,
    pub(super) commit_errors: AtomicU64,
    pub(super) rebalances: AtomicU64,
    pub(super) released: AtomicU64,
    pub(super) partitions: Mutex<Vec<(String, i32)>>,
    pub(super) offsets: Mutex<BTreeMap<(String, i32), i64>>,
}

impl Counters {
    pub(super) fn snapshot(&self) -> RelayStats {
        RelayStats {
            messages: self.messages.load(Relaxed),
            events: self.events.load(Relaxed),
            event_types: self.event_types.load(Relaxed),
            malformed: self.malformed.load(Relaxed),
            committed: self.committed.load(Relaxed),
            uncommitted: self.uncommitted.load(Relaxed),
            commits: self.commits.load(Relaxed),
            commit_errors: self.commit_errors.load(Relaxed),
            rebalances: self.rebalances.load(Relaxed),
            released: self.released.load(Relaxed),
            partitions: lock(&self.partitions).clone(),
        }
    }
}

/// Reads a relay's counters while it runs (for progress output). Cheap to clone.
#[derive(Debug, Clone)]
pub struct RelayMonitor {
    pub(super) counters: Arc<Counters>,
}

impl RelayMonitor {
    /// The counters right now.
    pub fn snapshot(&self) -> RelayStats {
        self.counters.snapshot()
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
    /// Rebalances seen (assignments and revocations).
    pub rebalances: u64,
    /// Messages handled but not committed when their partition was revoked
    /// (the backends had not accepted them in time): the partition's next
    /// owner reads them again, so they may arrive twice.
    pub released: u64,
    /// The partitions assigned right now, as `(topic, partition)`.
    pub partitions: Vec<(String, i32)>,
}

/// Why [`Relay::run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// [`StopHandle::stop`] was called (SIGINT/SIGTERM in the CLI).
    Requested,
    /// No message arrived for [`with_exit_when_idle`](RelayBuilder::with_exit_when_idle).
    Idle,
    /// Something was lost or could not be dead-lettered: the relay stopped
    /// without committing past it (see [`RelayReport::error`]).
    Failed,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StopReason::Requested => "stop requested",
            StopReason::Idle => "idle",
            StopReason::Failed => "FAILED",
        })
    }
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
    /// Events lost in the tracker (dropped, processor errors) while relaying.
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
            "relay report ({}): messages {}, events {}, event types {}, malformed {}, committed {}, uncommitted {}, commits {}, commit errors {}, rebalances {}",
            self.stop, s.messages, s.events, s.event_types, s.malformed, s.committed, s.uncommitted,
            s.commits, s.commit_errors, s.rebalances
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
