//! How a [`DiskBuffer`](super::DiskBuffer) is bounded and synced.

use std::time::Duration;

/// When appended records are fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FsyncPolicy {
    /// Every record before [`append`](super::DiskBuffer::append) returns:
    /// an `Ok` means the record survives a power loss.
    Always,
    /// At most once per interval, by
    /// [`sync_if_due`](super::DiskBuffer::sync_if_due), which the owner
    /// calls on a timer (a tracker's delivery worker does, a few times per
    /// interval), and at close; never by an append, so that an emit does
    /// not wait for the disk. Records are held in memory until then (or
    /// until 64 KiB are pending, or the reader reaches them): a crash, of
    /// the process or of the machine, loses about the last interval. The ledger (the read
    /// position, stored after each acknowledgement) is fsynced at most once
    /// per interval too: a machine crash may take it back, and then records
    /// are read again (at least once), never lost.
    Interval(Duration),
    /// Never by the buffer: records are written to the file when 64 KiB are
    /// pending, when the reader reaches them, and at
    /// [`sync`](super::DiskBuffer::sync) and close, and the OS writes them
    /// back when it likes. A process crash loses what was pending. The
    /// ledger is still replaced atomically, but without fsync.
    Never,
}

impl Default for FsyncPolicy {
    /// `Interval(100 ms)`.
    fn default() -> Self {
        FsyncPolicy::Interval(Duration::from_millis(100))
    }
}

/// The options of a [`DiskBuffer`](super::DiskBuffer), built from
/// [`Default`] with the `with_*` methods.
///
/// ```
/// use std::time::Duration;
/// use eventtracking_engine::buffer::{DiskBufferOptions, FsyncPolicy};
///
/// let options = DiskBufferOptions::default()
///     .with_max_bytes(64 << 20)
///     .with_segment_bytes(4 << 20)
///     .with_fsync(FsyncPolicy::Always);
/// assert_eq!(options.max_bytes(), 64 << 20);
/// assert_eq!(DiskBufferOptions::default().fsync(), FsyncPolicy::Interval(Duration::from_millis(100)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiskBufferOptions {
    max_bytes: u64,
    segment_bytes: u64,
    fsync: FsyncPolicy,
}

impl Default for DiskBufferOptions {
    /// 1 GiB in 64 MiB segments, fsync every 100 ms.
    fn default() -> Self {
        DiskBufferOptions {
            max_bytes: 1 << 30,
            segment_bytes: 64 << 20,
            fsync: FsyncPolicy::default(),
        }
    }
}

impl DiskBufferOptions {
    /// The most bytes the segment files may hold together (headers
    /// included); an append past it is answered
    /// [`AppendError::Full`](super::AppendError::Full).
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// The size at which a segment is closed and the next one started
    /// (a segment holds at least one record, however large). Space is freed
    /// a whole segment at a time, so at most a quarter of `max_bytes` is
    /// used.
    pub fn with_segment_bytes(mut self, segment_bytes: u64) -> Self {
        self.segment_bytes = segment_bytes;
        self
    }

    /// When records are fsynced.
    pub fn with_fsync(mut self, fsync: FsyncPolicy) -> Self {
        self.fsync = fsync;
        self
    }

    /// See [`with_max_bytes`](Self::with_max_bytes).
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// See [`with_segment_bytes`](Self::with_segment_bytes).
    pub fn segment_bytes(&self) -> u64 {
        self.segment_bytes
    }

    /// See [`with_fsync`](Self::with_fsync).
    pub fn fsync(&self) -> FsyncPolicy {
        self.fsync
    }
}
