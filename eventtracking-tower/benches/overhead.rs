//! What `TrackingContextLayer` costs per request, against the same server
//! without it, in the same run.
//!
//! ```sh
//! cargo bench -p eventtracking-tower --bench overhead
//! EVENTTRACKING_BENCH_REQUESTS=50000 EVENTTRACKING_BENCH_ROUNDS=9 cargo bench -p eventtracking-tower --bench overhead
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
//! The in-process measurement also counts heap allocations per request
//! (every thread, delivery included) with a counting global allocator.
//!
//! For instruction counts (stable on a noisy machine), run one variant in
//! process under callgrind at two request counts and take the difference:
//!
//! ```sh
//! EVENTTRACKING_BENCH_VARIANT=layer EVENTTRACKING_BENCH_REQUESTS=2000 \
//!   valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/deps/overhead-*
//! ```
//!
//! (`benches/instructions.sh` does this for every variant.)
//!
//! Every handler emits one event (to a `discard` backend), so the layer's
//! effect on emitting (a bigger context to stamp) is included. Variants:
//! `bare` (no layer), `layer` (default settings plus an `X-User-Id`
//! extractor), `layer+event` (also a request event per request).

use std::alloc::System;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::routing::get;
use axum::Router;
use eventtracking::{DiscardBackend, Tracker};
use eventtracking_tower::TrackingContextLayer;
use http::request::Parts;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};
use tower::ServiceExt;

/// Counts allocations and reallocations of every thread.
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn allocated() -> u64 {
    let stats = GLOBAL.stats();
    (stats.allocations + stats.reallocations) as u64
}

/// Rounds per variant unless `EVENTTRACKING_BENCH_ROUNDS` says otherwise.
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

    fn from_name(name: &str) -> Option<Variant> {
        VARIANTS.into_iter().find(|v| v.name() == name)
    }
}

async fn course_view(State(tracker): State<Tracker>, Path(id): Path<u64>) -> &'static str {
    let _ = tracker.emit("course.view", json!({"course_id": id}));
    "ok"
}

fn app(variant: Variant, tracker: &Tracker) -> Router {
    layered_app(variant, tracker).0
}

/// The app and its layer (none for `bare`).
fn layered_app(variant: Variant, tracker: &Tracker) -> (Router, Option<TrackingContextLayer>) {
    let router = Router::new()
        .route("/courses/{id}", get(course_view))
        .with_state(tracker.clone());
    let builder = TrackingContextLayer::builder().with_extractor(|request: &Parts| {
        match request.headers.get("x-user-id") {
            Some(user) => user.to_str().map(|user| json!({"user_id": user})),
            None => Ok(json!(null)),
        }
    });
    let layer = match variant {
        Variant::Bare => return (router, None),
        Variant::Layer => builder.build().expect("layer"),
        Variant::LayerEvent => builder
            .with_request_event("http.request")
            .with_tracker(tracker.clone())
            .build()
            .expect("layer"),
    };
    (router.layer(layer.clone()), Some(layer))
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

fn round_count() -> usize {
    std::env::var("EVENTTRACKING_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(ROUNDS)
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

/// Serves `variant` on an ephemeral loopback port of `rt`.
fn serve(rt: &tokio::runtime::Runtime, app: Router) -> SocketAddr {
    rt.block_on(async {
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
}

fn http_bench(tracker: &Tracker, total: usize) -> Vec<Measured> {
    let server_rt = runtime();
    let client_rt = runtime();
    let addrs: Vec<SocketAddr> = VARIANTS
        .iter()
        .map(|variant| serve(&server_rt, app(*variant, tracker)))
        .collect();

    // Warm-up: connections, allocator, caches.
    for addr in &addrs {
        client_rt.block_on(drive(*addr, total / 5));
        tracker.flush(Duration::from_secs(30));
    }
    let mut rounds: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
    let mut allocations: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
    for _ in 0..round_count() {
        for (index, addr) in addrs.iter().enumerate() {
            let before = allocated();
            let elapsed = client_rt.block_on(drive(*addr, total));
            rounds[index].push(elapsed.as_secs_f64() * 1e6 / total as f64);
            tracker.flush(Duration::from_secs(30));
            allocations[index].push((allocated() - before) as f64 / total as f64);
        }
    }
    server_rt.shutdown_background();
    client_rt.shutdown_background();
    VARIANTS
        .iter()
        .zip(rounds.into_iter().zip(allocations))
        .map(|(variant, (us, allocs))| Measured {
            variant: *variant,
            micros: median(us),
            allocations: Some(median(allocs)),
        })
        .collect()
}

/// One variant's figures: µs/request and, in process, allocations/request.
struct Measured {
    variant: Variant,
    micros: f64,
    allocations: Option<f64>,
}

fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn local_request(i: usize) -> http::Request<Body> {
    http::Request::get(format!("/courses/{i}"))
        .header("x-user-id", "user-1")
        .header("user-agent", "bench/1")
        .body(Body::empty())
        .expect("request")
}

/// `count` requests through `app`, one at a time; returns the wall time and
/// the allocations made meanwhile (every thread).
fn run_local(rt: &tokio::runtime::Runtime, app: &Router, count: usize) -> (Duration, u64) {
    rt.block_on(async {
        let before = allocated();
        let start = Instant::now();
        for i in 0..count {
            let response = app
                .clone()
                .oneshot(local_request(i))
                .await
                .expect("infallible");
            assert_eq!(response.status(), 200);
        }
        (start.elapsed(), allocated() - before)
    })
}

fn in_process_bench(tracker: &Tracker, total: usize) -> Vec<Measured> {
    let rt = current_thread_runtime();
    let apps: Vec<Router> = VARIANTS.iter().map(|v| app(*v, tracker)).collect();
    for app in &apps {
        run_local(&rt, app, total / 5);
        tracker.flush(Duration::from_secs(30));
    }
    let mut micros: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
    let mut allocations: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
    for _ in 0..round_count() {
        for (index, app) in apps.iter().enumerate() {
            let (elapsed, serving) = run_local(&rt, app, total);
            micros[index].push(elapsed.as_secs_f64() * 1e6 / total as f64);
            // Empty the delivery queue between rounds (not timed), so no
            // round runs against a full queue (where emits are dropped);
            // the delivery's allocations are counted.
            let before = allocated();
            tracker.flush(Duration::from_secs(30));
            let flushing = allocated() - before;
            allocations[index].push((serving + flushing) as f64 / total as f64);
        }
    }
    VARIANTS
        .iter()
        .zip(micros.into_iter().zip(allocations))
        .map(|(variant, (us, allocs))| Measured {
            variant: *variant,
            micros: median(us),
            allocations: Some(median(allocs)),
        })
        .collect()
}

fn print(title: &str, results: &[Measured]) {
    let bare = results
        .iter()
        .find(|m| m.variant == Variant::Bare)
        .expect("bare");
    println!("{title}");
    println!(
        "  {:<12} {:>12} {:>12} {:>22} {:>14}",
        "variant", "requests/s", "µs/request", "overhead vs bare", "allocs/request"
    );
    for m in results {
        let overhead = if m.variant == Variant::Bare {
            "-".to_owned()
        } else {
            let extra = m.micros - bare.micros;
            format!("{extra:+.2} µs ({:+.1}%)", extra / bare.micros * 100.0)
        };
        let allocations = m
            .allocations
            .map_or_else(|| "-".to_owned(), |a| format!("{a:.1}"));
        println!(
            "  {:<12} {:>12.0} {:>12.2} {:>22} {:>14}",
            m.variant.name(),
            1e6 / m.micros,
            m.micros,
            overhead,
            allocations
        );
    }
}

/// `EVENTTRACKING_BENCH_VARIANT=<name>`: only that variant, once, in
/// process or (`EVENTTRACKING_BENCH_HTTP=1`) over HTTP; for callgrind (no
/// warm-up, no rounds, no timing).
fn single_variant(tracker: &Tracker, variant: Variant, total: usize) {
    let http = std::env::var_os("EVENTTRACKING_BENCH_HTTP").is_some_and(|v| v == "1");
    let (app, layer) = layered_app(variant, tracker);
    let before = allocated();
    if http {
        let server_rt = runtime();
        let client_rt = runtime();
        let addr = serve(&server_rt, app);
        client_rt.block_on(drive(addr, total));
        server_rt.shutdown_background();
        client_rt.shutdown_background();
    } else {
        run_local(&current_thread_runtime(), &app, total);
    }
    tracker.flush(Duration::from_secs(30));
    let allocations = allocated() - before;
    println!(
        "{}: {total} requests {}, {:.1} allocations/request",
        variant.name(),
        if http { "over HTTP" } else { "in process" },
        allocations as f64 / total as f64
    );
    if let Some(layer) = layer {
        println!("{:?}", layer.stats());
    }
}

fn main() {
    let total = requests();
    let tracker = Tracker::builder()
        .with_backend("discard", DiscardBackend)
        .build()
        .expect("tracker");

    if let Ok(name) = std::env::var("EVENTTRACKING_BENCH_VARIANT") {
        let variant = Variant::from_name(&name).unwrap_or_else(|| {
            panic!("EVENTTRACKING_BENCH_VARIANT={name}: expected bare, layer or layer+event")
        });
        single_variant(&tracker, variant, total);
    } else {
        println!(
            "eventtracking-tower overhead: {total} requests per round, median of {} rounds, variants alternating",
            round_count()
        );
        let http = http_bench(&tracker, total);
        print(
            &format!("HTTP/1.1 over 127.0.0.1, keep-alive, {CONCURRENCY} in flight (µs/request = wall time / requests; allocations of server and client)"),
            &http,
        );
        let local = in_process_bench(&tracker, total * 5);
        print(
            &format!(
                "in process (tower oneshot, no network, {} requests per round; allocations on every thread)",
                total * 5
            ),
            &local,
        );
    }

    let report = tracker
        .shutdown(Duration::from_secs(10))
        .expect("first shutdown");
    println!(
        "events emitted {}, dropped {} (a dropped event is cheaper: figures with drops are optimistic)",
        report.tracker.emitted,
        report.total_dropped()
    );
}
