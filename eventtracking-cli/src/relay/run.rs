//! [`Relay::run`]: the read loop, handling each message (an event emitted,
//! a catalog entry published, a malformed message dead-lettered), and the
//! final flush and commit; [`StopHandle`] ends it.

use std::fmt;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventtracking::{CatalogEntry, DeadLetterWriter, Event, Tracker};
use rdkafka::consumer::BaseConsumer;
use rdkafka::message::{BorrowedMessage, Message};
use serde_json::json;

use super::builder::Settings;
use super::commit::{record_pending, RelayContext, Settle, Shared};
#[cfg(doc)]
use super::RelayBuilder;
use super::{
    lock, RelayMonitor, RelayOptions, RelayReport, StopReason, DEAD_LETTER_BACKEND,
    MALFORMED_EVENT_NAME,
};

/// How long one flush of the regular commit cycle waits before the relay
/// looks at its stop flag again.
const FLUSH_SLICE: Duration = Duration::from_secs(1);

/// The longest one `poll` waits, so that a stop request is seen quickly.
const POLL_SLICE: Duration = Duration::from_millis(100);

/// Asks a running [`Relay::run`] to stop: it stops reading, flushes,
/// commits and returns. Cheap to clone; safe from any thread (e.g. a signal
/// handler's).
#[derive(Debug, Clone, Default)]
pub struct StopHandle {
    stopped: Arc<AtomicBool>,
}

impl StopHandle {
    /// Requests the stop.
    pub fn stop(&self) {
        self.stopped.store(true, Relaxed);
    }

    /// Whether a stop was requested.
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Relaxed)
    }
}

/// A Kafka consumer delivering events to a tracker's backends; see the
/// [module docs](super). Made by [`RelayBuilder`]; [`run`](Self::run) does the work.
pub struct Relay {
    pub(super) consumer: BaseConsumer<RelayContext>,
    pub(super) shared: Arc<Shared>,
    pub(super) options: RelayOptions,
    pub(super) settings: Settings,
    pub(super) stop: StopHandle,
}

impl fmt::Debug for Relay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Relay")
            .field("options", &self.options)
            .field("settings", &self.settings)
            .field("stats", &self.shared.counters.snapshot())
            .finish_non_exhaustive()
    }
}

/// Logs consumer errors, the same text at most every 10 s.
#[derive(Default)]
struct ErrorLog {
    last: Option<(String, Instant)>,
    suppressed: u64,
}

impl ErrorLog {
    fn warn(&mut self, text: String) {
        if let Some((last, at)) = &self.last {
            if *last == text && at.elapsed() < Duration::from_secs(10) {
                self.suppressed += 1;
                return;
            }
        }
        let repeated = std::mem::take(&mut self.suppressed);
        tracing::warn!(error = %text, repeated, "eventtracking relay: consumer error");
        self.last = Some((text, Instant::now()));
    }
}

impl Relay {
    /// A handle that stops [`run`](Self::run).
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// A handle reading the counters while [`run`](Self::run) runs.
    pub fn monitor(&self) -> RelayMonitor {
        RelayMonitor {
            counters: self.shared.counters.clone(),
        }
    }

    /// The tracker the events go to.
    pub fn tracker(&self) -> &Tracker {
        &self.shared.tracker
    }

    /// The `[source]` options.
    pub fn options(&self) -> &RelayOptions {
        &self.options
    }

    /// The effective most messages handled between two complete flushes.
    pub fn max_uncommitted(&self) -> usize {
        self.settings.max_uncommitted
    }

    /// Reads, delivers and commits until stopped ([`StopHandle::stop`], idle
    /// time, or a loss); then flushes, commits, leaves the group and shuts
    /// the tracker down. Blocks the calling thread (librdkafka's rebalance
    /// callbacks run on it).
    pub fn run(self) -> RelayReport {
        let Relay {
            consumer,
            shared,
            settings,
            stop,
            ..
        } = self;
        // With `max_rate`: when the next message may be handled.
        let mut next_slot = Instant::now();
        let mut last_cycle = Instant::now();
        let mut last_message = Instant::now();
        let mut blocked_since: Option<Instant> = None;
        let mut last_block_warning = Instant::now();
        let mut errors = ErrorLog::default();
        let mut failure: Option<String> = None;

        let reason = loop {
            if stop.is_stopped() {
                break StopReason::Requested;
            }
            // A cycle is due when the interval passed with something to
            // commit, or when as many messages as the queues may hold were
            // handled since the last complete flush.
            let (due, full, idle_since) = {
                let state = lock(&shared.state);
                if state.fatal.is_some() {
                    break StopReason::Failed;
                }
                let full = state.unflushed >= settings.max_uncommitted;
                let waiting = state.unflushed > 0 || !state.pending.is_empty();
                let due = full || (waiting && last_cycle.elapsed() >= settings.commit_interval);
                (due, full, state.last_rebalance.map(|r| r.max(last_message)))
            };
            if due {
                let outcome = {
                    let mut state = lock(&shared.state);
                    shared.settle(&consumer, &mut state, FLUSH_SLICE)
                };
                last_cycle = Instant::now();
                match outcome {
                    Settle::Lost => break StopReason::Failed,
                    Settle::Incomplete if full => {
                        // The queues may hold no more: wait for the backends.
                        let since = *blocked_since.get_or_insert_with(Instant::now);
                        if last_block_warning.elapsed() >= Duration::from_secs(10)
                            && since.elapsed() >= Duration::from_secs(10)
                        {
                            last_block_warning = Instant::now();
                            tracing::warn!(
                                waiting_secs = since.elapsed().as_secs(),
                                max_uncommitted = settings.max_uncommitted,
                                "eventtracking relay: the backends have not accepted the last events yet; \
                                 not reading more, offsets not committed"
                            );
                        }
                        continue;
                    }
                    _ => blocked_since = None,
                }
            }
            if let Some(idle) = settings.exit_when_idle {
                if idle_since.is_some_and(|since| since.elapsed() >= idle) {
                    break StopReason::Idle;
                }
            }
            if settings.max_rate.is_some() {
                let now = Instant::now();
                if next_slot > now {
                    std::thread::sleep((next_slot - now).min(POLL_SLICE));
                    continue;
                }
            }
            let until_cycle = settings
                .commit_interval
                .saturating_sub(last_cycle.elapsed())
                .max(Duration::from_millis(1));
            match consumer.poll(POLL_SLICE.min(until_cycle)) {
                None => {}
                Some(Err(error)) => {
                    errors.warn(shared.redactor.redact(&error.to_string()).into_owned())
                }
                Some(Ok(message)) => {
                    last_message = Instant::now();
                    if let Some(rate) = settings.max_rate {
                        // Time not used (waiting for messages) is not saved up
                        // beyond a 100 ms burst.
                        let earliest = last_message.checked_sub(POLL_SLICE).unwrap_or(last_message);
                        next_slot =
                            next_slot.max(earliest) + Duration::from_secs_f64(1.0 / rate as f64);
                    }
                    if let Err(error) = handle(&shared, &settings, &message) {
                        failure = Some(error);
                        break StopReason::Failed;
                    }
                }
            }
        };

        // Stop reading; deliver and commit what was handled. After a message
        // that could not be handled, what came before it is still committed
        // (it is not pending itself); after a loss in the tracker nothing is.
        let error = {
            let mut state = lock(&shared.state);
            let mut outcome = shared.settle(&consumer, &mut state, settings.flush_timeout);
            for _ in 0..3 {
                if outcome != Settle::CommitFailed {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
                outcome = shared.settle(&consumer, &mut state, settings.flush_timeout);
            }
            let unfinished = match outcome {
                Settle::Done | Settle::Lost => None,
                Settle::Incomplete => Some(format!(
                    "the backends did not accept every event within {:?}; {} message(s) left uncommitted \
                     (a restart delivers them again)",
                    settings.flush_timeout,
                    state.pending_messages()
                )),
                Settle::CommitFailed => Some(format!(
                    "the final offset commit failed; {} delivered message(s) left uncommitted \
                     (a restart delivers them again)",
                    state.pending_messages()
                )),
            };
            state.closing = true;
            failure.or_else(|| state.fatal.clone()).or(unfinished)
        };
        // Leaving the group hands the partitions to the other relays at once.
        drop(consumer);
        let delivery = shared
            .tracker
            .shutdown(settings.flush_timeout)
            .unwrap_or_else(|| shared.tracker.report());
        let lost = lock(&shared.state).lost;
        let stats = shared.counters.snapshot();
        let committed_offsets = lock(&shared.counters.offsets).clone();
        RelayReport {
            stop: reason,
            error,
            lost,
            stats,
            committed_offsets,
            delivery,
        }
    }
}

/// Emits or dead-letters one message and records its offset as pending.
fn handle(
    shared: &Shared,
    settings: &Settings,
    message: &BorrowedMessage<'_>,
) -> Result<(), String> {
    let topic = message.topic();
    let partition = message.partition();
    let offset = message.offset();
    if settings.catalog_topic.as_deref() == Some(topic) {
        let entry = message
            .payload()
            .ok_or_else(|| "the message has no value".to_owned())
            .and_then(|payload| {
                serde_json::from_slice::<CatalogEntry>(payload).map_err(|e| e.to_string())
            });
        match entry {
            Ok(entry) => {
                shared.tracker.publish_event_types(&[Arc::new(entry)]);
                shared.counters.event_types.fetch_add(1, Relaxed);
            }
            Err(error) => tracing::warn!(
                topic,
                partition,
                offset,
                %error,
                "eventtracking relay: a message of the catalog topic is not a catalog entry; skipped"
            ),
        }
        record_pending(shared, topic, partition, offset);
        return Ok(());
    }
    let parsed = match message.payload() {
        None => Err("the message has no value".to_owned()),
        // The payload's bytes are kept: relayed events are written out as they came.
        Some(payload) => Event::from_json_slice(payload).map_err(|e| e.to_string()),
    };
    match parsed {
        Ok(event) => {
            if let Err(error) = shared.tracker.emit_event(Arc::new(event)) {
                return Err(format!(
                    "the tracker refused the event of {topic}/{partition}@{offset}: {error}"
                ));
            }
            shared.counters.events.fetch_add(1, Relaxed);
        }
        Err(error) => {
            let reason = format!(
                "malformed message: topic {topic} partition {partition} offset {offset}: not an event: {error}"
            );
            match &settings.dead_letter_path {
                Some(path) => tracing::error!(
                    topic,
                    partition,
                    offset,
                    %error,
                    dead_letter_path = %path.display(),
                    "eventtracking relay: malformed message (not an event); dead-lettered"
                ),
                None => tracing::error!(
                    topic,
                    partition,
                    offset,
                    %error,
                    "eventtracking relay: malformed message (not an event); skipped (no dead-letter path)"
                ),
            }
            if let Some(path) = &settings.dead_letter_path {
                dead_letter_malformed(path, message, &reason, &error).map_err(|io| {
                    format!(
                        "cannot write the dead letter of {topic}/{partition}@{offset} to {}: {io}; \
                         not committing past it",
                        path.display()
                    )
                })?;
            }
            shared.counters.malformed.fetch_add(1, Relaxed);
        }
    }
    record_pending(shared, topic, partition, offset);
    Ok(())
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

/// Dead-letters a malformed message, as an event named
/// [`MALFORMED_EVENT_NAME`] holding what was read, through the engine's
/// dead-letter writer.
fn dead_letter_malformed(
    path: &Path,
    message: &BorrowedMessage<'_>,
    reason: &str,
    error: &str,
) -> std::io::Result<()> {
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
    let event = Event::new(MALFORMED_EVENT_NAME, data).map_err(std::io::Error::other)?;
    // The engine's one writer: whole records, and the same per-file writer
    // as the tracker's routes when they name the same file.
    let outcome =
        DeadLetterWriter::shared(path).write(DEAD_LETTER_BACKEND, reason, 0, &[Arc::new(event)]);
    match outcome.error {
        None => Ok(()),
        Some(error) => Err(std::io::Error::other(error)),
    }
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
}
