//! The dead-letter file: events that could not be delivered, with the reason.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::event::Event;

/// One line of the dead-letter file.
///
/// ```
/// use eventtracking_core::{DeadLetterRecord, Event};
/// let line = r#"{"failed_at":"2026-01-01T00:00:00.000000Z","backend":"local","reason":"permanent failure: disk full","attempts":1,
///   "event":{"id":"0190c4b4-4f5e-7c3a-8b4e-1a2b3c4d5e6f","name":"a","timestamp":"2026-01-01T00:00:00.000000Z","context":{},"data":1}}"#;
/// let record: DeadLetterRecord = serde_json::from_str(line).unwrap();
/// assert_eq!(record.backend, "local");
/// assert_eq!(record.event.name(), "a");
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetterRecord {
    /// When delivery was given up, RFC 3339 UTC.
    pub failed_at: String,
    /// The backend that could not take the event (empty when not known).
    #[serde(default)]
    pub backend: String,
    /// Why, e.g. `oversized: ...`, `retries exhausted: ...`, `permanent failure: ...`.
    pub reason: String,
    /// How many sends were tried.
    #[serde(default)]
    pub attempts: u32,
    /// The event, unchanged.
    pub event: Event,
}

/// Appends dead-letter records to a JSON-lines file, opened on first use
/// (created with mode 0640).
#[derive(Debug)]
pub(crate) struct DeadLetterFile {
    path: PathBuf,
    file: Mutex<Option<File>>,
}

impl DeadLetterFile {
    pub(crate) fn new(path: &Path) -> Self {
        DeadLetterFile {
            path: path.to_owned(),
            file: Mutex::new(None),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one record per event in a single append, so that records are whole lines.
    pub(crate) fn write(
        &self,
        backend: &str,
        reason: &str,
        attempts: u32,
        events: &[Arc<Event>],
    ) -> std::io::Result<()> {
        #[derive(Serialize)]
        struct Line<'a> {
            failed_at: String,
            backend: &'a str,
            reason: &'a str,
            attempts: u32,
            event: &'a Event,
        }
        let failed_at = humantime::format_rfc3339_micros(SystemTime::now()).to_string();
        let mut buffer = Vec::new();
        for event in events {
            serde_json::to_writer(
                &mut buffer,
                &Line {
                    failed_at: failed_at.clone(),
                    backend,
                    reason,
                    attempts,
                    event,
                },
            )?;
            buffer.push(b'\n');
        }
        let mut guard = self
            .file
            .lock()
            .map_err(|_| std::io::Error::other("dead-letter lock poisoned"))?;
        if guard.is_none() {
            if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)?;
            }
            let mut options = OpenOptions::new();
            options.create(true).append(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o640);
            *guard = Some(options.open(&self.path)?);
        }
        match guard.as_mut() {
            Some(file) => {
                file.write_all(&buffer)?;
                file.flush()
            }
            None => Err(std::io::Error::other("dead-letter file not open")),
        }
    }
}
