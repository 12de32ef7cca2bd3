//! A route's worker: waits for events, batches, sends (up to
//! `max_in_flight` batches at once), retries, dead-letters and answers
//! flushes.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventtracking_core::sync::lock;
use eventtracking_core::{Backend, BackendError, BackendResult, Event};

use super::batch::{Batch, Seqs};
use super::{catalog_hook, deadline_after, Route, TakenBatch, SHUTDOWN_GRACE, SHUTDOWN_REASON};
use crate::ack::Outcome;
use crate::processors::{panic_message, run_chain};

/// The worker of one route: waits for events, batches, sends (up to
/// `max_in_flight` batches at once), retries, dead-letters, answers flushes.
pub(super) async fn run_worker(route: Arc<Route>, backend: Arc<dyn Backend>) {
    let worker = Arc::new(Worker {
        route: route.clone(),
        backend,
        catalog: catalog_hook::CatalogHook::default(),
    });
    worker.run().await;
    route.worker_exited.store(true, SeqCst);
    route.fail_pending_flushes("the backend's worker stopped before the flush completed");
    route.notify_progress();
}

struct Worker {
    route: Arc<Route>,
    backend: Arc<dyn Backend>,
    catalog: catalog_hook::CatalogHook,
}

impl Worker {
    async fn run(self: &Arc<Self>) {
        let route = &*self.route;
        let mut sends = tokio::task::JoinSet::new();
        let mut pumped_again = false;
        loop {
            if route.past_deadline() {
                // Past the deadline nothing more is sent: what is queued is
                // dead-lettered; sends in flight give up on their own.
                if let Some(rest) = route.take_batch(true) {
                    self.fail(&rest.batch, SHUTDOWN_REASON, 0, true);
                }
                while sends.join_next().await.is_some() {}
                break;
            }
            if let Some(disk) = &route.disk {
                disk.tick(&self.route);
                disk.pump(route);
            }
            self.answer_due_flushes().await;
            let len = route.queue_len();
            if len == 0 || sends.len() >= route.max_in_flight {
                if len == 0
                    && sends.is_empty()
                    && route.closing.load(SeqCst)
                    && route.disk.as_ref().is_none_or(|disk| !disk.has_unread())
                {
                    break;
                }
                // Records appended as it armed: read them first, once (a
                // record that is never read, e.g. lost in a corrupt tail,
                // must not keep it from waiting).
                let armed = route.disk.as_ref().is_none_or(|disk| disk.arm_wake(route));
                if !armed && !std::mem::replace(&mut pumped_again, true) {
                    continue;
                }
                pumped_again = false;
                let woken = route.wake.notified();
                // A disk route also wakes on a timer: to fsync, and to read
                // records appended while it was busy.
                let tick = route.disk.as_ref().map(|disk| disk.idle_tick());
                let timer = async move {
                    match tick {
                        Some(tick) => tokio::time::sleep(tick).await,
                        None => std::future::pending().await,
                    }
                };
                if sends.is_empty() {
                    tokio::select! {
                        () = woken => {}
                        () = timer => {}
                    }
                } else {
                    tokio::select! {
                        _ = sends.join_next() => {}
                        () = woken => {}
                        () = timer => {}
                    }
                }
                continue;
            }
            if len < route.full_batch() {
                self.linger().await;
            }
            if let Some(taken) = route.take_batch(false) {
                let worker = self.clone();
                sends.spawn(async move { worker.handle(taken).await });
            }
        }
        // The last flush (an fsync, say) and the backend's shutdown get what
        // is left of the deadline, and at least half the grace after it.
        let budget = || {
            let rest = route.deadline().map_or(Duration::ZERO, |d| {
                d.saturating_duration_since(Instant::now())
            });
            rest.max(SHUTDOWN_GRACE / 2)
        };
        match tokio::time::timeout(budget(), self.backend.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                route.counters.flush_errors.fetch_add(1, Relaxed);
                tracing::error!(backend = %route.name, %error, "eventtracking: flush at shutdown failed");
            }
            Err(_) => {
                route.counters.flush_errors.fetch_add(1, Relaxed);
                tracing::error!(backend = %route.name, "eventtracking: flush at shutdown timed out");
            }
        }
        match tokio::time::timeout(budget(), self.backend.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::error!(backend = %route.name, %error, "eventtracking: backend shutdown failed")
            }
            Err(_) => {
                tracing::error!(backend = %route.name, "eventtracking: backend shutdown timed out")
            }
        }
    }

    /// Runs `future` unless the shutdown deadline passes first (`None`).
    async fn before_deadline<T>(&self, future: impl std::future::Future<Output = T>) -> Option<T> {
        tokio::select! {
            biased;
            value = future => Some(value),
            () = self.route.deadline_reached() => None,
        }
    }

    /// Waits up to `linger_ms` for a full batch, so that a trickle of events
    /// still makes full batches; a flush, a shutdown or a waited-on receipt
    /// cuts it short.
    async fn linger(&self) {
        let route = &*self.route;
        // `linger_ms = 0`: send what is queued now. (A zero timeout would
        // still wait for the timer's next tick, ~1 ms, on every batch.)
        if route.config.linger.is_zero() {
            return;
        }
        let deadline = tokio::time::Instant::now() + route.config.linger;
        let mut pumped_again = false;
        loop {
            // A disk route's events arrive in its buffer: read them in.
            if let Some(disk) = &route.disk {
                disk.pump(route);
            }
            if !route.may_linger() || route.flush_pending() || route.closing.load(SeqCst) {
                break;
            }
            // As in `run`: records appended as it armed are read once first.
            let armed = route.disk.as_ref().is_none_or(|disk| disk.arm_wake(route));
            if !armed && !std::mem::replace(&mut pumped_again, true) {
                continue;
            }
            pumped_again = false;
            if tokio::time::timeout_at(deadline, route.wake.notified())
                .await
                .is_err()
            {
                break;
            }
        }
    }

    /// Answers the flush requests whose events are all settled: publishes
    /// pending catalog entries, flushes the backend once for all of them,
    /// and gives each its own tally and the flush's error, if any.
    async fn answer_due_flushes(&self) {
        let route = &*self.route;
        let settled_below = route.settled_below();
        let due = lock(&route.control).take_due(settled_below);
        if due.is_empty() {
            return;
        }
        let mut error = None;
        // Entries handed in must be stored before a flush counts as complete.
        if !self.publish_pending_types().await {
            route.counters.flush_errors.fetch_add(1, Relaxed);
            error = Some("publishing catalog entries failed (tried again later)".to_owned());
        }
        match self.before_deadline(self.backend.flush()).await {
            Some(Ok(())) => {}
            None => {
                error.get_or_insert_with(|| {
                    "the shutdown deadline passed during the backend's flush".to_owned()
                });
            }
            Some(Err(flush_error)) => {
                route.counters.flush_errors.fetch_add(1, Relaxed);
                tracing::error!(backend = %route.name, error = %flush_error, "eventtracking: backend flush failed");
                error = Some(format!("the backend's flush failed: {flush_error}"));
            }
        }
        for flush in due {
            flush.answer(error.clone());
        }
        route.notify_progress();
    }

    /// Settles an event handled without a send (filtered, processor errors) and counts it.
    fn settle_counted(&self, seq: u64, counter: &AtomicU64, outcome: Outcome) {
        self.route.settle(&Seqs::one(seq), &outcome, counter);
    }

    async fn handle(&self, taken: TakenBatch) {
        let route = &*self.route;
        let config = &route.config;
        let verdicts = taken.invalid.filter(|_| config.validate_schemas);
        // Nothing to look at per event: the batch goes as it was taken.
        if route.processors.is_empty()
            && verdicts.is_none()
            && config.max_event_bytes.is_none()
            && config.batch_bytes.is_none()
        {
            self.send_with_retry(taken.batch).await;
            route.notify_progress();
            return;
        }
        let batch = taken.batch;
        let mut chunk: Vec<(u64, Arc<Event>)> = Vec::with_capacity(batch.len());
        let mut chunk_bytes = 0usize;
        for (index, (seq, event)) in batch.items().enumerate() {
            let event = if route.processors.is_empty() {
                event.clone()
            } else {
                match run_chain(&route.processors, event.clone()) {
                    Ok(Some(event)) => event,
                    Ok(None) => {
                        self.settle_counted(seq, &route.counters.filtered, Outcome::Filtered);
                        continue;
                    }
                    Err(error) => {
                        tracing::warn!(backend = %route.name, %error, "eventtracking: processor failed; event dropped for this backend");
                        self.settle_counted(
                            seq,
                            &route.counters.processor_errors,
                            Outcome::dropped(format!("processor error: {error}")),
                        );
                        continue;
                    }
                }
            };
            let invalid = verdicts.as_ref().and_then(|v| v[index].as_ref());
            if let Some(reason) = invalid {
                route.counters.schema_invalid.fetch_add(1, Relaxed);
                self.fail(&Batch::picked(vec![(seq, event)]), reason, 0, false);
                continue;
            }
            // Sizes are measured only when a byte limit is set (see DeliveryConfig::batch_bytes).
            if let Some(max) = config.max_event_bytes {
                let size = event.to_json_bytes().len();
                if size > max {
                    let reason =
                        format!("oversized: event is {size} bytes, max_event_bytes is {max}");
                    self.fail(&Batch::picked(vec![(seq, event)]), &reason, 0, false);
                    continue;
                }
            }
            if let Some(limit) = config.batch_bytes {
                let size = event.to_json_bytes().len();
                if !chunk.is_empty() && chunk_bytes + size > limit {
                    self.send_with_retry(Batch::picked(std::mem::take(&mut chunk)))
                        .await;
                    chunk_bytes = 0;
                }
                chunk_bytes += size + 1;
            }
            chunk.push((seq, event));
        }
        if !chunk.is_empty() {
            self.send_with_retry(Batch::picked(chunk)).await;
        }
        route.notify_progress();
    }

    /// Publishes the entries handed in by `Tracker::publish_event_types`;
    /// false (and kept for the next try) when that failed.
    async fn publish_pending_types(&self) -> bool {
        let route = &*self.route;
        let entries = std::mem::take(&mut *lock(&route.pending_types));
        if entries.is_empty() {
            return true;
        }
        let timeout = route.config.send_timeout;
        let published = self
            .before_deadline(
                self.catalog
                    .publish(route, &self.backend, entries.clone(), timeout),
            )
            .await;
        if published == Some(true) {
            true
        } else {
            let mut pending = lock(&route.pending_types);
            let newer = std::mem::replace(&mut *pending, entries);
            pending.extend(newer);
            false
        }
    }

    /// Sends a chunk, retrying what failed retryably until it is delivered,
    /// `max_retries` or `retry_budget_ms` is spent (then dead-lettered), or
    /// the shutdown deadline passes (then dead-lettered with reason `shutdown`).
    ///
    /// A disk route retries without those limits: its events are durable
    /// in the buffer, which exists to ride out an outage longer than memory
    /// can, so they wait for the backend (or stay buffered at the deadline)
    /// rather than go to the dead-letter file.
    async fn send_with_retry(&self, mut pending: Batch) {
        let route = &*self.route;
        let config = &route.config;
        let retry_without_limit = route.disk.is_some();
        let send_timeout = config.send_timeout;
        let started = Instant::now();
        let budget_end = deadline_after(config.retry_budget);
        self.publish_pending_types().await;
        self.before_deadline(self.catalog.publish_new_types(
            route,
            &self.backend,
            &pending.events,
            send_timeout,
        ))
        .await;
        let mut attempt: u32 = 0;
        let mut last_error = String::new();
        loop {
            if route.past_deadline() {
                self.give_up_at_deadline(&pending, attempt, &last_error);
                return;
            }
            attempt = attempt.saturating_add(1);
            route.counters.batches.fetch_add(1, Relaxed);
            // Retries never outlast the retry budget.
            let timeout = if attempt == 1 || retry_without_limit {
                send_timeout
            } else {
                send_timeout
                    .min(budget_end.saturating_duration_since(Instant::now()))
                    .max(Duration::from_millis(1))
            };
            let send = send_once(&self.backend, pending.events.clone(), timeout);
            tokio::pin!(send);
            let result = match self.before_deadline(&mut send).await {
                Some(result) => result,
                // A send under way at the deadline may be about to finish (a
                // local write, an fsync): it gets part of the grace, which
                // saves a duplicate in the dead-letter file.
                None => match tokio::time::timeout(SHUTDOWN_GRACE / 4, &mut send).await {
                    Ok(result) => result,
                    Err(_) => {
                        self.give_up_at_deadline(&pending, attempt, "the send was still in flight");
                        return;
                    }
                },
            };
            last_error = match result {
                Ok(()) => {
                    self.delivered(&pending);
                    return;
                }
                Err(BackendError::Partial(failures)) => {
                    let mut retry = Vec::new();
                    let mut failed = vec![false; pending.len()];
                    for failure in &failures {
                        let Some(flag) = failed.get_mut(failure.index) else {
                            continue;
                        };
                        if std::mem::replace(flag, true) {
                            continue;
                        }
                        if failure.retryable {
                            retry.push(failure.index);
                        } else {
                            self.fail(
                                &pending.select([failure.index]),
                                &format!("permanent failure: {}", failure.reason),
                                attempt,
                                false,
                            );
                        }
                    }
                    let delivered = (0..pending.len()).filter(|&index| !failed[index]);
                    self.delivered(&pending.select(delivered));
                    if retry.is_empty() {
                        return;
                    }
                    let reason = failures
                        .iter()
                        .find(|f| f.retryable)
                        .map(|f| f.reason.clone())
                        .unwrap_or_default();
                    pending = pending.select(retry);
                    reason
                }
                Err(BackendError::Closed(reason)) => {
                    self.dropped_closed(&pending, &reason);
                    return;
                }
                Err(error) if error.is_retryable() => error.to_string(),
                Err(error) => {
                    self.fail(&pending, &error.to_string(), attempt, false);
                    return;
                }
            };
            let backoff = config.backoff(attempt);
            let exhausted = attempt > config.max_retries || Instant::now() + backoff >= budget_end;
            if exhausted && !retry_without_limit {
                let reason = format!(
                    "retries exhausted after {attempt} attempts in {:.1?} (max_retries {}, retry_budget_ms {}): {last_error}",
                    started.elapsed(),
                    config.max_retries,
                    config.retry_budget.as_millis()
                );
                self.fail(&pending, &reason, attempt, false);
                return;
            }
            route
                .counters
                .retried
                .fetch_add(pending.len() as u64, Relaxed);
            tracing::warn!(
                backend = %route.name,
                events = pending.len(),
                attempt,
                ?backoff,
                error = %last_error,
                "eventtracking: send failed; retrying"
            );
            // The deadline ends the wait (checked at the top of the loop).
            self.before_deadline(tokio::time::sleep(backoff)).await;
        }
    }

    /// Dead-letters what a send or retry loop still held when the shutdown deadline passed.
    fn give_up_at_deadline(&self, pending: &Batch, attempts: u32, last_error: &str) {
        let reason = if last_error.is_empty() {
            SHUTDOWN_REASON.to_owned()
        } else {
            format!("{SHUTDOWN_REASON} (after {attempts} attempts; last: {last_error})")
        };
        self.fail(pending, &reason, attempts, true);
    }

    fn delivered(&self, items: &Batch) {
        let route = &*self.route;
        route.settle(&items.seqs, &Outcome::Delivered, &route.counters.delivered);
    }

    /// Events whose destination closed for good: counted as dropped, logged
    /// once (see [`BackendError::Closed`]).
    fn dropped_closed(&self, items: &Batch, reason: &str) {
        let route = &*self.route;
        // Settled here, so the shutdown deadline does not dead-letter them too.
        let outcome = Outcome::dropped(format!("the output is closed: {reason}"));
        let before = route.counters.dropped_closed.load(Relaxed);
        let n = route.settle(&items.seqs, &outcome, &route.counters.dropped_closed);
        if n > 0 && before == 0 {
            tracing::warn!(backend = %route.name, reason, "eventtracking: the output is closed; its events are dropped, not dead-lettered");
        }
    }

    /// Events that will not be delivered: to the dead-letter file, or counted as dropped.
    fn fail(&self, items: &Batch, reason: &str, attempts: u32, shutdown: bool) {
        let route = &*self.route;
        if shutdown && route.disk.is_some() {
            // Durable already: left in the disk buffer, not dead-lettered.
            route.keep_in_buffer(items);
            return;
        }
        // Claimed first, so that a shutdown giving up on this worker does
        // not dead-letter them a second time.
        let Some(mut claimed) = route.claim(items.seqs.iter()) else {
            return;
        };
        if claimed.is_empty() {
            return;
        }
        // `claimed` keeps the order of `items`.
        let mut wanted = claimed.iter().map(|(seq, _)| *seq).peekable();
        let events: Vec<Arc<Event>> = items
            .items()
            .filter(|(seq, _)| wanted.next_if_eq(seq).is_some())
            .map(|(_, event)| event.clone())
            .collect();
        // A file write: tell the runtime this worker thread blocks for a moment.
        let (written, lost_because) = tokio::task::block_in_place(|| {
            route.dead_letter_events(&events, reason, attempts, shutdown)
        });
        let lost = claimed.split_off(written.min(claimed.len()));
        route.resolve(
            claimed,
            &Outcome::DeadLettered {
                reason: reason.to_owned(),
            },
        );
        route.resolve(lost, &Outcome::dropped(lost_because.unwrap_or_default()));
    }
}

/// One `send_batch`, guarded (see [`guarded_call`]).
async fn send_once(
    backend: &Arc<dyn Backend>,
    batch: Arc<[Arc<Event>]>,
    timeout: Duration,
) -> BackendResult {
    let backend = backend.clone();
    guarded_call(timeout, async move { backend.send_batch(&batch).await }).await
}

/// Runs one backend call in a task of its own, so that a panicking backend
/// fails this call (a permanent error with the panic message: the events are
/// dead-lettered) instead of killing the worker; past `timeout` it is aborted
/// and counts as a retryable timeout.
pub(super) async fn guarded_call(
    timeout: Duration,
    call: impl std::future::Future<Output = BackendResult> + Send + 'static,
) -> BackendResult {
    /// Aborts the call when the caller stops waiting (e.g. at the shutdown deadline).
    struct AbortOnDrop(tokio::task::JoinHandle<BackendResult>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let mut task = AbortOnDrop(tokio::spawn(call));
    match tokio::time::timeout(timeout, &mut task.0).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) if join.is_panic() => Err(BackendError::Permanent(format!(
            "the backend panicked: {}",
            panic_message(join.into_panic().as_ref())
        ))),
        Ok(Err(join)) => Err(BackendError::Retryable(format!("cancelled: {join}"))),
        Err(_) => {
            task.0.abort();
            // Let the aborted call unwind before the next one starts, so
            // calls never overlap (bounded: a backend stuck outside an
            // `.await` cannot hold the worker forever).
            let _ = tokio::time::timeout(timeout, &mut task.0).await;
            Err(BackendError::Timeout(timeout))
        }
    }
}
