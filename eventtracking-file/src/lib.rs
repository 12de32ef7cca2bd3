//! # eventtracking-file
//!
//! The JSON-lines file backend of eventtracking, engine `file`: one event per
//! line, to a file or stdout, with size- and time-based rotation and an fsync
//! policy. Batching, retries and dead-lettering are the delivery engine's;
//! this crate only writes.
//!
//! # Config keys
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `path` | required | the file; `"-"` for stdout |
//! | `max_bytes` | none | rotate before a batch would make the file larger (a batch is never split) |
//! | `rotate_every` | none | rotate a file older than this (`"1h"`, `"30s"`, humantime syntax) |
//! | `fsync` | `"never"` | `"never"`, `"batch"` (after every batch) or `"interval"` |
//! | `fsync_interval_ms` | 1000 | with `fsync = "interval"`: the longest time between fsyncs while writing |
//!
//! ```toml
//! [backends.local]
//! engine = "file"
//! path = "events.jsonl"
//! max_bytes = 104857600
//! rotate_every = "1h"
//! fsync = "interval"
//! ```
//!
//! # Guarantees
//!
//! - Each batch is one append (`write_all` of whole lines); if it fails half
//!   way the file is cut back to where the batch began, so a retry does not
//!   leave a torn line or a duplicate.
//! - A line torn by a killed writer (`kill -9` mid-write) is cut when the
//!   file is opened again, so a restart appends after complete lines.
//! - Files are created with mode 0640. A rotated file is renamed
//!   `<stem>.<UTC time>.<ext>`, e.g. `events.20261129T015239.123456Z.jsonl`.
//! - `flush` and shutdown fsync the file (whatever the policy); with
//!   `fsync = "never"` the data is safe from a process crash once written,
//!   and from power loss once flushed.
//!
//! # Usage
//!
//! ```
//! use std::time::Duration;
//! use eventtracking_core::Tracker;
//! use eventtracking_file::{FileBackend, FsyncPolicy};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("events.jsonl");
//! let backend = FileBackend::builder(&path)
//!     .with_max_bytes(10 << 20)
//!     .with_fsync(FsyncPolicy::EveryBatch)
//!     .build()
//!     .unwrap();
//! let tracker = Tracker::builder().with_backend("local", backend).build().unwrap();
//! tracker.emit("page.view", serde_json::json!({"url": "/"})).unwrap();
//! tracker.flush(Duration::from_secs(5));
//! let line = std::fs::read_to_string(&path).unwrap();
//! assert!(line.ends_with('\n') && line.contains("\"page.view\""));
//! ```
//!
//! # Runtime
//!
//! Writes run on tokio's blocking pool of the delivery runtime, never on the
//! emitting thread.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use eventtracking_core::registry::{BackendRegistration, ComponentConfig};
use eventtracking_core::{async_trait, Backend, BackendError, BackendResult, BuildError, Event};
use serde::Deserialize;

/// When the file is fsynced (besides `flush` and shutdown, which always do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// Leave it to the OS (the default).
    #[default]
    Never,
    /// After every batch: nothing acknowledged is lost on power failure.
    EveryBatch,
    /// After a batch when the last fsync is older than this.
    Interval(Duration),
}

/// Why a file backend could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileBackendError {
    /// The file (or its directory) could not be created or opened.
    #[error("cannot open event file `{path}`: {source}")]
    Open {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Rotation was asked for stdout.
    #[error("`{0}` cannot be used with path \"-\" (stdout cannot be rotated)")]
    RotateStdout(&'static str),
}

/// Builds a [`FileBackend`]; see [`FileBackend::builder`].
#[derive(Debug, Clone)]
pub struct FileBackendBuilder {
    path: PathBuf,
    max_bytes: Option<u64>,
    rotate_every: Option<Duration>,
    fsync: FsyncPolicy,
}

impl FileBackendBuilder {
    /// Rotates before a batch would make the file larger than `max_bytes`.
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = Some(max_bytes);
        self
    }

    /// Rotates a file older than `age` (since this process opened it).
    pub fn with_rotate_every(mut self, age: Duration) -> Self {
        self.rotate_every = Some(age);
        self
    }

    /// Sets the fsync policy.
    pub fn with_fsync(mut self, fsync: FsyncPolicy) -> Self {
        self.fsync = fsync;
        self
    }

    /// Opens the file (creating it and its directory), repairing a torn last line.
    pub fn build(self) -> Result<FileBackend, FileBackendError> {
        let sink = if self.path.as_os_str() == "-" {
            if self.max_bytes.is_some() {
                return Err(FileBackendError::RotateStdout("max_bytes"));
            }
            if self.rotate_every.is_some() {
                return Err(FileBackendError::RotateStdout("rotate_every"));
            }
            Sink::Stdout
        } else {
            Sink::File(OpenFile::open(
                self.path,
                self.max_bytes,
                self.rotate_every,
                self.fsync,
            )?)
        };
        Ok(FileBackend {
            sink: Arc::new(Mutex::new(sink)),
        })
    }
}

/// Writes events as JSON lines to a file or stdout (engine `file`).
#[derive(Debug, Clone)]
pub struct FileBackend {
    sink: Arc<Mutex<Sink>>,
}

#[derive(Debug)]
enum Sink {
    Stdout,
    File(OpenFile),
}

#[derive(Debug)]
struct OpenFile {
    path: PathBuf,
    file: File,
    size: u64,
    opened_at: Instant,
    last_sync: Instant,
    max_bytes: Option<u64>,
    rotate_every: Option<Duration>,
    fsync: FsyncPolicy,
}

impl FileBackend {
    /// A builder for a backend writing to `path` (`"-"` for stdout).
    pub fn builder(path: impl AsRef<Path>) -> FileBackendBuilder {
        FileBackendBuilder {
            path: path.as_ref().to_owned(),
            max_bytes: None,
            rotate_every: None,
            fsync: FsyncPolicy::Never,
        }
    }

    /// A backend writing to stdout.
    pub fn stdout() -> Self {
        FileBackend {
            sink: Arc::new(Mutex::new(Sink::Stdout)),
        }
    }

    async fn with_sink<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Sink) -> std::io::Result<R> + Send + 'static,
    ) -> std::io::Result<R> {
        let sink = self.sink.clone();
        let job = move || {
            let mut sink = sink.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut sink)
        };
        match tokio::task::spawn_blocking(job).await {
            Ok(result) => result,
            Err(join) => Err(std::io::Error::other(format!(
                "file writer task failed: {join}"
            ))),
        }
    }

    fn describe(&self) -> String {
        match &*self.sink.lock().unwrap_or_else(|p| p.into_inner()) {
            Sink::Stdout => "stdout".to_owned(),
            Sink::File(f) => format!("`{}`", f.path.display()),
        }
    }
}

fn create_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.create(true).append(true).read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o640);
    options
}

impl OpenFile {
    fn open(
        path: PathBuf,
        max_bytes: Option<u64>,
        rotate_every: Option<Duration>,
        fsync: FsyncPolicy,
    ) -> Result<Self, FileBackendError> {
        let file = open_repaired(&path).map_err(|source| FileBackendError::Open {
            path: path.clone(),
            source,
        })?;
        let size = file
            .metadata()
            .map_err(|source| FileBackendError::Open {
                path: path.clone(),
                source,
            })?
            .len();
        Ok(OpenFile {
            path,
            file,
            size,
            opened_at: Instant::now(),
            last_sync: Instant::now(),
            max_bytes,
            rotate_every,
            fsync,
        })
    }

    fn should_rotate(&self, incoming: u64) -> bool {
        if self.size == 0 {
            return false;
        }
        let too_big = self.max_bytes.is_some_and(|max| self.size + incoming > max);
        let too_old = self
            .rotate_every
            .is_some_and(|age| self.opened_at.elapsed() >= age);
        too_big || too_old
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file.sync_all()?;
        let rotated = rotated_name(&self.path);
        std::fs::rename(&self.path, &rotated)?;
        self.file = open_repaired(&self.path)?;
        self.size = 0;
        self.opened_at = Instant::now();
        tracing::debug!(from = %self.path.display(), to = %rotated.display(), "eventtracking-file: rotated");
        Ok(())
    }

    fn write(&mut self, buffer: &[u8]) -> std::io::Result<()> {
        if self.should_rotate(buffer.len() as u64) {
            self.rotate()?;
        }
        if let Err(error) = self.file.write_all(buffer) {
            // Cut a half-written batch so the retry leaves whole lines only.
            let _ = self.file.set_len(self.size);
            return Err(error);
        }
        self.size += buffer.len() as u64;
        let sync = match self.fsync {
            FsyncPolicy::Never => false,
            FsyncPolicy::EveryBatch => true,
            FsyncPolicy::Interval(every) => self.last_sync.elapsed() >= every,
        };
        if sync {
            self.sync()?;
        }
        Ok(())
    }

    fn sync(&mut self) -> std::io::Result<()> {
        self.file.sync_data()?;
        self.last_sync = Instant::now();
        Ok(())
    }
}

/// Opens for appending (mode 0640 on creation) and cuts a torn last line.
fn open_repaired(path: &Path) -> std::io::Result<File> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let existed = path.exists();
    let mut file = create_options().open(path)?;
    #[cfg(unix)]
    if !existed {
        // The umask may have narrowed the mode given at creation.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o640))?;
    }
    let len = file.metadata()?.len();
    if len > 0 {
        let keep = complete_prefix_len(&mut file, len)?;
        if keep < len {
            file.set_len(keep)?;
            tracing::warn!(
                path = %path.display(),
                cut_bytes = len - keep,
                "eventtracking-file: cut a torn last line left by an interrupted writer"
            );
        }
    }
    Ok(file)
}

/// The length of the file up to and including its last newline.
fn complete_prefix_len(file: &mut File, len: u64) -> std::io::Result<u64> {
    const CHUNK: u64 = 64 * 1024;
    let mut end = len;
    let mut buffer = vec![0u8; CHUNK as usize];
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        let chunk = &mut buffer[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(at) = chunk.iter().rposition(|b| *b == b'\n') {
            return Ok(start + at as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// `dir/events.jsonl` → `dir/events.20261129T015239.123456Z.jsonl` (with `-N` if taken).
fn rotated_name(path: &Path) -> PathBuf {
    let stamp: String = humantime::format_rfc3339_micros(SystemTime::now())
        .to_string()
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    let mut candidate = path.with_file_name(format!("{stem}.{stamp}{ext}"));
    let mut n = 1;
    while candidate.exists() {
        candidate = path.with_file_name(format!("{stem}.{stamp}-{n}{ext}"));
        n += 1;
    }
    candidate
}

#[async_trait]
impl Backend for FileBackend {
    async fn send_batch(&self, batch: &[Arc<Event>]) -> BackendResult {
        let mut buffer =
            Vec::with_capacity(batch.iter().map(|e| e.to_json_bytes().len() + 1).sum());
        for event in batch {
            buffer.extend_from_slice(event.to_json_bytes());
            buffer.push(b'\n');
        }
        self.with_sink(move |sink| match sink {
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(&buffer)?;
                out.flush()
            }
            Sink::File(file) => file.write(&buffer),
        })
        .await
        .map_err(|e| BackendError::Retryable(format!("cannot write to {}: {e}", self.describe())))
    }

    async fn flush(&self) -> BackendResult {
        self.with_sink(|sink| match sink {
            Sink::Stdout => std::io::stdout().lock().flush(),
            Sink::File(file) => file.sync(),
        })
        .await
        .map_err(|e| BackendError::Retryable(format!("cannot fsync {}: {e}", self.describe())))
    }

    async fn shutdown(&self) -> BackendResult {
        self.flush().await
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    path: String,
    max_bytes: Option<u64>,
    rotate_every: Option<String>,
    fsync: Option<String>,
    fsync_interval_ms: Option<u64>,
}

fn build(config: &ComponentConfig) -> Result<Box<dyn Backend>, BuildError> {
    let options: Options = config.parse_options()?;
    let mut builder = FileBackend::builder(&options.path);
    if let Some(max) = options.max_bytes {
        if max == 0 {
            return Err(config.invalid("`max_bytes` = 0: must be at least 1"));
        }
        builder = builder.with_max_bytes(max);
    }
    if let Some(age) = &options.rotate_every {
        let age = humantime::parse_duration(age).map_err(|e| {
            config.invalid(format!(
                "`rotate_every` = {age:?}: {e} (e.g. \"1h\", \"30s\")"
            ))
        })?;
        builder = builder.with_rotate_every(age);
    }
    let interval = Duration::from_millis(options.fsync_interval_ms.unwrap_or(1_000));
    let fsync = match options.fsync.as_deref() {
        None | Some("never") => FsyncPolicy::Never,
        Some("batch") => FsyncPolicy::EveryBatch,
        Some("interval") => FsyncPolicy::Interval(interval),
        Some(other) => {
            return Err(config.invalid(format!(
                "`fsync` = {other:?}: expected \"never\", \"batch\" or \"interval\""
            )))
        }
    };
    if options.fsync_interval_ms.is_some() && !matches!(fsync, FsyncPolicy::Interval(_)) {
        return Err(config.invalid("`fsync_interval_ms` needs `fsync = \"interval\"`"));
    }
    let backend = builder.with_fsync(fsync).build().map_err(|e| match e {
        FileBackendError::RotateStdout(_) => config.invalid(e.to_string()),
        other => config.startup_error(other.to_string(), other),
    })?;
    Ok(Box::new(backend))
}

eventtracking_core::inventory::submit! {
    BackendRegistration::new("file", "JSON lines to a file (`path`, \"-\" = stdout), with rotation", build)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotated_names_keep_the_extension_and_sort_by_time() {
        let name = rotated_name(Path::new("/tmp/x/events.jsonl"));
        let text = name.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            text.starts_with("events.2") && text.ends_with("Z.jsonl"),
            "{text}"
        );
        assert_eq!(
            text.len(),
            "events.20261129T015239.123456Z.jsonl".len(),
            "{text}"
        );
    }
}
