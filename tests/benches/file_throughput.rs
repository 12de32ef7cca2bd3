//! End-to-end file throughput against a baseline measured in the same run.
//!
//! Baseline: the same events serialized with serde_json into a `BufWriter<File>`.
//! eventtracking: the same events (shared, so neither side times making or
//! freeing them) through a tracker (queue, delivery worker, batching) into the
//! file backend, until `flush` reports them delivered. A third figure is the
//! whole path: `emit` of typed payloads builds each event, and the delivery
//! thread frees it after writing.
//!
//! Run: `cargo bench -p eventtracking-tests --bench file_throughput` (prints figures).

use std::io::Write;
use std::time::{Duration, Instant};

use eventtracking::file::FileBackend;
use eventtracking::{DeliveryConfig, Overflow, Tracker};
use serde_json::json;

#[derive(serde::Serialize)]
struct Navigation {
    url: &'static str,
}

#[derive(serde::Serialize)]
struct Address {
    postal_code: &'static str,
    country: &'static str,
}

#[derive(serde::Serialize)]
struct AddressCreate {
    name: &'static str,
    address: Address,
}

const EVENTS: usize = 1_000_000;
const ROUNDS: usize = 3;

fn tracker(path: &std::path::Path) -> Tracker {
    let backend = FileBackend::builder(path).build().unwrap();
    Tracker::builder()
        .with_delivery(
            DeliveryConfig::default()
                .with_queue_capacity(1 << 20)
                .with_overflow(Overflow::Block)
                .with_block_timeout(std::time::Duration::from_millis(60_000))
                .with_batch_size(4096),
        )
        .with_backend("file", backend)
        .build()
        .unwrap()
}

fn best(mut f: impl FnMut() -> Duration) -> Duration {
    (0..ROUNDS).map(|_| f()).min().unwrap()
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let events = eventtracking_testkit::seed_example_stream(EVENTS);

    let baseline = best(|| {
        let path = dir.path().join("baseline.jsonl");
        let _ = std::fs::remove_file(&path);
        let start = Instant::now();
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        for event in &events {
            serde_json::to_writer(&mut out, &**event).unwrap();
            out.write_all(b"\n").unwrap();
        }
        out.flush().unwrap();
        start.elapsed()
    });

    let pipeline = best(|| {
        let path = dir.path().join("pipeline.jsonl");
        let _ = std::fs::remove_file(&path);
        // The same events, shared (Arc clones): as in the baseline, making
        // and freeing them is not timed; their JSON is made in the run.
        let tracker = tracker(&path);
        let start = Instant::now();
        for event in &events {
            tracker.emit_event(event.clone()).unwrap();
        }
        let report = tracker.flush(Duration::from_secs(300));
        let elapsed = start.elapsed();
        assert_eq!(report.backends["file"].delivered, EVENTS as u64, "{report}");
        elapsed
    });

    let with_emit = best(|| {
        let path = dir.path().join("emit.jsonl");
        let _ = std::fs::remove_file(&path);
        let tracker = tracker(&path);
        let _outer = tracker.context("outer", json!({"user_id": 10938})).unwrap();
        let start = Instant::now();
        for i in 0..EVENTS {
            match i % 3 {
                0 => tracker.emit(
                    "navigation.request",
                    &Navigation {
                        url: "http://www.edx.org/some/path/1",
                    },
                ),
                1 => tracker.emit(
                    "navigation.request",
                    &Navigation {
                        url: "http://www.edx.org/some/path/2",
                    },
                ),
                _ => tracker.emit(
                    "address.create",
                    &AddressCreate {
                        name: "foo",
                        address: Address {
                            postal_code: "90210",
                            country: "United States",
                        },
                    },
                ),
            }
            .unwrap();
        }
        let report = tracker.flush(Duration::from_secs(300));
        let elapsed = start.elapsed();
        assert_eq!(report.backends["file"].delivered, EVENTS as u64, "{report}");
        elapsed
    });

    let rate = |d: Duration| EVENTS as f64 / d.as_secs_f64();
    println!("file throughput, {EVENTS} seed events, best of {ROUNDS}:");
    println!(
        "  baseline (serde_json -> BufWriter<File>): {:>10.0} events/s",
        rate(baseline)
    );
    println!(
        "  eventtracking (emit_event -> file):        {:>10.0} events/s  = {:.2}x baseline",
        rate(pipeline),
        baseline.as_secs_f64() / pipeline.as_secs_f64()
    );
    println!(
        "  eventtracking (emit typed payload -> file): {:>10.0} events/s  = {:.2}x baseline",
        rate(with_emit),
        baseline.as_secs_f64() / with_emit.as_secs_f64()
    );
}
