#![allow(missing_docs)] // criterion_group! generates undocumented items
//! The seed workload as a user runs it, per cycle of three events: enter
//! `outer`, emit, enter a scoped `inner`, emit, leave it, emit, exit `outer`
//! (contexts included, typed events as in `eventtracking demo`), through a
//! `discard` backend and through a file backend, beside a raw serde_json +
//! `BufWriter` program writing the same events, in the same run.
//!
//! The queue blocks when full, so the figures are the whole pipeline's
//! steady state: the caller cannot run ahead of the delivery thread.
//!
//! Run: `cargo bench -p eventtracking-tests --bench seed_cycle`.
//! Whole-process figures (the release CLI beside the Python original) come
//! from `scripts/bench-seed`; instruction counts from `scripts/bench-instructions`.

use std::io::Write;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use eventtracking::file::FileBackend;
use eventtracking::{
    Backend, DeliveryConfig, DiscardBackend, Overflow, TrackedEvent, TrackedEventExt, Tracker,
};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::json;

/// A page was requested.
#[derive(TrackedEvent)]
#[tracked_event(name = "navigation.request", version = 1)]
struct NavigationRequest {
    /// The URL.
    url: String,
}

/// A postal address was created.
#[derive(TrackedEvent)]
#[tracked_event(name = "address.create", version = 1)]
struct AddressCreate {
    /// The addressee.
    name: String,
    /// The address.
    address: PostalAddress,
}

/// A postal address.
#[derive(Serialize, JsonSchema)]
struct PostalAddress {
    /// The postal code.
    postal_code: String,
    /// The country.
    country: String,
}

fn seed_cycle(tracker: &Tracker) {
    tracker
        .enter_context("outer", json!({"user_id": 10938}))
        .unwrap();
    NavigationRequest {
        url: "http://www.edx.org/some/path/1".into(),
    }
    .emit_to(tracker)
    .unwrap();
    {
        let _inner = tracker
            .context(
                "inner",
                json!({"user_id": 11111, "session_id": "2987lkjdyoioey"}),
            )
            .unwrap();
        NavigationRequest {
            url: "http://www.edx.org/some/path/2".into(),
        }
        .emit_to(tracker)
        .unwrap();
    }
    AddressCreate {
        name: "foo".into(),
        address: PostalAddress {
            postal_code: "90210".into(),
            country: "United States".into(),
        },
    }
    .emit_to(tracker)
    .unwrap();
    tracker.exit_context("outer").unwrap();
}

/// The raw baseline's record: the same five fields, built per event.
#[derive(Serialize)]
struct Record<'a, D: Serialize> {
    id: uuid::Uuid,
    name: &'a str,
    timestamp: String,
    context: &'a serde_json::Value,
    data: D,
}

fn raw_event<D: Serialize>(out: &mut impl Write, name: &str, context: &serde_json::Value, data: D) {
    let record = Record {
        id: uuid::Uuid::now_v7(),
        name,
        timestamp: humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string(),
        context,
        data,
    };
    serde_json::to_writer(&mut *out, &record).unwrap();
    out.write_all(b"\n").unwrap();
}

fn raw_cycle(out: &mut impl Write) {
    #[derive(Serialize)]
    struct Navigation<'a> {
        url: &'a str,
    }
    #[derive(Serialize)]
    struct Address<'a> {
        postal_code: &'a str,
        country: &'a str,
    }
    #[derive(Serialize)]
    struct Create<'a> {
        name: &'a str,
        address: Address<'a>,
    }
    let outer = json!({"user_id": 10938});
    let url = "http://www.edx.org/some/path/1";
    raw_event(out, "navigation.request", &outer, Navigation { url });
    let inner = json!({"user_id": 11111, "session_id": "2987lkjdyoioey"});
    let url = "http://www.edx.org/some/path/2";
    raw_event(out, "navigation.request", &inner, Navigation { url });
    let address = Address {
        postal_code: "90210",
        country: "United States",
    };
    raw_event(
        out,
        "address.create",
        &outer,
        Create {
            name: "foo",
            address,
        },
    );
}

fn tracker(backend: impl Backend) -> Tracker {
    Tracker::builder()
        .with_delivery(
            DeliveryConfig::default()
                .with_overflow(Overflow::Block)
                .with_block_timeout(std::time::Duration::from_millis(60_000)),
        )
        .with_backend("sink", backend)
        .build()
        .unwrap()
}

fn seed(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("seed_cycle");
    group.throughput(Throughput::Elements(3));

    let path = dir.path().join("baseline.jsonl");
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::fs::File::create(&path).unwrap());
    group.bench_function("raw serde_json + BufWriter (baseline)", |b| {
        b.iter(|| raw_cycle(&mut out))
    });
    drop(out);

    let discard = tracker(DiscardBackend);
    group.bench_function("eventtracking, discard", |b| {
        b.iter(|| seed_cycle(&discard))
    });
    let report = discard.shutdown(Duration::from_secs(60)).unwrap();
    assert_eq!(report.total_dropped(), 0, "{report}");

    let path = dir.path().join("events.jsonl");
    let file = tracker(FileBackend::builder(&path).build().unwrap());
    group.bench_function("eventtracking, file", |b| b.iter(|| seed_cycle(&file)));
    let report = file.shutdown(Duration::from_secs(60)).unwrap();
    assert_eq!(report.total_dropped(), 0, "{report}");
    group.finish();
}

criterion_group!(benches, seed);
criterion_main!(benches);
