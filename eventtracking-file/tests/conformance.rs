//! The backend conformance suite (`eventtracking-testkit`) for the file
//! backend: a namespace is a file in a temporary directory.
//!
//! What the cases mean here:
//! - `idempotent_resend`: the file is append-only, so an event sent twice
//!   is written twice; readers de-duplicate by event id
//!   ([`Idempotence::ReadersDeduplicate`]).
//! - `partial_failure`: does not apply: a batch is written with one write
//!   of whole lines, and any event can be written, so no event fails alone.
//! - `oversized_event`: the file takes events of any size; the limit is the
//!   engine's `max_event_bytes` ([`SizeLimit::Engine`]).
//! - `outage`: the file's directory is moved away and a plain file put in
//!   its place for 10 s (the path cannot be reached, nor its directory
//!   created again), then moved back: the writes resume in the same file.
//! - `secrets`: the file backend has no secret options; a secret under
//!   secret-looking keys it does not know must not be echoed by the error.
#![cfg(unix)]

use std::path::{Path, PathBuf};

use eventtracking::{CatalogEntry, Event, JsonMap};
use eventtracking_testkit::{
    Case, ConformanceTarget, Idempotence, Outage, RefusedEvent, SecretOptions, SizeLimit,
    Unsupported,
};
use serde_json::{json, Value};
use tempfile::TempDir;

// Keep the crate (and so its `file` registration) linked.
use eventtracking_file as _;

struct FileTarget;

/// A temporary directory holding `store/events.jsonl` (and the catalog
/// beside it).
struct Namespace(TempDir);

impl Namespace {
    fn store(&self) -> PathBuf {
        self.0.path().join("store")
    }

    fn events(&self) -> PathBuf {
        self.store().join("events.jsonl")
    }
}

/// The directory `dir` moved away and a plain file in its place, so that
/// nothing can be written below `dir`; moved back when dropped.
struct DirectoryGone {
    dir: PathBuf,
    away: PathBuf,
}

impl DirectoryGone {
    fn new(dir: &Path) -> Self {
        let away = dir.with_extension("away");
        std::fs::rename(dir, &away).expect("move the directory away");
        std::fs::write(dir, "not a directory").expect("a file in its place");
        DirectoryGone {
            dir: dir.to_owned(),
            away,
        }
    }
}

impl Drop for DirectoryGone {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.dir);
        let _ = std::fs::rename(&self.away, &self.dir);
    }
}

fn options(value: Value) -> JsonMap {
    value.as_object().cloned().expect("an object")
}

impl ConformanceTarget for FileTarget {
    const ENGINE: &'static str = "file";
    type Namespace = Namespace;

    fn connect() -> Self {
        FileTarget
    }

    fn namespace(&self, _case: Case) -> Namespace {
        Namespace(tempfile::tempdir().expect("a temporary directory"))
    }

    fn options(&self, namespace: &Namespace, _case: Case) -> JsonMap {
        options(json!({"path": namespace.events()}))
    }

    fn stored_events(&self, namespace: &Namespace) -> Vec<Event> {
        let text = std::fs::read_to_string(namespace.events()).unwrap_or_default();
        assert!(text.is_empty() || text.ends_with('\n'), "a torn last line");
        text.lines()
            .map(|line| {
                Event::from_json_slice(line.as_bytes())
                    .unwrap_or_else(|e| panic!("a bad line ({e}): {line}"))
            })
            .collect()
    }

    fn stored_catalog(&self, namespace: &Namespace) -> Vec<CatalogEntry> {
        let path = namespace.store().join("events.catalog.json");
        let Ok(bytes) = std::fs::read(&path) else {
            return Vec::new();
        };
        let mut catalog: Value = serde_json::from_slice(&bytes).expect("the catalog is JSON");
        serde_json::from_value(catalog["event_types"].take()).expect("catalog entries")
    }

    fn idempotence(&self) -> Idempotence {
        Idempotence::ReadersDeduplicate
    }

    fn refused_event(&self) -> Result<RefusedEvent, Unsupported> {
        Err(Unsupported(
            "a batch is written with one write of whole lines and any event can be written: \
             no event fails alone",
        ))
    }

    fn size_limit(&self) -> SizeLimit {
        SizeLimit::Engine { bytes: 64 << 10 }
    }

    fn outage(&self, namespace: &Namespace) -> Result<Outage, Unsupported> {
        Ok(Outage::new(DirectoryGone::new(&namespace.store())))
    }

    fn secret_options(&self, namespace: &Namespace, secret: &str) -> SecretOptions {
        let path = namespace.events();
        SecretOptions {
            refused: ["password", "token", "api_key"]
                .into_iter()
                .map(|key| options(json!({"path": path, key: secret})))
                .collect(),
            built: Vec::new(),
            logged: None,
        }
    }
}

eventtracking_testkit::conformance_tests!(FileTarget);
