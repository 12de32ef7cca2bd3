//! A broker outage longer than memory can bridge, behind a disk buffer: the
//! broker is paused for 60 s while events keep coming, far more than the
//! 1,000-event memory queue holds. Nothing is lost, nothing is dropped, and
//! nothing needs a replay: every event reaches the topic once the broker is
//! back (librdkafka's messages time out meanwhile, and the broker then fences
//! the idempotent producer: the backend replaces it).

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use eventtracking::{BufferKind, Tracker};
use serde_json::json;

const OUTAGE: Duration = Duration::from_secs(60);

#[test]
fn a_broker_paused_for_60_s_behind_a_disk_buffer_loses_and_drops_nothing() {
    // `RUST_LOG=warn` shows the retries and the producer's replacement.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    require_broker();
    let Ok(pid) = std::env::var("EVENTTRACKING_TEST_KAFKA_PID") else {
        eprintln!("EVENTTRACKING_TEST_KAFKA_PID is not set: skipping the outage test (it pauses the broker)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("outage");
    let tracker = Tracker::builder()
        .with_delivery(
            delivery(dir.path())
                .with_queue_capacity(1_000)
                .with_buffer(BufferKind::Disk)
                .with_buffer_path(dir.path().join("buffers")),
        )
        .with_backend("stream", kafka_backend(json!({"topic": topic})))
        .build()
        .unwrap();
    let mut emitted = 0u64;
    let mut emit = |n: u64| {
        for _ in 0..n {
            tracker.emit("outage.event", json!({"i": emitted})).unwrap();
            emitted += 1;
        }
    };
    // Before the outage: the topic exists and the producer is connected.
    emit(100);
    assert!(tracker.flush(WAIT).complete);
    {
        let _paused = eventtracking_testkit::PausedProcess::pause(&pid);
        let started = Instant::now();
        while started.elapsed() < OUTAGE {
            emit(100);
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    assert!(emitted > 10_000, "{emitted}");
    let report = tracker.shutdown(WAIT).unwrap();
    let stats = &report.backends["stream"];
    assert!(report.complete, "{report}");
    assert_eq!(stats.accepted, emitted, "{report}");
    assert_eq!(stats.delivered, emitted, "{report}");
    assert_eq!(stats.dropped, 0, "{report}");
    assert_eq!(stats.failed, 0, "{report}");
    assert_eq!(stats.dead_lettered, 0, "{report}");
    assert_eq!(stats.buffered_events, 0, "{report}");

    // At least once: a message timed out in librdkafka during the outage may
    // have reached the broker too; the ids are what must all be there.
    let received = consume(&consumer(&[&topic]), emitted as usize);
    let numbers: HashSet<u64> = received
        .iter()
        .map(|m| m.json()["data"]["i"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, (0..emitted).collect(), "{report}");
}
