//! Helpers shared by the integration tests of `eventtracking-core`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventtracking::{
    async_trait, Backend, BackendError, BackendResult, BackendStats, DeadLetterRecord,
    DeliveryConfig, Event, EventFailure, JsonMap,
};
use serde_json::Value;

/// A deadline for flushes and waits that should finish almost at once; a
/// test only ever hits it when the behaviour under test is broken.
pub(crate) const DEADLINE: Duration = Duration::from_secs(30);

/// A JSON object literal as a context map.
pub(crate) fn map(value: Value) -> JsonMap {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// Delivery settings for tests: short linger and backoffs, and a dead-letter
/// file inside `dir` (never the default path in the working directory).
pub(crate) fn delivery(dir: &Path) -> DeliveryConfig {
    DeliveryConfig::default()
        .with_linger(std::time::Duration::from_millis(2))
        .with_initial_backoff(std::time::Duration::from_millis(1))
        .with_max_backoff(std::time::Duration::from_millis(4))
        .with_dead_letter_path(dead_letter_path(dir))
}

/// Where [`delivery`] puts the dead-letter file.
pub(crate) fn dead_letter_path(dir: &Path) -> PathBuf {
    dir.join("dead-letter.jsonl")
}

/// Every record of the dead-letter file in `dir` (none if it was never written).
pub(crate) fn dead_letters(dir: &Path) -> Vec<DeadLetterRecord> {
    match std::fs::read_to_string(dead_letter_path(dir)) {
        Ok(text) => text
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("bad dead-letter line {line:?}: {e}"))
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("cannot read the dead-letter file: {e}"),
    }
}

/// Every accepted event is accounted for exactly once, and nothing is left queued.
pub(crate) fn assert_accounted(stats: &BackendStats) {
    let d = &stats.dropped_by_reason;
    assert_eq!(
        stats.accepted,
        stats.delivered
            + stats.failed
            + stats.filtered
            + stats.processor_errors
            + d.evicted
            + d.shutdown,
        "accepted events not accounted for: {stats:?}"
    );
    assert_eq!(stats.queued, 0, "{stats:?}");
    assert!(stats.dead_lettered <= stats.failed, "{stats:?}");
}

/// What a [`Recorder`] does with one call of `send_batch`.
#[derive(Debug)]
pub(crate) enum Action {
    /// Store the batch and succeed.
    Store,
    /// Store nothing and fail with this error.
    Fail(BackendError),
    /// Sleep (cancellable by the engine's send timeout), then store the batch.
    SleepThenStore(Duration),
    /// Store every event except the listed ones, and report those.
    Partial(Vec<EventFailure>),
}

type Script = dyn Fn(usize, &[Arc<Event>]) -> Action + Send + Sync;

/// Closes a [`Recorder`]: its calls wait until the gate opens (or is dropped).
#[derive(Debug)]
pub(crate) struct Gate(tokio::sync::watch::Sender<bool>);

impl Gate {
    pub(crate) fn open(&self) {
        self.0.send_replace(true);
    }
}

struct Inner {
    script: Box<Script>,
    delay: Option<Duration>,
    gate: Option<tokio::sync::watch::Receiver<bool>>,
    /// The size of every call, in order, counted when the call starts.
    call_sizes: Mutex<Vec<usize>>,
    /// The batches stored, in order.
    stored: Mutex<Vec<Vec<Arc<Event>>>>,
    flushes: AtomicUsize,
    shutdowns: AtomicUsize,
}

/// A scriptable backend that records what it was sent; clones share the record.
#[derive(Clone)]
pub(crate) struct Recorder(Arc<Inner>);

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").finish_non_exhaustive()
    }
}

impl Recorder {
    /// Stores everything.
    pub(crate) fn new() -> Self {
        Self::scripted(|_, _| Action::Store)
    }

    /// Answers call number `n` (0-based) with `script(n, batch)`.
    pub(crate) fn scripted(
        script: impl Fn(usize, &[Arc<Event>]) -> Action + Send + Sync + 'static,
    ) -> Self {
        Recorder(Arc::new(Inner {
            script: Box::new(script),
            delay: None,
            gate: None,
            call_sizes: Mutex::default(),
            stored: Mutex::default(),
            flushes: AtomicUsize::new(0),
            shutdowns: AtomicUsize::new(0),
        }))
    }

    fn inner_mut(&mut self) -> &mut Inner {
        Arc::get_mut(&mut self.0).expect("configure a Recorder before cloning it")
    }

    /// Sleeps this long in every call before answering.
    pub(crate) fn with_delay(mut self, delay: Duration) -> Self {
        self.inner_mut().delay = Some(delay);
        self
    }

    /// Every call waits for the returned gate to open.
    pub(crate) fn gated(mut self) -> (Self, Gate) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        self.inner_mut().gate = Some(rx);
        (self, Gate(tx))
    }

    /// The stored events, in order.
    pub(crate) fn events(&self) -> Vec<Arc<Event>> {
        self.0.stored.lock().unwrap().concat()
    }

    /// The sizes of the stored batches.
    pub(crate) fn stored_batch_sizes(&self) -> Vec<usize> {
        self.0.stored.lock().unwrap().iter().map(Vec::len).collect()
    }

    /// The stored batches.
    pub(crate) fn batches(&self) -> Vec<Vec<Arc<Event>>> {
        self.0.stored.lock().unwrap().clone()
    }

    /// The size of every call to `send_batch`, including failed and cancelled ones.
    pub(crate) fn call_sizes(&self) -> Vec<usize> {
        self.0.call_sizes.lock().unwrap().clone()
    }

    pub(crate) fn calls(&self) -> usize {
        self.0.call_sizes.lock().unwrap().len()
    }

    pub(crate) fn flushes(&self) -> usize {
        self.0.flushes.load(SeqCst)
    }

    pub(crate) fn shutdowns(&self) -> usize {
        self.0.shutdowns.load(SeqCst)
    }
}

#[async_trait]
impl Backend for Recorder {
    async fn send_batch(&self, batch: &[Arc<Event>]) -> BackendResult {
        let inner = &*self.0;
        let call = {
            let mut sizes = inner.call_sizes.lock().unwrap();
            sizes.push(batch.len());
            sizes.len() - 1
        };
        if let Some(gate) = &inner.gate {
            // An error means the gate was dropped: open for good.
            let _ = gate.clone().wait_for(|open| *open).await;
        }
        if let Some(delay) = inner.delay {
            tokio::time::sleep(delay).await;
        }
        match (inner.script)(call, batch) {
            Action::Store => {
                inner.stored.lock().unwrap().push(batch.to_vec());
                Ok(())
            }
            Action::Fail(error) => Err(error),
            Action::SleepThenStore(delay) => {
                tokio::time::sleep(delay).await;
                inner.stored.lock().unwrap().push(batch.to_vec());
                Ok(())
            }
            Action::Partial(failures) => {
                let kept = batch
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !failures.iter().any(|f| f.index == *i))
                    .map(|(_, e)| e.clone())
                    .collect();
                inner.stored.lock().unwrap().push(kept);
                Err(BackendError::Partial(failures))
            }
        }
    }

    async fn flush(&self) -> BackendResult {
        self.0.flushes.fetch_add(1, SeqCst);
        Ok(())
    }

    async fn shutdown(&self) -> BackendResult {
        self.0.shutdowns.fetch_add(1, SeqCst);
        Ok(())
    }
}

/// A cheap backend for floods: keeps only the ids (as `u128`), optionally
/// sleeping per batch.
#[derive(Debug, Clone, Default)]
pub(crate) struct IdCollector {
    ids: Arc<Mutex<Vec<u128>>>,
    delay: Option<Duration>,
}

impl IdCollector {
    pub(crate) fn with_delay(delay: Duration) -> Self {
        IdCollector {
            ids: Arc::default(),
            delay: Some(delay),
        }
    }

    pub(crate) fn take_ids(&self) -> Vec<u128> {
        std::mem::take(&mut *self.ids.lock().unwrap())
    }
}

#[async_trait]
impl Backend for IdCollector {
    async fn send_batch(&self, batch: &[Arc<Event>]) -> BackendResult {
        if let Some(delay) = self.delay {
            tokio::time::sleep(delay).await;
        }
        self.ids
            .lock()
            .unwrap()
            .extend(batch.iter().map(|e| e.id().as_u128()));
        Ok(())
    }
}

/// The `i` field of each event's data, in order.
pub(crate) fn seqs(events: &[Arc<Event>]) -> Vec<u64> {
    events
        .iter()
        .map(|e| e.data()["i"].as_u64().expect("data.i"))
        .collect()
}
