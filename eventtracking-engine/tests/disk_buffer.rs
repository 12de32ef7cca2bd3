//! The disk buffer's storage layer (`eventtracking_engine::buffer`):
//! round trips across segments, recovery after a clean close and after a
//! crash, out-of-order acknowledgements, a torn tail, a flipped byte, a full
//! buffer, an unwritable directory, and property tests against a model and
//! on garbage files. No timing assertions: waits use generous timeouts and
//! tests assert on outcomes.

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use eventtracking_engine::buffer::{
    AppendError, BufferError, BufferedRecord, CorruptRecord, DiskBuffer, DiskBufferOptions,
    FsyncPolicy, ReadItem, RecordId,
};
use proptest::prelude::*;

/// Long enough never to be reached on a loaded machine.
const GENEROUS: Duration = Duration::from_secs(60);
const SEGMENT_HEADER: u64 = 32;
const FRAME_HEADER: u64 = 20;

fn options(segment_bytes: u64, fsync: FsyncPolicy) -> DiskBufferOptions {
    DiskBufferOptions::default()
        .with_segment_bytes(segment_bytes)
        .with_fsync(fsync)
}

fn payload(i: usize) -> Vec<u8> {
    format!(r#"{{"name":"test.event","data":{{"i":{i}}}}}"#).into_bytes()
}

/// Reads until the buffer says there is nothing more.
fn read_all(buffer: &DiskBuffer) -> Vec<ReadItem> {
    let mut items = Vec::new();
    for _ in 0..100_000 {
        let batch = buffer.read(7, 1 << 20).unwrap();
        if batch.is_empty() {
            return items;
        }
        items.extend(batch);
    }
    panic!("the reader never ran dry");
}

fn records(items: &[ReadItem]) -> Vec<&BufferedRecord> {
    items
        .iter()
        .filter_map(|item| match item {
            ReadItem::Record(record) => Some(record),
            _ => None,
        })
        .collect()
}

fn corrupt(items: &[ReadItem]) -> Vec<&CorruptRecord> {
    items
        .iter()
        .filter_map(|item| match item {
            ReadItem::Corrupt(corrupt) => Some(corrupt),
            _ => None,
        })
        .collect()
}

fn payloads(items: &[ReadItem]) -> Vec<Vec<u8>> {
    records(items).iter().map(|r| r.payload.clone()).collect()
}

fn ids(items: &[ReadItem]) -> Vec<RecordId> {
    records(items).iter().map(|r| r.id).collect()
}

/// A buffer in `dir` holding `payloads`, closed: its first segment file
/// and that file's bytes.
fn one_segment_of(dir: &Path, segment_bytes: u64, payloads: &[Vec<u8>]) -> (PathBuf, Vec<u8>) {
    let buffer = DiskBuffer::open(dir, options(segment_bytes, FsyncPolicy::Never)).unwrap();
    for p in payloads {
        buffer.append(p).unwrap();
    }
    buffer.close().unwrap();
    let file = segment_files(dir).remove(0);
    let bytes = std::fs::read(&file).unwrap();
    (file, bytes)
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "etb"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_buffer_is_shared_between_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<DiskBuffer>();
}

#[test]
fn round_trip_across_segments_deletes_acknowledged_segments() {
    let dir = tempfile::tempdir().unwrap();
    let buffer = DiskBuffer::open(dir.path(), options(256, FsyncPolicy::Never)).unwrap();
    let written: Vec<Vec<u8>> = (0..40).map(payload).collect();
    let appended: Vec<RecordId> = written.iter().map(|p| buffer.append(p).unwrap()).collect();
    assert!(
        appended.windows(2).all(|w| w[1].get() == w[0].get() + 1),
        "ids increase by one"
    );
    let stats = buffer.stats();
    assert_eq!(stats.records, 40);
    assert!(stats.segments >= 5, "several segments: {stats:?}");

    let items = read_all(&buffer);
    assert_eq!(payloads(&items), written);
    assert_eq!(ids(&items), appended);
    assert!(records(&items).iter().all(|r| !r.replayed));
    assert!(segment_files(dir.path()).len() >= 5);

    assert_eq!(buffer.acknowledge(appended.iter().copied()).unwrap(), 40);
    let stats = buffer.stats();
    assert_eq!(
        (stats.records, stats.segments, stats.oldest_unacknowledged),
        (0, 1, None)
    );
    // Only the segment being written is left.
    assert_eq!(segment_files(dir.path()).len(), 1);
    assert!(buffer.read(10, 1 << 20).unwrap().is_empty());
}

/// `acknowledge_keeping_files` frees the segments at once (stats, space,
/// position) but leaves their files to the caller: deleted by `delete`,
/// by dropping what it returned, or, if the process never got to it, at
/// the next open.
#[test]
fn acknowledging_while_keeping_files_leaves_their_deletion_to_the_caller() {
    for how in ["delete", "drop", "never"] {
        let dir = tempfile::tempdir().unwrap();
        let fsync = FsyncPolicy::Interval(Duration::from_millis(100));
        let buffer = DiskBuffer::open(dir.path(), options(256, fsync)).unwrap();
        let appended: Vec<RecordId> = (0..40)
            .map(|i| buffer.append(&payload(i)).unwrap())
            .collect();
        assert_eq!(ids(&read_all(&buffer)), appended);
        let before = segment_files(dir.path()).len();
        assert!(before >= 5, "{before}");

        let (marked, released) = buffer
            .acknowledge_keeping_files(appended.iter().copied())
            .unwrap();
        assert_eq!(marked, 40);
        assert!(!released.is_empty());
        let stats = buffer.stats();
        assert_eq!(
            (stats.records, stats.segments),
            (0, 1),
            "{how}: freed at once"
        );
        assert_eq!(segment_files(dir.path()).len(), before, "{how}: files kept");
        match how {
            "delete" => released.delete(),
            "drop" => drop(released),
            _ => std::mem::forget(released),
        }
        if how == "never" {
            buffer.close().unwrap();
            let reopened = DiskBuffer::open(dir.path(), options(256, fsync)).unwrap();
            assert!(read_all(&reopened).is_empty(), "nothing read again");
        }
        assert_eq!(
            segment_files(dir.path()).len(),
            1,
            "{how}: only the write segment"
        );
    }
    // Nothing freed: nothing to delete.
    let dir = tempfile::tempdir().unwrap();
    let buffer = DiskBuffer::open(dir.path(), options(1 << 20, FsyncPolicy::Never)).unwrap();
    let id = buffer.append(&payload(0)).unwrap();
    read_all(&buffer);
    let (marked, released) = buffer.acknowledge_keeping_files([id]).unwrap();
    assert_eq!(marked, 1);
    assert!(released.is_empty());
}

#[test]
fn read_respects_max_records_and_max_bytes_but_returns_at_least_one() {
    let dir = tempfile::tempdir().unwrap();
    let buffer = DiskBuffer::open(dir.path(), options(1 << 20, FsyncPolicy::Never)).unwrap();
    for i in 0..10 {
        buffer.append(&payload(i)).unwrap();
    }
    assert_eq!(buffer.read(3, 1 << 20).unwrap().len(), 3);
    // One byte of budget: still one record, so that a large record is never stuck.
    assert_eq!(buffer.read(100, 1).unwrap().len(), 1);
    assert_eq!(read_all(&buffer).len(), 6);
}

#[test]
fn reopen_after_clean_close_redelivers_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let buffer = DiskBuffer::open(dir.path(), options(200, FsyncPolicy::Always)).unwrap();
    for i in 0..10 {
        buffer.append(&payload(i)).unwrap();
    }
    let items = read_all(&buffer);
    buffer.acknowledge(ids(&items)).unwrap();
    buffer.close().unwrap();

    let buffer = DiskBuffer::open(dir.path(), options(200, FsyncPolicy::Always)).unwrap();
    assert_eq!(buffer.stats().records, 0);
    assert!(read_all(&buffer).is_empty());
    let id = buffer.append(b"after").unwrap();
    assert_eq!(id.get(), 10, "ids go on after a restart");
    let items = read_all(&buffer);
    assert_eq!(payloads(&items), vec![b"after".to_vec()]);
    assert!(!records(&items)[0].replayed);
    assert_eq!(buffer.stats().replayed_records, 0);
}

#[test]
fn reopen_without_acknowledgement_redelivers_the_unacknowledged_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let written: Vec<Vec<u8>> = (0..30).map(payload).collect();
    {
        let buffer = DiskBuffer::open(dir.path(), options(300, FsyncPolicy::Always)).unwrap();
        for p in &written {
            buffer.append(p).unwrap();
        }
        let items = buffer.read(12, 1 << 20).unwrap();
        // The first 5 acknowledged; 6..12 read but not acknowledged (a crash mid-delivery).
        buffer
            .acknowledge(ids(&items)[..5].iter().copied())
            .unwrap();
        // Dropped without close: what a crash leaves, as far as the ledger goes.
    }
    let buffer = DiskBuffer::open(dir.path(), options(300, FsyncPolicy::Always)).unwrap();
    assert_eq!(buffer.stats().records, 25);
    let items = read_all(&buffer);
    assert_eq!(payloads(&items), written[5..].to_vec());
    assert!(records(&items).iter().all(|r| r.replayed));
    assert_eq!(buffer.stats().replayed_records, 25);
}

/// The files a process crash would leave: the segments and the ledger.
fn crash_copy(dir: &Path) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "ledger" || name.to_string_lossy().starts_with("segment-") {
            std::fs::copy(entry.path(), copy.path().join(name)).unwrap();
        }
    }
    copy
}

#[test]
fn under_interval_the_ledger_is_written_once_per_interval_and_at_close() {
    let dir = tempfile::tempdir().unwrap();
    let fsync = FsyncPolicy::Interval(Duration::from_millis(30));
    let written: Vec<Vec<u8>> = (0..10).map(payload).collect();
    let buffer = DiskBuffer::open(dir.path(), options(1 << 20, fsync)).unwrap();
    for p in &written {
        buffer.append(p).unwrap();
    }
    let items = buffer.read(10, 1 << 20).unwrap();
    let ids = ids(&items);
    // The first acknowledgement writes the ledger; the next, within the
    // interval, does not.
    buffer.acknowledge(ids[..2].iter().copied()).unwrap();
    buffer.acknowledge(ids[2..5].iter().copied()).unwrap();
    let first_crash = crash_copy(dir.path());
    // Once the interval has passed, the worker's tick writes it.
    std::thread::sleep(Duration::from_millis(40));
    assert!(buffer.sync_if_due().unwrap());
    let second_crash = crash_copy(dir.path());
    buffer.acknowledge(ids[5..].iter().copied()).unwrap();
    buffer.close().unwrap();

    let unread = |dir: &Path| {
        let buffer = DiskBuffer::open(dir, options(1 << 20, fsync)).unwrap();
        payloads(&read_all(&buffer))
    };
    // A process crash reads again what was acknowledged since the ledger
    // was last written (at least once), and loses nothing.
    assert_eq!(unread(first_crash.path()), written[2..].to_vec());
    assert_eq!(unread(second_crash.path()), written[5..].to_vec());
    // A clean close wrote it: nothing is read again.
    assert!(unread(dir.path()).is_empty());
}

#[test]
fn out_of_order_acknowledgements_advance_only_the_contiguous_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let written: Vec<Vec<u8>> = (0..6).map(payload).collect();
    {
        let buffer = DiskBuffer::open(dir.path(), options(1 << 20, FsyncPolicy::Always)).unwrap();
        for p in &written {
            buffer.append(p).unwrap();
        }
        // Three batches in flight, of two records each.
        let first = buffer.read(2, 1 << 20).unwrap();
        let second = buffer.read(2, 1 << 20).unwrap();
        let third = buffer.read(2, 1 << 20).unwrap();
        buffer.acknowledge(ids(&third)).unwrap();
        assert_eq!(
            buffer.stats().records,
            6,
            "the third batch alone moves nothing"
        );
        assert_eq!(buffer.stats().oldest_unacknowledged, Some(ids(&first)[0]));
        buffer.acknowledge(ids(&first)).unwrap();
        assert_eq!(
            buffer.stats().records,
            4,
            "the first batch moves past itself only"
        );
        assert_eq!(buffer.stats().oldest_unacknowledged, Some(ids(&second)[0]));
        // Unknown and repeated ids are ignored.
        assert_eq!(buffer.acknowledge(ids(&first)).unwrap(), 0);
    }
    // The second batch was never acknowledged: it and the third (acknowledged
    // beyond the gap) are read again, at least once.
    let buffer = DiskBuffer::open(dir.path(), options(1 << 20, FsyncPolicy::Always)).unwrap();
    let items = read_all(&buffer);
    assert_eq!(payloads(&items), written[2..].to_vec());
    buffer
        .acknowledge(ids(&items)[2..].iter().copied())
        .unwrap();
    assert_eq!(buffer.stats().records, 4);
    buffer
        .acknowledge(ids(&items)[..2].iter().copied())
        .unwrap();
    assert_eq!(
        buffer.stats().records,
        0,
        "the gap filled: the position passes all"
    );
}

#[test]
fn a_torn_tail_is_cut_counted_and_appends_go_on_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let written: Vec<Vec<u8>> = (0..5).map(payload).collect();
    {
        let buffer = DiskBuffer::open(dir.path(), options(1 << 20, FsyncPolicy::Always)).unwrap();
        for p in &written {
            buffer.append(p).unwrap();
        }
    }
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 1);
    let full = std::fs::metadata(&files[0]).unwrap().len();
    let last_frame = FRAME_HEADER + written[4].len() as u64;
    // Cut the last record in the middle of its payload, as a crash mid-write would.
    let torn = full - last_frame / 2;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&files[0])
        .unwrap()
        .set_len(torn)
        .unwrap();

    let buffer = DiskBuffer::open(dir.path(), options(1 << 20, FsyncPolicy::Always)).unwrap();
    assert_eq!(buffer.stats().corrupt_records, 1);
    assert_eq!(
        std::fs::metadata(&files[0]).unwrap().len(),
        full - last_frame,
        "cut to the last whole record"
    );
    let id = buffer.append(b"new").unwrap();
    let items = read_all(&buffer);
    let mut expected = written[..4].to_vec();
    expected.push(b"new".to_vec());
    assert_eq!(payloads(&items), expected);
    assert!(corrupt(&items).is_empty(), "a cut tail is not handed back");
    // The torn record's id is taken again: it was never in the file.
    assert_eq!(id.get(), 4);
    buffer.acknowledge(ids(&items)).unwrap();
    assert_eq!(buffer.stats().records, 0);
}

#[test]
fn a_torn_tail_inside_a_frame_header_is_cut_too() {
    let dir = tempfile::tempdir().unwrap();
    {
        let buffer = DiskBuffer::open(dir.path(), options(1 << 20, FsyncPolicy::Always)).unwrap();
        buffer.append(b"one").unwrap();
        buffer.append(b"two").unwrap();
    }
    let file = &segment_files(dir.path())[0];
    let full = std::fs::metadata(file).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(file)
        .unwrap()
        .set_len(full - 3 - 10)
        .unwrap();
    let buffer = DiskBuffer::open(dir.path(), options(1 << 20, FsyncPolicy::Always)).unwrap();
    assert_eq!(payloads(&read_all(&buffer)), vec![b"one".to_vec()]);
    assert_eq!(buffer.stats().corrupt_records, 1);
}

#[test]
fn a_flipped_byte_mid_segment_comes_back_corrupt_with_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let written: Vec<Vec<u8>> = (0..5).map(payload).collect();
    let (file, mut bytes) = one_segment_of(dir.path(), 1 << 20, &written);
    let frame = |i: usize| FRAME_HEADER as usize + written[i].len();
    let third = SEGMENT_HEADER as usize + frame(0) + frame(1);
    let mut expected_bytes = bytes[third..third + frame(2)].to_vec();
    bytes[third + FRAME_HEADER as usize + 3] ^= 0x20;
    expected_bytes[FRAME_HEADER as usize + 3] ^= 0x20;
    std::fs::write(&file, &bytes).unwrap();

    let buffer = DiskBuffer::open(dir.path(), options(1 << 20, FsyncPolicy::Never)).unwrap();
    assert_eq!(
        buffer.stats().corrupt_records,
        0,
        "a corrupt record followed by good ones is no tail"
    );
    let items = read_all(&buffer);
    assert_eq!(items.len(), 5);
    let bad = corrupt(&items);
    assert_eq!(bad.len(), 1);
    assert!(matches!(items[2], ReadItem::Corrupt(_)), "in file order");
    assert_eq!(
        (bad[0].segment, bad[0].offset, &bad[0].bytes, &bad[0].path),
        (0, third as u64, &expected_bytes, &file)
    );
    assert_eq!(
        payloads(&items),
        vec![
            written[0].clone(),
            written[1].clone(),
            written[3].clone(),
            written[4].clone()
        ]
    );
    assert_eq!(buffer.stats().corrupt_records, 1);

    // The position cannot pass the corrupt item until it is acknowledged (dead-lettered).
    buffer.acknowledge(ids(&items)).unwrap();
    assert!(buffer.stats().records > 0);
    assert!(buffer.acknowledge_corrupt(bad[0].id).unwrap());
    assert_eq!(buffer.stats().records, 0);
    drop(buffer);
    let buffer = DiskBuffer::open(dir.path(), options(1 << 20, FsyncPolicy::Never)).unwrap();
    assert!(
        read_all(&buffer).is_empty(),
        "nothing again after the corrupt item was acknowledged"
    );
}

/// Records of many sizes in one segment of several megabytes, read back
/// through the reader's read-ahead (256 KiB): those it holds whole are
/// handed over where they lie, those that run past it are read by copying;
/// both come back whole and in order. One straddling the read-ahead's
/// first end has a flipped byte: it alone comes back corrupt.
#[test]
fn records_whole_in_the_read_ahead_or_running_past_it_read_back_alike() {
    const READ_AHEAD: usize = 256 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let written: Vec<Vec<u8>> = (0..4000usize)
        .map(|i| {
            let mut bytes = payload(i);
            bytes.resize(bytes.len() + (i * 7919) % 3000, b'x');
            bytes
        })
        .collect();
    let (file, mut bytes) = one_segment_of(dir.path(), 64 << 20, &written);
    // The record that runs past the read-ahead's first end.
    let mut start = SEGMENT_HEADER as usize;
    let straddling = (0..written.len())
        .find(|&i| {
            let end = start + FRAME_HEADER as usize + written[i].len();
            let found = end > READ_AHEAD;
            if !found {
                start = end;
            }
            found
        })
        .unwrap();
    assert!(start < READ_AHEAD, "it starts inside the read-ahead");
    bytes[start + FRAME_HEADER as usize + written[straddling].len() - 1] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();

    let buffer = DiskBuffer::open(dir.path(), options(64 << 20, FsyncPolicy::Never)).unwrap();
    let items = read_all(&buffer);
    let bad = corrupt(&items);
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].offset, start as u64);
    assert!(
        matches!(items[straddling], ReadItem::Corrupt(_)),
        "in file order"
    );
    let mut expected = written.clone();
    expected.remove(straddling);
    assert_eq!(payloads(&items), expected);
}

#[test]
fn a_corrupt_segment_header_still_yields_the_records_after_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let buffer = DiskBuffer::open(dir.path(), options(100, FsyncPolicy::Never)).unwrap();
        for i in 0..6 {
            buffer.append(&payload(i)).unwrap();
        }
    }
    let files = segment_files(dir.path());
    assert!(files.len() >= 3);
    let mut bytes = std::fs::read(&files[0]).unwrap();
    bytes[1] ^= 0xFF;
    std::fs::write(&files[0], &bytes).unwrap();
    let buffer = DiskBuffer::open(dir.path(), options(100, FsyncPolicy::Never)).unwrap();
    let items = read_all(&buffer);
    assert_eq!(payloads(&items), (0..6).map(payload).collect::<Vec<_>>());
    let bad = corrupt(&items);
    assert_eq!(
        (bad.len(), bad[0].offset, bad[0].bytes.len() as u64),
        (1, 0, SEGMENT_HEADER)
    );
}

/// The fuzz seeds were written by hand (a script) from the format in the
/// module documentation: the reader agrees with that description.
#[test]
fn segments_written_from_the_documented_format_read_back() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/buffer_segment");
    let event = br#"{"id":"0190c4b4-4f5e-7c3a-8b4e-1a2b3c4d5e6f","name":"a","timestamp":"2026-01-01T00:00:00.000000Z","context":{},"data":1}"#;
    for (seed, expected, last_id, corrupt_items, cut) in [
        (
            "three-records.etb",
            vec![&event[..], br#"{"name":"b"}"#, b""],
            2,
            0,
            0,
        ),
        ("flipped-byte.etb", vec![br#"{"name":"b"}"#, b""], 2, 1, 0),
        ("torn-tail.etb", vec![&event[..]], 0, 0, 1),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            seeds.join(seed),
            dir.path().join("segment-00000000000000000000.etb"),
        )
        .unwrap();
        let buffer = DiskBuffer::open(dir.path(), DiskBufferOptions::default()).unwrap();
        assert_eq!(buffer.stats().corrupt_records, cut, "{seed}");
        let items = read_all(&buffer);
        assert_eq!(
            payloads(&items),
            expected.iter().map(|p| p.to_vec()).collect::<Vec<_>>(),
            "{seed}"
        );
        assert_eq!(corrupt(&items).len(), corrupt_items, "{seed}");
        assert_eq!(
            ids(&items).last().map(|id| id.get()),
            Some(last_id),
            "{seed}"
        );
    }
}

#[test]
fn a_full_buffer_says_full_and_takes_records_again_after_an_acknowledgement() {
    let dir = tempfile::tempdir().unwrap();
    // One 40-byte record per 128-byte segment: 32 + 60 = 92 bytes each.
    let options = options(128, FsyncPolicy::Never).with_max_bytes(400);
    let buffer = DiskBuffer::open(dir.path(), options).unwrap();
    let record = [b'x'; 40];
    for _ in 0..4 {
        buffer.append(&record).unwrap();
    }
    match buffer.append(&record) {
        Err(AppendError::Full {
            needed,
            buffered,
            max_bytes,
        }) => assert_eq!((needed, buffered, max_bytes), (92, 368, 400)),
        other => panic!("expected Full, got {other:?}"),
    }
    // A wait that times out still says Full, a zero one at once.
    assert!(matches!(
        buffer.append_timeout(&record, Duration::from_millis(1)),
        Err(AppendError::Full { .. })
    ));
    assert!(matches!(
        buffer.append_timeout(&record, Duration::ZERO),
        Err(AppendError::Full { .. })
    ));
    assert!(matches!(
        buffer.append(&[b'x'; 400]),
        Err(AppendError::TooLarge { len: 400, .. })
    ));

    let first = buffer.read(1, 1 << 20).unwrap();
    buffer.acknowledge(ids(&first)).unwrap();
    assert_eq!(buffer.stats().bytes, 276, "the first segment was deleted");
    buffer.append(&record).unwrap();
    assert_eq!(buffer.stats().records, 4);
}

#[test]
fn append_many_appends_in_order_and_stops_at_full() {
    let dir = tempfile::tempdir().unwrap();
    let options = options(128, FsyncPolicy::Always).with_max_bytes(400);
    let buffer = DiskBuffer::open(dir.path(), options.clone()).unwrap();
    let batch: Vec<Vec<u8>> = (0..6).map(|i| vec![b'a' + i as u8; 40]).collect();
    let outcome = buffer.append_many(&batch);
    // Four 92-byte segments fit in 400 bytes.
    assert_eq!(outcome.ids.len(), 4);
    assert!(
        matches!(outcome.error, Some(AppendError::Full { .. })),
        "{:?}",
        outcome.error
    );
    drop(buffer);
    // Fsynced and in order.
    let buffer = DiskBuffer::open(dir.path(), options).unwrap();
    let items = read_all(&buffer);
    assert_eq!(ids(&items), outcome.ids);
    assert_eq!(payloads(&items), batch[..4].to_vec());
    let empty: [&[u8]; 0] = [];
    let outcome = buffer.append_many(&empty);
    assert!(outcome.ids.is_empty() && outcome.error.is_none());
}

#[test]
fn a_blocked_writer_is_woken_when_an_acknowledgement_frees_a_segment() {
    let dir = tempfile::tempdir().unwrap();
    let options = options(128, FsyncPolicy::Never).with_max_bytes(400);
    let buffer = Arc::new(DiskBuffer::open(dir.path(), options).unwrap());
    let record = [b'x'; 40];
    while buffer.append(&record).is_ok() {}
    let writer = {
        let buffer = Arc::clone(&buffer);
        std::thread::spawn(move || buffer.append_timeout(b"waited", GENEROUS))
    };
    let first = buffer.read(1, 1 << 20).unwrap();
    buffer.acknowledge(ids(&first)).unwrap();
    let id = writer
        .join()
        .unwrap()
        .expect("woken with space before the timeout");
    let items = read_all(&buffer);
    assert_eq!(ids(&items).last(), Some(&id));
    assert_eq!(
        payloads(&items).last().map(Vec::as_slice),
        Some(&b"waited"[..])
    );
}

#[test]
fn drop_oldest_makes_room_forgets_its_records_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let options = options(128, FsyncPolicy::Always).with_max_bytes(400);
    let written: Vec<Vec<u8>> = (0..5).map(|i| vec![b'a' + i as u8; 40]).collect();
    {
        let buffer = DiskBuffer::open(dir.path(), options.clone()).unwrap();
        for p in &written[..4] {
            buffer.append(p).unwrap();
        }
        assert!(matches!(
            buffer.append(&written[4]),
            Err(AppendError::Full { .. })
        ));
        // The first record is in flight when its segment is dropped.
        let in_flight = buffer.read(1, 1 << 20).unwrap();
        let dropped = buffer.drop_oldest().unwrap().unwrap();
        assert_eq!((dropped.records, dropped.bytes), (1, 92));
        // That one record was read: its consumer still holds it.
        assert_eq!(dropped.handed_out, 1);
        assert_eq!(buffer.acknowledge(ids(&in_flight)).unwrap(), 0, "forgotten");
        buffer.append(&written[4]).unwrap();
        assert_eq!(buffer.stats().records, 4);
        assert_eq!(payloads(&read_all(&buffer)), written[1..].to_vec());
    }
    // Not read again after a restart, and the rest is.
    let buffer = DiskBuffer::open(dir.path(), options).unwrap();
    assert_eq!(payloads(&read_all(&buffer)), written[1..].to_vec());
}

/// Another process's lock on the directory (the same `flock` another
/// process's open buffer holds) refuses the open, naming the directory;
/// once it is released the buffer opens.
#[cfg(unix)]
#[test]
fn a_directory_locked_by_another_process_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let buffer = DiskBuffer::open(dir.path(), options(1 << 20, FsyncPolicy::Never)).unwrap();
        buffer.append(b"kept").unwrap();
        buffer.close().unwrap();
    }
    // A separate open file description conflicts like another process's.
    let held = std::fs::File::options()
        .write(true)
        .open(dir.path().join("lock"))
        .unwrap();
    rustix::fs::flock(&held, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
    let error = DiskBuffer::open(dir.path(), options(1 << 20, FsyncPolicy::Never)).unwrap_err();
    assert!(
        matches!(&error, BufferError::LockedByAnotherProcess { path } if path == dir.path()),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(
        text.contains(&dir.path().display().to_string()) && text.contains("another process"),
        "{text}"
    );
    drop(held);
    let buffer = DiskBuffer::open(dir.path(), options(1 << 20, FsyncPolicy::Never)).unwrap();
    assert_eq!(payloads(&read_all(&buffer)), vec![b"kept".to_vec()]);
}

#[test]
fn drop_oldest_of_a_single_segment_starts_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let buffer = DiskBuffer::open(dir.path(), options(1 << 20, FsyncPolicy::Never)).unwrap();
    assert!(buffer.drop_oldest().unwrap().is_none(), "nothing to drop");
    for i in 0..3 {
        buffer.append(&payload(i)).unwrap();
    }
    let first = buffer.read(1, 1 << 20).unwrap();
    buffer.acknowledge(ids(&first)).unwrap();
    let dropped = buffer.drop_oldest().unwrap().unwrap();
    // Two never acknowledged, neither of them read.
    assert_eq!((dropped.records, dropped.handed_out), (2, 0));
    assert_eq!(buffer.stats().records, 0);
    assert!(read_all(&buffer).is_empty());
    buffer.append(b"next").unwrap();
    assert_eq!(payloads(&read_all(&buffer)), vec![b"next".to_vec()]);
    assert_eq!(segment_files(dir.path()).len(), 1);
}

#[test]
fn a_drained_buffer_retires_its_write_segment_to_take_a_large_record() {
    let dir = tempfile::tempdir().unwrap();
    // Segments of at most max_bytes / 4 = 100 bytes: one 40-byte record each.
    let options = options(1 << 20, FsyncPolicy::Never).with_max_bytes(400);
    let buffer = Arc::new(DiskBuffer::open(dir.path(), options).unwrap());
    let record = [b'x'; 40];
    for _ in 0..4 {
        buffer.append(&record).unwrap();
    }
    assert!(matches!(
        buffer.append(&record),
        Err(AppendError::Full { .. })
    ));
    // 300 + 20 + 32 fits in 400 only once the acknowledged write segment is gone.
    let large = [b'y'; 280];
    let writer = {
        let buffer = Arc::clone(&buffer);
        std::thread::spawn(move || buffer.append_timeout(&large, GENEROUS))
    };
    let items = read_all(&buffer);
    assert_eq!(items.len(), 4);
    buffer.acknowledge(ids(&items)).unwrap();
    let id = writer
        .join()
        .unwrap()
        .expect("the write segment was retired");
    let items = read_all(&buffer);
    assert_eq!(
        (ids(&items), payloads(&items)),
        (vec![id], vec![large.to_vec()])
    );
    assert_eq!(segment_files(dir.path()).len(), 1);
    assert_eq!(buffer.stats().bytes, SEGMENT_HEADER + FRAME_HEADER + 280);
}

#[test]
fn a_waiting_reader_is_woken_by_an_append() {
    let dir = tempfile::tempdir().unwrap();
    let buffer =
        Arc::new(DiskBuffer::open(dir.path(), options(1 << 20, FsyncPolicy::Never)).unwrap());
    assert!(!buffer.wait_for_data(Duration::from_millis(1)));
    let reader = {
        let buffer = Arc::clone(&buffer);
        std::thread::spawn(move || {
            let woken = buffer.wait_for_data(GENEROUS);
            (woken, buffer.read(10, 1 << 20).unwrap())
        })
    };
    buffer.append(b"hello").unwrap();
    let (woken, items) = reader.join().unwrap();
    assert!(woken);
    assert_eq!(payloads(&items), vec![b"hello".to_vec()]);
}

/// Four writers block on a small buffer (`append_timeout`) while the reader
/// acknowledges each batch only after the next one (two in flight, out of
/// order): every record is delivered once, each writer's in order.
#[test]
fn many_blocked_writers_and_one_reader_deliver_every_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let options =
        options(4096, FsyncPolicy::Interval(Duration::from_millis(5))).with_max_bytes(2048);
    let buffer = Arc::new(DiskBuffer::open(dir.path(), options).unwrap());
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let buffer = Arc::clone(&buffer);
            std::thread::spawn(move || {
                for i in 0..250 {
                    let line = format!("{t}-{i}");
                    buffer.append_timeout(line.as_bytes(), GENEROUS).unwrap();
                }
            })
        })
        .collect();
    let mut seen = HashSet::new();
    let mut last_per_thread = [None::<u32>; 4];
    let mut held: Vec<RecordId> = Vec::new();
    while seen.len() < 1000 {
        buffer.wait_for_data(Duration::from_millis(50));
        buffer.sync_if_due().unwrap();
        let items = buffer.read(16, 1 << 20).unwrap();
        for record in records(&items) {
            let line = String::from_utf8(record.payload.clone()).unwrap();
            let (t, i) = line.split_once('-').unwrap();
            let (t, i): (usize, u32) = (t.parse().unwrap(), i.parse().unwrap());
            assert!(
                last_per_thread[t].is_none_or(|last| last < i),
                "each writer's records in order"
            );
            last_per_thread[t] = Some(i);
            assert!(seen.insert(line), "delivered once");
        }
        // This batch first, then the one held back.
        buffer.acknowledge(ids(&items)).unwrap();
        buffer
            .acknowledge(std::mem::replace(&mut held, ids(&items)))
            .unwrap();
        assert!(buffer.stats().bytes <= 2048);
    }
    buffer.acknowledge(held).unwrap();
    for writer in writers {
        writer.join().unwrap();
    }
    assert_eq!(buffer.stats().records, 0);
}

#[test]
fn sync_policies_write_what_was_appended() {
    for fsync in [
        FsyncPolicy::Always,
        FsyncPolicy::Never,
        FsyncPolicy::Interval(Duration::from_secs(3600)),
        FsyncPolicy::Interval(Duration::ZERO),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let buffer = DiskBuffer::open(dir.path(), options(1 << 20, fsync)).unwrap();
        buffer.append(b"a").unwrap();
        // Not due in an hour; always due with a zero interval (the append synced already).
        assert!(!buffer.sync_if_due().unwrap() || fsync == FsyncPolicy::Interval(Duration::ZERO));
        buffer.sync().unwrap();
        let on_disk = std::fs::metadata(&segment_files(dir.path())[0])
            .unwrap()
            .len();
        assert_eq!(on_disk, SEGMENT_HEADER + FRAME_HEADER + 1, "{fsync:?}");
        assert_eq!(buffer.stats().bytes, on_disk);
    }
}

#[test]
fn the_oldest_unacknowledged_record_is_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let buffer = DiskBuffer::open(dir.path(), options(64, FsyncPolicy::Never)).unwrap();
    assert!(buffer.oldest_unacknowledged().unwrap().is_none());
    let a = buffer.append(b"a").unwrap();
    let b = buffer.append(b"b").unwrap();
    buffer.append(b"c").unwrap();
    assert_eq!(
        buffer.oldest_unacknowledged().unwrap().map(|r| r.payload),
        Some(b"a".to_vec())
    );
    let items = buffer.read(2, 1 << 20).unwrap();
    buffer.acknowledge([a]).unwrap();
    let oldest = buffer.oldest_unacknowledged().unwrap().unwrap();
    assert_eq!((oldest.id, oldest.payload), (b, b"b".to_vec()));
    assert_eq!(buffer.stats().oldest_unacknowledged, Some(b));
    buffer.acknowledge(ids(&items)).unwrap();
    assert_eq!(
        buffer.oldest_unacknowledged().unwrap().map(|r| r.payload),
        Some(b"c".to_vec())
    );
}

#[test]
fn a_missing_or_corrupt_ledger_falls_back_to_the_oldest_segment() {
    for damage in ["remove", "garbage"] {
        let dir = tempfile::tempdir().unwrap();
        {
            let buffer =
                DiskBuffer::open(dir.path(), options(1 << 20, FsyncPolicy::Always)).unwrap();
            for i in 0..3 {
                buffer.append(&payload(i)).unwrap();
            }
            let items = buffer.read(1, 1 << 20).unwrap();
            buffer.acknowledge(ids(&items)).unwrap();
        }
        let ledger = dir.path().join("ledger");
        assert!(ledger.exists());
        match damage {
            "remove" => std::fs::remove_file(&ledger).unwrap(),
            _ => std::fs::write(&ledger, b"not a ledger").unwrap(),
        }
        let buffer = DiskBuffer::open(dir.path(), options(1 << 20, FsyncPolicy::Always)).unwrap();
        assert_eq!(buffer.stats().records, 3, "{damage}");
        assert_eq!(
            payloads(&read_all(&buffer)),
            (0..3).map(payload).collect::<Vec<_>>(),
            "{damage}"
        );
    }
}

#[test]
fn one_directory_is_open_once_per_process() {
    let dir = tempfile::tempdir().unwrap();
    let buffer = DiskBuffer::open(dir.path(), DiskBufferOptions::default()).unwrap();
    let error = DiskBuffer::open(dir.path(), DiskBufferOptions::default()).unwrap_err();
    assert!(matches!(error, BufferError::InUse { .. }), "{error}");
    drop(buffer);
    DiskBuffer::open(dir.path(), DiskBufferOptions::default()).unwrap();
}

#[test]
fn an_unwritable_directory_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    // Under a regular file: no directory can be made there, root or not.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    let under_file = file.join("buffer");
    let error = DiskBuffer::open(&under_file, DiskBufferOptions::default()).unwrap_err();
    assert!(matches!(error, BufferError::CreateDir { .. }), "{error}");
    assert!(
        error.to_string().contains(&*under_file.to_string_lossy()),
        "{error}"
    );

    // A read-only directory: only stops a writer that is not root.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let read_only = dir.path().join("read-only");
        std::fs::create_dir(&read_only).unwrap();
        std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o555)).unwrap();
        let privileged = std::fs::write(read_only.join("probe"), b"").is_ok();
        if privileged {
            eprintln!(
                "skipped the read-only directory case: permissions do not stop this user (root)"
            );
        } else {
            let error = DiskBuffer::open(&read_only, DiskBufferOptions::default()).unwrap_err();
            assert!(matches!(error, BufferError::NotWritable { .. }), "{error}");
            assert!(
                error.to_string().contains(&*read_only.to_string_lossy()),
                "{error}"
            );
        }
        std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // /proc refuses new files to everyone, root included.
    let proc = Path::new("/proc/eventtracking-buffer");
    if Path::new("/proc/self").exists() {
        let error = DiskBuffer::open(proc, DiskBufferOptions::default()).unwrap_err();
        assert!(
            error.to_string().contains("/proc/eventtracking-buffer"),
            "{error}"
        );
    }
}

// ---------------------------------------------------------------------------
// Properties.
// ---------------------------------------------------------------------------

fn cases(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<u8>),
    AppendMany(Vec<Vec<u8>>),
    Read(usize),
    /// Acknowledge some of the records in flight, in this order (indexes
    /// into the in-flight list).
    Ack(Vec<prop::sample::Index>),
    /// Drop (a crash, as far as acknowledgements go) or close, and open again.
    Reopen {
        clean: bool,
    },
    /// `drop_oldest`, the overflow policy.
    DropOldest,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..60).prop_map(Op::Append),
        1 => prop::collection::vec(prop::collection::vec(any::<u8>(), 0..60), 0..5).prop_map(Op::AppendMany),
        3 => (1usize..6).prop_map(Op::Read),
        3 => prop::collection::vec(any::<prop::sample::Index>(), 0..6).prop_map(Op::Ack),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
        1 => Just(Op::DropOldest),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Unread,
    InFlight,
    Acked,
}

proptest! {
    #![proptest_config(cases(48))]

    /// Any sequence of appends, reads, out-of-order acknowledgements and
    /// restarts keeps exactly the records not passed by the acknowledged
    /// prefix, in order.
    #[test]
    fn the_buffer_keeps_exactly_the_unacknowledged_records_in_order(ops in prop::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let open = || DiskBuffer::open(dir.path(), options(150, FsyncPolicy::Never)).unwrap();
        let mut buffer = open();
        // Records not yet passed by the acknowledged position, in order.
        let mut model: VecDeque<(RecordId, Vec<u8>, State)> = VecDeque::new();
        for op in ops {
            match op {
                Op::Append(bytes) => {
                    let id = buffer.append(&bytes).unwrap();
                    model.push_back((id, bytes, State::Unread));
                }
                Op::AppendMany(batch) => {
                    let outcome = buffer.append_many(&batch);
                    prop_assert!(outcome.error.is_none());
                    prop_assert_eq!(outcome.ids.len(), batch.len());
                    for (id, bytes) in outcome.ids.into_iter().zip(batch) {
                        model.push_back((id, bytes, State::Unread));
                    }
                }
                Op::Read(n) => {
                    let items = buffer.read(n, 1 << 20).unwrap();
                    prop_assert!(corrupt(&items).is_empty());
                    let expected: Vec<_> = model.iter_mut().filter(|e| e.2 == State::Unread).take(n).collect();
                    prop_assert_eq!(items.len(), expected.len());
                    for (record, entry) in records(&items).into_iter().zip(expected) {
                        prop_assert_eq!((record.id, &record.payload), (entry.0, &entry.1));
                        entry.2 = State::InFlight;
                    }
                }
                Op::Ack(picks) => {
                    let in_flight: Vec<RecordId> = model.iter().filter(|e| e.2 == State::InFlight).map(|e| e.0).collect();
                    if in_flight.is_empty() {
                        continue;
                    }
                    let chosen: Vec<RecordId> = picks.iter().map(|p| in_flight[p.index(in_flight.len())]).collect();
                    let distinct: HashSet<RecordId> = chosen.iter().copied().collect();
                    prop_assert_eq!(buffer.acknowledge(chosen).unwrap(), distinct.len());
                    for entry in model.iter_mut().filter(|e| distinct.contains(&e.0)) {
                        entry.2 = State::Acked;
                    }
                    while model.front().is_some_and(|e| e.2 == State::Acked) {
                        model.pop_front();
                    }
                }
                Op::DropOldest => {
                    let dropped = buffer.drop_oldest().unwrap();
                    // The segment is a prefix of the records kept; the ids
                    // after it are what the buffer still counts.
                    let kept = buffer.stats().records as usize;
                    prop_assert!(kept <= model.len());
                    let gone: Vec<_> = model.drain(..model.len() - kept).collect();
                    match dropped {
                        Some(dropped) => {
                            prop_assert!(!gone.is_empty());
                            let unacknowledged = gone.iter().filter(|e| e.2 != State::Acked).count();
                            prop_assert_eq!(dropped.records, unacknowledged as u64);
                        }
                        None => prop_assert!(gone.is_empty()),
                    }
                    while model.front().is_some_and(|e| e.2 == State::Acked) {
                        model.pop_front();
                    }
                }
                Op::Reopen { clean } => {
                    if clean {
                        buffer.close().unwrap();
                    } else {
                        drop(buffer);
                    }
                    buffer = open();
                    // Everything after the prefix is read again, acknowledged or not.
                    for entry in &mut model {
                        entry.2 = State::Unread;
                    }
                }
            }
            prop_assert_eq!(buffer.stats().records, model.len() as u64);
        }
        buffer.close().unwrap();
        let buffer = open();
        let items = read_all(&buffer);
        let expected: Vec<Vec<u8>> = model.iter().map(|e| e.1.clone()).collect();
        prop_assert_eq!(payloads(&items), expected);
        let on_disk: u64 = segment_files(dir.path()).iter().map(|f| std::fs::metadata(f).unwrap().len()).sum();
        prop_assert_eq!(buffer.stats().bytes, on_disk);
        prop_assert_eq!(buffer.stats().corrupt_records, 0);
    }
}

#[derive(Debug, Clone)]
enum Damage {
    Flip { at: prop::sample::Index, mask: u8 },
    Truncate { at: prop::sample::Index },
    AppendGarbage(Vec<u8>),
    ReplaceWithGarbage(Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        4 => (any::<prop::sample::Index>(), 1u8..).prop_map(|(at, mask)| Damage::Flip { at, mask }),
        2 => any::<prop::sample::Index>().prop_map(|at| Damage::Truncate { at }),
        1 => prop::collection::vec(any::<u8>(), 0..200).prop_map(Damage::AppendGarbage),
        1 => prop::collection::vec(any::<u8>(), 0..300).prop_map(Damage::ReplaceWithGarbage),
    ]
}

/// Opens, reads everything (acknowledging it all), and opens again: no panic
/// and no error whatever the files hold; every record read is one written.
fn survive(dir: &Path, written: &HashSet<Vec<u8>>) -> Result<(), TestCaseError> {
    for _ in 0..2 {
        let buffer = DiskBuffer::open(dir, options(150, FsyncPolicy::Never)).unwrap();
        let _ = buffer.oldest_unacknowledged().unwrap();
        let items = read_all(&buffer);
        for record in records(&items) {
            prop_assert!(
                written.contains(&record.payload),
                "a record never written: {:?}",
                record
            );
        }
        buffer.acknowledge(ids(&items)).unwrap();
        for bad in corrupt(&items) {
            prop_assert!(!bad.bytes.is_empty());
            buffer.acknowledge_corrupt(bad.id).unwrap();
        }
        prop_assert_eq!(buffer.stats().records, 0);
        let id = buffer.append(b"after").unwrap();
        let after = read_all(&buffer);
        prop_assert_eq!(ids(&after), vec![id]);
        buffer.acknowledge([id]).unwrap();
        buffer.close().unwrap();
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(96))]

    /// Damaged segments (flipped bytes, cuts, garbage) and a damaged ledger
    /// never panic nor fail: valid records come back, the rest is corrupt.
    #[test]
    fn damaged_files_never_panic(
        lines in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..12),
        acknowledged in 0usize..4,
        damages in prop::collection::vec((any::<prop::sample::Index>(), damage()), 1..6),
        ledger in prop::option::of(prop::collection::vec(any::<u8>(), 0..48)),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut written: HashSet<Vec<u8>> = lines.iter().cloned().collect();
        written.insert(b"after".to_vec());
        {
            let buffer = DiskBuffer::open(dir.path(), options(150, FsyncPolicy::Never)).unwrap();
            for line in &lines {
                buffer.append(line).unwrap();
            }
            let items = buffer.read(acknowledged, 1 << 20).unwrap();
            buffer.acknowledge(ids(&items)).unwrap();
            buffer.close().unwrap();
        }
        let files = segment_files(dir.path());
        for (which, damage) in damages {
            let file = &files[which.index(files.len())];
            let mut bytes = std::fs::read(file).unwrap_or_default();
            match damage {
                Damage::Flip { at, mask } if !bytes.is_empty() => {
                    let at = at.index(bytes.len());
                    bytes[at] ^= mask;
                }
                Damage::Flip { .. } => {}
                Damage::Truncate { at } => bytes.truncate(at.index(bytes.len() + 1)),
                Damage::AppendGarbage(garbage) => bytes.extend(garbage),
                Damage::ReplaceWithGarbage(garbage) => bytes = garbage,
            }
            std::fs::write(file, bytes).unwrap();
        }
        if let Some(ledger) = ledger {
            std::fs::write(dir.path().join("ledger"), ledger).unwrap();
        }
        survive(dir.path(), &written)?;
    }

    /// Files of random bytes named like segments, and a random ledger.
    #[test]
    fn random_files_never_panic(
        files in prop::collection::vec((0u64..5, prop::collection::vec(any::<u8>(), 0..400)), 0..4),
        ledger in prop::option::of(prop::collection::vec(any::<u8>(), 0..48)),
    ) {
        let dir = tempfile::tempdir().unwrap();
        for (number, bytes) in files {
            std::fs::write(dir.path().join(format!("segment-{number:020}.etb")), bytes).unwrap();
        }
        if let Some(ledger) = ledger {
            std::fs::write(dir.path().join("ledger"), ledger).unwrap();
        }
        survive(dir.path(), &HashSet::from([b"after".to_vec()]))?;
    }
}
