//! A durable, bounded, per-backend disk buffer: the storage layer of
//! issue 14, used by the delivery engine for backends with `buffer =
//! "disk"` (see [`DeliveryConfig`](crate::DeliveryConfig)).
//!
//! One [`DiskBuffer`] holds the records of ONE backend in one directory:
//! emitting threads [`append`](DiskBuffer::append) event lines, one worker
//! [`read`](DiskBuffer::read)s them in order and
//! [`acknowledge`](DiskBuffer::acknowledge)s them once delivered, possibly
//! out of order; after a restart, reading resumes after the acknowledged
//! prefix (at least once after a crash, nothing again after a clean close).
//!
//! # Layout
//!
//! ```text
//! DIR/segment-00000000000000000000.etb   append-only segments, numbered in order
//! DIR/segment-00000000000000000001.etb
//! DIR/ledger                             where reading resumes, replaced atomically
//! ```
//!
//! A segment is a 32-byte header (magic `ETBUFSEG`, format version, segment
//! number, first record id, CRC) and then records, each a 20-byte frame
//! (marker, payload length, record id, CRC-32 of length, id and payload)
//! and the payload. The length's top bit marks a record appended by
//! [`append_event`](DiskBuffer::append_event): an event's line exactly as
//! written, which the delivery worker reads without validating its JSON
//! again ([`RecordRef::event_line`]); under the checksum, so a flipped mark
//! is a corrupt record. Records without it (appended as bytes, or by an
//! earlier version) are read as before. The ledger holds the acknowledged position (segment,
//! offset) and the next unacknowledged id, with a CRC. Integers are little
//! endian. Record ids increase by one per append, across segments and
//! restarts.
//!
//! # Why not an existing crate
//!
//! `okaywal` declares itself not for production with an unstable format, and
//! checkpoints a WAL into a store rather than consuming records;
//! `queue-file` is one ring-buffer file whose elements are removed only from
//! the head, with no per-record checksum to skip a bad record, and one sync
//! switch; `yaque` is async (mio, notify), commits in order only, and has
//! no byte bound answered "full"; `commitlog` keeps a Kafka-like log with
//! offset indexes and retention, not acknowledged deletion. None hands back
//! the bytes of a corrupt record for a dead-letter file, counts it and goes
//! on, or advances a persisted position over out-of-order
//! acknowledgements. The segment logic is small; checksums are `crc32fast`.
//!
//! # Corruption
//!
//! Never fatal and never a panic, whatever the files hold:
//! - at [`open`](DiskBuffer::open), the newest segment is scanned; bytes
//!   after its last valid record (a torn write, a bad checksum, garbage) are
//!   cut off (the file is truncated) and counted in
//!   [`BufferStats::corrupt_records`];
//! - bytes that are not a valid record but are followed by one (a flipped
//!   byte mid-segment, or a bad segment header) are skipped by
//!   [`read`](DiskBuffer::read), which finds the next record by its marker
//!   and checksum, counts them, and hands them back as
//!   [`ReadItem::Corrupt`] with their bytes, for the dead-letter file;
//! - a missing or corrupt ledger means reading from the oldest segment
//!   (logged with `tracing::warn!`).
//!
//! # Acknowledgements and space
//!
//! Every item read ([`ReadItem::Record`] and [`ReadItem::Corrupt`]) is in
//! flight until acknowledged ([`acknowledge`](DiskBuffer::acknowledge),
//! [`acknowledge_corrupt`](DiskBuffer::acknowledge_corrupt)), in any order.
//! The position advances over the longest acknowledged prefix of what was
//! read and is then written to the ledger (once per call, fsynced, under
//! [`FsyncPolicy::Always`]; once per call, not fsynced, under
//! [`FsyncPolicy::Never`]; at most once per interval, fsynced, under
//! [`FsyncPolicy::Interval`], and at every close): records acknowledged
//! beyond a gap, or after the last ledger written when the process or the
//! machine crashes, are read again.
//! Segments wholly before the position are deleted. Space is freed a
//! segment at a time (segments are at most a quarter of `max_bytes`); a
//! full buffer answers [`AppendError::Full`] and the caller applies its
//! overflow policy: [`append_timeout`](DiskBuffer::append_timeout) waits
//! for acknowledgements, [`drop_oldest`](DiskBuffer::drop_oldest) drops the
//! oldest segment, and dropping the new record is the caller's. A record
//! that can never fit is [`AppendError::TooLarge`].
//!
//! # Concurrency and the hot path
//!
//! Writers share one mutex; an append encodes the frame into an in-memory
//! pending buffer (64 KiB), written with one `write` when it fills, when the
//! reader catches up with it, at an fsync, or at a segment change. Under
//! [`FsyncPolicy::Always`] every append writes and fsyncs before returning
//! (fsyncs are not shared between threads); under
//! [`FsyncPolicy::Interval`] no append fsyncs (a sealed segment included):
//! [`sync_if_due`](DiskBuffer::sync_if_due) does, outside the writer's lock;
//! [`append_many`](DiskBuffer::append_many) fsyncs once for a batch.
//! The reader and acknowledgements share a second mutex; the byte and record
//! counts a third, with two condition variables: one wakes a reader
//! waiting for data ([`wait_for_data`](DiskBuffer::wait_for_data)), the
//! other writers waiting for space
//! ([`append_timeout`](DiskBuffer::append_timeout)).
//!
//! A directory is open in one [`DiskBuffer`] of a process at a time
//! ([`BufferError::InUse`]); two processes on one directory are not
//! detected (no lock file yet) and would interleave their segments.

mod error;
mod ledger;
mod options;
mod record;
mod segment;

pub use error::{AppendError, BufferError};
pub use options::{DiskBufferOptions, FsyncPolicy};

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::ops::Bound::{Excluded, Unbounded};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, LazyLock, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use eventtracking_core::sync::lock;
use eventtracking_core::Event;

use ledger::{Ledger, Position};
use record::{Parsed, Source, FRAME_HEADER};
use segment::SEGMENT_HEADER;

/// The fewest `max_bytes` in which an event can ever be buffered: one
/// segment header and the record of the smallest event line (a one-letter
/// name, no context, a `null` payload). A smaller bound holds no event.
pub fn smallest_event_buffer_bytes() -> u64 {
    static SMALLEST: LazyLock<u64> = LazyLock::new(|| {
        let line = Event::new("a", serde_json::Value::Null)
            .map_or(0, |event| event.to_json_bytes().len() as u64);
        SEGMENT_HEADER + FRAME_HEADER + line
    });
    *SMALLEST
}

/// Pending bytes an append may leave unwritten (under `Interval` and `Never`).
const PENDING_LIMIT: usize = 64 * 1024;

/// The reader's payload buffer is let go after a record larger than this.
const KEPT_PAYLOAD_CAPACITY: usize = 1 << 20;

/// The directories open in this process: two buffers on one directory would
/// interleave their segments.
static OPEN_DIRS: LazyLock<Mutex<HashSet<PathBuf>>> = LazyLock::new(Default::default);

/// The id of an appended record: increases by one per append, across
/// segments and restarts. Only the id of a record that never reached the
/// disk whole (lost in a crash before a sync, or cut as a torn tail) is
/// given again, to the next record appended after the restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordId(u64);

impl RecordId {
    /// The id of a number from [`get`](Self::get), e.g. kept by a caller
    /// between [`read`](DiskBuffer::read) and
    /// [`acknowledge`](DiskBuffer::acknowledge).
    pub const fn new(id: u64) -> Self {
        RecordId(id)
    }

    /// The id as a number.
    pub const fn get(self) -> u64 {
        self.0
    }
}

/// The id of a corrupt item handed back by [`DiskBuffer::read`], to
/// acknowledge it with [`DiskBuffer::acknowledge_corrupt`] once it is
/// dead-lettered. Valid in this process only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CorruptId(u64);

/// A record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BufferedRecord {
    /// Its id, to [`acknowledge`](DiskBuffer::acknowledge) it.
    pub id: RecordId,
    /// The bytes appended.
    pub payload: Vec<u8>,
    /// Written by an earlier process (a replay after a restart).
    pub replayed: bool,
    /// Appended by [`DiskBuffer::append_event`]: the payload is that
    /// event's [`Event::to_json_bytes`], unchanged (its checksum matched).
    pub event_line: bool,
}

/// Bytes of a segment that are not a valid record, skipped by the reader.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CorruptRecord {
    /// Its id, to [`acknowledge_corrupt`](DiskBuffer::acknowledge_corrupt) it.
    pub id: CorruptId,
    /// The segment's number.
    pub segment: u64,
    /// The segment file.
    pub path: PathBuf,
    /// Where the bytes start in it.
    pub offset: u64,
    /// The bytes, up to the next valid record (or the end of the segment).
    pub bytes: Vec<u8>,
}

/// One item of [`DiskBuffer::read`], in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadItem {
    /// A valid record.
    Record(BufferedRecord),
    /// Corrupt bytes, for the dead-letter file.
    Corrupt(CorruptRecord),
}

/// A record read by [`DiskBuffer::read_with`], its payload borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordRef<'a> {
    /// Its id, to [`acknowledge`](DiskBuffer::acknowledge) it.
    pub id: RecordId,
    /// The bytes appended.
    pub payload: &'a [u8],
    /// Written by an earlier process (a replay after a restart).
    pub replayed: bool,
    /// Appended by [`DiskBuffer::append_event`]: the payload is that
    /// event's [`Event::to_json_bytes`], unchanged (its checksum matched).
    pub event_line: bool,
}

/// One item of [`DiskBuffer::read_with`], in file order.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReadRef<'a> {
    /// A valid record.
    Record(RecordRef<'a>),
    /// Corrupt bytes, for the dead-letter file.
    Corrupt(CorruptRecord),
}

/// What [`DiskBuffer::append_many`] did.
#[derive(Debug)]
#[non_exhaustive]
pub struct AppendMany {
    /// The ids of the records appended, from the first, in order.
    pub ids: Vec<RecordId>,
    /// Why the others were not (or, under [`FsyncPolicy::Always`], why the
    /// final fsync failed: then `ids` are written, durability unknown).
    pub error: Option<AppendError>,
}

/// What [`DiskBuffer::drop_oldest`] dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Dropped {
    /// Records not yet acknowledged that were in it (counted by id).
    pub records: u64,
    /// Of those, the records already read and handed out: the reader's
    /// consumer still holds them in memory (acknowledging them later does
    /// nothing). The others were never read: they are gone.
    pub handed_out: u64,
    /// Bytes of the segment file.
    pub bytes: u64,
}

/// The counters of a [`DiskBuffer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct BufferStats {
    /// Records appended and not yet acknowledged (read or not). Counted by
    /// id: ids lost with corrupt bytes are included until the reader has
    /// read and acknowledged everything, when it is exactly 0.
    pub records: u64,
    /// Bytes of the segment files (headers and frames included, and the
    /// acknowledged records of a segment not yet wholly acknowledged), with
    /// appended bytes not yet written: what `max_bytes` bounds.
    pub bytes: u64,
    /// Segment files.
    pub segments: u64,
    /// Corrupt records met since open: tails cut at open and corrupt items read.
    pub corrupt_records: u64,
    /// Records read that an earlier process wrote.
    pub replayed_records: u64,
    /// The id of the oldest unacknowledged record, if any
    /// ([`DiskBuffer::oldest_unacknowledged`] reads it).
    pub oldest_unacknowledged: Option<RecordId>,
}

struct Writer {
    file: File,
    segment: u64,
    /// Bytes of the segment, pending ones included.
    size: u64,
    /// Bytes written to the file.
    flushed: u64,
    pending: Vec<u8>,
    next_id: u64,
    /// Bytes written since the last fsync.
    unsynced: bool,
    /// Sealed segments (number, file) written since their last fsync,
    /// under [`FsyncPolicy::Interval`]: the next `sync_if_due` fsyncs them,
    /// not the append that sealed them.
    sealed_unsynced: Vec<(u64, File)>,
    /// A segment was created (under `Interval`) since the directory's
    /// last fsync.
    dir_unsynced: bool,
    last_sync: Instant,
    closed: bool,
}

impl Shared {
    /// Whether a reader at `cursor` has read everything appended (pending
    /// bytes included). The write segment's header is always valid (written
    /// or checked at open), so its offset 0 is its header's end.
    fn caught_up(&self, cursor: Position) -> bool {
        let end = self
            .segments
            .get(&self.write_segment)
            .copied()
            .unwrap_or(SEGMENT_HEADER);
        cursor.segment >= self.write_segment && cursor.offset.max(SEGMENT_HEADER) >= end
    }
}

impl Shared {
    /// Takes out the segments wholly before the acknowledged position (never
    /// the write segment), for [`DiskBuffer::unlink`].
    fn doomed(&mut self) -> Vec<u64> {
        let acked = self.acked;
        let write_segment = self.write_segment;
        let doomed: Vec<u64> = self
            .segments
            .iter()
            .filter(|&(&n, &size)| {
                n < acked.segment
                    || (n == acked.segment && n < write_segment && acked.offset >= size)
            })
            .map(|(&n, _)| n)
            .collect();
        for n in &doomed {
            if let Some(size) = self.segments.remove(n) {
                self.total_bytes = self.total_bytes.saturating_sub(size);
            }
        }
        doomed
    }
}

struct Shared {
    /// Segment number → bytes (for the write segment, pending ones included).
    segments: BTreeMap<u64, u64>,
    total_bytes: u64,
    write_segment: u64,
    /// Bytes of the write segment that are in the file, whole records only.
    published: u64,
    next_id: u64,
    first_unacked_id: u64,
    /// The acknowledged position, once in the ledger.
    acked: Position,
    /// Bumped when the acknowledged position moves (space may be freed, or
    /// freeable by retiring the write segment): waiting writers retry.
    progress: u64,
    /// Bumped when a failed write is cut back: bytes the reader buffered
    /// past the readable end may have changed.
    cuts: u64,
    /// Readers in [`DiskBuffer::wait_for_data`]: appends wake them only then.
    waiting_readers: usize,
    /// Writers in [`DiskBuffer::append_timeout`]: acknowledgements wake them only then.
    waiting_writers: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Record(u64),
    Corrupt(u64),
}

/// The in-flight index's hash: its keys are record ids from this buffer's
/// files and counters of this process, not chosen by a peer, so a
/// multiply-rotate hash (FxHash's) does, at a fraction of SipHash's cost
/// (an insert and a removal per record read).
#[derive(Default)]
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.write_u64(u64::from(*byte));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn write_isize(&mut self, n: isize) {
        self.write_u64(n as u64);
    }
}

type Index = HashMap<Key, u64, std::hash::BuildHasherDefault<KeyHasher>>;

struct InFlight {
    /// Where the item ends: the position once it and all before it are acknowledged.
    end: Position,
    id: Option<u64>,
    acked: bool,
}

struct Reader {
    cursor: Position,
    file: Option<(u64, Source)>,
    /// Items read and not yet passed by the acknowledged position, in file order.
    in_flight: VecDeque<InFlight>,
    /// The sequence number of `in_flight[0]`.
    front_seq: u64,
    /// `Some(base)` while every item in flight is a record and the one at
    /// position `i` has id `base + i` (records read in a row, the usual
    /// case): an id's item is then found by a subtraction. `None`: the
    /// items are found through `index`.
    dense: Option<u64>,
    /// Each unacknowledged item's sequence number, by key, while `dense`
    /// is `None` (an insert and a removal per record were a tenth of
    /// reading one back and acknowledging it).
    index: Index,
    acked: Position,
    next_unacked_id: u64,
    /// The position moved since the ledger was last stored (under
    /// [`FsyncPolicy::Interval`], the store waits for the interval).
    ledger_dirty: bool,
    /// When the ledger was last stored with its fsyncs; `None`: never, or
    /// the next store must fsync.
    ledger_synced: Option<Instant>,
    next_corrupt: u64,
    /// [`Shared::cuts`] when the read-ahead was last trusted.
    cuts: u64,
    /// The payload of the record being read, reused record after record.
    payload: Vec<u8>,
}

impl Reader {
    fn push(&mut self, key: Key, end: Position, id: Option<u64>) {
        if self.in_flight.is_empty() {
            // Nothing in flight: every key in the index was passed.
            self.index.clear();
            self.dense = match key {
                Key::Record(id) => Some(id),
                Key::Corrupt(_) => None,
            };
        }
        if let Some(base) = self.dense {
            if base
                .checked_add(self.in_flight.len() as u64)
                .map(Key::Record)
                == Some(key)
            {
                self.in_flight.push_back(InFlight {
                    end,
                    id,
                    acked: false,
                });
                return;
            }
            // Out of order, or corrupt: index what is in flight, and this.
            self.dense = None;
            for (at, entry) in self.in_flight.iter().enumerate() {
                if !entry.acked {
                    self.index
                        .insert(Key::Record(base + at as u64), self.front_seq + at as u64);
                }
            }
        }
        let seq = self.front_seq + self.in_flight.len() as u64;
        // A duplicate id (only a hand-made file has one) is acknowledged with
        // the first: otherwise the position could never pass it.
        let acked = self.index.contains_key(&key);
        if !acked {
            self.index.insert(key, seq);
        }
        self.in_flight.push_back(InFlight { end, id, acked });
    }

    fn mark(&mut self, key: Key) -> bool {
        if let Some(base) = self.dense {
            let entry = match key {
                Key::Record(id) => id
                    .checked_sub(base)
                    .and_then(|at| usize::try_from(at).ok())
                    .and_then(|at| self.in_flight.get_mut(at)),
                Key::Corrupt(_) => None,
            };
            return match entry {
                Some(entry) if !entry.acked => {
                    entry.acked = true;
                    true
                }
                _ => false,
            };
        }
        let Some(seq) = self.index.remove(&key) else {
            return false;
        };
        match usize::try_from(seq - self.front_seq)
            .ok()
            .and_then(|at| self.in_flight.get_mut(at))
        {
            Some(entry) => {
                entry.acked = true;
                true
            }
            None => false,
        }
    }

    /// Takes the oldest item in flight off.
    fn pop_front(&mut self) -> Option<InFlight> {
        let entry = self.in_flight.pop_front()?;
        self.front_seq += 1;
        // Past the largest id there is no next one to find: index mode.
        self.dense = self.dense.and_then(|base| base.checked_add(1));
        Some(entry)
    }
}

/// A durable, bounded queue of byte records in one directory: see the
/// [module documentation](self).
///
/// ```
/// use eventtracking_engine::buffer::{DiskBuffer, DiskBufferOptions, ReadItem};
///
/// let dir = tempfile::tempdir().unwrap();
/// let buffer = DiskBuffer::open(dir.path(), DiskBufferOptions::default()).unwrap();
/// let id = buffer.append(br#"{"name":"a"}"#).unwrap();
/// let items = buffer.read(100, 1 << 20).unwrap();
/// let ReadItem::Record(record) = &items[0] else { unreachable!() };
/// assert_eq!((record.id, record.payload.as_slice()), (id, &br#"{"name":"a"}"#[..]));
/// buffer.acknowledge([id]).unwrap();
/// assert_eq!(buffer.stats().records, 0);
/// ```
pub struct DiskBuffer {
    dir: PathBuf,
    key: PathBuf,
    options: DiskBufferOptions,
    /// The segment size used: at most a quarter of `max_bytes`, so that a
    /// full buffer frees space in steps smaller than itself.
    segment_bytes: u64,
    writer: Mutex<Writer>,
    reader: Mutex<Reader>,
    shared: Mutex<Shared>,
    data: Condvar,
    space: Condvar,
    corrupt: AtomicU64,
    replayed: AtomicU64,
    /// Records with a lower id were written by an earlier process.
    session_first_id: u64,
    /// Where this process's first append went when an earlier process left
    /// records to read (the bytes before it are theirs); else the start.
    session_start: Position,
    /// The directory's `lock` file, locked while this is open (released
    /// when it is dropped, after `Drop` has closed the buffer).
    _dir_lock: File,
}

/// Locks `dir/lock` for this process (an advisory `flock`, released by
/// the kernel if the process dies), or says another process holds it.
fn lock_dir(dir: &Path) -> Result<File, BufferError> {
    let path = dir.join("lock");
    let io_error = |source| BufferError::Io {
        path: path.clone(),
        source,
    };
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_error)?;
    try_lock(&file).map_err(|error| match error {
        LockError::Held => BufferError::LockedByAnotherProcess {
            path: dir.to_owned(),
        },
        LockError::Io(source) => io_error(source),
    })?;
    Ok(file)
}

enum LockError {
    Held,
    Io(std::io::Error),
}

/// An exclusive `flock` on `file`, without waiting.
#[cfg(unix)]
fn try_lock(file: &File) -> Result<(), LockError> {
    use rustix::fs::{flock, FlockOperation};
    flock(file, FlockOperation::NonBlockingLockExclusive).map_err(|errno| {
        if errno == rustix::io::Errno::WOULDBLOCK {
            LockError::Held
        } else {
            LockError::Io(errno.into())
        }
    })
}

/// Elsewhere no inter-process lock is taken (one process per buffer is
/// then up to the operator).
#[cfg(not(unix))]
fn try_lock(_file: &File) -> Result<(), LockError> {
    Ok(())
}

impl std::fmt::Debug for DiskBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskBuffer")
            .field("dir", &self.dir)
            .field("options", &self.options)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> BufferError + '_ {
    move |source| BufferError::Io {
        path: path.to_owned(),
        source,
    }
}

fn wait<'a, T>(
    condvar: &Condvar,
    guard: MutexGuard<'a, T>,
    timeout: Duration,
    condition: impl FnMut(&mut T) -> bool,
) -> MutexGuard<'a, T> {
    condvar
        .wait_timeout_while(guard, timeout, condition)
        .unwrap_or_else(PoisonError::into_inner)
        .0
}

/// Creates segment `number` with its header; a partial file is removed so
/// that the next attempt can create it.
fn create_segment(
    dir: &Path,
    number: u64,
    first_id: u64,
    durable: bool,
) -> Result<File, BufferError> {
    let path = segment::path(dir, number);
    let mut options = OpenOptions::new();
    options.read(true).write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o640);
    let mut file = options.open(&path).map_err(io_error(&path))?;
    let written = file
        .write_all(&segment::header(number, first_id))
        .and_then(|()| {
            if durable {
                file.sync_all()?;
                segment::sync_dir(dir)?;
            }
            Ok(())
        });
    if let Err(source) = written {
        let _ = std::fs::remove_file(&path);
        return Err(BufferError::Io { path, source });
    }
    Ok(file)
}

/// Segments that acknowledgements freed, not deleted yet: see
/// [`DiskBuffer::acknowledge_keeping_files`]. Deleted by
/// [`delete`](Self::delete), or when dropped.
#[derive(Debug, Default)]
#[must_use = "dropping it deletes the segments on this thread"]
pub struct ReleasedSegments {
    /// The buffer's directory, the segment numbers, and whether to fsync
    /// the directory after.
    to_delete: Option<(PathBuf, Vec<u64>, bool)>,
}

impl ReleasedSegments {
    /// Whether there is nothing to delete.
    pub fn is_empty(&self) -> bool {
        self.to_delete.is_none()
    }

    /// Deletes the segments (and fsyncs the directory, unless the buffer
    /// never fsyncs). A segment that cannot be deleted is logged, and
    /// deleted at the next open.
    pub fn delete(self) {
        drop(self);
    }
}

impl Drop for ReleasedSegments {
    fn drop(&mut self) {
        if let Some((dir, segments, durable)) = self.to_delete.take() {
            delete_segments(&dir, &segments, durable);
        }
    }
}

fn delete_segments(dir: &Path, segments: &[u64], durable: bool) {
    if segments.is_empty() {
        return;
    }
    for &number in segments {
        // The ledger is past it: a segment left behind is removed at the next open.
        if let Err(error) = remove_segment(dir, number) {
            tracing::warn!(%error, "eventtracking: disk buffer: cannot delete an acknowledged segment");
        }
    }
    if durable {
        if let Err(error) = segment::sync_dir(dir) {
            tracing::warn!(path = %dir.display(), %error, "eventtracking: disk buffer: cannot fsync the directory");
        }
    }
}

fn remove_segment(dir: &Path, number: u64) -> Result<(), BufferError> {
    let path = segment::path(dir, number);
    match std::fs::remove_file(&path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(BufferError::Io {
            path,
            source: error,
        }),
        _ => Ok(()),
    }
}

/// Creating and removing a file checks what `access(2)` cannot (root, ACLs,
/// read-only mounts).
fn check_writable(dir: &Path) -> Result<(), BufferError> {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let probe = dir.join(format!(".probe-{}-{nanos}", std::process::id()));
    let not_writable = |source| BufferError::NotWritable {
        path: dir.to_owned(),
        source,
    };
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(not_writable)?;
    std::fs::remove_file(&probe).map_err(not_writable)
}

/// The segment size used: see [`DiskBufferOptions::with_segment_bytes`].
fn effective_segment_bytes(options: &DiskBufferOptions) -> u64 {
    options.segment_bytes().min(options.max_bytes() / 4)
}

/// What [`recover`] found.
struct Recovered {
    writer: Writer,
    reader: Reader,
    shared: Shared,
    corrupt: u64,
}

/// Reads the directory back: the ledger, the segments, the newest one's tail.
fn recover(dir: &Path, options: &DiskBufferOptions) -> Result<Recovered, BufferError> {
    let durable = options.fsync() != FsyncPolicy::Never;
    let mut segments = segment::list(dir).map_err(io_error(dir))?;
    // A new segment is numbered after every one seen, removed or not: the
    // position may point into a removed one.
    let after_seen = segments
        .keys()
        .next_back()
        .map_or(0, |n| n.saturating_add(1));
    let mut corrupt = 0;
    let ledger = match ledger::load(dir) {
        ledger::Loaded::Valid(ledger) => Some(ledger),
        ledger::Loaded::Missing => {
            if !segments.is_empty() {
                tracing::warn!(path = %dir.display(), "eventtracking: disk buffer without a ledger (the process stopped before acknowledging anything, or the ledger was removed): reading from the oldest segment");
            }
            None
        }
        ledger::Loaded::Corrupt(why) => {
            tracing::warn!(path = %dir.display(), why, "eventtracking: disk buffer ledger is corrupt: reading from the oldest segment");
            None
        }
    };
    let position = ledger.map_or(
        Position {
            segment: segments.keys().next().copied().unwrap_or(0),
            offset: 0,
        },
        |ledger| ledger.position,
    );
    // Acknowledged segments whose deletion a crash interrupted.
    let stale: Vec<u64> = segments
        .range(..position.segment)
        .map(|(&n, _)| n)
        .collect();
    for number in stale {
        remove_segment(dir, number)?;
        segments.remove(&number);
    }

    let mut next_id = ledger.map_or(0, |ledger| ledger.next_unacked_id);
    let mut first_found = None;
    let mut continue_last = None;
    // The newest segment; if it holds nothing valid it is removed and the
    // one before it is the newest.
    while let Some((&last, &len)) = segments.iter().next_back() {
        let path = segment::path(dir, last);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_error(&path))?;
        let mut source = Source::new(file.try_clone().map_err(io_error(&path))?);
        let header = segment::read_header(&mut source, last).map_err(io_error(&path))?;
        if let Some(header) = header {
            next_id = next_id.max(header.first_id);
        }
        // A bad header is scanned from 0: records after it are still found.
        let start = if header.is_some() { SEGMENT_HEADER } else { 0 };
        let scan = segment::scan(&mut source, start, len).map_err(io_error(&path))?;
        drop(source);
        first_found = scan.first_id;
        if let Some(id) = scan.last_id {
            next_id = next_id.max(id.saturating_add(1));
        }
        let good_end = scan.good_end;
        let keep = header.is_some() || scan.last_id.is_some();
        if !keep {
            // Nothing valid in it: a creation cut short (no whole header),
            // or garbage, which is a corrupt tail.
            if len >= SEGMENT_HEADER {
                tracing::warn!(path = %path.display(), bytes = len,
                    "eventtracking: disk buffer: removed a newest segment without a valid header or record");
                corrupt += 1;
            }
            drop(file);
            remove_segment(dir, last)?;
            segments.remove(&last);
        } else {
            if good_end < len {
                tracing::warn!(path = %path.display(), offset = good_end, bytes = len - good_end,
                    "eventtracking: disk buffer: cut a torn or corrupt tail");
                file.set_len(good_end).map_err(io_error(&path))?;
                if durable {
                    file.sync_all().map_err(io_error(&path))?;
                }
                corrupt += 1;
                segments.insert(last, good_end);
            }
            // A ledger past the end (a hand-edited file) would skip appends here.
            let behind = position.segment == last && position.offset > good_end;
            if header.is_some() && good_end < effective_segment_bytes(options) && !behind {
                file.seek(SeekFrom::Start(good_end))
                    .map_err(io_error(&path))?;
                continue_last = Some((file, last, good_end));
            }
            break;
        }
    }

    let (file, write_segment, size) = match continue_last {
        Some(found) => found,
        None => {
            let after_ledger = ledger.map_or(0, |ledger| ledger.position.segment.saturating_add(1));
            let number = after_ledger.max(after_seen);
            let file = create_segment(dir, number, next_id, durable)?;
            segments.insert(number, SEGMENT_HEADER);
            (file, number, SEGMENT_HEADER)
        }
    };

    let first_unacked_id = match ledger {
        Some(ledger) => ledger.next_unacked_id,
        None => {
            // The oldest segment's header says where the records start.
            let oldest = segments.keys().next().copied().unwrap_or(write_segment);
            let path = segment::path(dir, oldest);
            let from_header = File::open(&path)
                .and_then(|file| segment::read_header(&mut Source::new(file), oldest))
                .ok()
                .flatten()
                .map(|header| header.first_id);
            from_header.or(first_found).unwrap_or(next_id).min(next_id)
        }
    };
    let total_bytes = segments.values().sum();
    Ok(Recovered {
        writer: Writer {
            file,
            segment: write_segment,
            size,
            flushed: size,
            pending: Vec::new(),
            next_id,
            unsynced: false,
            sealed_unsynced: Vec::new(),
            dir_unsynced: false,
            last_sync: Instant::now(),
            closed: false,
        },
        reader: Reader {
            cursor: position,
            file: None,
            in_flight: VecDeque::new(),
            front_seq: 0,
            dense: None,
            index: Index::default(),
            acked: position,
            next_unacked_id: first_unacked_id,
            ledger_dirty: false,
            ledger_synced: None,
            next_corrupt: 0,
            cuts: 0,
            payload: Vec::new(),
        },
        shared: Shared {
            segments,
            total_bytes,
            write_segment,
            published: size,
            next_id,
            first_unacked_id,
            acked: position,
            progress: 0,
            cuts: 0,
            waiting_readers: 0,
            waiting_writers: 0,
        },
        corrupt,
    })
}

impl DiskBuffer {
    /// Opens the buffer in `dir` (created if needed): resumes after the
    /// acknowledged position of the ledger, cuts a torn tail off the newest
    /// segment, and appends after it.
    ///
    /// Fails when the directory cannot be created or written
    /// ([`BufferError::CreateDir`], [`BufferError::NotWritable`]), is open in
    /// another buffer of this process, or its files cannot be read; never
    /// because of what the files hold.
    pub fn open(dir: impl AsRef<Path>, options: DiskBufferOptions) -> Result<Self, BufferError> {
        let dir = dir.as_ref().to_owned();
        std::fs::create_dir_all(&dir).map_err(|source| BufferError::CreateDir {
            path: dir.clone(),
            source,
        })?;
        check_writable(&dir)?;
        let key = std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone());
        if !lock(&OPEN_DIRS).insert(key.clone()) {
            return Err(BufferError::InUse { path: dir });
        }
        let opened = lock_dir(&dir).and_then(|dir_lock| Ok((dir_lock, recover(&dir, &options)?)));
        let (dir_lock, mut recovered) = match opened {
            Ok(opened) => opened,
            Err(error) => {
                lock(&OPEN_DIRS).remove(&key);
                return Err(error);
            }
        };
        // A segment the position reached the end of, closed at open.
        let doomed = recovered.shared.doomed();
        let buffer = DiskBuffer {
            session_first_id: recovered.writer.next_id,
            session_start: if recovered.shared.next_id > recovered.shared.first_unacked_id {
                Position {
                    segment: recovered.writer.segment,
                    offset: recovered.writer.size,
                }
            } else {
                Position::default()
            },
            dir,
            key,
            segment_bytes: effective_segment_bytes(&options),
            options,
            writer: Mutex::new(recovered.writer),
            reader: Mutex::new(recovered.reader),
            shared: Mutex::new(recovered.shared),
            data: Condvar::new(),
            space: Condvar::new(),
            corrupt: AtomicU64::new(recovered.corrupt),
            replayed: AtomicU64::new(0),
            _dir_lock: dir_lock,
        };
        buffer.unlink(doomed);
        Ok(buffer)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The options it was opened with.
    pub fn options(&self) -> &DiskBufferOptions {
        &self.options
    }

    fn durable(&self) -> bool {
        self.options.fsync() != FsyncPolicy::Never
    }

    /// Appends one record. Under [`FsyncPolicy::Always`] it is written and
    /// fsynced when this returns `Ok`; otherwise it is written by a later
    /// append, read, [`sync`](Self::sync) or [`sync_if_due`](Self::sync_if_due).
    ///
    /// [`AppendError::Full`] when it would take the buffer over `max_bytes`
    /// (nothing is written); [`AppendError::Io`] when writing failed (the
    /// record is not in the buffer, except when only the fsync failed: then
    /// it was written and may be delivered).
    pub fn append(&self, payload: &[u8]) -> Result<RecordId, AppendError> {
        self.append_record(payload, false)
    }

    /// [`append`](Self::append) of an event's JSON line
    /// ([`Event::to_json_bytes`]), marked as such: a reader gets
    /// [`RecordRef::event_line`], and may take the payload as written (its
    /// checksum proves it unchanged) instead of validating its JSON again.
    /// What a tracker's disk route appends.
    pub fn append_event(&self, event: &Event) -> Result<RecordId, AppendError> {
        self.append_record(event.to_json_bytes(), true)
    }

    /// [`append_event`](Self::append_event) of a line the caller wrote:
    /// `line` must be exactly an event's [`Event::to_json_bytes`] (as
    /// [`Event::write_json`] writes it), since readers take it as written.
    pub(crate) fn append_event_line(&self, line: &[u8]) -> Result<RecordId, AppendError> {
        self.append_record(line, true)
    }

    /// [`append_event_line`](Self::append_event_line), waiting up to
    /// `timeout` while the buffer is full.
    pub(crate) fn append_event_line_timeout(
        &self,
        line: &[u8],
        timeout: Duration,
    ) -> Result<RecordId, AppendError> {
        self.append_record_timeout(line, true, timeout)
    }

    fn append_record(&self, payload: &[u8], event_line: bool) -> Result<RecordId, AppendError> {
        let mut writer = lock(&self.writer);
        let always = self.options.fsync() == FsyncPolicy::Always;
        let id = self.append_locked(&mut writer, payload, event_line, always)?;
        if always {
            self.fsync(&mut writer)?;
        }
        Ok(id)
    }

    /// Appends records in order under one lock, with one fsync at the end
    /// under [`FsyncPolicy::Always`] (a group commit: every record whose id
    /// is returned is durable when this returns). Stops at the first record
    /// that fails ([`AppendError::Full`] included): the ids of those before
    /// it come back with the error.
    pub fn append_many<P: AsRef<[u8]>>(&self, payloads: &[P]) -> AppendMany {
        let mut writer = lock(&self.writer);
        let mut ids = Vec::with_capacity(payloads.len());
        let mut error = None;
        for payload in payloads {
            match self.append_locked(&mut writer, payload.as_ref(), false, false) {
                Ok(id) => ids.push(id),
                Err(failed) => {
                    error = Some(failed);
                    break;
                }
            }
        }
        if self.options.fsync() == FsyncPolicy::Always && !ids.is_empty() {
            if let Err(failed) = self.fsync(&mut writer) {
                // Written, durability unknown: the ids stay (they may be delivered).
                error = Some(failed.into());
            }
        }
        AppendMany { ids, error }
    }

    /// One append under the writer lock, marked as an event line if
    /// `event_line`; `write_now` writes the record to the file before
    /// returning (the caller fsyncs).
    fn append_locked(
        &self,
        w: &mut Writer,
        payload: &[u8],
        event_line: bool,
        write_now: bool,
    ) -> Result<RecordId, AppendError> {
        let max_bytes = self.options.max_bytes();
        let frame = FRAME_HEADER + payload.len() as u64;
        if payload.len() > record::MAX_PAYLOAD || frame.saturating_add(SEGMENT_HEADER) > max_bytes {
            return Err(AppendError::TooLarge {
                len: payload.len(),
                max_bytes,
            });
        }
        let mut roll = w.size > SEGMENT_HEADER && w.size + frame > self.segment_bytes;
        if !roll {
            if let Some(appended) = self.append_in_segment(w, payload, event_line, write_now) {
                return appended;
            }
        }
        let needed = frame + if roll { SEGMENT_HEADER } else { 0 };
        let full = {
            let shared = lock(&self.shared);
            (shared.total_bytes + needed > max_bytes).then_some((shared.total_bytes, shared.acked))
        };
        if let Some((buffered, acked)) = full {
            // Space is freed a segment at a time, and the write segment is
            // never deleted: when it is wholly acknowledged, a new one takes
            // its place (and it is deleted), or a buffer whose records are
            // all delivered could stay full.
            let retire =
                acked.segment == w.segment && acked.offset >= w.size && w.size > SEGMENT_HEADER;
            if !retire {
                return Err(AppendError::Full {
                    needed,
                    buffered,
                    max_bytes,
                });
            }
            self.roll(w)?;
            roll = false;
            let buffered = lock(&self.shared).total_bytes;
            if buffered + frame > max_bytes {
                return Err(AppendError::Full {
                    needed: frame,
                    buffered,
                    max_bytes,
                });
            }
        }
        if roll {
            self.roll(w)?;
        }
        let id = w.next_id;
        self.write_record(w, id, payload, event_line, write_now)?;
        w.next_id = w.next_id.saturating_add(1);
        let wake = {
            let mut shared = lock(&self.shared);
            shared.total_bytes += frame;
            shared.segments.insert(w.segment, w.size);
            shared.next_id = w.next_id;
            shared.waiting_readers > 0
        };
        // A notification is a syscall: only when a reader waits.
        if wake {
            self.data.notify_all();
        }
        Ok(RecordId(id))
    }

    /// Puts the record into the writer, and writes the writer's bytes to
    /// the file when enough are pending or the policy says so; if that
    /// write fails, the record is taken out again (the writer is as before).
    fn write_record(
        &self,
        w: &mut Writer,
        id: u64,
        payload: &[u8],
        event_line: bool,
        write_now: bool,
    ) -> Result<(), AppendError> {
        let before = w.pending.len();
        record::encode(id, payload, event_line, &mut w.pending);
        let frame = FRAME_HEADER + payload.len() as u64;
        w.size += frame;
        // Under `Interval` an append never fsyncs: `sync_if_due` does, off
        // the appending thread (an emit waited out the disk's writeback,
        // tens of milliseconds, every interval).
        let flush = w.pending.len() >= PENDING_LIMIT
            || (write_now && self.options.fsync() == FsyncPolicy::Always);
        if flush {
            if let Err(error) = self.flush(w) {
                w.pending.truncate(before);
                w.size -= frame;
                return Err(error.into());
            }
        }
        Ok(())
    }

    /// The usual append: into the write segment, with room in the buffer.
    /// The room is checked and taken under one lock of `shared`, which the
    /// reader also takes (locking it twice per record, to check and then to
    /// count, was most of an append's time on two cores). Taking it before
    /// the bytes are in the writer is safe: the reader reads no further
    /// than what is written to the file, and flushing the writer needs its
    /// lock, which the caller holds. `None`, having changed nothing, when
    /// the record does not fit: [`append_locked`](Self::append_locked)
    /// then decides.
    fn append_in_segment(
        &self,
        w: &mut Writer,
        payload: &[u8],
        event_line: bool,
        write_now: bool,
    ) -> Option<Result<RecordId, AppendError>> {
        let frame = FRAME_HEADER + payload.len() as u64;
        let id = w.next_id;
        let next_id = id.saturating_add(1);
        let wake = {
            let mut shared = lock(&self.shared);
            if shared.total_bytes + frame > self.options.max_bytes() {
                return None;
            }
            shared.total_bytes += frame;
            shared.segments.insert(w.segment, w.size + frame);
            shared.next_id = next_id;
            shared.waiting_readers > 0
        };
        if let Err(error) = self.write_record(w, id, payload, event_line, write_now) {
            let mut shared = lock(&self.shared);
            shared.total_bytes = shared.total_bytes.saturating_sub(frame);
            shared.segments.insert(w.segment, w.size);
            shared.next_id = id;
            return Some(Err(error));
        }
        w.next_id = next_id;
        // A notification is a syscall: only when a reader waits.
        if wake {
            self.data.notify_all();
        }
        Some(Ok(RecordId(id)))
    }

    /// [`append`](Self::append), waiting up to `timeout` while the buffer is
    /// full (the `block` overflow policy): it tries again each time
    /// acknowledgements move the position. [`AppendError::Full`] when still
    /// full after `timeout`.
    pub fn append_timeout(
        &self,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<RecordId, AppendError> {
        self.append_record_timeout(payload, false, timeout)
    }

    /// [`append_event`](Self::append_event), waiting up to `timeout` while
    /// the buffer is full, as [`append_timeout`](Self::append_timeout) does.
    pub fn append_event_timeout(
        &self,
        event: &Event,
        timeout: Duration,
    ) -> Result<RecordId, AppendError> {
        self.append_record_timeout(event.to_json_bytes(), true, timeout)
    }

    fn append_record_timeout(
        &self,
        payload: &[u8],
        event_line: bool,
        timeout: Duration,
    ) -> Result<RecordId, AppendError> {
        // A first try without the bookkeeping of waiting (a clock read and
        // the shared lock once more per record): the buffer is rarely full.
        let full = match self.append_record(payload, event_line) {
            Err(full @ AppendError::Full { .. }) => full,
            other => return other,
        };
        let deadline = Instant::now().checked_add(timeout);
        if timeout.is_zero() {
            return Err(full);
        }
        loop {
            let generation = lock(&self.shared).progress;
            let full = match self.append_record(payload, event_line) {
                Err(full @ AppendError::Full { .. }) => full,
                other => return other,
            };
            let left = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None => Duration::MAX,
            };
            if left.is_zero() {
                return Err(full);
            }
            let mut shared = lock(&self.shared);
            shared.waiting_writers += 1;
            let mut shared = wait(&self.space, shared, left, |shared| {
                shared.progress == generation
            });
            shared.waiting_writers -= 1;
            if shared.progress == generation {
                return Err(full);
            }
        }
    }

    /// Writes the pending bytes to the file (no fsync).
    fn flush(&self, w: &mut Writer) -> Result<(), BufferError> {
        if w.pending.is_empty() {
            return Ok(());
        }
        if let Err(source) = w.file.write_all(&w.pending) {
            // Cut what part was written, so that the file ends on a record
            // boundary and a retry appends whole records after it.
            let _ = w.file.set_len(w.flushed);
            let _ = w.file.seek(SeekFrom::Start(w.flushed));
            lock(&self.shared).cuts += 1;
            return Err(BufferError::Io {
                path: segment::path(&self.dir, w.segment),
                source,
            });
        }
        w.flushed += w.pending.len() as u64;
        w.pending.clear();
        w.unsynced = true;
        lock(&self.shared).published = w.flushed;
        Ok(())
    }

    /// Writes the pending bytes and fsyncs the write segment (and the
    /// sealed segments not fsynced yet).
    fn fsync(&self, w: &mut Writer) -> Result<(), BufferError> {
        self.flush(w)?;
        for (number, file) in std::mem::take(&mut w.sealed_unsynced) {
            file.sync_data()
                .map_err(io_error(&segment::path(&self.dir, number)))?;
        }
        if std::mem::take(&mut w.dir_unsynced) {
            segment::sync_dir(&self.dir).map_err(io_error(&self.dir))?;
        }
        if w.unsynced {
            w.file
                .sync_data()
                .map_err(io_error(&segment::path(&self.dir, w.segment)))?;
            w.unsynced = false;
        }
        w.last_sync = Instant::now();
        Ok(())
    }

    /// Closes the write segment and starts the next. Under
    /// [`FsyncPolicy::Always`] the sealed segment is fsynced here; under
    /// `Interval`, by the next `sync_if_due` (not on the appending thread).
    fn roll(&self, w: &mut Writer) -> Result<(), BufferError> {
        self.flush(w)?;
        let sealed_path = segment::path(&self.dir, w.segment);
        if w.unsynced {
            match self.options.fsync() {
                FsyncPolicy::Always => {
                    w.file.sync_data().map_err(io_error(&sealed_path))?;
                    w.unsynced = false;
                }
                FsyncPolicy::Interval(_) => {
                    let file = w.file.try_clone().map_err(io_error(&sealed_path))?;
                    w.sealed_unsynced.push((w.segment, file));
                    w.unsynced = false;
                }
                FsyncPolicy::Never => {}
            }
        }
        // Only a hand-made segment name gets near the end of the numbers.
        let number = w.segment.checked_add(1).ok_or_else(|| BufferError::Io {
            path: segment::path(&self.dir, w.segment),
            source: io::Error::other("segment numbers exhausted"),
        })?;
        let interval = matches!(self.options.fsync(), FsyncPolicy::Interval(_));
        w.file = create_segment(&self.dir, number, w.next_id, self.durable() && !interval)?;
        if interval {
            // Its header and its name are fsynced with its first records.
            w.unsynced = true;
            w.dir_unsynced = true;
        }
        w.segment = number;
        w.size = SEGMENT_HEADER;
        w.flushed = SEGMENT_HEADER;
        let doomed = {
            let mut shared = lock(&self.shared);
            shared.segments.insert(number, SEGMENT_HEADER);
            shared.total_bytes += SEGMENT_HEADER;
            shared.write_segment = number;
            shared.published = SEGMENT_HEADER;
            // The old write segment, sealed now, may be wholly acknowledged.
            shared.doomed()
        };
        self.unlink(doomed);
        Ok(())
    }

    /// Writes and fsyncs what was appended, whatever the policy.
    pub fn sync(&self) -> Result<(), BufferError> {
        let mut writer = lock(&self.writer);
        self.fsync(&mut writer)
    }

    /// Under [`FsyncPolicy::Interval`], writes and fsyncs what was appended
    /// (sealed segments included) if the interval has passed since the last
    /// fsync; `true` if it did. Under that policy appends never fsync: call
    /// this on a timer (the delivery worker's tick does), or records are
    /// made durable only at close. The fsyncs run outside the writer's lock,
    /// so appends go on meanwhile. Other policies: `false`.
    pub fn sync_if_due(&self) -> Result<bool, BufferError> {
        let FsyncPolicy::Interval(every) = self.options.fsync() else {
            return Ok(false);
        };
        // The files are fsynced outside the writer's lock: appends go on
        // meanwhile (what they add is for the next fsync).
        let due = {
            let mut writer = lock(&self.writer);
            let w = &mut *writer;
            let idle = w.pending.is_empty() && !w.unsynced && w.sealed_unsynced.is_empty();
            if idle || w.last_sync.elapsed() < every {
                None
            } else {
                self.flush(w)?;
                let mut files = std::mem::take(&mut w.sealed_unsynced);
                if w.unsynced {
                    let path = segment::path(&self.dir, w.segment);
                    files.push((w.segment, w.file.try_clone().map_err(io_error(&path))?));
                    w.unsynced = false;
                }
                w.last_sync = Instant::now();
                Some((files, std::mem::take(&mut w.dir_unsynced)))
            }
        };
        let synced = due.is_some();
        let (files, dir) = due.unwrap_or_default();
        for (number, file) in files {
            if let Err(error) = file.sync_data() {
                // Not known to be durable: the next call fsyncs again.
                let mut writer = lock(&self.writer);
                if writer.segment == number {
                    writer.unsynced = true;
                } else {
                    writer.sealed_unsynced.push((number, file));
                }
                return Err(io_error(&segment::path(&self.dir, number))(error));
            }
        }
        if dir {
            if let Err(error) = segment::sync_dir(&self.dir) {
                lock(&self.writer).dir_unsynced = true;
                return Err(io_error(&self.dir)(error));
            }
        }
        // The ledger's last store, if it skipped its fsyncs (the writer's
        // lock is released first: the reader's is taken before it elsewhere).
        let mut reader = lock(&self.reader);
        if reader.ledger_dirty && reader.ledger_synced.is_none_or(|at| at.elapsed() >= every) {
            self.store_ledger(&mut reader)?;
            return Ok(true);
        }
        Ok(synced)
    }

    /// Reads up to `max_records` items from the read position, stopping
    /// once `max_bytes` of payload is reached (the last item may pass it, so
    /// that a record larger than `max_bytes` is still read, alone). Empty
    /// when everything appended is read. Each item stays in flight until
    /// acknowledged; corrupt bytes come back as [`ReadItem::Corrupt`] and
    /// are counted. Appended records not yet written are written first, so
    /// the reader sees every append that returned.
    pub fn read(&self, max_records: usize, max_bytes: usize) -> Result<Vec<ReadItem>, BufferError> {
        let mut items = Vec::new();
        self.read_with(max_records, max_bytes, |item| {
            items.push(match item {
                ReadRef::Record(record) => ReadItem::Record(BufferedRecord {
                    id: record.id,
                    payload: record.payload.to_vec(),
                    replayed: record.replayed,
                    event_line: record.event_line,
                }),
                ReadRef::Corrupt(corrupt) => ReadItem::Corrupt(corrupt),
            });
        })?;
        Ok(items)
    }

    /// [`read`](Self::read), handing each item to `f` as it is read, in
    /// file order, a record's payload borrowed from a buffer reused record
    /// after record (no allocation per record); returns how many items `f`
    /// was given. `f` runs with the reader's lock held: it must not call
    /// this buffer (acknowledge after `read_with` returns).
    ///
    /// ```
    /// use eventtracking_engine::buffer::{DiskBuffer, DiskBufferOptions, ReadRef};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let buffer = DiskBuffer::open(dir.path(), DiskBufferOptions::default()).unwrap();
    /// buffer.append(b"a").unwrap();
    /// buffer.append(b"bc").unwrap();
    /// let mut ids = Vec::new();
    /// let read = buffer
    ///     .read_with(100, 1 << 20, |item| match item {
    ///         ReadRef::Record(record) => ids.push((record.id, record.payload.len())),
    ///         ReadRef::Corrupt(corrupt) => panic!("{corrupt:?}"),
    ///         _ => unreachable!(),
    ///     })
    ///     .unwrap();
    /// assert_eq!((read, ids.len(), ids[1].1), (2, 2, 2));
    /// assert_eq!(buffer.acknowledge(ids.iter().map(|(id, _)| *id)).unwrap(), 2);
    /// ```
    pub fn read_with(
        &self,
        max_records: usize,
        max_bytes: usize,
        mut f: impl FnMut(ReadRef<'_>),
    ) -> Result<usize, BufferError> {
        let mut reader = lock(&self.reader);
        let mut count = 0;
        match self.read_into(&mut reader, max_records, max_bytes, &mut count, &mut f) {
            Ok(()) => {
                self.settle(&mut reader);
                Ok(count)
            }
            Err(error) if count == 0 => Err(error),
            Err(error) => {
                // The items read are in flight: they must reach the caller,
                // or the position could never pass them. The error comes
                // back at the next read.
                tracing::warn!(%error, "eventtracking: disk buffer: read stopped early");
                Ok(count)
            }
        }
    }

    fn read_into(
        &self,
        r: &mut Reader,
        max_records: usize,
        max_bytes: usize,
        count: &mut usize,
        f: &mut dyn FnMut(ReadRef<'_>),
    ) -> Result<(), BufferError> {
        let mut bytes = 0usize;
        let mut flushed = false;
        let more =
            |count: usize, bytes: usize| count < max_records && (count == 0 || bytes < max_bytes);
        while more(*count, bytes) {
            let segment = r.cursor.segment;
            let (end, write_end) = {
                let shared = lock(&self.shared);
                if shared.cuts != r.cuts {
                    r.cuts = shared.cuts;
                    if let Some((_, source)) = r.file.as_mut() {
                        source.invalidate();
                    }
                }
                match shared.segments.get(&segment) {
                    None => match shared.segments.range(segment..).next() {
                        Some((&next, _)) => {
                            r.cursor = Position {
                                segment: next,
                                offset: 0,
                            };
                            continue;
                        }
                        None => break,
                    },
                    Some(&size) if segment == shared.write_segment => {
                        (shared.published, Some(size))
                    }
                    Some(&size) => (size, None),
                }
            };
            let path = segment::path(&self.dir, segment);
            if r.file.as_ref().is_none_or(|(number, _)| *number != segment) {
                let mut file = match File::open(&path) {
                    Ok(file) => Source::new(file),
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {
                        // Removed behind our back: go on with the next one.
                        let mut shared = lock(&self.shared);
                        if let Some(size) = shared.segments.remove(&segment) {
                            shared.total_bytes = shared.total_bytes.saturating_sub(size);
                        }
                        continue;
                    }
                    Err(error) => return Err(io_error(&path)(error)),
                };
                if r.cursor.offset == 0
                    && segment::read_header(&mut file, segment)
                        .map_err(io_error(&path))?
                        .is_some()
                {
                    r.cursor.offset = SEGMENT_HEADER;
                }
                r.file = Some((segment, file));
            }
            if r.cursor.offset >= end {
                match write_end {
                    Some(logical) if logical > end && !flushed => {
                        // The writer holds bytes not yet in the file.
                        flushed = true;
                        let mut writer = lock(&self.writer);
                        self.flush(&mut writer)?;
                        continue;
                    }
                    Some(_) => break,
                    None => {
                        let next = lock(&self.shared)
                            .segments
                            .range((Excluded(segment), Unbounded))
                            .next()
                            .map(|(&n, _)| n);
                        match next {
                            Some(next) => {
                                r.cursor = Position {
                                    segment: next,
                                    offset: 0,
                                };
                                continue;
                            }
                            None => break,
                        }
                    }
                }
            }
            // The items of this segment up to `end`, which stays valid
            // meanwhile (only bytes past the published end are ever cut).
            while more(*count, bytes) && r.cursor.offset < end {
                let Some((_, file)) = r.file.as_mut() else {
                    return Ok(());
                };
                let offset = r.cursor.offset;
                // A record whole in the read-ahead is checked and handed over
                // where it lies: no copy (copying each payload and zeroing
                // its buffer first were a twentieth of a record's reading).
                let buffered = file.buffered_at(offset).map_err(io_error(&path))?;
                if let Some((frame, payload)) = record::whole_record(buffered, end - offset) {
                    let id = frame.id;
                    let replayed = id < self.session_first_id;
                    if replayed {
                        self.replayed.fetch_add(1, Ordering::Relaxed);
                    }
                    bytes = bytes.saturating_add(frame.len);
                    *count += 1;
                    f(ReadRef::Record(RecordRef {
                        id: RecordId(id),
                        payload,
                        replayed,
                        event_line: frame.event_line,
                    }));
                    file.consume(FRAME_HEADER as usize + frame.len);
                    r.cursor.offset = offset + FRAME_HEADER + frame.len as u64;
                    r.push(Key::Record(id), r.cursor, Some(id));
                    continue;
                }
                match record::parse_at(file, offset, end, &mut r.payload)
                    .map_err(io_error(&path))?
                {
                    Parsed::End => r.cursor.offset = end,
                    Parsed::Record {
                        id,
                        next,
                        event_line,
                    } => {
                        let replayed = id < self.session_first_id;
                        if replayed {
                            self.replayed.fetch_add(1, Ordering::Relaxed);
                        }
                        bytes = bytes.saturating_add(r.payload.len());
                        r.cursor.offset = next;
                        r.push(Key::Record(id), r.cursor, Some(id));
                        *count += 1;
                        f(ReadRef::Record(RecordRef {
                            id: RecordId(id),
                            payload: &r.payload,
                            replayed,
                            event_line,
                        }));
                    }
                    Parsed::Corrupt { next, .. } => {
                        let raw =
                            record::read_range(file, offset, next).map_err(io_error(&path))?;
                        self.corrupt.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(path = %path.display(), offset, bytes = raw.len(),
                            "eventtracking: disk buffer: skipped a corrupt record");
                        bytes = bytes.saturating_add(raw.len());
                        let id = r.next_corrupt;
                        r.next_corrupt += 1;
                        r.cursor.offset = next;
                        r.push(Key::Corrupt(id), r.cursor, None);
                        *count += 1;
                        f(ReadRef::Corrupt(CorruptRecord {
                            id: CorruptId(id),
                            segment,
                            path: path.clone(),
                            offset,
                            bytes: raw,
                        }));
                    }
                }
            }
            // Don't keep a huge record's buffer around.
            if r.payload.capacity() > KEPT_PAYLOAD_CAPACITY {
                r.payload = Vec::new();
            }
        }
        Ok(())
    }

    /// Whether the next read starts in bytes an earlier process wrote: those
    /// are likely read from the disk, where this process's own appends are
    /// likely still in the page cache.
    pub(crate) fn reads_earlier_writes(&self) -> bool {
        lock(&self.reader).cursor < self.session_start
    }

    /// Whether acknowledging now may wait for the disk: when it may store
    /// the ledger with its fsyncs (every time under [`FsyncPolicy::Always`];
    /// under [`FsyncPolicy::Interval`] once the interval since the last
    /// one has passed, or when the acknowledgement may free a segment,
    /// which is deleted only behind a durable ledger). Otherwise an
    /// acknowledgement only updates memory, or (under
    /// [`FsyncPolicy::Never`]) rewrites the ledger without an fsync.
    pub(crate) fn acknowledging_may_wait(&self) -> bool {
        let reader = lock(&self.reader);
        let may_free_a_segment = matches!(self.options.fsync(), FsyncPolicy::Interval(_))
            && reader.acked.segment < reader.cursor.segment;
        may_free_a_segment || self.ledger_fsync_due(&reader)
    }

    /// Waits up to `timeout` for something to read; `true` if there is
    /// (a [`read`](Self::read) may still come back empty, e.g. after the
    /// end of a segment).
    pub fn wait_for_data(&self, timeout: Duration) -> bool {
        let cursor = lock(&self.reader).cursor;
        let shared = wait(&self.data, lock(&self.shared), timeout, |shared| {
            shared.caught_up(cursor)
        });
        !shared.caught_up(cursor)
    }

    /// Acknowledges records read (ids not in flight are ignored); returns
    /// how many were. The persisted position advances over the longest
    /// prefix of read items that are all acknowledged, so acknowledgements
    /// may come in any order; segments wholly before it are deleted and
    /// writers waiting for space woken.
    pub fn acknowledge(
        &self,
        ids: impl IntoIterator<Item = RecordId>,
    ) -> Result<usize, BufferError> {
        let (marked, released) = self.acknowledge_keeping_files(ids)?;
        released.delete();
        Ok(marked)
    }

    /// [`acknowledge`](Self::acknowledge), except that the segments it
    /// frees are not deleted yet: their space is counted free and the
    /// position is past them (in the ledger), and the caller deletes them
    /// with [`ReleasedSegments::delete`], on a thread that may wait for the
    /// file system (deleting a 64 MiB segment takes tens of milliseconds).
    /// Dropped, they are deleted then; never deleted (a crash), they are
    /// deleted at the next open.
    pub fn acknowledge_keeping_files(
        &self,
        ids: impl IntoIterator<Item = RecordId>,
    ) -> Result<(usize, ReleasedSegments), BufferError> {
        let mut reader = lock(&self.reader);
        let marked = ids
            .into_iter()
            .filter(|id| reader.mark(Key::Record(id.0)))
            .count();
        let doomed = self.advance(&mut reader)?;
        drop(reader);
        Ok((marked, self.released(doomed)))
    }

    fn released(&self, segments: Vec<u64>) -> ReleasedSegments {
        ReleasedSegments {
            to_delete: (!segments.is_empty()).then(|| (self.dir.clone(), segments, self.durable())),
        }
    }

    /// Acknowledges a corrupt item (once it is dead-lettered): the position
    /// cannot pass it before. `false` if it was not in flight.
    pub fn acknowledge_corrupt(&self, id: CorruptId) -> Result<bool, BufferError> {
        let mut reader = lock(&self.reader);
        let marked = reader.mark(Key::Corrupt(id.0));
        let doomed = self.advance(&mut reader)?;
        drop(reader);
        self.unlink(doomed);
        Ok(marked)
    }

    /// When everything appended is read and acknowledged, no id is left
    /// unacknowledged, even ids lost with corrupt bytes (which carry none)
    /// or with a damaged segment: the record count is then exactly 0.
    fn settle(&self, r: &mut Reader) {
        if !r.in_flight.is_empty() {
            return;
        }
        let mut shared = lock(&self.shared);
        if shared.caught_up(r.cursor) {
            r.next_unacked_id = r.next_unacked_id.max(shared.next_id);
            shared.first_unacked_id = shared.first_unacked_id.max(r.next_unacked_id);
        }
    }

    /// Moves the position past the acknowledged prefix; the segments it
    /// frees are counted free and handed back, for the caller to delete
    /// once it no longer holds the reader (deleting a large segment drops
    /// its cached pages: tens of milliseconds).
    #[must_use = "the freed segments are deleted by the caller"]
    fn advance(&self, r: &mut Reader) -> Result<Vec<u64>, BufferError> {
        while r.in_flight.front().is_some_and(|entry| entry.acked) {
            if let Some(entry) = r.pop_front() {
                r.acked = entry.end;
                if let Some(id) = entry.id {
                    r.next_unacked_id = r.next_unacked_id.max(id.saturating_add(1));
                }
                r.ledger_dirty = true;
            }
        }
        if !r.ledger_dirty {
            return Ok(Vec::new());
        }
        self.settle(r);
        if !self.ledger_deferred(r) {
            self.store_ledger(r)?;
        }
        let (doomed, wake) = {
            let mut shared = lock(&self.shared);
            shared.first_unacked_id = shared.first_unacked_id.max(r.next_unacked_id);
            shared.acked = r.acked;
            shared.progress += 1;
            (shared.doomed(), shared.waiting_writers > 0)
        };
        if wake {
            self.space.notify_all();
        }
        if r.file
            .as_ref()
            .is_some_and(|(number, _)| doomed.contains(number))
        {
            r.file = None;
        }
        if !doomed.is_empty() && r.ledger_dirty {
            // Segments are deleted only behind a durable ledger.
            r.ledger_synced = None;
            self.store_ledger(r)?;
        }
        Ok(doomed)
    }

    /// Under [`FsyncPolicy::Interval`], the ledger is written (and fsynced)
    /// at most once per interval rather than after every acknowledgement:
    /// rewriting it (create, write, rename) per batch was a tenth of a disk
    /// route's delivery time. A process crash then reads again what was
    /// acknowledged since the last write, up to about an interval's worth,
    /// as a machine crash already did under this policy (at least once);
    /// [`sync_if_due`](Self::sync_if_due) writes it when due, and
    /// [`close`](Self::close) and segment deletion always do, so nothing is
    /// read again after a clean shutdown.
    fn ledger_deferred(&self, r: &Reader) -> bool {
        matches!(self.options.fsync(), FsyncPolicy::Interval(_)) && !self.ledger_fsync_due(r)
    }

    /// Whether the next store of the ledger fsyncs it: every store under
    /// [`FsyncPolicy::Always`], under [`FsyncPolicy::Interval`] the first
    /// once the interval since the last fsynced one has passed (or when
    /// none was), never under [`FsyncPolicy::Never`].
    fn ledger_fsync_due(&self, r: &Reader) -> bool {
        match self.options.fsync() {
            FsyncPolicy::Always => true,
            FsyncPolicy::Interval(every) => r.ledger_synced.is_none_or(|at| at.elapsed() >= every),
            FsyncPolicy::Never => false,
        }
    }

    /// Writes the position to the ledger. Its fsyncs (the file's and the
    /// directory's, a few milliseconds together) follow the policy: every
    /// store under [`FsyncPolicy::Always`], and under
    /// [`FsyncPolicy::Interval`] (whose stores come at most once per
    /// interval, see [`ledger_deferred`](Self::ledger_deferred)), never
    /// under [`FsyncPolicy::Never`]. A ledger that a crash takes back only
    /// means records read again (at least once), never records lost.
    fn store_ledger(&self, r: &mut Reader) -> Result<(), BufferError> {
        let sync = self.ledger_fsync_due(r);
        let ledger = Ledger {
            position: r.acked,
            next_unacked_id: r.next_unacked_id,
        };
        ledger::store(&self.dir, &ledger, sync)
            .map_err(|(path, source)| BufferError::Io { path, source })?;
        r.ledger_dirty = false;
        if sync {
            r.ledger_synced = Some(Instant::now());
        }
        Ok(())
    }

    /// Deletes segments taken out of the accounting by [`Shared::doomed`].
    fn unlink(&self, doomed: Vec<u64>) {
        delete_segments(&self.dir, &doomed, self.durable());
    }

    /// Drops the oldest segment, read or not, acknowledged or not (the
    /// `drop_oldest` overflow policy): the position moves past it, its
    /// records in flight are forgotten (acknowledging them later does
    /// nothing), and it is deleted. When it is the segment being written, a
    /// new one is started first. `None` when the buffer holds no record.
    pub fn drop_oldest(&self) -> Result<Option<Dropped>, BufferError> {
        let mut reader = lock(&self.reader);
        let r = &mut *reader;
        let (oldest, write_segment, size) = {
            let mut shared = lock(&self.shared);
            // A wholly acknowledged segment is no drop.
            let doomed = shared.doomed();
            self.unlink(doomed);
            match shared.segments.iter().next() {
                Some((&oldest, &size)) => (oldest, shared.write_segment, size),
                None => return Ok(None),
            }
        };
        if oldest == write_segment {
            if size <= SEGMENT_HEADER || (r.acked.segment == oldest && r.acked.offset >= size) {
                return Ok(None);
            }
            let mut writer = lock(&self.writer);
            self.roll(&mut writer)?;
        }
        let (next, next_id) = {
            let shared = lock(&self.shared);
            let next = shared
                .segments
                .range((Excluded(oldest), Unbounded))
                .next()
                .map(|(&n, _)| n);
            (next.unwrap_or(shared.write_segment), shared.next_id)
        };
        // The first id after the dropped segment: the next one's header.
        let path = segment::path(&self.dir, next);
        let next_first_id = File::open(&path)
            .and_then(|file| segment::read_header(&mut Source::new(file), next))
            .ok()
            .flatten()
            .map_or(next_id, |header| header.first_id);
        let mut acknowledged = 0u64;
        let mut handed_out = 0u64;
        while r
            .in_flight
            .front()
            .is_some_and(|entry| entry.end.segment <= oldest)
        {
            if let Some(entry) = r.pop_front() {
                match (entry.id.is_some(), entry.acked) {
                    (true, true) => acknowledged += 1,
                    (true, false) => handed_out += 1,
                    (false, _) => {}
                }
            }
        }
        r.index.retain(|_, seq| *seq >= r.front_seq);
        let records = next_first_id
            .saturating_sub(r.next_unacked_id)
            .saturating_sub(acknowledged);
        let bytes = lock(&self.shared)
            .segments
            .get(&oldest)
            .copied()
            .unwrap_or(0);
        let start = Position {
            segment: next,
            offset: 0,
        };
        r.acked = start;
        r.next_unacked_id = r.next_unacked_id.max(next_first_id);
        if r.cursor < start {
            r.cursor = start;
            r.file = None;
        }
        r.ledger_dirty = true;
        tracing::warn!(path = %self.dir.display(), segment = oldest, records, bytes,
            "eventtracking: disk buffer: dropped the oldest segment");
        let doomed = self.advance(r)?;
        self.unlink(doomed);
        Ok(Some(Dropped {
            records,
            handed_out,
            bytes,
        }))
    }

    /// The counters.
    pub fn stats(&self) -> BufferStats {
        let shared = lock(&self.shared);
        let records = shared.next_id.saturating_sub(shared.first_unacked_id);
        BufferStats {
            records,
            bytes: shared.total_bytes,
            segments: shared.segments.len() as u64,
            corrupt_records: self.corrupt.load(Ordering::Relaxed),
            replayed_records: self.replayed.load(Ordering::Relaxed),
            oldest_unacknowledged: (records > 0).then_some(RecordId(shared.first_unacked_id)),
        }
    }

    /// The oldest record not yet acknowledged (read or not), e.g. to show
    /// the oldest event's time; corrupt bytes before it are passed over
    /// (not counted: the reader counts them when it reaches them).
    pub fn oldest_unacknowledged(&self) -> Result<Option<BufferedRecord>, BufferError> {
        let reader = lock(&self.reader);
        {
            let mut writer = lock(&self.writer);
            self.flush(&mut writer)?;
        }
        let start = reader.acked;
        let segments: Vec<(u64, u64)> = {
            let shared = lock(&self.shared);
            shared
                .segments
                .range(start.segment..)
                .map(|(&n, &size)| {
                    (
                        n,
                        if n == shared.write_segment {
                            shared.published
                        } else {
                            size
                        },
                    )
                })
                .collect()
        };
        for (number, end) in segments {
            let path = segment::path(&self.dir, number);
            let mut file = match File::open(&path) {
                Ok(file) => Source::new(file),
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(error) => return Err(io_error(&path)(error)),
            };
            let mut offset = if number == start.segment && start.offset > 0 {
                start.offset
            } else if segment::read_header(&mut file, number)
                .map_err(io_error(&path))?
                .is_some()
            {
                SEGMENT_HEADER
            } else {
                0
            };
            let mut payload = Vec::new();
            loop {
                match record::parse_at(&mut file, offset, end, &mut payload)
                    .map_err(io_error(&path))?
                {
                    Parsed::End
                    | Parsed::Corrupt {
                        resynced: false, ..
                    } => break,
                    Parsed::Corrupt { next, .. } => offset = next,
                    Parsed::Record { id, event_line, .. } => {
                        return Ok(Some(BufferedRecord {
                            id: RecordId(id),
                            payload,
                            replayed: id < self.session_first_id,
                            event_line,
                        }))
                    }
                }
            }
        }
        Ok(None)
    }

    /// Writes and fsyncs what was appended and persists the position; what
    /// is acknowledged is then never read again. Dropping does the same,
    /// logging errors instead of returning them.
    pub fn close(self) -> Result<(), BufferError> {
        self.shutdown()
    }

    fn shutdown(&self) -> Result<(), BufferError> {
        let synced = {
            let mut writer = lock(&self.writer);
            if writer.closed {
                return Ok(());
            }
            writer.closed = true;
            if self.durable() {
                self.fsync(&mut writer)
            } else {
                self.flush(&mut writer)
            }
        };
        let mut reader = lock(&self.reader);
        if reader.ledger_dirty || !self.dir.join(ledger::FILE_NAME).exists() {
            // Not stored yet (deferred under `Interval`, or nothing was
            // ever acknowledged): store it now, with its fsyncs, so that a
            // clean close always leaves one and a missing ledger at open
            // means a crash before any acknowledgement, or a removed one.
            reader.ledger_dirty = true;
            reader.ledger_synced = None;
        }
        let doomed = self.advance(&mut reader)?;
        drop(reader);
        self.unlink(doomed);
        synced
    }
}

impl Drop for DiskBuffer {
    fn drop(&mut self) {
        if let Err(error) = self.shutdown() {
            tracing::warn!(path = %self.dir.display(), %error, "eventtracking: disk buffer: cannot close cleanly");
        }
        lock(&OPEN_DIRS).remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment_of(number: u64, first_id: u64, records: &[(u64, &[u8])]) -> Vec<u8> {
        let mut bytes = segment::header(number, first_id).to_vec();
        for (id, payload) in records {
            record::encode(*id, payload, false, &mut bytes);
        }
        bytes
    }

    fn drain(buffer: &DiskBuffer) -> Vec<BufferedRecord> {
        let mut out = Vec::new();
        loop {
            let items = buffer.read(16, 1 << 20).unwrap();
            if items.is_empty() {
                return out;
            }
            for item in items {
                match item {
                    ReadItem::Record(record) => out.push(record),
                    ReadItem::Corrupt(corrupt) => panic!("{corrupt:?}"),
                }
            }
        }
    }

    /// A clean close leaves a ledger even when nothing was acknowledged:
    /// the next open then finds where reading starts instead of warning of
    /// a missing ledger (which is left to a crash before any
    /// acknowledgement, or a removed ledger), and nothing is lost.
    #[test]
    fn a_clean_close_leaves_a_ledger_though_nothing_was_acknowledged() {
        let every = Duration::from_secs(60);
        for fsync in [
            FsyncPolicy::Never,
            FsyncPolicy::Interval(every),
            FsyncPolicy::Always,
        ] {
            let dir = tempfile::tempdir().unwrap();
            let options = DiskBufferOptions::default().with_fsync(fsync);
            let buffer = DiskBuffer::open(dir.path(), options.clone()).unwrap();
            buffer.append(b"a").unwrap();
            buffer.append(b"b").unwrap();
            buffer.close().unwrap();
            let ledger = dir.path().join(ledger::FILE_NAME);
            assert!(ledger.is_file(), "{fsync:?}: no ledger after a clean close");
            let buffer = DiskBuffer::open(dir.path(), options.clone()).unwrap();
            let payloads: Vec<Vec<u8>> = drain(&buffer).into_iter().map(|r| r.payload).collect();
            assert_eq!(payloads, [b"a".to_vec(), b"b".to_vec()], "{fsync:?}");
            buffer.close().unwrap();
            // An empty buffer closed cleanly has one too.
            let empty = tempfile::tempdir().unwrap();
            DiskBuffer::open(empty.path(), options)
                .unwrap()
                .close()
                .unwrap();
            assert!(empty.path().join(ledger::FILE_NAME).is_file(), "{fsync:?}");
        }
    }

    /// Under `Interval` neither an append nor the segment change it causes
    /// fsyncs (an emit must not wait for the disk): the written segments
    /// wait for `sync_if_due`, which fsyncs the sealed ones too. Under
    /// `Always` a sealed segment is fsynced when it is sealed.
    #[test]
    fn under_interval_appends_leave_fsyncs_sealed_segments_included_to_sync_if_due() {
        let dir = tempfile::tempdir().unwrap();
        let every = Duration::from_millis(20);
        let options = DiskBufferOptions::default()
            .with_segment_bytes(1024)
            .with_fsync(FsyncPolicy::Interval(every));
        let buffer = DiskBuffer::open(dir.path(), options).unwrap();
        // Past the interval between appends: an append that fsynced when
        // due would have done it here.
        for _ in 0..3 {
            std::thread::sleep(every * 2);
            for _ in 0..10 {
                buffer.append(&[b'x'; 100]).unwrap();
            }
        }
        {
            let w = lock(&buffer.writer);
            assert!(w.segment >= 2, "segments sealed: {}", w.segment);
            assert_eq!(
                w.sealed_unsynced.len() as u64,
                w.segment,
                "every sealed one waits"
            );
            assert!(w.dir_unsynced, "and the directory with the new names");
        }
        assert!(buffer.sync_if_due().unwrap());
        {
            let w = lock(&buffer.writer);
            assert!(w.sealed_unsynced.is_empty() && !w.unsynced && w.pending.is_empty());
            assert!(!w.dir_unsynced);
        }
        assert!(!buffer.sync_if_due().unwrap(), "nothing new: not due");
        drop(buffer);

        let dir = tempfile::tempdir().unwrap();
        let options = DiskBufferOptions::default()
            .with_segment_bytes(1024)
            .with_fsync(FsyncPolicy::Always);
        let buffer = DiskBuffer::open(dir.path(), options).unwrap();
        for _ in 0..30 {
            buffer.append(&[b'x'; 100]).unwrap();
        }
        let w = lock(&buffer.writer);
        assert!(w.segment >= 2 && w.sealed_unsynced.is_empty() && !w.unsynced && !w.dir_unsynced);
    }

    use proptest::prelude::*;

    fn empty_reader() -> Reader {
        Reader {
            cursor: Position::default(),
            file: None,
            in_flight: VecDeque::new(),
            front_seq: 0,
            dense: None,
            index: Index::default(),
            acked: Position::default(),
            next_unacked_id: 0,
            ledger_dirty: false,
            ledger_synced: None,
            next_corrupt: 0,
            cuts: 0,
            payload: Vec::new(),
        }
    }

    #[derive(Debug, Clone)]
    enum InFlightOp {
        /// A record whose id is the last one's plus this (0: a duplicate;
        /// a wrap below zero: an id out of order).
        Record(i8),
        Corrupt,
        Mark(prop::sample::Index),
        /// Passes the acknowledged items at the front.
        Advance,
    }

    proptest! {
        /// Reads, acknowledgements in any order and the position passing
        /// them find and mark the same items as a map from every key to
        /// its item (what the reader used before finding items of records
        /// read in a row by subtraction): records in a row, duplicates,
        /// ids out of order, corrupt items and the largest id.
        #[test]
        fn items_in_flight_are_found_as_a_map_of_every_key_finds_them(
            start in prop::sample::select(vec![0u64, 1 << 40, u64::MAX - 6]),
            ops in prop::collection::vec(prop_oneof![
                6 => (-2i8..4).prop_map(InFlightOp::Record),
                1 => Just(InFlightOp::Corrupt),
                5 => any::<prop::sample::Index>().prop_map(InFlightOp::Mark),
                2 => Just(InFlightOp::Advance),
            ], 1..80),
        ) {
            let mut reader = empty_reader();
            // The model: every key pushed and not yet marked, by sequence
            // number; each item's acknowledged flag.
            let mut live: HashMap<Key, u64> = HashMap::new();
            let mut model: VecDeque<bool> = VecDeque::new();
            let mut front = 0u64;
            let mut last = start;
            let mut keys: Vec<Key> = Vec::new();
            let mut corrupt = 0u64;
            for op in ops {
                match op {
                    InFlightOp::Record(step) => {
                        last = last.saturating_add_signed(i64::from(step));
                        let key = Key::Record(last);
                        let seq = front + model.len() as u64;
                        let acked = live.contains_key(&key);
                        if !acked {
                            live.insert(key, seq);
                        }
                        model.push_back(acked);
                        keys.push(key);
                        reader.push(key, Position::default(), Some(last));
                    }
                    InFlightOp::Corrupt => {
                        let key = Key::Corrupt(corrupt);
                        corrupt += 1;
                        live.insert(key, front + model.len() as u64);
                        model.push_back(false);
                        keys.push(key);
                        reader.push(key, Position::default(), None);
                    }
                    InFlightOp::Mark(pick) => {
                        if keys.is_empty() {
                            continue;
                        }
                        let key = keys[pick.index(keys.len())];
                        let expected = match live.remove(&key) {
                            Some(seq) => match model.get_mut((seq - front) as usize) {
                                Some(acked) => {
                                    *acked = true;
                                    true
                                }
                                None => false,
                            },
                            None => false,
                        };
                        prop_assert_eq!(reader.mark(key), expected, "{:?}", key);
                    }
                    InFlightOp::Advance => {
                        while model.front() == Some(&true) {
                            model.pop_front();
                            front += 1;
                            prop_assert!(reader.pop_front().is_some_and(|entry| entry.acked));
                        }
                        live.retain(|_, seq| *seq >= front);
                    }
                }
                let flags: Vec<bool> = reader.in_flight.iter().map(|entry| entry.acked).collect();
                prop_assert_eq!(flags, Vec::from(model.clone()));
                prop_assert_eq!(reader.front_seq, front);
            }
        }
    }

    /// What an earlier process left is told apart from this process's
    /// appends: the delivery worker reads the first off the runtime (it may
    /// wait for the disk) and the second as it is.
    #[test]
    fn reads_of_what_an_earlier_process_left_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let buffer = DiskBuffer::open(dir.path(), DiskBufferOptions::default()).unwrap();
        assert!(!buffer.reads_earlier_writes());
        buffer.append(b"left").unwrap();
        assert!(!buffer.reads_earlier_writes());
        drop(buffer);
        let buffer = DiskBuffer::open(dir.path(), DiskBufferOptions::default()).unwrap();
        assert!(buffer.reads_earlier_writes());
        let new = buffer.append(b"new").unwrap();
        assert!(buffer.reads_earlier_writes());
        let read = buffer.read(1, 1 << 20).unwrap();
        assert!(matches!(&read[..], [ReadItem::Record(r)] if r.payload == b"left"));
        assert!(!buffer.reads_earlier_writes());
        let rest = drain(&buffer);
        assert_eq!(rest.iter().map(|r| r.id).collect::<Vec<_>>(), [new]);
        let ids = [new]
            .into_iter()
            .chain(read.iter().filter_map(|item| match item {
                ReadItem::Record(r) => Some(r.id),
                ReadItem::Corrupt(_) => None,
            }));
        buffer.acknowledge(ids).unwrap();
        drop(buffer);
        // Everything acknowledged: nothing earlier is left to read.
        let buffer = DiskBuffer::open(dir.path(), DiskBufferOptions::default()).unwrap();
        assert!(!buffer.reads_earlier_writes());
    }

    /// Acknowledging may wait for the disk when it may fsync the ledger:
    /// always under `"always"`, never under `"never"`, and under
    /// `"interval"` when the ledger's fsync is due or a segment may be freed.
    #[test]
    fn acknowledging_may_wait_only_when_it_may_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let open = |name: &str, fsync: FsyncPolicy| {
            let options = DiskBufferOptions::default()
                .with_fsync(fsync)
                .with_segment_bytes(4096);
            DiskBuffer::open(dir.path().join(name), options).unwrap()
        };
        let ids_of = |buffer: &DiskBuffer| -> Vec<RecordId> {
            drain(buffer).into_iter().map(|r| r.id).collect()
        };
        let always = open("always", FsyncPolicy::Always);
        always.append(b"a").unwrap();
        let read = ids_of(&always);
        assert!(always.acknowledging_may_wait());
        always.acknowledge(read).unwrap();
        assert!(always.acknowledging_may_wait());

        let never = open("never", FsyncPolicy::Never);
        for _ in 0..20 {
            never.append(&[b'n'; 1000]).unwrap();
        }
        let read = ids_of(&never);
        assert!(!never.acknowledging_may_wait());
        never.acknowledge(read).unwrap();
        assert!(!never.acknowledging_may_wait());

        let interval = open("interval", FsyncPolicy::Interval(Duration::from_secs(3600)));
        // The ledger was never stored with its fsyncs: the first store is due.
        assert!(interval.acknowledging_may_wait());
        let first = interval.append(b"first").unwrap();
        assert_eq!(ids_of(&interval), [first]);
        interval.acknowledge([first]).unwrap();
        assert!(!interval.acknowledging_may_wait());
        // Read past the end of a segment not all acknowledged: acknowledging
        // may free it, behind a durable ledger.
        for _ in 0..20 {
            interval.append(&[b'i'; 1000]).unwrap();
        }
        let read = ids_of(&interval);
        assert!(interval.stats().segments > 1);
        assert!(interval.acknowledging_may_wait());
        interval.acknowledge(read).unwrap();
        assert!(!interval.acknowledging_may_wait());
    }

    /// An append whose write fails (here: the segment's handle swapped for
    /// a read-only one) returns the error and leaves the buffer's counts,
    /// the next id and the file as they were; the next append, once writes
    /// work again, takes that id and reads back alone.
    #[test]
    fn a_failed_write_takes_back_the_room_and_the_id_it_took() {
        let dir = tempfile::tempdir().unwrap();
        let options = DiskBufferOptions::default().with_fsync(FsyncPolicy::Always);
        let buffer = DiskBuffer::open(dir.path(), options).unwrap();
        let first = buffer.append(b"first").unwrap();
        let before = buffer.stats();
        let writable = {
            let mut w = lock(&buffer.writer);
            let read_only = File::open(segment::path(&buffer.dir, w.segment)).unwrap();
            std::mem::replace(&mut w.file, read_only)
        };
        assert!(buffer.append(b"refused").is_err());
        let after = buffer.stats();
        assert_eq!((after.records, after.bytes), (before.records, before.bytes));
        assert_eq!(lock(&buffer.shared).next_id, first.0 + 1);
        lock(&buffer.writer).file = writable;
        let second = buffer.append(b"second").unwrap();
        assert_eq!(second.0, first.0 + 1);
        let payloads: Vec<Vec<u8>> = drain(&buffer).into_iter().map(|r| r.payload).collect();
        assert_eq!(payloads, [b"first".to_vec(), b"second".to_vec()]);
        assert_eq!(buffer.stats().bytes, before.bytes + FRAME_HEADER + 6);
    }

    #[test]
    fn crafted_ids_duplicates_and_the_largest_id_never_panic_nor_stick() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = segment_of(0, 5, &[(5, b"a"), (5, b"dup"), (u64::MAX, b"max")]);
        std::fs::write(dir.path().join(segment::file_name(0)), bytes).unwrap();
        let buffer = DiskBuffer::open(dir.path(), DiskBufferOptions::default()).unwrap();
        let records = drain(&buffer);
        let ids: Vec<u64> = records.iter().map(|r| r.id.get()).collect();
        assert_eq!(ids, [5, 5, u64::MAX]);
        // The duplicate goes with the first: the position passes all three.
        assert_eq!(
            buffer
                .acknowledge([RecordId(5), RecordId(u64::MAX)])
                .unwrap(),
            2
        );
        assert_eq!(buffer.stats().records, 0);
        let id = buffer.append(b"x").unwrap();
        assert_eq!(
            drain(&buffer).iter().map(|r| r.id).collect::<Vec<_>>(),
            [id]
        );
        buffer.acknowledge([id]).unwrap();
        drop(buffer);
        let buffer = DiskBuffer::open(dir.path(), DiskBufferOptions::default()).unwrap();
        assert!(drain(&buffer).is_empty());
    }

    #[test]
    fn the_largest_segment_number_never_panics() {
        let dir = tempfile::tempdir().unwrap();
        let full = segment_of(u64::MAX, 0, &[(0, &[b'x'; 100])]);
        std::fs::write(dir.path().join(segment::file_name(u64::MAX)), full).unwrap();
        let options = DiskBufferOptions::default().with_segment_bytes(200);
        let buffer = DiskBuffer::open(dir.path(), options.clone()).unwrap();
        assert_eq!(drain(&buffer).len(), 1);
        // No segment can follow it: an append that needs one fails, cleanly.
        assert!(matches!(
            buffer.append(&[b'y'; 100]),
            Err(AppendError::Io(_))
        ));
        let id = buffer.append(b"y").unwrap();
        assert_eq!(
            drain(&buffer).iter().map(|r| r.id).collect::<Vec<_>>(),
            [id]
        );
        assert!(buffer.drop_oldest().is_err());
        drop(buffer);
        // Full and last: opening needs a new segment and says why it cannot.
        let small = options.with_segment_bytes(100);
        assert!(matches!(
            DiskBuffer::open(dir.path(), small),
            Err(BufferError::Io { .. })
        ));
    }

    #[test]
    fn a_ledger_past_the_cut_tail_sends_appends_to_a_new_segment() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = segment_of(0, 0, &[(0, b"a")]);
        let len = bytes.len() as u64;
        std::fs::write(dir.path().join(segment::file_name(0)), bytes).unwrap();
        let ledger = Ledger {
            position: Position {
                segment: 0,
                offset: len + 100,
            },
            next_unacked_id: 1,
        };
        ledger::store(dir.path(), &ledger, false).unwrap();
        let buffer = DiskBuffer::open(dir.path(), DiskBufferOptions::default()).unwrap();
        let id = buffer.append(b"b").unwrap();
        let records = drain(&buffer);
        assert_eq!(
            records.iter().map(|r| r.id).collect::<Vec<_>>(),
            [id],
            "not skipped"
        );
        assert!(dir.path().join(segment::file_name(1)).exists());
    }

    #[test]
    fn a_newest_segment_cut_short_at_creation_is_removed_without_counting() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(segment::file_name(0)),
            segment_of(0, 0, &[(0, b"a")]),
        )
        .unwrap();
        std::fs::write(
            dir.path().join(segment::file_name(1)),
            &segment::header(1, 1)[..10],
        )
        .unwrap();
        let buffer = DiskBuffer::open(dir.path(), DiskBufferOptions::default()).unwrap();
        assert_eq!(buffer.stats().corrupt_records, 0);
        assert!(!dir.path().join(segment::file_name(1)).exists());
        assert_eq!(
            drain(&buffer)
                .iter()
                .map(|r| r.payload.clone())
                .collect::<Vec<_>>(),
            [b"a".to_vec()]
        );
        assert_eq!(buffer.append(b"b").unwrap().get(), 1);
    }
}
