//! The dead-letter file: events that could not be delivered, with the reason.
//!
//! One writer per path in the process (routes sharing a path share it), so
//! that records are appended whole and a failed append can be cut back to
//! the last whole record without tearing another route's record.

use eventtracking_core::sync::lock;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use eventtracking_core::Event;

/// One line of the dead-letter file.
///
/// ```
/// use eventtracking_engine::DeadLetterRecord;
/// let line = r#"{"failed_at":"2026-01-01T00:00:00.000000Z","backend":"local","reason":"permanent failure: disk full","attempts":1,
///   "event":{"id":"0190c4b4-4f5e-7c3a-8b4e-1a2b3c4d5e6f","name":"a","timestamp":"2026-01-01T00:00:00.000000Z","context":{},"data":1}}"#;
/// let record: DeadLetterRecord = serde_json::from_str(line).unwrap();
/// assert_eq!(record.backend, "local");
/// assert_eq!(record.event.name(), "a");
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeadLetterRecord {
    /// When delivery was given up, RFC 3339 UTC.
    pub failed_at: String,
    /// The backend that could not take the event (empty when not known).
    #[serde(default)]
    pub backend: String,
    /// Why, e.g. `oversized: ...`, `retries exhausted: ...`, `permanent failure: ...`,
    /// `shutdown: ...` (still undelivered when the shutdown deadline passed).
    pub reason: String,
    /// How many sends were tried.
    #[serde(default)]
    pub attempts: u32,
    /// The event, unchanged.
    pub event: Event,
}

/// What one [`DeadLetterWriter::write`] did: how many records are in the file
/// (whole), and why the others are not.
#[derive(Debug)]
#[non_exhaustive]
pub struct DeadLetterOutcome {
    /// Records appended whole, from the first.
    pub records: usize,
    /// Why the rest were not written, if any.
    pub error: Option<DeadLetterError>,
}

/// Why records could not be written to the dead-letter file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeadLetterError {
    /// The disk (or the file-size limit) is full.
    #[error("dead-letter file full: {0}")]
    Full(#[source] std::io::Error),
    /// Any other failure (permissions, a missing directory, ...).
    #[error("cannot write the dead-letter file: {0}")]
    Io(#[source] std::io::Error),
}

impl DeadLetterError {
    fn from_io(error: std::io::Error) -> Self {
        match error.kind() {
            ErrorKind::StorageFull | ErrorKind::FileTooLarge | ErrorKind::QuotaExceeded => {
                DeadLetterError::Full(error)
            }
            _ => DeadLetterError::Io(error),
        }
    }
}

/// The one dead-letter writer: appends [`DeadLetterRecord`]s to a
/// JSON-lines file, opened on first use (created with mode 0640), whole
/// records only. The delivery engine and the relay both write through it,
/// so `eventtracking replay` reads what either wrote.
///
/// ```
/// use std::sync::Arc;
/// use eventtracking::Event;
/// use eventtracking_engine::delivery::DeadLetterWriter;
///
/// let dir = tempfile::tempdir().unwrap();
/// let writer = DeadLetterWriter::shared(&dir.path().join("dead.jsonl"));
/// let event = Arc::new(Event::new("a", serde_json::json!(1)).unwrap());
/// let outcome = writer.write("local", "permanent failure: disk full", 1, &[event]);
/// assert_eq!((outcome.records, outcome.error.is_none()), (1, true));
/// ```
#[derive(Debug)]
pub struct DeadLetterWriter {
    path: PathBuf,
    file: Mutex<Option<File>>,
}

static WRITERS: LazyLock<Mutex<HashMap<PathBuf, Weak<DeadLetterWriter>>>> =
    LazyLock::new(Default::default);

impl DeadLetterWriter {
    /// The process's writer for `path` (one per path, shared, so that
    /// records of several writers never interleave).
    pub fn shared(path: &Path) -> Arc<Self> {
        let key = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        let mut writers = lock(&WRITERS);
        writers.retain(|_, writer| writer.strong_count() > 0);
        if let Some(writer) = writers.get(&key).and_then(Weak::upgrade) {
            return writer;
        }
        let writer = Arc::new(DeadLetterWriter {
            path: path.to_owned(),
            file: Mutex::new(None),
        });
        writers.insert(key, Arc::downgrade(&writer));
        writer
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn options() -> OpenOptions {
        let mut options = OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o640);
        options
    }

    /// Checks at start that the file can be written. A missing file is not
    /// created: a probe file beside it is (and removed), so that nothing is
    /// left behind and a file another writer is creating is never touched.
    pub fn check_writable(path: &Path) -> std::io::Result<()> {
        if path.exists() {
            return Self::options().open(path).map(drop);
        }
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent)?;
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let probe = parent.join(format!(".{name}.{}-{nanos}.probe", std::process::id()));
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&probe)?;
        std::fs::remove_file(&probe)
    }

    /// Appends one record per event, in order. Records are whole or absent:
    /// when the disk fills up mid-append, the file is cut back to the last
    /// whole record and [`DeadLetterOutcome::records`] says how many made it.
    pub fn write(
        &self,
        backend: &str,
        reason: &str,
        attempts: u32,
        events: &[Arc<Event>],
    ) -> DeadLetterOutcome {
        #[derive(Serialize)]
        struct Line<'a> {
            failed_at: &'a str,
            backend: &'a str,
            reason: &'a str,
            attempts: u32,
            event: &'a Event,
        }
        let failed_at = humantime::format_rfc3339_micros(SystemTime::now()).to_string();
        let mut buffer = Vec::new();
        // Where each record ends in `buffer`.
        let mut ends = Vec::with_capacity(events.len());
        for event in events {
            let line = Line {
                failed_at: &failed_at,
                backend,
                reason,
                attempts,
                event,
            };
            if let Err(error) = serde_json::to_writer(&mut buffer, &line) {
                return DeadLetterOutcome {
                    records: 0,
                    error: Some(DeadLetterError::Io(error.into())),
                };
            }
            buffer.push(b'\n');
            ends.push(buffer.len());
        }
        self.append(&buffer, &ends)
    }

    /// Appends one record of bytes that are not an event: a corrupt record
    /// of a disk buffer (or a record that is not an event's JSON), with the
    /// reason and where it was found. The line has `raw` (the bytes as
    /// text, invalid UTF-8 replaced) and `raw_hex` (the exact bytes) in
    /// place of `event`: `eventtracking replay` reports it as not
    /// replayable (the bytes are kept for a person to look at).
    pub fn write_raw(&self, backend: &str, reason: &str, bytes: &[u8]) -> DeadLetterOutcome {
        #[derive(Serialize)]
        struct RawLine<'a> {
            failed_at: &'a str,
            backend: &'a str,
            reason: &'a str,
            attempts: u32,
            raw: &'a str,
            raw_hex: &'a str,
        }
        let failed_at = humantime::format_rfc3339_micros(SystemTime::now()).to_string();
        let raw_hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let line = RawLine {
            failed_at: &failed_at,
            backend,
            reason,
            attempts: 0,
            raw: &String::from_utf8_lossy(bytes),
            raw_hex: &raw_hex,
        };
        let mut buffer = match serde_json::to_vec(&line) {
            Ok(buffer) => buffer,
            Err(error) => {
                return DeadLetterOutcome {
                    records: 0,
                    error: Some(DeadLetterError::Io(error.into())),
                }
            }
        };
        buffer.push(b'\n');
        let end = buffer.len();
        self.append(&buffer, &[end])
    }

    /// Appends whole lines (`ends`: where each ends in `buffer`), cutting a
    /// torn one back.
    fn append(&self, buffer: &[u8], ends: &[usize]) -> DeadLetterOutcome {
        let mut guard = lock(&self.file);
        let file = match &mut *guard {
            Some(file) => file,
            None => match self.open() {
                Ok(file) => guard.insert(file),
                Err(error) => {
                    return DeadLetterOutcome {
                        records: 0,
                        error: Some(DeadLetterError::from_io(error)),
                    }
                }
            },
        };
        let start = match file.metadata() {
            Ok(metadata) => metadata.len(),
            Err(error) => {
                return DeadLetterOutcome {
                    records: 0,
                    error: Some(DeadLetterError::from_io(error)),
                }
            }
        };
        let mut done = 0;
        let mut failure = None;
        while done < buffer.len() {
            match file.write(&buffer[done..]) {
                Ok(0) => {
                    failure = Some(std::io::Error::from(ErrorKind::WriteZero));
                    break;
                }
                Ok(n) => done += n,
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
        }
        let Some(error) = failure else {
            return DeadLetterOutcome {
                records: ends.len(),
                error: None,
            };
        };
        let records = ends.partition_point(|&end| end <= done);
        let whole = if records == 0 { 0 } else { ends[records - 1] };
        if whole < done {
            // Cut the torn record. Shrinking a file needs no space.
            if let Err(cut) = file.set_len(start + whole as u64) {
                tracing::error!(path = %self.path.display(), error = %cut, "eventtracking: cannot cut a torn dead-letter record");
            }
        }
        DeadLetterOutcome {
            records,
            error: Some(DeadLetterError::from_io(error)),
        }
    }

    fn open(&self) -> std::io::Result<File> {
        if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        Self::options().open(&self.path)
    }
}
