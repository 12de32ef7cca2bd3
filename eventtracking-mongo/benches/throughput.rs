//! MongoDB throughput: this backend through a tracker against the raw driver
//! inserting the same documents with the same batch size, measured in the
//! same run against the same server.
//!
//! Both write the seed's three event shapes to a fresh collection carrying
//! the backend's default indexes (`timestamp` descending, `name`), with
//! unordered `insert_many` calls of `batch` documents, one call at a time,
//! write concern `w: 1`.
//!
//! - raw: the documents are made before timing (with [`event_to_document`]),
//!   then `insert_many` per chunk.
//! - eventtracking: `emit_event` of the same events → queue → delivery worker
//!   → `MongoBackend::send_batch` (which encodes each event to BSON, inside the
//!   timed part) until `flush` reports them delivered.
//!
//! Run (the server must be up: `scripts/services start mongo`):
//! `cargo bench -p eventtracking-mongo --bench throughput` (prints figures).
//! `EVENTTRACKING_BENCH_MONGO_URI` (else `EVENTTRACKING_TEST_MONGO_URI`, else
//! `mongodb://127.0.0.1:27117`) picks the server; `EVENTTRACKING_BENCH_EVENTS`
//! (default 50000), `EVENTTRACKING_BENCH_BATCH` (default 1000) and
//! `EVENTTRACKING_BENCH_MAX_IN_FLIGHT` (the engine's `max_in_flight`; unset =
//! the backend's own, 4, so up to 4 `insert_many` calls of the engine overlap
//! while the raw side makes one at a time) tune it.

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventtracking::{DeliveryConfig, Event, Overflow, Tracker};
use eventtracking_mongo::{default_indexes, event_to_document, IndexSpec, MongoBackend};
use mongodb::bson::{doc, RawDocumentBuf};
use mongodb::options::{Acknowledgment, CollectionOptions, WriteConcern};
use mongodb::{Client, Collection};
use serde_json::json;

const ROUNDS: usize = 3;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn seed_events(n: usize) -> Vec<Arc<Event>> {
    eventtracking_testkit::seed_example_stream(n)
}

fn raw_collection(client: &Client, database: &str, name: &str) -> Collection<RawDocumentBuf> {
    let mut concern = WriteConcern::default();
    concern.w = Some(Acknowledgment::Nodes(1));
    client.database(database).collection_with_options(
        name,
        CollectionOptions::builder().write_concern(concern).build(),
    )
}

fn raw_round(
    runtime: &tokio::runtime::Runtime,
    client: &Client,
    database: &str,
    name: &str,
    docs: &[RawDocumentBuf],
    batch: usize,
) -> Duration {
    let collection = raw_collection(client, database, name);
    runtime.block_on(async {
        collection
            .create_indexes(default_indexes().iter().map(IndexSpec::model))
            .await
            .unwrap();
        let start = Instant::now();
        for chunk in docs.chunks(batch) {
            collection.insert_many(chunk).ordered(false).await.unwrap();
        }
        let elapsed = start.elapsed();
        assert_eq!(
            collection.count_documents(doc! {}).await.unwrap(),
            docs.len() as u64
        );
        collection.drop().await.unwrap();
        elapsed
    })
}

/// `EVENTTRACKING_BENCH_MAX_IN_FLIGHT` as `max_in_flight`, if set (else the backend's own).
fn max_in_flight(delivery: DeliveryConfig) -> DeliveryConfig {
    match std::env::var("EVENTTRACKING_BENCH_MAX_IN_FLIGHT")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(n) => delivery.with_max_in_flight(n),
        None => delivery,
    }
}

fn tracker_round(
    runtime: &tokio::runtime::Runtime,
    client: &Client,
    uri: &str,
    database: &str,
    name: &str,
    events: &[Arc<Event>],
    batch: usize,
) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let backend = MongoBackend::builder(uri)
        .with_database(database)
        .with_collection(name)
        .build()
        .unwrap();
    let tracker = Tracker::builder()
        .with_delivery(max_in_flight(
            DeliveryConfig::default()
                .with_queue_capacity(events.len().max(1 << 16))
                .with_overflow(Overflow::Block)
                .with_block_timeout(std::time::Duration::from_millis(60_000))
                .with_batch_size(batch)
                .with_dead_letter_path(dir.path().join("dl.jsonl")),
        ))
        .with_backend("mongo", backend)
        .build()
        .unwrap();
    // Connect and create the indexes before timing, like the raw side.
    tracker.emit("warm.up", json!({})).unwrap();
    assert!(tracker.flush(Duration::from_secs(60)).complete);
    let collection = raw_collection(client, database, name);
    let deadline = Instant::now() + Duration::from_secs(30);
    while runtime
        .block_on(collection.list_index_names().into_future())
        .map_or(0, |names| names.len())
        < 3
    {
        assert!(Instant::now() < deadline, "the indexes never appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    let start = Instant::now();
    for event in events {
        tracker.emit_event(event.clone()).unwrap();
    }
    let report = tracker.flush(Duration::from_secs(600));
    let elapsed = start.elapsed();
    assert_eq!(
        report.backends["mongo"].delivered,
        events.len() as u64 + 1,
        "{report}"
    );
    tracker.shutdown(Duration::from_secs(10));
    runtime.block_on(collection.drop().into_future()).unwrap();
    elapsed
}

fn main() {
    let uri = std::env::var("EVENTTRACKING_BENCH_MONGO_URI")
        .or_else(|_| std::env::var("EVENTTRACKING_TEST_MONGO_URI"))
        .unwrap_or_else(|_| "mongodb://127.0.0.1:27117".into());
    let n = env_usize("EVENTTRACKING_BENCH_EVENTS", 50_000);
    let batch = env_usize("EVENTTRACKING_BENCH_BATCH", 1_000);
    let database = format!("et_bench_{:012x}", fastrand::u64(..) >> 16);
    let events = seed_events(n);

    let start = Instant::now();
    let docs: Vec<RawDocumentBuf> = events
        .iter()
        .map(|e| event_to_document(e).unwrap())
        .collect();
    let encode = start.elapsed();
    let bytes: usize = docs.iter().map(|d| d.as_bytes().len()).sum();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = runtime
        .block_on(Client::with_uri_str(&uri))
        .unwrap_or_else(|e| panic!("{uri}: {e}"));
    runtime
        .block_on(
            client
                .database("admin")
                .run_command(doc! {"ping": 1})
                .into_future(),
        )
        .unwrap_or_else(|e| {
            panic!("no MongoDB server at {uri} ({e}): run `scripts/services start mongo`")
        });
    // Warm-up: connections, the server's code paths.
    raw_round(
        &runtime,
        &client,
        &database,
        "warm",
        &docs[..n.min(2_000)],
        batch,
    );

    let mut raw = Vec::new();
    let mut pipeline = Vec::new();
    for round in 0..ROUNDS {
        raw.push(raw_round(
            &runtime,
            &client,
            &database,
            &format!("raw{round}"),
            &docs,
            batch,
        ));
        pipeline.push(tracker_round(
            &runtime,
            &client,
            &uri,
            &database,
            &format!("tracker{round}"),
            &events,
            batch,
        ));
    }
    runtime
        .block_on(client.database(&database).drop().into_future())
        .unwrap();
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    let show = |d: &[Duration]| {
        d.iter()
            .map(|d| format!("{:.0}", rate(*d)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let best_raw = *raw.iter().min().unwrap();
    let best_pipeline = *pipeline.iter().min().unwrap();
    println!(
        "mongo throughput, {n} seed events ({} bytes of BSON each on average) to {uri}, batch {batch}, max_in_flight {}, best of {ROUNDS} (alternating):",
        bytes / n.max(1),
        std::env::var("EVENTTRACKING_BENCH_MAX_IN_FLIGHT").unwrap_or_else(|_| "4 (the backend's default)".into())
    );
    println!(
        "  raw driver insert_many (documents made before timing): {:>8.0} docs/s   (rounds: {})",
        rate(best_raw),
        show(&raw)
    );
    println!(
        "  eventtracking (emit_event -> mongo backend):           {:>8.0} docs/s   (rounds: {})  = {:.2}x raw",
        rate(best_pipeline),
        show(&pipeline),
        best_raw.as_secs_f64() / best_pipeline.as_secs_f64()
    );
    println!(
        "  BSON encoding alone (event_to_document):               {:>8.2} us/event",
        encode.as_secs_f64() * 1e6 / n.max(1) as f64
    );
}
