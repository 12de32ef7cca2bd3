//! # eventtracking-file
//!
//! The JSON-lines file backend of eventtracking, engine `file`: one event per
//! line (`{"id","name","timestamp","context","data"}`), to a file or stdout,
//! with size- and time-based rotation and an fsync policy. Batching, retries
//! and dead-lettering are done by the delivery engine of `eventtracking-core`;
//! this crate only writes.
//!
//! # Config keys
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `path` | required | the file (its directory is created); `"-"` for stdout |
//! | `max_bytes` | none | rotate before a batch would make the file larger than this; a batch is never split, so a batch larger than `max_bytes` goes alone into a fresh file |
//! | `rotate_every` | none | rotate a file older than this (humantime syntax: `"1h"`, `"30s"`), counted from when this process opened it |
//! | `fsync` | `"never"` | `"never"` (leave it to the OS), `"batch"` (after every batch) or `"interval"` |
//! | `fsync_interval_ms` | `1000` | with `fsync = "interval"`: written events are fsynced within about this time (by the next batch or a background task) |
//! | `catalog_path` | `<stem>.catalog.json` beside `path` | where the documentation of typed events is kept (see below); `""` turns it off; none for stdout unless set |
//!
//! `max_bytes` and `rotate_every` cannot be used with `path = "-"`.
//!
//! ```toml
//! [backends.local]
//! engine = "file"
//! path = "/var/log/app/events.jsonl"
//! max_bytes = 104857600
//! rotate_every = "1h"
//! fsync = "interval"
//! fsync_interval_ms = 500
//! ```
//!
//! Link the crate once so that its registration is kept (the `eventtracking`
//! facade does this for you):
//!
//! ```
//! use eventtracking_file as _;
//! ```
//!
//! # Guarantees
//!
//! - Each batch is written with one `write_all` of whole lines, in append
//!   mode. If writing (or the fsync that follows it) fails, the file is cut
//!   back to where the batch began, so the engine's retry adds no torn line.
//! - A line torn by a killed writer (`kill -9` mid-write) is cut when the file
//!   is opened again (logged as a warning), so a restarted writer appends
//!   after complete lines.
//! - Files are created with mode 0640 (whatever the umask). Rotation renames
//!   the current file to `<stem>.<UTC time>.<ext>` in the same directory, e.g.
//!   `events.jsonl` → `events.20261129T015239.123456Z.jsonl` (a `-N` suffix is
//!   added if that name is taken), and opens a fresh file at `path`.
//! - A file deleted, renamed or replaced by another process is noticed before
//!   each batch (one `stat` of the path compared with the open file's device
//!   and inode): a new file is opened at `path` (logged as a warning naming
//!   the path, counted by [`FileBackend::reopened_count`]). A batch is
//!   acknowledged only if its file still has a name after the write, so a
//!   batch written into a file deleted meanwhile is written again into the
//!   new one; one written into a file renamed meanwhile stays there (nothing
//!   is lost, nothing is written twice). Batches acknowledged before the
//!   deletion are gone with the deleted file.
//! - Stdout (`path = "-"`) that is closed when the backend is built (`>&-`)
//!   is a build error. When its reader goes away (`… | head -1`, a broken
//!   pipe), the batch and every later one fail with
//!   [`BackendError::Closed`]: the engine counts them as dropped (reason
//!   `closed`, "output closed" in the report) rather than dead-lettering
//!   output nobody reads. The same holds for a named pipe at `path`.
//! - `flush` and shutdown always fsync the file (stdout is flushed). With
//!   `fsync = "never"` a written batch survives a crash of the process, and
//!   power loss once flushed. Every 16 MiB written, the backend asks the OS
//!   to start writing them to disk without waiting (on Linux,
//!   `posix_fadvise`), so that a `flush` after a bulk run waits for at most
//!   that much instead of everything written since the last fsync.
//! - Delivery is at least once: a batch whose write timed out or failed after
//!   the data reached the file may be written again.
//!
//! # The event catalog beside the events
//!
//! The first time a typed event of each type (see
//! [`eventtracking_core::catalog`](mod@eventtracking_core::catalog)) is written, its catalog entry (name,
//! version, descriptions, JSON Schema) is merged into `catalog_path`, by
//! default `events.catalog.json` beside `events.jsonl`: a JSON document
//! `{"event_types": [...]}`, sorted by key (`NAME@VERSION`, what the events
//! carry in their `schema` field), in the format of `eventtracking catalog
//! --format json`. It is replaced atomically (written beside, then renamed);
//! entries written by other processes are kept. Its mode is 0640, like the
//! events file's.
//!
//! I/O errors while writing are reported as [`BackendError::Retryable`]
//! naming the path and the OS error; a path that cannot be opened when the
//! backend is built is a build error.
//!
//! # Usage
//!
//! ```
//! use std::time::Duration;
//! use eventtracking::Tracker;
//! use eventtracking_file::{FileBackend, FsyncPolicy};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("events.jsonl");
//! let backend = FileBackend::builder(&path)
//!     .with_max_bytes(10 << 20)
//!     .with_rotate_every(Duration::from_secs(3600))
//!     .with_fsync(FsyncPolicy::EveryBatch)
//!     .build()
//!     .unwrap();
//! let tracker = Tracker::builder().with_backend("local", backend).build().unwrap();
//! tracker.emit("page.view", serde_json::json!({"url": "/"})).unwrap();
//! tracker.flush(Duration::from_secs(5));
//! let text = std::fs::read_to_string(&path).unwrap();
//! assert!(text.ends_with('\n') && text.contains(r#""name":"page.view""#));
//! ```
//!
//! # Runtime
//!
//! File I/O runs on tokio's blocking pool (`spawn_blocking`) of the runtime
//! that drives the backend, never on its async worker threads.

use eventtracking_core::sync::lock;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use eventtracking_core::registry::{BackendRegistration, ComponentConfig};
use eventtracking_core::{
    async_trait, Backend, BackendError, BackendResult, BuildError, CatalogEntry, Event,
};
use serde::Deserialize;

/// The mode of files this backend creates.
#[cfg(unix)]
const FILE_MODE: u32 = 0o640;

/// When the file is fsynced, besides `flush` and shutdown (which always do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// Never by itself: the OS writes the data back when it likes (config `"never"`, the default).
    #[default]
    Never,
    /// After every batch, before it is acknowledged (config `"batch"`).
    EveryBatch,
    /// Written events are fsynced within about this time: with the next batch
    /// once the last fsync is this old, or by a background task when writes
    /// stop (config `"interval"` with `fsync_interval_ms`). A zero interval
    /// is [`EveryBatch`](Self::EveryBatch).
    Interval(Duration),
}

/// Why a [`FileBackend`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileBackendError {
    /// The file or its directory could not be created or opened.
    #[error("cannot open event file `{}`: {source}", .path.display())]
    Open {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Stdout is closed (`>&-`): nothing written there would reach anyone,
    /// and the next file opened would take its place.
    #[error("stdout is closed: cannot write events to it ({source})")]
    StdoutClosed {
        /// The OS error of checking it.
        #[source]
        source: std::io::Error,
    },
    /// Rotation was asked for stdout.
    #[error("`{key}` cannot be used with path \"-\": stdout cannot be rotated")]
    StdoutRotation {
        /// The rotation setting: `max_bytes` or `rotate_every`.
        key: &'static str,
    },
}

/// Builds a [`FileBackend`]; see [`FileBackend::builder`].
#[derive(Debug, Clone)]
pub struct FileBackendBuilder {
    path: PathBuf,
    max_bytes: Option<u64>,
    rotate_every: Option<Duration>,
    fsync: FsyncPolicy,
    catalog_path: Option<Option<PathBuf>>,
}

impl FileBackendBuilder {
    /// Where the catalog of event types is kept (`None`: nowhere). The
    /// default is `<stem>.catalog.json` beside the events file, and nowhere
    /// for stdout.
    pub fn with_catalog_path(mut self, path: Option<PathBuf>) -> Self {
        self.catalog_path = Some(path);
        self
    }

    /// Rotates before a batch would make the file larger than `max_bytes`.
    /// A batch is never split: one larger than `max_bytes` goes alone into a fresh file.
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = Some(max_bytes);
        self
    }

    /// Rotates before writing to a file this process opened `age` ago or earlier.
    pub fn with_rotate_every(mut self, age: Duration) -> Self {
        self.rotate_every = Some(age);
        self
    }

    /// Sets when the file is fsynced (default [`FsyncPolicy::Never`]).
    pub fn with_fsync(mut self, fsync: FsyncPolicy) -> Self {
        self.fsync = fsync;
        self
    }

    /// Opens the file: creates it (mode 0640) and its directory, or opens it
    /// for appending and cuts a torn last line.
    pub fn build(self) -> Result<FileBackend, FileBackendError> {
        let catalog_path = match self.catalog_path {
            Some(chosen) => chosen,
            None if self.path.as_os_str() == "-" => None,
            None => Some(default_catalog_path(&self.path)),
        };
        if self.path.as_os_str() == "-" {
            if self.max_bytes.is_some() {
                return Err(FileBackendError::StdoutRotation { key: "max_bytes" });
            }
            if self.rotate_every.is_some() {
                return Err(FileBackendError::StdoutRotation {
                    key: "rotate_every",
                });
            }
            check_stdout_open().map_err(|source| FileBackendError::StdoutClosed { source })?;
            return Ok(FileBackend {
                catalog_path,
                ..FileBackend::stdout()
            });
        }
        let (file, size) = open_repaired(&self.path).map_err(|source| FileBackendError::Open {
            path: self.path.clone(),
            source,
        })?;
        let now = Instant::now();
        let target = format!("`{}`", self.path.display());
        let state = FileState {
            path: self.path,
            file: Some(file),
            size,
            opened_at: now,
            last_sync: now,
            dirty: false,
            not_written_back: 0,
            replaced: 0,
            max_bytes: self.max_bytes,
            rotate_every: self.rotate_every,
            fsync: self.fsync,
        };
        Ok(FileBackend {
            sink: Arc::new(Mutex::new(Sink::File(state))),
            target,
            interval_sync_started: AtomicBool::new(false),
            spare_buffer: Mutex::default(),
            catalog_path,
        })
    }
}

/// Fails when the process's stdout is closed, which would otherwise count
/// every event as delivered: Rust's runtime opens `/dev/null` (read-write)
/// in place of a standard stream that is closed at start (`>&-`), and its
/// stdout swallows the EBADF of one closed later. A `/dev/null` opened by
/// a shell for `> /dev/null` is write-only, and accepted.
#[cfg(unix)]
fn check_stdout_open() -> std::io::Result<()> {
    use std::os::fd::AsFd;
    let stdout = File::from(std::io::stdout().as_fd().try_clone_to_owned()?);
    if is_runtime_dev_null(&stdout) {
        return Err(std::io::Error::new(
            ErrorKind::NotConnected,
            "it was closed when the process started (`>&-`)",
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_stdout_open() -> std::io::Result<()> {
    Ok(())
}

/// Whether fd 1 is `/dev/null` opened read-write, as Rust's runtime does for
/// a closed stdout (Linux: the flags are in `/proc/self/fdinfo/1`).
#[cfg(unix)]
fn is_runtime_dev_null(stdout: &File) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let (Ok(open), Ok(null)) = (stdout.metadata(), std::fs::metadata("/dev/null")) else {
        return false;
    };
    if !open.file_type().is_char_device() || open.rdev() != null.rdev() {
        return false;
    }
    const O_ACCMODE: u32 = 0o3;
    const O_RDWR: u32 = 0o2;
    std::fs::read_to_string("/proc/self/fdinfo/1")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("flags:"))
                .and_then(|flags| u32::from_str_radix(flags.trim(), 8).ok())
        })
        .is_some_and(|flags| flags & O_ACCMODE == O_RDWR)
}

/// `events.jsonl` → `events.catalog.json`, in the same directory.
fn default_catalog_path(path: &Path) -> PathBuf {
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!("{stem}.catalog.json"))
}

/// Merges `entries` into the catalog file at `path`, replacing it atomically.
fn merge_catalog(path: &Path, entries: &[Arc<CatalogEntry>]) -> std::io::Result<()> {
    use serde_json::Value;
    let mut merged: std::collections::BTreeMap<String, Value> = Default::default();
    match std::fs::read(path) {
        Ok(bytes) => {
            let existing: Value = serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(
                    ErrorKind::InvalidData,
                    format!("`{}` is not a catalog file: {e}", path.display()),
                )
            })?;
            for entry in existing["event_types"].as_array().into_iter().flatten() {
                if let Some(key) = entry["key"].as_str() {
                    merged.insert(key.to_owned(), entry.clone());
                }
            }
        }
        Err(error) if error.kind() == ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    for entry in entries {
        merged.insert(entry.key.clone(), entry.to_json());
    }
    let document = serde_json::json!({"event_types": merged.into_values().collect::<Vec<_>>()});
    let mut text = serde_json::to_vec_pretty(&document).map_err(std::io::Error::other)?;
    text.push(b'\n');
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".{}.tmp", std::process::id()));
    let temporary = PathBuf::from(temporary);
    let written = (|| {
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
        let mut file = options.open(&temporary)?;
        // Like the events file, whatever the umask.
        #[cfg(unix)]
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(FILE_MODE))?;
        file.write_all(&text)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

/// Writes events as JSON lines to a file or stdout (engine `file`).
///
/// Build one with [`FileBackend::builder`] or [`FileBackend::stdout`], or
/// from a config entry with `engine = "file"` (see the [crate docs](crate)).
#[derive(Debug)]
pub struct FileBackend {
    sink: Arc<Mutex<Sink>>,
    /// The destination, for error messages: `` `path` `` or `stdout`.
    target: String,
    interval_sync_started: AtomicBool,
    /// The batch buffer, kept between batches.
    spare_buffer: Mutex<Vec<u8>>,
    /// Where catalog entries go, if anywhere.
    catalog_path: Option<PathBuf>,
}

#[derive(Debug)]
enum Sink {
    Stdout,
    /// Stdout's reader closed the pipe: nothing more is written.
    StdoutGone,
    File(FileState),
    Closed,
}

#[derive(Debug)]
struct FileState {
    path: PathBuf,
    /// `None` between a rotation's rename and the opening of the fresh file.
    file: Option<File>,
    size: u64,
    opened_at: Instant,
    last_sync: Instant,
    /// Written since the last fsync.
    dirty: bool,
    /// Bytes at the end of the file written since its writeback was last
    /// started (see [`WRITEBACK_BYTES`]).
    not_written_back: u64,
    /// How often the file at `path` was found deleted or replaced and reopened.
    replaced: u64,
    max_bytes: Option<u64>,
    rotate_every: Option<Duration>,
    fsync: FsyncPolicy,
}

impl FileBackend {
    /// A builder for a backend writing to `path` (`"-"` for stdout).
    ///
    /// ```
    /// use std::time::Duration;
    /// use eventtracking_file::{FileBackend, FsyncPolicy};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let backend = FileBackend::builder(dir.path().join("logs/events.jsonl"))
    ///     .with_max_bytes(64 << 20)
    ///     .with_rotate_every(Duration::from_secs(24 * 3600))
    ///     .with_fsync(FsyncPolicy::Interval(Duration::from_millis(500)))
    ///     .build()
    ///     .unwrap();
    /// assert!(dir.path().join("logs/events.jsonl").exists());
    /// # drop(backend);
    ///
    /// let err = FileBackend::builder("-").with_max_bytes(1024).build().unwrap_err();
    /// assert!(err.to_string().contains("max_bytes"));
    /// ```
    pub fn builder(path: impl AsRef<Path>) -> FileBackendBuilder {
        FileBackendBuilder {
            path: path.as_ref().to_owned(),
            max_bytes: None,
            rotate_every: None,
            fsync: FsyncPolicy::Never,
            catalog_path: None,
        }
    }

    /// A backend writing to stdout (what `path = "-"` builds).
    pub fn stdout() -> Self {
        FileBackend {
            sink: Arc::new(Mutex::new(Sink::Stdout)),
            target: "stdout".to_owned(),
            interval_sync_started: AtomicBool::new(false),
            spare_buffer: Mutex::default(),
            catalog_path: None,
        }
    }

    /// Where the catalog of event types is kept, if anywhere.
    pub fn catalog_path(&self) -> Option<&Path> {
        self.catalog_path.as_deref()
    }

    /// How many times the file at the path was found deleted or replaced by
    /// someone else (and a new file opened there); 0 for stdout.
    pub fn reopened_count(&self) -> u64 {
        match &*lock(&self.sink) {
            Sink::File(state) => state.replaced,
            _ => 0,
        }
    }

    /// Runs `job` on the sink on tokio's blocking pool.
    async fn on_sink<R: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Sink) -> std::io::Result<R> + Send + 'static,
    ) -> std::io::Result<R> {
        let sink = self.sink.clone();
        tokio::task::spawn_blocking(move || job(&mut lock(&sink)))
            .await
            .unwrap_or_else(|join| {
                Err(std::io::Error::other(format!("writer task failed: {join}")))
            })
    }

    /// With [`FsyncPolicy::Interval`]: starts (once) a task that fsyncs
    /// unsynced writes; it ends when the backend is closed or dropped.
    fn start_interval_sync(&self, every: Duration) {
        if every.is_zero() || self.interval_sync_started.swap(true, Ordering::Relaxed) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.interval_sync_started.store(false, Ordering::Relaxed);
            return;
        };
        let sink: Weak<Mutex<Sink>> = Arc::downgrade(&self.sink);
        let target = self.target.clone();
        runtime.spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(sink) = sink.upgrade() else { break };
                let job = move || match &mut *lock(&sink) {
                    Sink::File(state) => state.sync_if_due(every).map(|()| true),
                    Sink::Stdout | Sink::StdoutGone | Sink::Closed => Ok(false),
                };
                match tokio::task::spawn_blocking(job).await {
                    Ok(Ok(true)) => {}
                    Ok(Ok(false)) | Err(_) => break,
                    Ok(Err(error)) => {
                        tracing::warn!(file = %target, %error, "eventtracking-file: interval fsync failed");
                    }
                }
            }
        });
    }
}

/// Once this many bytes are written and not fsynced, the OS is asked to
/// start writing them to disk, without waiting. Otherwise they stay dirty in
/// the page cache until the kernel's own threshold (a tenth of memory) or
/// an fsync: the `flush` or shutdown after a bulk run then waited for all of
/// them at once (a tenth of a second per 300 MB on this project's machine).
const WRITEBACK_BYTES: u64 = 16 << 20;

/// Starts the writeback of `len` bytes at `offset`. `POSIX_FADV_DONTNEED`
/// starts writing dirty pages back and drops only pages already clean, so
/// bytes just written stay cached. Advice: its failure is harmless.
#[cfg(target_os = "linux")]
fn start_writeback(file: &File, offset: u64, len: u64) -> std::io::Result<()> {
    let advice = rustix::fs::Advice::DontNeed;
    rustix::fs::fadvise(file, offset, std::num::NonZeroU64::new(len), advice)?;
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File, _offset: u64, _len: u64) -> std::io::Result<()> {
    Ok(())
}

impl FileState {
    fn should_rotate(&self, incoming: u64) -> bool {
        let too_big = self.max_bytes.is_some_and(|max| self.size + incoming > max);
        let too_old = self
            .rotate_every
            .is_some_and(|age| self.opened_at.elapsed() >= age);
        self.size > 0 && (too_big || too_old)
    }

    /// Renames the current file away; the next write opens a fresh one.
    fn rotate(&mut self) -> std::io::Result<()> {
        if let Some(file) = &self.file {
            file.sync_data()?;
        }
        let rotated = rotated_name(&self.path);
        match std::fs::rename(&self.path, &rotated) {
            Ok(()) => {
                tracing::debug!(from = %self.path.display(), to = %rotated.display(), "eventtracking-file: rotated");
            }
            // Moved or deleted by someone else: just start a fresh file.
            Err(error) if error.kind() == ErrorKind::NotFound => {
                tracing::warn!(path = %self.path.display(), "eventtracking-file: the file vanished; opening a new one");
            }
            Err(error) => return Err(error),
        }
        self.file = None;
        Ok(())
    }

    /// Appends one buffer of whole lines, rotating first if due. A file
    /// deleted or replaced by someone else is noticed first (one `stat` of
    /// the path, one of the open file), so the batch goes to a new file at
    /// the path.
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<()> {
        if let Some(file) = &self.file {
            if !path_names(&self.path, file)? {
                self.forget_replaced("deleted or replaced");
            }
        }
        self.write_checked(buffer)
    }

    /// [`write`](Self::write) once the open file is known to be the one at
    /// the path. The batch is acknowledged only if the file still has a
    /// name after the write: bytes written into a file deleted meanwhile are
    /// written again into a new one, never reported as delivered.
    fn write_checked(&mut self, buffer: &[u8]) -> std::io::Result<()> {
        let incoming = buffer.len() as u64;
        if self.file.is_some() && self.should_rotate(incoming) {
            self.rotate()?;
        }
        for _ in 0..MAX_REWRITES {
            self.append(buffer)?;
            match &self.file {
                Some(file) if is_unlinked(file)? => {
                    self.forget_replaced("deleted while a batch was written to it");
                }
                _ => return Ok(()),
            }
        }
        Err(std::io::Error::other(format!(
            "the file was deleted {MAX_REWRITES} times while writing one batch"
        )))
    }

    /// Drops the open file, which no longer has the path's name (counted and logged).
    fn forget_replaced(&mut self, what: &str) {
        self.replaced += 1;
        tracing::warn!(
            path = %self.path.display(),
            reopened = self.replaced,
            "eventtracking-file: `{}` was {what}; writing to a new file at that path",
            self.path.display()
        );
        self.file = None;
    }

    /// Opens the file if needed and appends the buffer (fsynced as the policy says).
    fn append(&mut self, buffer: &[u8]) -> std::io::Result<()> {
        let incoming = buffer.len() as u64;
        let file = match &mut self.file {
            Some(file) => file,
            None => {
                let (file, size) = open_repaired(&self.path)?;
                self.size = size;
                self.opened_at = Instant::now();
                // The bytes not handed to the writeback were the old file's.
                self.not_written_back = 0;
                self.file.insert(file)
            }
        };
        let sync = match self.fsync {
            FsyncPolicy::Never => false,
            FsyncPolicy::EveryBatch => true,
            FsyncPolicy::Interval(every) => self.last_sync.elapsed() >= every,
        };
        let result = file
            .write_all(buffer)
            .and_then(|()| if sync { file.sync_data() } else { Ok(()) });
        if let Err(error) = result {
            // Cut what reached the file, so the retry leaves whole lines only.
            if let Err(cut) = file.set_len(self.size) {
                tracing::error!(path = %self.path.display(), error = %cut, "eventtracking-file: cannot cut a failed write");
            }
            return Err(error);
        }
        self.size += incoming;
        if sync {
            self.last_sync = Instant::now();
            self.dirty = false;
            self.not_written_back = 0;
        } else {
            self.dirty = true;
            self.not_written_back += incoming;
            if self.not_written_back >= WRITEBACK_BYTES {
                let start = self.size.saturating_sub(self.not_written_back);
                if let Err(error) = start_writeback(file, start, self.not_written_back) {
                    tracing::debug!(path = %self.path.display(), %error, "eventtracking-file: could not start the writeback");
                }
                self.not_written_back = 0;
            }
        }
        Ok(())
    }

    fn sync(&mut self) -> std::io::Result<()> {
        if let Some(file) = &self.file {
            file.sync_data()?;
        }
        self.last_sync = Instant::now();
        self.dirty = false;
        self.not_written_back = 0;
        Ok(())
    }

    fn sync_if_due(&mut self, every: Duration) -> std::io::Result<()> {
        if self.dirty && self.last_sync.elapsed() >= every {
            self.sync()?;
        }
        Ok(())
    }
}

/// How often one batch is written again because its file was deleted meanwhile.
const MAX_REWRITES: usize = 3;

/// Whether `path` names the open `file` (same device and inode); false when
/// the path is gone or names another file (deleted, renamed or replaced).
#[cfg(unix)]
fn path_names(path: &Path, file: &File) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let open = file.metadata()?;
    match std::fs::metadata(path) {
        Ok(named) => Ok(named.dev() == open.dev() && named.ino() == open.ino()),
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(false),
        Err(error) => Err(error),
    }
}

#[cfg(not(unix))]
fn path_names(_path: &Path, _file: &File) -> std::io::Result<bool> {
    Ok(true)
}

/// Whether the open file has lost its last name (deleted): what is written
/// to it is lost when it is closed.
#[cfg(unix)]
fn is_unlinked(file: &File) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    Ok(file.metadata()?.nlink() == 0)
}

#[cfg(not(unix))]
fn is_unlinked(_file: &File) -> std::io::Result<bool> {
    Ok(false)
}

/// Opens `path` for appending, creating it (mode 0640) and its directory.
/// An existing file that does not end with a newline is cut back to its
/// last one. Returns the file and its length.
fn open_repaired(path: &Path) -> std::io::Result<(File, u64)> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(parent) = parent {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = OpenOptions::new();
    options.read(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
    match options.clone().create_new(true).open(path) {
        Ok(file) => {
            // The umask may have narrowed the mode given at creation.
            #[cfg(unix)]
            file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(FILE_MODE))?;
            // Make the new directory entry durable too (best effort: not every
            // file system can fsync a directory).
            if let Ok(dir) = File::open(parent.unwrap_or(Path::new("."))) {
                let _ = dir.sync_all();
            }
            return Ok((file, 0));
        }
        Err(error) if error.kind() == ErrorKind::AlreadyExists => {}
        Err(error) => return Err(error),
    }
    let mut file = options.open(path)?;
    let len = file.metadata()?.len();
    let keep = complete_prefix_len(&mut file, len)?;
    if keep < len {
        file.set_len(keep)?;
        tracing::warn!(
            path = %path.display(),
            cut_bytes = len - keep,
            "eventtracking-file: cut a torn last line left by an interrupted writer"
        );
    }
    Ok((file, keep))
}

/// The length of the file up to and including its last newline.
fn complete_prefix_len(file: &mut File, len: u64) -> std::io::Result<u64> {
    const CHUNK: u64 = 64 * 1024;
    let mut buffer = vec![0u8; CHUNK.min(len) as usize];
    let mut end = len;
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

/// `dir/events.jsonl` → `dir/events.20261129T015239.123456Z.jsonl`, with a
/// `-N` suffix after the time if that name is taken.
fn rotated_name(path: &Path) -> PathBuf {
    let stamp: String = humantime::format_rfc3339_micros(SystemTime::now())
        .to_string()
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let ext = path
        .extension()
        .map(|ext| format!(".{}", ext.to_string_lossy()))
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
        if batch.is_empty() {
            return Ok(());
        }
        // Serialized straight into the batch buffer (or copied from the
        // event's cached JSON when another backend already made it).
        // One buffer, reused batch after batch: a fresh megabyte per batch
        // costs more in the allocator than the serialization itself.
        let mut buffer = std::mem::take(&mut *lock(&self.spare_buffer));
        buffer.clear();
        for event in batch {
            event.write_json(&mut buffer);
            buffer.push(b'\n');
        }
        let (written, buffer) = self
            .on_sink(move |sink| {
                let written = match sink {
                    Sink::File(state) => state.write(&buffer).map(|()| state.fsync),
                    Sink::Stdout => {
                        let mut out = std::io::stdout().lock();
                        let written = out
                            .write_all(&buffer)
                            .and_then(|()| out.flush())
                            .map(|()| FsyncPolicy::Never);
                        if matches!(&written, Err(e) if e.kind() == ErrorKind::BrokenPipe) {
                            drop(out);
                            *sink = Sink::StdoutGone;
                        }
                        written
                    }
                    Sink::StdoutGone => Err(ErrorKind::BrokenPipe.into()),
                    Sink::Closed => Err(ErrorKind::NotConnected.into()),
                };
                Ok((written, buffer))
            })
            .await
            .unwrap_or_else(|error| (Err(error), Vec::new()));
        *lock(&self.spare_buffer) = buffer;
        match written {
            Ok(FsyncPolicy::Interval(every)) => {
                self.start_interval_sync(every);
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(error) if error.kind() == ErrorKind::NotConnected => {
                Err(BackendError::AlreadyShutdown)
            }
            // Nobody reads any more (`… | head -1`): not worth dead-lettering.
            Err(error) if error.kind() == ErrorKind::BrokenPipe => Err(BackendError::Closed(
                format!("{} closed by its reader ({error})", self.target),
            )),
            Err(error) => Err(BackendError::Retryable(format!(
                "cannot write to {}: {error}",
                self.target
            ))),
        }
    }

    async fn flush(&self) -> BackendResult {
        self.on_sink(|sink| match sink {
            Sink::File(state) => state.sync(),
            Sink::Stdout => std::io::stdout().lock().flush(),
            Sink::StdoutGone | Sink::Closed => Ok(()),
        })
        .await
        .map_err(|error| BackendError::Retryable(format!("cannot fsync {}: {error}", self.target)))
    }

    async fn publish_event_types(&self, types: &[Arc<CatalogEntry>]) -> BackendResult {
        let Some(path) = self.catalog_path.clone() else {
            return Ok(());
        };
        let entries = types.to_vec();
        let shown = path.display().to_string();
        tokio::task::spawn_blocking(move || merge_catalog(&path, &entries))
            .await
            .unwrap_or_else(|join| Err(std::io::Error::other(join.to_string())))
            .map_err(|error| {
                BackendError::Retryable(format!("cannot write the catalog `{shown}`: {error}"))
            })
    }

    async fn shutdown(&self) -> BackendResult {
        self.on_sink(|sink| {
            match sink {
                Sink::File(state) => state.sync()?,
                Sink::Stdout => std::io::stdout().lock().flush()?,
                Sink::StdoutGone | Sink::Closed => {}
            }
            *sink = Sink::Closed;
            Ok(())
        })
        .await
        .map_err(|error| {
            BackendError::Retryable(format!("cannot fsync {} at shutdown: {error}", self.target))
        })
    }
}

/// The options of engine `file`; see the crate docs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    path: String,
    max_bytes: Option<u64>,
    rotate_every: Option<String>,
    fsync: Option<String>,
    fsync_interval_ms: Option<u64>,
    catalog_path: Option<String>,
}

fn build(config: &ComponentConfig) -> Result<Box<dyn Backend>, BuildError> {
    let options: Options = config.parse_options()?;
    if options.path.is_empty() {
        return Err(config.invalid("`path` is empty (use \"-\" for stdout)"));
    }
    let mut builder = FileBackend::builder(&options.path);
    if let Some(catalog_path) = &options.catalog_path {
        builder = builder
            .with_catalog_path((!catalog_path.is_empty()).then(|| PathBuf::from(catalog_path)));
    }
    if let Some(max) = options.max_bytes {
        if max == 0 {
            return Err(config.invalid("`max_bytes` = 0: must be at least 1"));
        }
        builder = builder.with_max_bytes(max);
    }
    if let Some(text) = &options.rotate_every {
        let age = humantime::parse_duration(text).map_err(|e| {
            config.invalid(format!(
                "`rotate_every` = {text:?}: {e} (expected a duration such as \"1h\" or \"30s\")"
            ))
        })?;
        if age.is_zero() {
            return Err(config.invalid(format!(
                "`rotate_every` = {text:?}: must be longer than zero"
            )));
        }
        builder = builder.with_rotate_every(age);
    }
    let fsync = match (options.fsync.as_deref(), options.fsync_interval_ms) {
        (None | Some("never"), None) => FsyncPolicy::Never,
        (Some("batch"), None) => FsyncPolicy::EveryBatch,
        (Some("interval"), None) => FsyncPolicy::Interval(Duration::from_secs(1)),
        (Some("interval"), Some(0)) => {
            return Err(config.invalid("`fsync_interval_ms` = 0: must be at least 1"));
        }
        (Some("interval"), Some(ms)) => FsyncPolicy::Interval(Duration::from_millis(ms)),
        (None | Some("never" | "batch"), Some(ms)) => {
            return Err(config.invalid(format!(
                "`fsync_interval_ms` = {ms} needs `fsync = \"interval\"`"
            )));
        }
        (Some(other), _) => {
            return Err(config.invalid(format!(
                "`fsync` = {other:?}: expected \"never\", \"batch\" or \"interval\""
            )));
        }
    };
    let backend = builder
        .with_fsync(fsync)
        .build()
        .map_err(|error| match error {
            FileBackendError::StdoutRotation { .. } => config.invalid(error.to_string()),
            FileBackendError::Open { .. } | FileBackendError::StdoutClosed { .. } => {
                config.startup_error(error.to_string(), error)
            }
        })?;
    Ok(Box::new(backend))
}

eventtracking_core::register_backend! {
    BackendRegistration::new(
        "file",
        "JSON lines to a file (`path`, \"-\" for stdout), with size/time rotation and an fsync policy",
        build,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(i: u64) -> Arc<Event> {
        Arc::new(Event::new("unit.test", json!({ "i": i })).unwrap())
    }

    #[test]
    fn rotated_names_keep_stem_and_extension_and_avoid_collisions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let name = rotated_name(&path);
        let text = name.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(name.parent(), Some(dir.path()));
        assert!(
            text.starts_with("events.2") && text.ends_with("Z.jsonl"),
            "{text}"
        );
        assert_eq!(
            text.len(),
            "events.20261129T015239.123456Z.jsonl".len(),
            "{text}"
        );
        let stamp = &text["events.".len()..text.len() - "Z.jsonl".len()];
        assert_eq!(&stamp[8..9], "T", "{text}");
        assert_eq!(&stamp[15..16], ".", "{text}");
        assert!(
            stamp
                .chars()
                .filter(|c| *c != 'T' && *c != '.')
                .all(|c| c.is_ascii_digit()),
            "{text}"
        );

        // A taken name gets a counter.
        std::fs::write(&name, "").unwrap();
        let stem = text.trim_end_matches(".jsonl");
        let mut taken = vec![name.clone()];
        for n in 1..=2 {
            let next = PathBuf::from(format!("{}-{n}.jsonl", dir.path().join(stem).display()));
            std::fs::write(&next, "").unwrap();
            taken.push(next);
        }
        // The clock has moved on, so only check that an existing name is never returned.
        for _ in 0..100 {
            assert!(!taken.contains(&rotated_name(&path)));
        }
        let bare = rotated_name(Path::new("/tmp/x/events"));
        let bare = bare.file_name().unwrap().to_string_lossy();
        assert!(
            bare.starts_with("events.2") && bare.ends_with('Z'),
            "{bare}"
        );
    }

    #[test]
    fn complete_prefix_spans_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.jsonl");
        // A newline early, then more than two chunks without one.
        let mut content = b"{}\n".to_vec();
        content.extend(std::iter::repeat_n(b'x', 150 * 1024));
        std::fs::write(&path, &content).unwrap();
        let (_, size) = open_repaired(&path).unwrap();
        assert_eq!(size, 3);
        assert_eq!(std::fs::read(&path).unwrap(), b"{}\n");

        std::fs::write(&path, vec![b'y'; 70 * 1024]).unwrap();
        let (_, size) = open_repaired(&path).unwrap();
        assert_eq!(size, 0);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn interval_policy_fsyncs_idle_writes() {
        let dir = tempfile::tempdir().unwrap();
        let every = Duration::from_millis(30);
        let backend = FileBackend::builder(dir.path().join("e.jsonl"))
            .with_fsync(FsyncPolicy::Interval(every))
            .build()
            .unwrap();
        let dirty = |backend: &FileBackend| match &*lock(&backend.sink) {
            Sink::File(state) => state.dirty,
            _ => unreachable!(),
        };
        backend.send_batch(&[event(1)]).await.unwrap();
        // The first write comes right after opening: not yet due, so not synced.
        assert!(dirty(&backend));
        tokio::time::sleep(every * 5).await;
        assert!(!dirty(&backend), "the interval task did not fsync");
        tokio::time::sleep(every * 2).await;
        backend.send_batch(&[event(2)]).await.unwrap();
        // Due at write time: synced with the batch.
        assert!(!dirty(&backend));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn policies_decide_when_a_batch_is_synced() {
        let dir = tempfile::tempdir().unwrap();
        for (policy, synced) in [(FsyncPolicy::Never, false), (FsyncPolicy::EveryBatch, true)] {
            let backend = FileBackend::builder(dir.path().join(format!("{policy:?}.jsonl")))
                .with_fsync(policy)
                .build()
                .unwrap();
            backend.send_batch(&[event(1)]).await.unwrap();
            let dirty = match &*lock(&backend.sink) {
                Sink::File(state) => state.dirty,
                _ => unreachable!(),
            };
            assert_eq!(dirty, !synced, "{policy:?}");
            backend.flush().await.unwrap();
            assert!(matches!(&*lock(&backend.sink), Sink::File(state) if !state.dirty));
        }
    }

    /// Runs `f` on the backend's open file state (the sink of a file backend).
    fn with_state<R>(backend: &FileBackend, f: impl FnOnce(&mut FileState) -> R) -> R {
        match &mut *lock(&backend.sink) {
            Sink::File(state) => f(state),
            _ => unreachable!("a file backend"),
        }
    }

    /// One JSON line's worth of bytes: `len - 1` of them and a newline.
    fn line_of(len: usize) -> Vec<u8> {
        let mut line = vec![b'x'; len - 1];
        line.push(b'\n');
        line
    }

    #[test]
    fn a_batch_written_into_a_deleted_file_is_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.jsonl");
        let backend = FileBackend::builder(&path).build().unwrap();
        with_state(&backend, |state| {
            state.write(b"{\"i\":1}\n").unwrap();
            // Deleted after the check before the write, before the write itself:
            // the bytes land in the unlinked file, which the check after the
            // write notices.
            std::fs::remove_file(&path).unwrap();
            state.write_checked(b"{\"i\":2}\n").unwrap();
            assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"i\":2}\n");
            assert_eq!(state.replaced, 1);
            // A rename between the check and the write keeps the batch where it
            // went (the file still has a name); the next batch goes to a new file.
            let renamed = dir.path().join("renamed.jsonl");
            std::fs::rename(&path, &renamed).unwrap();
            state.write_checked(b"{\"i\":3}\n").unwrap();
            state.write(b"{\"i\":4}\n").unwrap();
            assert_eq!(
                std::fs::read_to_string(&renamed).unwrap(),
                "{\"i\":2}\n{\"i\":3}\n"
            );
            assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"i\":4}\n");
            assert_eq!(state.replaced, 2);
        });
    }

    /// Under `fsync = "never"`, every `WRITEBACK_BYTES` written start their
    /// writeback (the count of bytes not yet handed to it starts again);
    /// an fsync policy that syncs every batch never needs it. The advice
    /// itself is one the kernel takes for the file.
    #[test]
    fn every_writeback_bytes_written_start_their_writeback() {
        let dir = tempfile::tempdir().unwrap();
        let chunk = (WRITEBACK_BYTES / 4) as usize;
        for (fsync, expected) in [
            (
                FsyncPolicy::Never,
                [1, 2, 3, 0, 1].map(|n| n * chunk as u64),
            ),
            (FsyncPolicy::EveryBatch, [0; 5]),
        ] {
            let path = dir.path().join(format!("{fsync:?}.jsonl"));
            let backend = FileBackend::builder(&path)
                .with_fsync(fsync)
                .build()
                .unwrap();
            with_state(&backend, |state| {
                for expected in expected {
                    state.write(&line_of(chunk)).unwrap();
                    assert_eq!(state.not_written_back, expected, "{fsync:?}");
                }
                assert_eq!(state.size, 5 * chunk as u64);
            });
        }
        let file = File::options()
            .append(true)
            .open(dir.path().join("Never.jsonl"))
            .unwrap();
        start_writeback(&file, 0, WRITEBACK_BYTES).unwrap();
    }

    /// The bytes not yet handed to the writeback belong to the open file: a
    /// rotation (or a file replaced under the backend) starts the count
    /// again, so the range asked for is always inside the new file.
    #[test]
    fn a_new_file_starts_the_writeback_count_again() {
        let dir = tempfile::tempdir().unwrap();
        let chunk = (WRITEBACK_BYTES * 3 / 4) as usize;
        let backend = FileBackend::builder(dir.path().join("e.jsonl"))
            .with_max_bytes(WRITEBACK_BYTES)
            .build()
            .unwrap();
        with_state(&backend, |state| {
            state.write(&line_of(chunk)).unwrap();
            // Rotated before this batch: the new file holds only this batch.
            state.write(&line_of(chunk - chunk / 2)).unwrap();
            assert_eq!(state.size, (chunk - chunk / 2) as u64);
            assert_eq!(state.not_written_back, state.size);
        });
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_closes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let backend = FileBackend::builder(dir.path().join("e.jsonl"))
            .build()
            .unwrap();
        backend.send_batch(&[event(1)]).await.unwrap();
        backend.shutdown().await.unwrap();
        assert!(matches!(&*lock(&backend.sink), Sink::Closed));
        let err = backend.send_batch(&[event(2)]).await.unwrap_err();
        assert!(matches!(err, BackendError::AlreadyShutdown), "{err}");
        backend.flush().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stdout_backend_flushes() {
        let backend = FileBackend::stdout();
        backend.send_batch(&[]).await.unwrap();
        backend.flush().await.unwrap();
        backend.shutdown().await.unwrap();
        let built = FileBackend::builder("-")
            .with_fsync(FsyncPolicy::EveryBatch)
            .build()
            .unwrap();
        assert_eq!(built.target, "stdout");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn write_errors_are_retryable_and_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        let path = sub.join("e.jsonl");
        let backend = FileBackend::builder(&path)
            .with_max_bytes(10)
            .build()
            .unwrap();
        backend.send_batch(&[event(1)]).await.unwrap();
        // The next batch rotates: make renaming the file impossible.
        std::fs::remove_dir_all(&sub).unwrap();
        std::fs::write(&sub, "not a directory").unwrap();
        let err = backend.send_batch(&[event(2)]).await.unwrap_err();
        assert!(err.is_retryable(), "{err}");
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("os error"), "{message}");
        // Once the path is usable again the retry succeeds, into a fresh file
        // (the old one is gone, so there is nothing to rename).
        std::fs::remove_file(&sub).unwrap();
        backend.send_batch(&[event(2)]).await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1);
        assert_eq!(std::fs::read_dir(&sub).unwrap().count(), 1);
    }
}
