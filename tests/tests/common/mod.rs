//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventtracking::{async_trait, Backend, BackendError, BackendResult, DeliveryConfig, Event};

/// Decides the outcome of the n-th call (0-based) for a batch.
pub type Script = dyn Fn(usize, &[Arc<Event>]) -> BackendResult + Send + Sync;

/// A backend that records every batch it stores and answers as scripted.
#[derive(Clone)]
pub struct Scripted {
    pub calls: Arc<AtomicUsize>,
    pub stored: Arc<Mutex<Vec<Arc<Event>>>>,
    pub batch_sizes: Arc<Mutex<Vec<usize>>>,
    pub delay: Option<Duration>,
    script: Arc<Script>,
}

impl Scripted {
    pub fn new(
        script: impl Fn(usize, &[Arc<Event>]) -> BackendResult + Send + Sync + 'static,
    ) -> Self {
        Scripted {
            calls: Arc::default(),
            stored: Arc::default(),
            batch_sizes: Arc::default(),
            delay: None,
            script: Arc::new(script),
        }
    }

    pub fn ok() -> Self {
        Self::new(|_, _| Ok(()))
    }

    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    pub fn stored(&self) -> Vec<Arc<Event>> {
        self.stored.lock().unwrap().clone()
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Backend for Scripted {
    async fn send_batch(&self, batch: &[Arc<Event>]) -> BackendResult {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        self.batch_sizes.lock().unwrap().push(batch.len());
        if let Some(delay) = self.delay {
            tokio::time::sleep(delay).await;
        }
        let result = (self.script)(call, batch);
        let failed: Vec<usize> = match &result {
            Ok(()) => Vec::new(),
            Err(BackendError::Partial(failures)) => failures.iter().map(|f| f.index).collect(),
            Err(_) => (0..batch.len()).collect(),
        };
        let mut stored = self.stored.lock().unwrap();
        for (i, event) in batch.iter().enumerate() {
            if !failed.contains(&i) {
                stored.push(event.clone());
            }
        }
        result
    }
}

/// Delivery settings for tests: short linger and backoff, dead letters in `dir`.
pub fn fast_delivery(dir: &std::path::Path) -> DeliveryConfig {
    DeliveryConfig::default()
        .with_linger_ms(2)
        .with_initial_backoff_ms(1)
        .with_max_backoff_ms(5)
        .with_dead_letter_path(dir.join("dead-letter.jsonl"))
}

/// The dead-letter records written to `dir`.
pub fn dead_letters(dir: &std::path::Path) -> Vec<eventtracking::DeadLetterRecord> {
    match std::fs::read_to_string(dir.join("dead-letter.jsonl")) {
        Ok(text) => text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
        Err(_) => Vec::new(),
    }
}

pub const WAIT: Duration = Duration::from_secs(30);
