//! What `TrackingContextLayer` costs per request, against the same server
//! without it, in the same run.
//!
//! ```sh
//! cargo bench -p eventtracking-tower --bench overhead
//! EVENTTRACKING_BENCH_REQUESTS=50000 cargo bench -p eventtracking-tower --bench overhead
//! ```
//!
//! Two measurements, each alternating the variants over several rounds and
//! reporting the median round:
//!
//! 1. **HTTP**: an axum server on 127.0.0.1 (its own one-thread runtime) and
//!    a keep-alive HTTP/1.1 client (hyper-util, its own one-thread runtime,
//!    `CONCURRENCY` requests in flight). µs/request is wall time divided by
//!    requests (the inverse of throughput, not latency). Loopback only, a
//!    bounded number of requests.
//! 2. **In process**: the same router called through `tower::ServiceExt`
//!    without a network, one request at a time: the layer's own cost
//!    without socket noise.
//!
//! Every handler emits one event (to a `discard` backend), so the layer's
//! effect on emitting (a bigger context to stamp) is included. Variants:
//! `bare` (no layer), `layer` (default settings plus an `X-User-Id`
//! extractor), `layer+event` (also a request event per request).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::routing::get;
use axum::Router;
use eventtracking_core::{DiscardBackend, Tracker};
use eventtracking_tower::TrackingContextLayer;
use http::request::Parts;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use tower::ServiceExt;

const ROUNDS: usize = 5;
const CONCURRENCY: usize = 32;

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    Bare,
    Layer,
    LayerEvent,
}

const VARIANTS: [Variant; 3] = [Variant::Bare, Variant::Layer, Variant::LayerEvent];

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Bare => "bare",
            Variant::Layer => "layer",
            Variant::LayerEvent => "layer+event",
        }
    }
}

async fn course_view(State(tracker): State<Tracker>, Path(id): Path<u64>) -> &'static str {
    let _ = tracker.emit("course.view", json!({"course_id": id}));
    "ok"
}

fn app(variant: Variant, tracker: &Tracker) -> Router {
    let router = Router::new()
        .route("/courses/{id}", get(course_view))
        .with_state(tracker.clone());
    let builder = TrackingContextLayer::builder().with_extractor(|request: &Parts| {
        match request.headers.get("x-user-id") {
            Some(user) => user.to_str().map(|user| json!({"user_id": user})),
            None => Ok(json!(null)),
        }
    });
    match variant {
        Variant::Bare => router,
        Variant::Layer => router.layer(builder.build().expect("layer")),
        Variant::LayerEvent => router.layer(
            builder
                .with_request_event("http.request")
                .with_tracker(tracker.clone())
                .build()
                .expect("layer"),
        ),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

fn requests() -> usize {
    std::env::var("EVENTTRACKING_BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n >= CONCURRENCY)
        .unwrap_or(10_000)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Sends `total` GETs to `addr`, `CONCURRENCY` at a time; returns the wall time.
async fn drive(addr: SocketAddr, total: usize) -> Duration {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(CONCURRENCY)
        .build_http();
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..CONCURRENCY {
        let client = client.clone();
        let count = total / CONCURRENCY + usize::from(worker < total % CONCURRENCY);
        tasks.spawn(async move {
            for i in 0..count {
                let request = http::Request::get(format!("http://{addr}/courses/{i}"))
                    .header("x-user-id", format!("user-{worker}"))
                    .body(Empty::new())
                    .expect("request");
                let response = client.request(request).await.expect("response");
                assert_eq!(response.status(), 200);
                response.into_body().collect().await.expect("body");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("client task");
    }
    start.elapsed()
}

fn http_bench(tracker: &Tracker, total: usize) -> Vec<(Variant, f64)> {
    let server_rt = runtime();
    let client_rt = runtime();
    let addrs: Vec<SocketAddr> = VARIANTS
        .iter()
        .map(|variant| {
            let app = app(*variant, tracker);
            server_rt.block_on(async {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                let addr = listener.local_addr().expect("addr");
                tokio::spawn(async move {
                    axum::serve(
                        listener,
                        app.into_make_service_with_connect_info::<SocketAddr>(),
                    )
                    .await
                });
                addr
            })
        })
        .collect();

    // Warm-up: connections, allocator, caches.
    for addr in &addrs {
        client_rt.block_on(drive(*addr, total / 5));
        tracker.flush(Duration::from_secs(30));
    }
    let mut rounds: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
    for _ in 0..ROUNDS {
        for (index, addr) in addrs.iter().enumerate() {
            let elapsed = client_rt.block_on(drive(*addr, total));
            rounds[index].push(elapsed.as_secs_f64() * 1e6 / total as f64);
            tracker.flush(Duration::from_secs(30));
        }
    }
    server_rt.shutdown_background();
    client_rt.shutdown_background();
    VARIANTS
        .iter()
        .zip(rounds)
        .map(|(variant, us)| (*variant, median(us)))
        .collect()
}

fn in_process_bench(tracker: &Tracker, total: usize) -> Vec<(Variant, f64)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let apps: Vec<Router> = VARIANTS.iter().map(|v| app(*v, tracker)).collect();
    let request = |i: usize| {
        http::Request::get(format!("/courses/{i}"))
            .header("x-user-id", "user-1")
            .header("user-agent", "bench/1")
            .body(Body::empty())
            .expect("request")
    };
    let run = |app: &Router, count: usize| {
        rt.block_on(async {
            let start = Instant::now();
            for i in 0..count {
                let response = app.clone().oneshot(request(i)).await.expect("infallible");
                assert_eq!(response.status(), 200);
            }
            start.elapsed()
        })
    };
    for app in &apps {
        run(app, total / 5);
        tracker.flush(Duration::from_secs(30));
    }
    let mut rounds: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
    for _ in 0..ROUNDS {
        for (index, app) in apps.iter().enumerate() {
            rounds[index].push(run(app, total).as_secs_f64() * 1e6 / total as f64);
            // Empty the delivery queue between rounds (not timed), so no
            // round runs against a full queue (where emits are dropped).
            tracker.flush(Duration::from_secs(30));
        }
    }
    VARIANTS
        .iter()
        .zip(rounds)
        .map(|(variant, us)| (*variant, median(us)))
        .collect()
}

fn print(title: &str, results: &[(Variant, f64)]) {
    let bare = results
        .iter()
        .find(|(v, _)| *v == Variant::Bare)
        .map(|(_, us)| *us)
        .expect("bare");
    println!("{title}");
    println!(
        "  {:<12} {:>12} {:>12} {:>22}",
        "variant", "requests/s", "µs/request", "overhead vs bare"
    );
    for (variant, us) in results {
        let overhead = if *variant == Variant::Bare {
            "-".to_owned()
        } else {
            format!("{:+.2} µs ({:+.1}%)", us - bare, (us - bare) / bare * 100.0)
        };
        println!(
            "  {:<12} {:>12.0} {:>12.2} {:>22}",
            variant.name(),
            1e6 / us,
            us,
            overhead
        );
    }
}

fn main() {
    let total = requests();
    let tracker = Tracker::builder()
        .with_backend("discard", DiscardBackend)
        .build()
        .expect("tracker");

    println!("eventtracking-tower overhead: {total} requests per round, median of {ROUNDS} rounds");
    let http = http_bench(&tracker, total);
    print(
        &format!("HTTP/1.1 over 127.0.0.1, keep-alive, {CONCURRENCY} in flight (µs/request = wall time / requests)"),
        &http,
    );
    let local = in_process_bench(&tracker, total * 5);
    print(
        &format!(
            "in process (tower oneshot, no network, {} requests per round)",
            total * 5
        ),
        &local,
    );

    let report = tracker
        .shutdown(Duration::from_secs(10))
        .expect("first shutdown");
    println!(
        "events emitted {}, dropped {} (a dropped event is cheaper: figures with drops are optimistic)",
        report.tracker.emitted,
        report.total_dropped()
    );
}
