//! The disk buffer's storage layer alone (no delivery): append, then read
//! and acknowledge in batches (the replay), under each fsync policy, beside
//! the same lines written with a plain `BufWriter` (the floor). Prints
//! figures; not criterion, so that one run shows all of them.
//!
//! `cargo bench -p eventtracking-engine --bench disk_buffer`
//! (`EVENTTRACKING_BENCH_RECORDS` sets the count, default 200,000).

use std::io::Write;
use std::time::{Duration, Instant};

use eventtracking_engine::buffer::{DiskBuffer, DiskBufferOptions, FsyncPolicy, ReadItem};

fn line(i: usize) -> Vec<u8> {
    format!(
        r#"{{"id":"0190c4b4-4f5e-7c3a-8b4e-{i:012}","name":"navigation.request","timestamp":"2026-01-01T00:00:00.000000Z","context":{{"user_id":10938,"session_id":"2987lkjdyoioey"}},"data":{{"url":"http://www.edx.org/some/path/{i}"}}}}"#
    )
    .into_bytes()
}

fn rate(count: usize, bytes: usize, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64();
    format!(
        "{:>10.0} records/s {:>8.1} MB/s ({count} in {seconds:.3} s)",
        count as f64 / seconds,
        bytes as f64 / seconds / 1e6
    )
}

fn main() {
    let count: usize = std::env::var("EVENTTRACKING_BENCH_RECORDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000);
    let lines: Vec<Vec<u8>> = (0..count).map(line).collect();
    let bytes: usize = lines.iter().map(Vec::len).sum();

    let dir = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let mut file = std::io::BufWriter::new(std::fs::File::create(dir.path().join("raw")).unwrap());
    for line in &lines {
        file.write_all(line).unwrap();
        file.write_all(b"\n").unwrap();
    }
    file.into_inner().unwrap().sync_all().unwrap();
    println!(
        "raw BufWriter + one fsync      {}",
        rate(count, bytes, start.elapsed())
    );

    for (name, fsync, n) in [
        ("never", FsyncPolicy::Never, count),
        (
            "interval 100 ms",
            FsyncPolicy::Interval(Duration::from_millis(100)),
            count,
        ),
        ("always", FsyncPolicy::Always, count.min(2_000)),
        ("always, 512s", FsyncPolicy::Always, count),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let options = DiskBufferOptions::default().with_fsync(fsync);
        let buffer = DiskBuffer::open(dir.path(), options).unwrap();
        let part = &lines[..n];
        let part_bytes: usize = part.iter().map(Vec::len).sum();
        let start = Instant::now();
        if name.ends_with("512s") {
            // append_many: one fsync per batch (a group commit).
            for batch in part.chunks(512) {
                let outcome = buffer.append_many(batch);
                assert!(outcome.error.is_none());
            }
        } else {
            for line in part {
                buffer.append(line).unwrap();
            }
        }
        buffer.sync().unwrap();
        println!(
            "append, {name:<16}       {}",
            rate(n, part_bytes, start.elapsed())
        );

        let start = Instant::now();
        let mut read = 0;
        loop {
            let items = buffer.read(512, 1 << 20).unwrap();
            if items.is_empty() {
                break;
            }
            read += items.len();
            let ids = items.into_iter().filter_map(|item| match item {
                ReadItem::Record(record) => Some(record.id),
                _ => None,
            });
            buffer.acknowledge(ids).unwrap();
        }
        assert_eq!(read, n);
        println!(
            "read + ack 512s, {name:<16} {}",
            rate(n, part_bytes, start.elapsed())
        );
    }
}
