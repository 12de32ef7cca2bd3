#![allow(missing_docs)] // criterion_group! generates undocumented items
//! The emit path: three nested contexts, the seed's payloads, a discarding backend.
//!
//! Each sample emits events (timed) and then flushes (not timed), so the
//! queue never overflows and every emitted event is really accepted.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use eventtracking_core::{DeliveryConfig, DiscardBackend, Tracker};
use serde::Serialize;
use serde_json::json;

#[derive(Serialize)]
struct NavigationRequest {
    url: &'static str,
}

#[derive(Serialize)]
struct PostalAddress {
    postal_code: &'static str,
    country: &'static str,
}

#[derive(Serialize)]
struct AddressCreate {
    name: &'static str,
    address: PostalAddress,
}

fn tracker() -> Tracker {
    Tracker::builder()
        .with_delivery(DeliveryConfig::default().with_queue_capacity(1 << 20))
        .with_backend("discard", DiscardBackend)
        .build()
        .unwrap()
}

/// Times `iters` calls of `emit_one`, flushing every 100k (untimed) so the queue never fills.
fn timed(tracker: &Tracker, iters: u64, mut emit_one: impl FnMut()) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let chunk = left.min(100_000);
        let start = Instant::now();
        for _ in 0..chunk {
            emit_one();
        }
        total += start.elapsed();
        tracker.flush(Duration::from_secs(60));
        left -= chunk;
    }
    total
}

fn emit(c: &mut Criterion) {
    let tracker = tracker();
    let _outer = tracker.context("outer", json!({"user_id": 10938})).unwrap();
    let _session = tracker
        .context(
            "session",
            json!({"session_id": "2987lkjdyoioey", "org": "edX"}),
        )
        .unwrap();
    let _request = tracker
        .context("request", json!({"user_id": 11111, "path": "/some/path"}))
        .unwrap();

    let mut group = c.benchmark_group("emit");
    group.throughput(Throughput::Elements(1));
    group.bench_function("typed payload, 3 contexts, discard backend", |b| {
        b.iter_custom(|iters| {
            timed(&tracker, iters, || {
                tracker
                    .emit(
                        "navigation.request",
                        &NavigationRequest {
                            url: "http://www.edx.org/some/path/1",
                        },
                    )
                    .unwrap()
            })
        })
    });
    group.bench_function("nested typed payload (address.create)", |b| {
        b.iter_custom(|iters| {
            timed(&tracker, iters, || {
                tracker
                    .emit(
                        "address.create",
                        &AddressCreate {
                            name: "foo",
                            address: PostalAddress {
                                postal_code: "90210",
                                country: "United States",
                            },
                        },
                    )
                    .unwrap()
            })
        })
    });
    group.bench_function("json! payload built per call", |b| {
        b.iter_custom(|iters| {
            timed(&tracker, iters, || {
                tracker
                    .emit_value(
                        "navigation.request",
                        json!({"url": "http://www.edx.org/some/path/1"}),
                    )
                    .unwrap()
            })
        })
    });
    group.finish();
    let report = tracker.flush(Duration::from_secs(60));
    assert_eq!(report.total_dropped(), 0, "{report}");
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = emit
}
criterion_main!(benches);
