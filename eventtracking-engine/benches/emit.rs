#![allow(missing_docs)] // criterion_group! generates undocumented items
//! The emit path: three nested contexts, the seed's payloads, a discarding backend.
//!
//! Each sample emits events (timed) and then flushes (not timed), so the
//! queue never overflows and every emitted event is really accepted.
//!
//! Two settings:
//! - `caller only`: the delivery worker waits (huge batch, long linger) until
//!   the untimed flush, so the figure is what `emit` costs the calling thread.
//! - `worker draining`: default batching; the worker drains and frees events
//!   on the other core while the caller emits (allocator traffic across
//!   threads included).

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use eventtracking::{DeliveryConfig, DiscardBackend, TrackedEvent, TrackedEventExt, Tracker};
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

/// A postal address (for the derived event below).
#[derive(Serialize, schemars::JsonSchema)]
struct TypedPostalAddress {
    postal_code: &'static str,
    country: &'static str,
}

/// The seed's `address.create` as a `#[derive(TrackedEvent)]` type.
#[derive(TrackedEvent)]
#[tracked_event(crate = "eventtracking", name = "address.create", version = 1)]
struct TypedAddressCreate {
    name: &'static str,
    address: TypedPostalAddress,
}

fn tracker(worker_waits: bool) -> Tracker {
    let mut delivery = DeliveryConfig::default().with_queue_capacity(1 << 20);
    if worker_waits {
        delivery = delivery
            .with_batch_size(1 << 20)
            .with_linger(std::time::Duration::from_millis(3_600_000));
    }
    Tracker::builder()
        .with_delivery(delivery)
        .with_backend("discard", DiscardBackend)
        .build()
        .unwrap()
}

/// Times `iters` calls of `emit_one`, flushing every 10k (untimed): the queue never fills,
/// and memory is reused as in a steady state rather than grown page by page.
fn timed(tracker: &Tracker, iters: u64, mut emit_one: impl FnMut()) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let chunk = left.min(10_000);
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
    for (label, worker_waits) in [("caller only", true), ("worker draining", false)] {
        emit_with(c, label, worker_waits);
    }
}

/// `emit_acked` beside plain `emit` in the same group, same tracker (discard
/// backend, three contexts, the typed `navigation.request` payload):
/// - `emit`: fire and forget (the same as the `worker draining` row);
/// - `emit_acked, wait each`: every receipt waited on before the next emit,
///   so each event costs a whole trip through the delivery worker;
/// - `emit_acked, windows of 1000`: 1,000 emitted, then their 1,000 receipts
///   waited on, and so on.
///
/// Run once with `linger_ms = 0` (the worker sends whatever is queued at
/// once) and once with the default linger (50 ms: a batch that is not full
/// waits that long for more events, so a lone acknowledged event waits too).
fn acked(c: &mut Criterion) {
    for (label, linger) in [
        ("linger 0", Some(Duration::ZERO)),
        ("default linger 50 ms", None),
    ] {
        acked_with(c, label, linger);
    }
}

fn acked_with(c: &mut Criterion, label: &str, linger: Option<Duration>) {
    let mut delivery = DeliveryConfig::default().with_queue_capacity(1 << 20);
    if let Some(linger) = linger {
        delivery = delivery.with_linger(linger);
    }
    let tracker = Tracker::builder()
        .with_delivery(delivery)
        .with_backend("discard", DiscardBackend)
        .build()
        .unwrap();
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
    let payload = || NavigationRequest {
        url: "http://www.edx.org/some/path/1",
    };

    let mut group = c.benchmark_group(format!("emit_acked ({label})"));
    group.throughput(Throughput::Elements(1));
    group.bench_function("emit (no receipt)", |b| {
        b.iter_custom(|iters| {
            timed(&tracker, iters, || {
                tracker.emit("navigation.request", payload()).unwrap()
            })
        })
    });
    group.bench_function("emit_acked, windows of 1000 receipts", |b| {
        let mut window = Vec::with_capacity(1000);
        b.iter_custom(|iters| {
            let start = Instant::now();
            let mut left = iters;
            while left > 0 {
                let n = left.min(1000);
                for _ in 0..n {
                    window.push(tracker.emit_acked("navigation.request", payload()).unwrap());
                }
                for receipt in window.drain(..) {
                    assert!(receipt.wait().is_delivered());
                }
                left -= n;
            }
            start.elapsed()
        })
    });
    if linger.is_none() {
        // Each wait lasts the linger: few samples, or the bench takes minutes.
        group.sample_size(10);
    }
    group.bench_function("emit_acked, wait each", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let receipt = tracker.emit_acked("navigation.request", payload()).unwrap();
                assert!(receipt.wait().is_delivered());
            }
            start.elapsed()
        })
    });
    group.finish();
    let report = tracker.flush(Duration::from_secs(60));
    assert_eq!(report.total_dropped(), 0, "{report}");
}

fn emit_with(c: &mut Criterion, label: &str, worker_waits: bool) {
    let tracker = tracker(worker_waits);
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

    let mut group = c.benchmark_group(format!("emit ({label})"));
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
    group.bench_function("#[derive(TrackedEvent)] (address.create, emit_to)", |b| {
        b.iter_custom(|iters| {
            timed(&tracker, iters, || {
                TypedAddressCreate {
                    name: "foo",
                    address: TypedPostalAddress {
                        postal_code: "90210",
                        country: "United States",
                    },
                }
                .emit_to(&tracker)
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
    targets = emit, acked
}
criterion_main!(benches);
