//! A route whose queue is a durable disk buffer (`buffer = "disk"`).
//!
//! The disk buffer IS the route's queue: `offer` appends the event's JSON
//! line to it (and answers a receipt `Buffered`); the worker pumps records
//! from it into the memory queue, which is then only a read-ahead of a few
//! batches (at most `queue_capacity` events), and everything after that (batches,
//! retries, dead letters, flush tallies) is the memory route's. Each pumped
//! event keeps its record id by sequence number; the record is acknowledged
//! once the event is settled (delivered, dead-lettered, dropped or
//! filtered). Events given up at the shutdown deadline are not
//! acknowledged: they stay in the buffer, and the next tracker built on
//! the same path delivers them first (the buffer reads oldest first).
//!
//! A flush covers the records appended before it: it waits here until the
//! reader has passed them (they are in the memory queue then), and is then
//! handed to the route's control channel like a memory route's flush.

use std::cell::Cell;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use eventtracking_core::sync::lock;
use eventtracking_core::{Event, EventLineParser};

use super::flush::FlushOutcome;
use super::{refuse_for_want_of_room, DeliveryConfig, Extra, Offered, Overflow, Queued, Route};
use crate::ack::Outcome;
use crate::answer::Part;
use crate::buffer::{
    AppendError, BufferError, BufferStats, CorruptRecord, DiskBuffer, FsyncPolicy, ReadRef,
    RecordId,
};

/// The most payload bytes one pump reads (the read-ahead is bounded in
/// events by `queue_capacity`; this bounds one read's memory too).
const PUMP_BYTES: usize = 16 << 20;

/// How often an idle worker wakes to fsync (under `"interval"`) and to look
/// for records it was not told about.
const IDLE_TICK: Duration = Duration::from_millis(100);

/// Runs the buffer's file I/O that may wait for the disk (reads of what an
/// earlier process wrote, the ledger's fsync) from a delivery worker
/// without holding up the other workers of the runtime. I/O that the page
/// cache answers runs on the worker as it is: `block_in_place` hands the
/// worker's runtime core to another thread and back each time, which cost
/// a busy disk route about a tenth of its CPU time when every read and
/// acknowledgement went through it.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Runs `f` on the event's JSON line. An event that this route holds alone
/// is dropped once appended, so its line is written into the thread's
/// reused buffer instead of being cached in it (an allocation, its free and
/// the cache's bookkeeping per event on the emitting thread, about a
/// twentieth of its work); a shared event caches its line for the other
/// routes.
fn with_event_line<R>(event: &Arc<Event>, f: impl FnOnce(&[u8]) -> R) -> R {
    thread_local! {
        static LINE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    }
    /// The most capacity kept between events (a huge event's is let go).
    const KEPT: usize = 64 << 10;
    if Arc::strong_count(event) != 1 {
        return f(event.to_json_bytes());
    }
    // Taken out, not borrowed: a nested call finds an empty buffer.
    let mut line = LINE.try_with(Cell::take).unwrap_or_default();
    line.clear();
    event.write_json(&mut line);
    let result = f(&line);
    if line.capacity() <= KEPT {
        let _ = LINE.try_with(|cell| cell.set(line));
    }
    result
}

/// The disk side of a route.
pub(crate) struct DiskRoute {
    /// `None` once closed at shutdown (so that a new tracker in this process
    /// can open the directory at once).
    buffer: RwLock<Option<DiskBuffer>>,
    /// The buffer's counters when it was closed.
    final_stats: Mutex<Option<BufferStats>>,
    /// The record id of each event pumped into the memory queue and not
    /// settled yet, by sequence number.
    ids: Mutex<SeqIds>,
    /// Parses the records pumped in (one worker pumps at a time).
    parser: Mutex<EventLineParser>,
    /// One more than the highest record id appended (a flush's target).
    appended_end: AtomicU64,
    /// One more than the highest record id read.
    read_end: AtomicU64,
    /// When the worker wants to be woken by an append: see [`WakeAt`].
    wake_at: WakeAt,
    /// Flush requests waiting for the reader to pass their records, by
    /// target in request order.
    flushes: Mutex<VecDeque<(u64, Part<FlushOutcome>)>>,
    /// When [`tick`](Self::tick) next asks the buffer for a due fsync: a
    /// blocking section on every pass of the worker cost more than the
    /// check, so it asks a few times per interval.
    next_sync_check: Mutex<Instant>,
    /// An fsync of [`tick`](Self::tick) is running.
    syncing: AtomicBool,
}

/// How many events a disk route keeps read ahead in its memory queue (the
/// batches in flight are out of it): as many batches as may be sent at
/// once, so that sends finishing together are all followed at once, and
/// one more; at most `queue_capacity`. The buffer is the queue: reading
/// further ahead only costs memory, and time (a read-ahead of 65,536
/// parsed events, the default capacity, went cold in the caches before it
/// was sent, and its fresh pages were a tenth of the delivery side's time).
fn read_ahead(route: &Route) -> usize {
    let batches = route.max_in_flight.saturating_add(1);
    let events = route.config.batch_size.max(1).saturating_mul(batches);
    events.min(route.config.queue_capacity)
}

/// What one pump read, gathered while the buffer's reader is locked and
/// handled once it is not (acknowledging needs that lock).
#[derive(Default)]
struct Pumped {
    events: Vec<(RecordId, Arc<Event>)>,
    /// Records read back from an earlier process and parsed.
    replayed: u64,
    /// One more than the highest record id read.
    read_end: Option<u64>,
    /// Records that are no event: id, why, bytes.
    unparsable: Vec<(RecordId, String, Vec<u8>)>,
    corrupt: Vec<CorruptRecord>,
}

impl Pumped {
    fn add(&mut self, parser: &mut EventLineParser, item: ReadRef<'_>) {
        match item {
            ReadRef::Record(record) => {
                let end = record.id.get().saturating_add(1);
                self.read_end = Some(self.read_end.map_or(end, |read| read.max(end)));
                // An event line appended by the route itself (its checksum
                // matched) is taken as written; anything else is validated.
                let parsed = if record.event_line {
                    parser.parse_written(record.payload)
                } else {
                    parser.parse(record.payload)
                };
                match parsed {
                    Ok(event) => {
                        self.replayed += u64::from(record.replayed);
                        self.events.push((record.id, Arc::new(event)));
                    }
                    Err(error) => {
                        let reason = format!(
                            "disk buffer: record {} is not an event: {error}",
                            record.id.get()
                        );
                        self.unparsable
                            .push((record.id, reason, record.payload.to_vec()));
                    }
                }
            }
            ReadRef::Corrupt(corrupt) => self.corrupt.push(corrupt),
        }
    }
}

/// The record id end at which an append wakes the worker (`u64::MAX`:
/// none). Waking it on every append (a futex wake and a pump of a record
/// or two each) cost the emitting thread and the worker more than the
/// records themselves; the memory route likewise wakes its worker only
/// when work appears or a batch fills.
#[derive(Debug)]
struct WakeAt(AtomicU64);

impl Default for WakeAt {
    fn default() -> Self {
        WakeAt(AtomicU64::new(u64::MAX))
    }
}

impl WakeAt {
    fn arm(&self, end: u64) {
        self.0.store(end, SeqCst);
    }

    fn disarm(&self) {
        self.0.store(u64::MAX, SeqCst);
    }

    /// After appending up to `end`: whether to wake the worker (once per
    /// arming: it is disarmed here).
    fn reached(&self, end: u64) -> bool {
        let at = self.0.load(SeqCst);
        end >= at
            && self
                .0
                .compare_exchange(at, u64::MAX, SeqCst, SeqCst)
                .is_ok()
    }
}

/// Record ids by sequence number. The events pumped in get consecutive
/// sequence numbers (the memory queue numbers what it is given in order),
/// so a deque from the oldest unsettled one does a map's work without
/// hashing: two map operations per event were a tenth of a disk route's
/// delivery time.
#[derive(Debug, Default)]
struct SeqIds {
    /// The sequence number of `ids[0]`.
    first: u64,
    /// `None`: settled, or no record (a gap; never made by the queue).
    ids: VecDeque<Option<RecordId>>,
}

impl SeqIds {
    fn insert(&mut self, seq: u64, id: RecordId) {
        if self.ids.is_empty() {
            self.first = seq;
        }
        // Never taken: sequence numbers only grow.
        while seq < self.first {
            self.ids.push_front(None);
            self.first -= 1;
        }
        let Ok(at) = usize::try_from(seq - self.first) else {
            return;
        };
        if at == self.ids.len() {
            // The usual case: the next sequence number.
            self.ids.push_back(Some(id));
            return;
        }
        if at > self.ids.len() {
            self.ids.resize(at + 1, None);
        }
        self.ids[at] = Some(id);
    }

    fn remove(&mut self, seq: u64) -> Option<RecordId> {
        let at = usize::try_from(seq.checked_sub(self.first)?).ok()?;
        let id = self.ids.get_mut(at)?.take();
        while matches!(self.ids.front(), Some(None)) {
            self.ids.pop_front();
            self.first += 1;
        }
        id
    }

    fn clear(&mut self) {
        self.ids.clear();
    }
}

impl std::fmt::Debug for DiskRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskRoute").finish_non_exhaustive()
    }
}

impl DiskRoute {
    /// Opens the buffer of backend `name`: `buffer_path/<name>`.
    pub(super) fn open(name: &str, config: &DeliveryConfig) -> Result<Self, BufferError> {
        let dir: PathBuf = config.buffer_dir(name);
        let buffer = DiskBuffer::open(&dir, config.disk_buffer_options())?;
        // What an earlier process left counts as appended before any flush
        // of this one: a flush waits for it too.
        let stats = buffer.stats();
        let left = stats
            .oldest_unacknowledged
            .map_or(0, |oldest| oldest.get().saturating_add(stats.records));
        Ok(DiskRoute {
            buffer: RwLock::new(Some(buffer)),
            final_stats: Mutex::new(None),
            ids: Mutex::new(SeqIds::default()),
            parser: Mutex::new(EventLineParser::new()),
            appended_end: AtomicU64::new(left),
            read_end: AtomicU64::new(0),
            wake_at: WakeAt::default(),
            flushes: Mutex::new(VecDeque::new()),
            next_sync_check: Mutex::new(Instant::now()),
            syncing: AtomicBool::new(false),
        })
    }

    /// Runs `f` on the buffer unless it is closed.
    fn with_buffer<R>(&self, f: impl FnOnce(&DiskBuffer) -> R) -> Option<R> {
        let guard = self.buffer.read().unwrap_or_else(PoisonError::into_inner);
        guard.as_ref().map(f)
    }

    /// The emit path of a disk route: appends the event under the overflow
    /// policy. Never a sequence number: the receipt is answered here.
    pub(super) fn offer(
        &self,
        route: &Route,
        event: Arc<Event>,
        extra: Option<Box<Extra>>,
    ) -> Offered {
        let counters = &route.counters;
        let config = &route.config;
        // The schema check's verdict is not kept in the buffer's records: an
        // event that fails it goes to the dead-letter file now, as a memory
        // route's worker would send it there, without taking buffer space.
        if config.validate_schemas {
            if let Some(reason) = extra.as_ref().and_then(|e| e.invalid.clone()) {
                counters.accepted.fetch_add(1, Relaxed);
                counters.schema_invalid.fetch_add(1, Relaxed);
                let ack = extra.and_then(|e| e.ack);
                route.dead_letter_and_answer(&[event], vec![ack], &reason, 0, false);
                return Offered::Settled;
            }
        }
        let appended = self
            .with_buffer(|buffer| with_event_line(&event, |line| self.append(route, buffer, line)));
        let error = match appended {
            None => {
                route.dead_letter_offered_while_closing(
                    event,
                    extra,
                    "shutdown: emitted after shutdown closed the disk buffer",
                );
                return Offered::Settled;
            }
            Some(Ok(id)) => {
                counters.accepted.fetch_add(1, Relaxed);
                self.appended_end
                    .fetch_max(id.get().saturating_add(1), SeqCst);
                if let Some(ack) = extra.and_then(|e| e.ack) {
                    ack.fill(Outcome::Buffered);
                }
                if self.wake_at.reached(id.get().saturating_add(1)) {
                    route.wake.notify_one();
                }
                return Offered::Settled;
            }
            Some(Err(error)) => error,
        };
        match error {
            AppendError::Full { .. } => {
                let (counter, reason) = match config.overflow {
                    Overflow::Block => (
                        &counters.dropped_block_timeout,
                        "disk buffer still full after block_timeout_ms",
                    ),
                    Overflow::DropOldest => (
                        &counters.dropped_queue_full,
                        "disk buffer full and nothing left to evict",
                    ),
                    _ => (
                        &counters.dropped_queue_full,
                        "disk buffer full (overflow = \"drop_newest\")",
                    ),
                };
                let n = counter.fetch_add(1, Relaxed);
                route.note_drop(n, reason);
                refuse_for_want_of_room(extra, reason);
                Offered::Refused(reason)
            }
            // Never bufferable (too large, or the disk failed): the event
            // goes to the dead-letter file rather than being lost.
            other => {
                counters.accepted.fetch_add(1, Relaxed);
                let reason = format!("disk buffer: cannot append the event: {other}");
                tracing::error!(backend = %route.name, error = %other, "eventtracking: disk buffer append failed; dead-lettering the event");
                let ack = extra.and_then(|e| e.ack);
                route.dead_letter_and_answer(&[event], vec![ack], &reason, 0, false);
                Offered::Settled
            }
        }
    }

    /// Appends an event's line under the overflow policy: `block` waits up
    /// to `block_timeout`, `drop_oldest` evicts whole segments (counted)
    /// to make room, `drop_newest` refuses it.
    fn append(
        &self,
        route: &Route,
        buffer: &DiskBuffer,
        line: &[u8],
    ) -> Result<RecordId, AppendError> {
        let config = &route.config;
        let counters = &route.counters;
        let first = match config.overflow {
            Overflow::Block => buffer.append_event_line_timeout(line, config.block_timeout),
            _ => buffer.append_event_line(line),
        };
        match first {
            Err(AppendError::Full { .. }) if config.overflow == Overflow::DropOldest => {
                // Each drop frees a segment; a few tries cover a record
                // larger than the space one drop frees.
                let mut result = first;
                for _ in 0..4 {
                    match buffer.drop_oldest() {
                        Ok(Some(dropped)) => {
                            // Records already read are in the worker's
                            // hands and get their own outcome: only
                            // those never read are lost.
                            let lost = dropped.records.saturating_sub(dropped.handed_out);
                            let n = counters.dropped_evicted.fetch_add(lost, Relaxed);
                            route.complete(lost);
                            route.note_drop(n, "disk buffer full: oldest segment evicted");
                        }
                        Ok(None) => break,
                        Err(error) => {
                            result = Err(AppendError::Io(error));
                            break;
                        }
                    }
                    result = buffer.append_event_line(line);
                    if !matches!(result, Err(AppendError::Full { .. })) {
                        break;
                    }
                }
                result
            }
            other => other,
        }
    }

    /// Moves records from the buffer into the memory queue, up to
    /// [`read_ahead`] events queued; dead-letters corrupt records; hands
    /// the flushes whose records were all read to the control channel.
    pub(super) fn pump(&self, route: &Route) {
        let room = read_ahead(route).saturating_sub(route.queue_len());
        if room > 0 {
            let mut pumped = Pumped::default();
            let mut read = || {
                self.with_buffer(|buffer| {
                    // Parsed straight from the reader's buffer, one context
                    // map shared by records in a row with the same context.
                    let mut parser = lock(&self.parser);
                    buffer.read_with(room, PUMP_BYTES, |item| pumped.add(&mut parser, item))
                })
            };
            let cold = self.with_buffer(DiskBuffer::reads_earlier_writes);
            let read = if cold == Some(true) {
                blocking(read)
            } else {
                read()
            };
            if let Some(Err(error)) = read {
                tracing::error!(backend = %route.name, %error, "eventtracking: cannot read the disk buffer");
            }
            self.take_in(route, pumped);
        }
        self.hand_over_flushes(route);
    }

    fn take_in(&self, route: &Route, pumped: Pumped) {
        if let Some(end) = pumped.read_end {
            self.read_end.fetch_max(end, SeqCst);
        }
        if pumped.replayed > 0 {
            route.counters.accepted.fetch_add(pumped.replayed, Relaxed);
        }
        for (id, reason, payload) in pumped.unparsable {
            self.dead_letter_raw(route, &reason, &payload);
            self.with_buffer(|buffer| buffer.acknowledge([id]));
        }
        for corrupt in pumped.corrupt {
            let reason = format!(
                "disk buffer: corrupt record ({} bytes) in {} at offset {}",
                corrupt.bytes.len(),
                corrupt.path.display(),
                corrupt.offset
            );
            self.dead_letter_raw(route, &reason, &corrupt.bytes);
            self.with_buffer(|buffer| buffer.acknowledge_corrupt(corrupt.id));
        }
        if pumped.events.is_empty() {
            return;
        }
        let mut queue = lock(&route.queue);
        let mut ids = lock(&self.ids);
        for (id, event) in pumped.events {
            ids.insert(queue.next_seq(), id);
            queue.items.push_back(Queued { event, extra: None });
        }
    }

    /// Before the worker waits for events: asks appends to wake it once the
    /// records not read yet would fill the rest of a batch (any record when
    /// nothing is queued), or not at all when its read-ahead is full or it
    /// holds a full batch (a send finishing wakes it then). `false` when
    /// that many are appended already: pump again instead of waiting.
    pub(super) fn arm_wake(&self, route: &Route) -> bool {
        let len = route.queue_len();
        let room = read_ahead(route).saturating_sub(len);
        let full = route.full_batch();
        if room == 0 || len >= full {
            self.wake_at.disarm();
            return true;
        }
        let need = if len == 0 { 1 } else { (full - len).min(room) };
        let at = self.read_end.load(SeqCst).saturating_add(need as u64);
        self.wake_at.arm(at);
        // After arming (both SeqCst): an append this misses sees the arm.
        // Left armed: if the records cannot be read (ids lost in corrupt
        // bytes), the next append still wakes the worker.
        self.appended_end.load(SeqCst) < at
    }

    /// Writes bytes that are no event to the dead-letter file; if that
    /// fails they are lost (counted), since keeping them would stop the
    /// buffer's position for good.
    fn dead_letter_raw(&self, route: &Route, reason: &str, bytes: &[u8]) {
        let written = route.dead_letter.write_raw(&route.name, reason, bytes);
        match written.error {
            None => {
                tracing::warn!(backend = %route.name, reason, path = %route.dead_letter.path().display(), "eventtracking: disk buffer record dead-lettered");
            }
            Some(error) => {
                route
                    .counters
                    .dropped_dead_letter_error
                    .fetch_add(1, Relaxed);
                tracing::error!(backend = %route.name, reason, %error, "eventtracking: a corrupt disk buffer record is lost: cannot write it to the dead-letter file");
            }
        }
    }

    /// Queues a flush request: answered once the records appended before it
    /// are read and settled.
    pub(super) fn push_flush(&self, part: Part<FlushOutcome>) {
        let target = self.appended_end.load(SeqCst);
        lock(&self.flushes).push_back((target, part));
    }

    /// Hands the flushes whose records were all read to the control
    /// channel, each covering what is in the memory queue now.
    fn hand_over_flushes(&self, route: &Route) {
        // Racy but harmless: a request pushed after this look wakes the worker.
        if lock(&self.flushes).is_empty() {
            return;
        }
        // The order of `Route::request_flush`: queue, control, flushes.
        let queue = lock(&route.queue);
        let mut control = lock(&route.control);
        let mut flushes = lock(&self.flushes);
        if flushes.is_empty() {
            return;
        }
        // Under the flushes lock: every request waiting was made before
        // this look, so the appends it covers are visible to it.
        let unread = self.has_unread();
        let read_end = self.read_end.load(SeqCst);
        while flushes
            .front()
            .is_some_and(|(target, _)| !unread || read_end >= *target)
        {
            if let Some((_, part)) = flushes.pop_front() {
                control.push(queue.next_seq(), part);
            }
        }
    }

    /// Answers every waiting flush request with `error` (the worker is gone).
    pub(super) fn fail_flushes(&self, error: &str) {
        for (_, part) in lock(&self.flushes).drain(..) {
            part.fill(FlushOutcome::failed(error));
        }
    }

    /// Whether the buffer holds records not read yet.
    pub(super) fn has_unread(&self) -> bool {
        self.with_buffer(|buffer| buffer.wait_for_data(Duration::ZERO))
            .unwrap_or(false)
    }

    /// How long an idle worker may sleep before [`tick`](Self::tick).
    pub(super) fn idle_tick(&self) -> Duration {
        match self.with_buffer(|buffer| buffer.options().fsync()) {
            Some(FsyncPolicy::Interval(every)) => every.clamp(Duration::from_millis(1), IDLE_TICK),
            _ => IDLE_TICK,
        }
    }

    /// Fsyncs under `"interval"` when due: appends never do (an emit does
    /// not wait for the disk), so this is what makes records durable within
    /// about an interval (a quarter more at most, between checks). The
    /// fsync waits out the disk's writeback of what the interval appended:
    /// it runs on the runtime's blocking pool, one at a time, so that the
    /// worker goes on reading and sending meanwhile (waiting for it held
    /// delivery up for a seventh of a busy route's time).
    pub(super) fn tick(&self, route: &Arc<Route>) {
        let Some(FsyncPolicy::Interval(every)) =
            self.with_buffer(|buffer| buffer.options().fsync())
        else {
            return;
        };
        {
            let mut next = lock(&self.next_sync_check);
            let now = Instant::now();
            if now < *next {
                return;
            }
            *next = now + (every / 4).max(Duration::from_millis(1));
        }
        if self.syncing.swap(true, SeqCst) {
            return;
        }
        let route = route.clone();
        let sync = move || {
            let Some(disk) = &route.disk else { return };
            /// Clears `syncing` however the fsync ends.
            struct Done<'a>(&'a AtomicBool);
            impl Drop for Done<'_> {
                fn drop(&mut self) {
                    self.0.store(false, SeqCst);
                }
            }
            let _done = Done(&disk.syncing);
            if let Some(Err(error)) = disk.with_buffer(DiskBuffer::sync_if_due) {
                tracing::error!(backend = %route.name, %error, "eventtracking: disk buffer fsync failed");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                // Not awaited: `syncing` says when it is done.
                drop(handle.spawn_blocking(sync));
            }
            _ => sync(),
        }
    }

    /// Acknowledges the records of settled events.
    pub(super) fn acknowledge(&self, route: &Route, seqs: impl IntoIterator<Item = u64>) {
        let ids: Vec<RecordId> = {
            let mut map = lock(&self.ids);
            seqs.into_iter().filter_map(|seq| map.remove(seq)).collect()
        };
        if ids.is_empty() {
            return;
        }
        let acknowledge = || self.with_buffer(|buffer| buffer.acknowledge_keeping_files(ids));
        let acknowledged = if self.with_buffer(DiskBuffer::acknowledging_may_wait) == Some(true) {
            blocking(acknowledge)
        } else {
            acknowledge()
        };
        match acknowledged {
            Some(Ok((_, released))) if !released.is_empty() => {
                // Deleting a segment drops its cached pages (tens of
                // milliseconds for 64 MiB): not on the way to the next batch.
                match tokio::runtime::Handle::try_current() {
                    Ok(handle) => drop(handle.spawn_blocking(move || released.delete())),
                    Err(_) => released.delete(),
                }
            }
            Some(Err(error)) => {
                tracing::error!(backend = %route.name, %error, "eventtracking: cannot persist the disk buffer's position (the events may be delivered again after a restart)");
            }
            _ => {}
        }
    }

    /// Forgets the record ids of events left in the buffer (given up at
    /// the shutdown deadline): they are not acknowledged.
    pub(super) fn keep(&self, seqs: impl IntoIterator<Item = u64>) {
        let mut map = lock(&self.ids);
        for seq in seqs {
            map.remove(seq);
        }
    }

    /// The buffer's counters (the last ones once it is closed).
    pub(super) fn stats(&self) -> BufferStats {
        self.with_buffer(DiskBuffer::stats)
            .or_else(|| *lock(&self.final_stats))
            .unwrap_or_default()
    }

    /// Closes the buffer: syncs it, persists the position, and releases the
    /// directory. Later appends are refused as after shutdown.
    pub(super) fn close(&self, route: &Route) {
        let taken = self
            .buffer
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        lock(&self.ids).clear();
        if let Some(buffer) = taken {
            *lock(&self.final_stats) = Some(buffer.stats());
            if let Err(error) = buffer.close() {
                tracing::error!(backend = %route.name, %error, "eventtracking: cannot close the disk buffer cleanly (its events may be delivered again)");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wake_at_wakes_once_per_arming_and_only_past_its_end() {
        let wake = WakeAt::default();
        assert!(!wake.reached(u64::MAX - 1), "not armed");
        wake.arm(10);
        assert!(!wake.reached(9));
        assert!(wake.reached(12), "past the end also wakes");
        assert!(!wake.reached(13), "once per arming");
        wake.arm(20);
        wake.disarm();
        assert!(!wake.reached(30));
    }

    #[test]
    fn seq_ids_remove_in_any_order_and_only_once() {
        let mut ids = SeqIds::default();
        for seq in 10..15 {
            ids.insert(seq, RecordId::new(seq * 100));
        }
        assert_eq!(ids.remove(12), Some(RecordId::new(1200)));
        assert_eq!(ids.remove(12), None, "only once");
        assert_eq!(ids.remove(9), None, "before the first");
        assert_eq!(ids.remove(15), None, "after the last");
        assert_eq!(ids.remove(10), Some(RecordId::new(1000)));
        assert_eq!(ids.first, 11, "the settled front is let go");
        ids.insert(15, RecordId::new(1500));
        ids.insert(17, RecordId::new(1700));
        assert_eq!(ids.remove(16), None, "a gap holds nothing");
        for seq in [11, 13, 14, 15] {
            assert_eq!(ids.remove(seq), Some(RecordId::new(seq * 100)));
        }
        assert_eq!(ids.ids.len(), 1, "up to the one left");
        assert_eq!(ids.remove(17), Some(RecordId::new(1700)));
        assert!(ids.ids.is_empty());
        // Empty: the next one starts anew.
        ids.insert(40, RecordId::new(4));
        ids.insert(39, RecordId::new(3));
        assert_eq!(ids.remove(39), Some(RecordId::new(3)));
        assert_eq!(ids.remove(40), Some(RecordId::new(4)));
        ids.insert(41, RecordId::new(5));
        ids.clear();
        assert_eq!(ids.remove(41), None);
    }
}
