//! The disk buffer (`eventtracking::buffer`): a directory whose one segment
//! file is the fuzz input opens, reads to the end (valid records and corrupt
//! items), acknowledges everything, takes a new record and opens again,
//! never a panic nor an error: no file content is fatal.
#![no_main]

use std::sync::atomic::{AtomicU64, Ordering};

use eventtracking::buffer::{DiskBuffer, DiskBufferOptions, FsyncPolicy, ReadItem};
use libfuzzer_sys::fuzz_target;

static RUNS: AtomicU64 = AtomicU64::new(0);

fn drain(buffer: &DiskBuffer) -> usize {
    let mut records = 0;
    // Bounded: a reader that never runs dry is a bug too.
    for _ in 0..1_000_000 {
        let items = buffer.read(64, 1 << 20).expect("read");
        if items.is_empty() {
            return records;
        }
        for item in items {
            match item {
                ReadItem::Record(record) => {
                    records += 1;
                    buffer.acknowledge([record.id]).expect("acknowledge");
                }
                ReadItem::Corrupt(corrupt) => {
                    assert!(!corrupt.bytes.is_empty());
                    assert!(buffer.acknowledge_corrupt(corrupt.id).expect("acknowledge"));
                }
                _ => {}
            }
        }
    }
    panic!("the reader never ran dry");
}

fuzz_target!(|data: &[u8]| {
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("eventtracking-fuzz-buffer-{}-{run}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temporary directory");
    std::fs::write(dir.join("segment-00000000000000000000.etb"), data).expect("segment");
    let options = DiskBufferOptions::default()
        .with_segment_bytes(4096)
        .with_fsync(FsyncPolicy::Never);
    for round in 0..2 {
        let buffer = DiskBuffer::open(&dir, options.clone()).expect("open");
        let _ = buffer.oldest_unacknowledged().expect("oldest");
        let read = drain(&buffer);
        assert_eq!(buffer.stats().records, 0);
        if round == 1 {
            assert_eq!(read, 0, "acknowledged records came back after a clean close");
        }
        let id = buffer.append(b"after").expect("append");
        buffer.acknowledge([id]).expect("acknowledge unread");
        assert_eq!(drain(&buffer), 1);
        buffer.close().expect("close");
    }
    let _ = std::fs::remove_dir_all(&dir);
});
