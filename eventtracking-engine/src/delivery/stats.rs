//! Counters: readable at any time, and the report of flush and shutdown.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

/// Live counters of one backend route (all monotonic).
#[derive(Debug, Default)]
pub(crate) struct RouteCounters {
    pub(crate) accepted: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) filtered: AtomicU64,
    pub(crate) processor_errors: AtomicU64,
    pub(crate) dropped_queue_full: AtomicU64,
    pub(crate) dropped_evicted: AtomicU64,
    pub(crate) dropped_block_timeout: AtomicU64,
    pub(crate) dropped_shutdown: AtomicU64,
    pub(crate) dropped_dead_letter_error: AtomicU64,
    pub(crate) dropped_dead_letter_full: AtomicU64,
    pub(crate) failed_shutdown: AtomicU64,
    pub(crate) dropped_closed: AtomicU64,
    pub(crate) batches: AtomicU64,
    pub(crate) flush_errors: AtomicU64,
    pub(crate) schema_invalid: AtomicU64,
    pub(crate) event_types_published: AtomicU64,
    pub(crate) catalog_errors: AtomicU64,
    pub(crate) kept_in_buffer: AtomicU64,
}

impl RouteCounters {
    pub(crate) fn snapshot(
        &self,
        queued: usize,
        buffer: Option<crate::buffer::BufferStats>,
    ) -> BackendStats {
        let buffer = buffer.unwrap_or_default();
        let dropped = DroppedStats {
            queue_full: self.dropped_queue_full.load(Relaxed),
            evicted: self.dropped_evicted.load(Relaxed),
            block_timeout: self.dropped_block_timeout.load(Relaxed),
            shutdown: self.dropped_shutdown.load(Relaxed),
            dead_letter_error: self.dropped_dead_letter_error.load(Relaxed),
            dead_letter_full: self.dropped_dead_letter_full.load(Relaxed),
            closed: self.dropped_closed.load(Relaxed),
        };
        BackendStats {
            accepted: self.accepted.load(Relaxed),
            delivered: self.delivered.load(Relaxed),
            retried: self.retried.load(Relaxed),
            failed: self.failed.load(Relaxed),
            dead_lettered: self.dead_lettered.load(Relaxed),
            failed_shutdown: self.failed_shutdown.load(Relaxed),
            filtered: self.filtered.load(Relaxed),
            processor_errors: self.processor_errors.load(Relaxed),
            dropped: dropped.total(),
            dropped_by_reason: dropped,
            batches: self.batches.load(Relaxed),
            flush_errors: self.flush_errors.load(Relaxed),
            schema_invalid: self.schema_invalid.load(Relaxed),
            event_types_published: self.event_types_published.load(Relaxed),
            catalog_errors: self.catalog_errors.load(Relaxed),
            queued: queued as u64,
            buffered_events: buffer.records,
            buffered_bytes: buffer.bytes,
            buffer_segments: buffer.segments,
            buffer_corrupt_records: buffer.corrupt_records,
            buffer_replayed: buffer.replayed_records,
            kept_in_buffer: self.kept_in_buffer.load(Relaxed),
        }
    }
}

/// Why events were dropped, per reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DroppedStats {
    /// Refused by a full queue (`overflow = "drop_newest"`).
    pub queue_full: u64,
    /// Evicted from a full queue by a newer event (`overflow = "drop_oldest"`).
    pub evicted: u64,
    /// `overflow = "block"` waited `block_timeout_ms` in vain.
    pub block_timeout: u64,
    /// Accepted but unaccounted for when shutdown finished (never expected:
    /// what is emitted during a shutdown, or still held at its deadline, is
    /// dead-lettered).
    pub shutdown: u64,
    /// Failed delivery and could not be written to the dead-letter file either.
    pub dead_letter_error: u64,
    /// Failed delivery and found the dead-letter file full (disk full or
    /// file-size limit): the records that fit were written, these were not.
    pub dead_letter_full: u64,
    /// The backend's destination closed for good (stdout's reader went
    /// away; see [`BackendError::Closed`](eventtracking_core::BackendError::Closed)).
    pub closed: u64,
}

impl DroppedStats {
    /// The sum over every reason.
    pub fn total(&self) -> u64 {
        self.queue_full
            + self.evicted
            + self.block_timeout
            + self.shutdown
            + self.dead_letter_error
            + self.dead_letter_full
            + self.closed
    }
}

/// A snapshot of one backend's counters.
///
/// Every accepted event ends up in exactly one of `delivered`, `failed`,
/// `filtered`, `processor_errors`, `dropped_by_reason.evicted` /
/// `dropped_by_reason.closed`, or is still `queued` (or in flight). Events
/// still queued, in a retry loop or in flight when the shutdown deadline
/// passes, and events emitted while the tracker was shutting down, are
/// `accepted` and `failed` (and `failed_shutdown`), written to the
/// dead-letter file with reason `shutdown`. Events refused before entering
/// the queue (`queue_full`, `block_timeout`) are in `dropped` only.
///
/// With `buffer = "disk"`, `accepted` counts the events appended to the
/// disk buffer and those an earlier process left there (replayed);
/// `queue_full`, `evicted` and `block_timeout` count what a full disk
/// buffer refused or evicted; events still undelivered at the shutdown
/// deadline are `kept_in_buffer` (not failed, not dead-lettered), and
/// events never read from the buffer are in `buffered_events` only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct BackendStats {
    /// Events that entered this backend's queue.
    pub accepted: u64,
    /// Events the backend stored.
    pub delivered: u64,
    /// Event sends that were retried (an event retried twice counts twice).
    pub retried: u64,
    /// Events that could not be delivered (non-retryable, retries exhausted, oversized).
    pub failed: u64,
    /// Of the failed events, those written to the dead-letter file.
    pub dead_lettered: u64,
    /// Of the failed events, those still undelivered when the shutdown
    /// deadline passed (queued, retrying or in flight): dead-lettered with
    /// reason `shutdown`, so `eventtracking replay` recovers them.
    pub failed_shutdown: u64,
    /// Events a per-backend processor dropped on purpose (e.g. a filter).
    pub filtered: u64,
    /// Events dropped because a per-backend processor failed.
    pub processor_errors: u64,
    /// Events dropped, all reasons together.
    pub dropped: u64,
    /// Events dropped, per reason.
    pub dropped_by_reason: DroppedStats,
    /// Batches handed to the backend (attempts included).
    pub batches: u64,
    /// Calls to the backend's `flush` that failed (e.g. an fsync): what was
    /// written may not be durable yet. A flush report with any is not `complete`.
    pub flush_errors: u64,
    /// Of the failed events, those that broke their event type's JSON Schema
    /// (`validate_schemas`; dead-lettered with the validation error).
    pub schema_invalid: u64,
    /// Event types whose catalog entry this backend persisted
    /// ([`Backend::publish_event_types`](eventtracking_core::Backend::publish_event_types)).
    pub event_types_published: u64,
    /// Failed attempts to persist catalog entries (retried with the next
    /// batch holding an event of that type), or an unreadable catalog.
    pub catalog_errors: u64,
    /// Events waiting in the queue right now (with `buffer = "disk"`: read
    /// from the disk buffer and waiting for the worker).
    pub queued: u64,
    /// With `buffer = "disk"`: events in the disk buffer not yet
    /// acknowledged (delivered or dead-lettered), read or not. 0 otherwise.
    pub buffered_events: u64,
    /// With `buffer = "disk"`: bytes of the buffer's segment files (what
    /// `buffer_max_bytes` bounds).
    pub buffered_bytes: u64,
    /// With `buffer = "disk"`: the buffer's segment files.
    pub buffer_segments: u64,
    /// With `buffer = "disk"`: corrupt records met since the buffer was
    /// opened (torn tails cut at start, and corrupt records skipped and
    /// dead-lettered with their bytes).
    pub buffer_corrupt_records: u64,
    /// With `buffer = "disk"`: records read that an earlier process had
    /// buffered (replayed after a restart).
    pub buffer_replayed: u64,
    /// With `buffer = "disk"`: events still undelivered at the shutdown
    /// deadline, left in the disk buffer (not dead-lettered) for the next
    /// tracker on the same `buffer_path`.
    pub kept_in_buffer: u64,
}

/// Live counters of the tracker's emit path.
#[derive(Debug, Default)]
pub(crate) struct TrackerCounters {
    pub(crate) emitted: AtomicU64,
    pub(crate) invalid: AtomicU64,
    pub(crate) filtered: AtomicU64,
    pub(crate) processor_errors: AtomicU64,
    pub(crate) no_backend: AtomicU64,
    pub(crate) after_shutdown: AtomicU64,
}

impl TrackerCounters {
    pub(crate) fn snapshot(&self) -> TrackerStats {
        TrackerStats {
            emitted: self.emitted.load(Relaxed),
            invalid: self.invalid.load(Relaxed),
            filtered: self.filtered.load(Relaxed),
            processor_errors: self.processor_errors.load(Relaxed),
            no_backend: self.no_backend.load(Relaxed),
            after_shutdown: self.after_shutdown.load(Relaxed),
        }
    }
}

/// A snapshot of the emit path's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TrackerStats {
    /// Calls to `emit` that produced an event.
    pub emitted: u64,
    /// Calls refused: bad name or data (returned as an error to the caller).
    pub invalid: u64,
    /// Events a tracker-level processor dropped on purpose.
    pub filtered: u64,
    /// Events dropped because a tracker-level processor failed.
    pub processor_errors: u64,
    /// Events emitted on a tracker with no backend.
    pub no_backend: u64,
    /// Calls refused because the tracker was shut down.
    pub after_shutdown: u64,
}

/// What a tracker did: its emit counters and each backend's.
///
/// Its `Display` is the human report the CLI prints; it serializes to JSON too.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DeliveryReport {
    /// The emit path.
    pub tracker: TrackerStats,
    /// Each backend, by name.
    pub backends: BTreeMap<String, BackendStats>,
    /// True when a flush or shutdown finished before its deadline and no
    /// backend's flush failed. For a flush, only that flush's own answers
    /// count: a concurrent flush's failure does not make it incomplete.
    pub complete: bool,
    /// True when a flush or shutdown did not finish before its deadline (one
    /// cause of an incomplete report; a failed backend flush, counted in
    /// [`BackendStats::flush_errors`], is the other).
    pub deadline_passed: bool,
    /// After [`Tracker::flush`](crate::Tracker::flush): each backend's own
    /// answer to that flush (the backends that answered in time). Empty in
    /// other reports.
    pub flushed: BTreeMap<String, super::FlushOutcome>,
}

impl DeliveryReport {
    /// The sum of `dropped` over every backend.
    pub fn total_dropped(&self) -> u64 {
        self.backends.values().map(|b| b.dropped).sum()
    }

    /// The sum of `failed` over every backend.
    pub fn total_failed(&self) -> u64 {
        self.backends.values().map(|b| b.failed).sum()
    }
}

impl fmt::Display for DeliveryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.tracker;
        let incomplete = match (self.complete, self.deadline_passed) {
            (true, _) => "",
            (false, true) => " (INCOMPLETE: deadline passed)",
            (false, false) => " (INCOMPLETE: a backend's flush failed, see flush errors)",
        };
        writeln!(
            f,
            "delivery report{incomplete}: emitted {}, invalid {}, filtered {}, processor errors {}, no backend {}, after shutdown {}",
            t.emitted, t.invalid, t.filtered, t.processor_errors, t.no_backend, t.after_shutdown
        )?;
        for (name, b) in &self.backends {
            write!(
                f,
                "  {name}: accepted {}, delivered {}, retried {}, failed {}, dead-lettered {}, filtered {}, processor errors {}, dropped {}, queued {}",
                b.accepted, b.delivered, b.retried, b.failed, b.dead_lettered, b.filtered,
                b.processor_errors, b.dropped, b.queued
            )?;
            if b.failed_shutdown > 0 {
                write!(
                    f,
                    ", failed at shutdown {} (dead-lettered with reason shutdown unless counted as dropped)",
                    b.failed_shutdown
                )?;
            }
            if b.buffer_segments > 0 || b.buffer_replayed > 0 || b.kept_in_buffer > 0 {
                write!(
                    f,
                    ", disk buffer: {} events, {} bytes, {} segments, {} corrupt records, {} replayed, {} kept at shutdown",
                    b.buffered_events,
                    b.buffered_bytes,
                    b.buffer_segments,
                    b.buffer_corrupt_records,
                    b.buffer_replayed,
                    b.kept_in_buffer
                )?;
            }
            if b.flush_errors > 0 {
                write!(f, ", flush errors {}", b.flush_errors)?;
            }
            if b.schema_invalid > 0 {
                write!(f, ", schema invalid {}", b.schema_invalid)?;
            }
            if b.event_types_published > 0 {
                write!(f, ", event types published {}", b.event_types_published)?;
            }
            if b.catalog_errors > 0 {
                write!(f, ", catalog errors {}", b.catalog_errors)?;
            }
            let d = &b.dropped_by_reason;
            if d.total() > 0 {
                write!(
                    f,
                    " (queue full {}, evicted {}, block timeout {}, shutdown {}, dead-letter error {}, dead-letter file full {}",
                    d.queue_full, d.evicted, d.block_timeout, d.shutdown, d.dead_letter_error, d.dead_letter_full
                )?;
                if d.closed > 0 {
                    write!(f, ", output closed {}", d.closed)?;
                }
                write!(f, ")")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_incomplete_report_names_its_cause() {
        let mut report = DeliveryReport {
            complete: false,
            deadline_passed: false,
            ..DeliveryReport::default()
        };
        report.backends.insert(
            "local".into(),
            BackendStats {
                flush_errors: 1,
                ..BackendStats::default()
            },
        );
        let text = report.to_string();
        assert!(!text.contains("deadline passed"), "{text}");
        assert!(
            text.contains("INCOMPLETE: a backend's flush failed"),
            "{text}"
        );
        assert!(text.contains("flush errors 1"), "{text}");
        report.deadline_passed = true;
        assert!(report.to_string().contains("INCOMPLETE: deadline passed"));
    }
}
