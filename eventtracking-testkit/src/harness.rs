//! What the cases share: timeouts, delivery settings, names, the lock
//! that keeps an outage away from other cases, and one case's set-up.

use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use eventtracking::registry::{build_backend, ComponentConfig};
use eventtracking::{
    Backend, DeadLetterRecord, DeliveryConfig, Event, InMemoryBackend, JsonMap, Tracker,
};
use tempfile::TempDir;

use crate::target::{Case, ConformanceTarget};

/// How long a test waits for anything (a flush, a shutdown, a server).
pub const WAIT: Duration = Duration::from_secs(120);

/// Fast batching (5 ms linger, 50 ms first backoff) and a dead-letter file
/// `dead-letter.jsonl` in `dir`.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let delivery = eventtracking_testkit::fast_delivery(dir.path());
/// assert_eq!(delivery.dead_letter_path, dir.path().join("dead-letter.jsonl"));
/// ```
pub fn fast_delivery(dir: &Path) -> DeliveryConfig {
    DeliveryConfig::default()
        .with_linger(std::time::Duration::from_millis(5))
        .with_initial_backoff(std::time::Duration::from_millis(50))
        .with_dead_letter_path(dir.join("dead-letter.jsonl"))
}

/// `prefix` and a random suffix: a name no other test (or run) uses, made
/// of ASCII letters, digits, `_` and `-` only.
///
/// ```
/// let name = eventtracking_testkit::unique_name("seed");
/// assert!(name.starts_with("seed_") && name != eventtracking_testkit::unique_name("seed"));
/// ```
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{:012x}", fastrand::u64(..) >> 16)
}

/// Every case holds this shared; the outage case holds it alone, so that a
/// server paused by it disturbs no other case of the binary.
static STORE: RwLock<()> = RwLock::new(());

pub(crate) fn shared_store() -> RwLockReadGuard<'static, ()> {
    STORE.read().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn exclusive_store() -> RwLockWriteGuard<'static, ()> {
    STORE.write().unwrap_or_else(|p| p.into_inner())
}

/// The name of the backend under test in the cases' trackers.
pub(crate) const BACKEND: &str = "target";

/// One case's set-up: the target, a fresh namespace, and a directory for
/// the dead-letter file.
pub(crate) struct Run<T: ConformanceTarget> {
    pub(crate) target: T,
    pub(crate) namespace: T::Namespace,
    pub(crate) case: Case,
    dir: TempDir,
}

impl<T: ConformanceTarget> Run<T> {
    pub(crate) fn new(case: Case) -> Self {
        let target = T::connect();
        let namespace = target.namespace(case);
        Run {
            target,
            namespace,
            case,
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    /// The target's options for this case.
    pub(crate) fn options(&self) -> JsonMap {
        self.target.options(&self.namespace, self.case)
    }

    /// The backend built through the registry from `options`, as a config
    /// file would; panics with the build error.
    pub(crate) fn build(&self, options: JsonMap) -> Box<dyn Backend> {
        let config = ComponentConfig::new(format!("backends.{BACKEND}"), T::ENGINE, options);
        build_backend(&config)
            .unwrap_or_else(|error| panic!("the {} backend does not build: {error}", T::ENGINE))
    }

    /// [`fast_delivery`] as the target tunes it for this case, changed by `change`.
    pub(crate) fn delivery(
        &self,
        change: impl FnOnce(DeliveryConfig) -> DeliveryConfig,
    ) -> DeliveryConfig {
        self.target
            .delivery(self.case, change(fast_delivery(self.dir.path())))
    }

    /// A tracker sending to the backend of this case's options, and to
    /// `memory` if given.
    pub(crate) fn tracker(
        &self,
        delivery: DeliveryConfig,
        memory: Option<&InMemoryBackend>,
    ) -> Tracker {
        let mut builder = Tracker::builder()
            .with_delivery(delivery)
            .with_backend(BACKEND, self.build(self.options()));
        if let Some(memory) = memory {
            builder = builder.with_backend("memory", memory.clone());
        }
        builder.build().expect("the tracker builds")
    }

    pub(crate) fn dead_letter_path(&self) -> PathBuf {
        self.dir.path().join("dead-letter.jsonl")
    }

    /// The dead-letter file's text (empty when there is none).
    pub(crate) fn dead_letter_text(&self) -> String {
        std::fs::read_to_string(self.dead_letter_path()).unwrap_or_default()
    }

    /// The dead-letter file's records.
    pub(crate) fn dead_letters(&self) -> Vec<DeadLetterRecord> {
        self.dead_letter_text()
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("a bad dead-letter record ({e}): {line}"))
            })
            .collect()
    }

    /// What the store holds, sorted by event id.
    pub(crate) fn stored_events(&self) -> Vec<Event> {
        let mut events = self.target.stored_events(&self.namespace);
        events.sort_by_key(|event| event.id());
        events
    }
}
