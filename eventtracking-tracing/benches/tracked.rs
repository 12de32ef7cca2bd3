#![allow(missing_docs)] // criterion_group! generates undocumented items
//! A tracked `tracing::info!` beside `tracker.emit` of the same payload (the
//! seed's `navigation.request`), in the same context (`user_id` from a span
//! for the layer, from an entered context for `emit`), into a discarding
//! backend.
//!
//! As the engine's emit bench: each sample emits (timed), flushing every
//! 10,000 events (untimed), so the queue never overflows. The delivery
//! worker waits for the flush (huge batch, long linger): the figures are
//! what the calling thread pays.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use eventtracking::{DeliveryConfig, DiscardBackend, Tracker};
use eventtracking_tracing::TrackingLayer;
use serde::Serialize;
use tracing_subscriber::prelude::*;

#[derive(Serialize)]
struct NavigationRequest {
    url: &'static str,
}

fn tracker() -> Tracker {
    let delivery = DeliveryConfig::default()
        .with_queue_capacity(1 << 20)
        .with_batch_size(1 << 20)
        .with_linger(Duration::from_secs(3600));
    Tracker::builder()
        .with_delivery(delivery)
        .with_backend("discard", DiscardBackend)
        .build()
        .unwrap()
}

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

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("tracked event");
    group.throughput(Throughput::Elements(1));

    let tracker = tracker();
    group.bench_function("tracker.emit", |b| {
        let _context = tracker
            .context("outer", serde_json::json!({"user_id": 10938}))
            .unwrap();
        b.iter_custom(|iters| {
            timed(&tracker, iters, || {
                tracker
                    .emit(
                        "navigation.request",
                        NavigationRequest {
                            url: "http://www.edx.org/some/path/1",
                        },
                    )
                    .unwrap()
            })
        });
    });

    let layer = TrackingLayer::builder()
        .with_tracker(tracker.clone())
        .build();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        group.bench_function("tracing::info! (TrackingLayer)", |b| {
            let span = tracing::info_span!("request", user_id = 10938);
            let _entered = span.enter();
            b.iter_custom(|iters| {
                timed(&tracker, iters, || {
                    tracing::info!(
                        target: "track.navigation.request",
                        url = "http://www.edx.org/some/path/1"
                    )
                })
            });
        });
        group.bench_function("tracing::info! not tracked (TrackingLayer)", |b| {
            b.iter_custom(|iters| {
                timed(&tracker, iters, || {
                    tracing::info!(url = "http://www.edx.org/some/path/1")
                })
            });
        });
    });
    group.finish();
    let report = tracker.shutdown(Duration::from_secs(60)).unwrap();
    assert_eq!(report.total_dropped(), 0);
}

criterion_group!(benches, bench);
criterion_main!(benches);
