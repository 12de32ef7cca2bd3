//! The collector's throughput, whole process, beside a minimal axum server
//! in the same run.
//!
//! Two servers, each its own process, on loopback:
//!
//! - the collector: the release `eventtracking serve` with a `discard`
//!   backend (write key checked, server context stamped, the event parsed
//!   and validated, emitted into the tracker);
//! - the baseline: this bench binary re-run as a minimal axum server whose
//!   `POST /v1/events` parses the same JSON body into a `serde_json::Value`
//!   and discards it (what any collector must at least do).
//!
//! A load generator in this process (`EVENTTRACKING_BENCH_CONNECTIONS`
//! keep-alive HTTP/1.1 connections, default 8) sends, alternating the two
//! servers round by round (`EVENTTRACKING_BENCH_ROUNDS`, default 3):
//!
//! - batched: `EVENTTRACKING_BENCH_REQUESTS` (default 2,000) POSTs of 100
//!   seed events each (events/s, p50 and p99 latency);
//! - single: the same number of POSTs of one event (requests/s, p99).
//!
//! `EVENTTRACKING_BENCH_CASE=batched` or `=single` runs only that case
//! (e.g. to profile the server under it).
//!
//! Run: `cargo bench -p eventtracking-cli --bench collector` (prints
//! figures; not part of the test run). The load generator shares the
//! machine's cores with the server under test, as a client on the same
//! host would.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

const KEY: &str = "bench-write-key";
const BASELINE_ENV: &str = "EVENTTRACKING_BENCH_BASELINE_SERVER";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The minimal server: parse, discard, answer 202.
fn run_baseline_server() {
    use axum::routing::post;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let app = axum::Router::new().route(
            "/v1/events",
            post(|body: Bytes| async move {
                match serde_json::from_slice::<Value>(&body) {
                    Ok(value) => {
                        let n = match &value {
                            Value::Object(map) => map
                                .get("events")
                                .and_then(Value::as_array)
                                .map_or(1, Vec::len),
                            Value::Array(events) => events.len(),
                            _ => 1,
                        };
                        (
                            http::StatusCode::ACCEPTED,
                            format!("{{\"accepted\":{n},\"rejected\":[]}}"),
                        )
                    }
                    Err(error) => (http::StatusCode::BAD_REQUEST, error.to_string()),
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        eprintln!("listening on {}", listener.local_addr().unwrap());
        axum::serve(listener, app).await.unwrap();
    });
}

/// A server process and its address (read from its stderr).
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(mut command: Command) -> Server {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the server");
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("the server printed its address")
                .unwrap();
            if let Some(addr) = line.split_whitespace().find_map(|word| {
                word.trim_start_matches("http://")
                    .trim_end_matches(',')
                    .parse::<SocketAddr>()
                    .ok()
            }) {
                break addr;
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server { child, addr }
    }
}

/// A server process's CPU time (every live thread, user and kernel, from
/// `/proc/PID/task/*/schedstat`) and context switches (voluntary and not):
/// a diagnostic printed beside each figure, since wall time on a shared
/// 2-core machine hides where a server spends its time.
#[derive(Clone, Copy, Default)]
struct Usage {
    cpu: Duration,
    switches: u64,
}

impl Server {
    fn usage(&self) -> Usage {
        let mut usage = Usage::default();
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", self.child.id())) else {
            return usage;
        };
        for task in tasks.flatten() {
            let path = task.path();
            if let Ok(schedstat) = std::fs::read_to_string(path.join("schedstat")) {
                let nanos = schedstat
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse().ok());
                usage.cpu += Duration::from_nanos(nanos.unwrap_or(0));
            }
            if let Ok(status) = std::fs::read_to_string(path.join("status")) {
                usage.switches += status
                    .lines()
                    .filter(|line| line.contains("ctxt_switches:"))
                    .filter_map(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
                    .sum::<u64>();
            }
        }
        usage
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn seed_event(i: usize) -> Value {
    json!({
        "name": "navigation.request",
        "data": {"url": format!("/courses/{i}/about"), "method": "GET", "referrer": "https://www.example.com/"},
        "context": {"page": "course_about", "session_id": "3f1c0a52", "ab_test": "b"},
    })
}

struct Figures {
    events_per_second: f64,
    requests_per_second: f64,
    p50: Duration,
    p99: Duration,
}

async fn load(
    addr: SocketAddr,
    body: Bytes,
    events_per_request: usize,
    requests: usize,
    connections: usize,
) -> Figures {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(connections)
        .build_http();
    let uri: http::Uri = format!("http://{addr}/v1/events").parse().unwrap();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (client, uri, body, next) = (client.clone(), uri.clone(), body.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < requests {
                let request = http::Request::post(uri.clone())
                    .header("content-type", "application/json")
                    .header("x-eventtracking-key", KEY)
                    .body(Full::new(body.clone()))
                    .unwrap();
                let sent = Instant::now();
                let response = client.request(request).await.expect("the server answers");
                let status = response.status();
                let answer = response.into_body().collect().await.unwrap().to_bytes();
                assert_eq!(
                    status,
                    http::StatusCode::ACCEPTED,
                    "{}",
                    String::from_utf8_lossy(&answer)
                );
                latencies.push(sent.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::with_capacity(requests);
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Figures {
        events_per_second: (requests * events_per_request) as f64 / elapsed,
        requests_per_second: requests as f64 / elapsed,
        p50: at(0.50),
        p99: at(0.99),
    }
}

fn main() {
    if std::env::var_os(BASELINE_ENV).is_some() {
        run_baseline_server();
        return;
    }
    // `cargo bench` passes `--bench`; anything else (e.g. `cargo test --benches`) is a no-op.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let requests = env_usize("EVENTTRACKING_BENCH_REQUESTS", 2_000);
    let rounds = env_usize("EVENTTRACKING_BENCH_ROUNDS", 3).max(1);
    let connections = env_usize("EVENTTRACKING_BENCH_CONNECTIONS", 8).max(1);
    let only = std::env::var("EVENTTRACKING_BENCH_CASE").unwrap_or_default();

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("collector.toml");
    std::fs::write(
        &config,
        format!(
            "[collector]\nwrite_keys = [\"{KEY}\"]\nmax_events_per_request = 500\n\n\
             [delivery]\ndead_letter_path = {:?}\n\n[backends.null]\nengine = \"discard\"\n",
            dir.path().join("dead-letter.jsonl")
        ),
    )
    .unwrap();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_eventtracking"));
    serve
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config);
    let collector = Server::start(serve);
    let mut baseline = Command::new(std::env::current_exe().unwrap());
    baseline.env(BASELINE_ENV, "1");
    let baseline = Server::start(baseline);

    let batch: Vec<Value> = (0..100).map(seed_event).collect();
    let batched = Bytes::from(serde_json::to_vec(&json!({ "events": batch })).unwrap());
    let single = Bytes::from(serde_json::to_vec(&seed_event(0)).unwrap());

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "collector throughput, {requests} POSTs per case, {connections} connections, {rounds} rounds alternating (whole processes on loopback):"
    );
    let mut best = [[0f64; 2]; 2]; // [case][server]
    for round in 1..=rounds {
        for (case, (body, per_request)) in [(&batched, 100), (&single, 1)].into_iter().enumerate() {
            if !only.is_empty() && only != ["batched", "single"][case] {
                continue;
            }
            let mut line = format!(
                "  round {round}, {}:",
                if case == 0 {
                    "batched (100 events)"
                } else {
                    "single event"
                }
            );
            for (side, server) in [(0, &collector), (1, &baseline)] {
                let before = server.usage();
                let figures = runtime.block_on(load(
                    server.addr,
                    body.clone(),
                    per_request,
                    requests,
                    connections,
                ));
                let rate = if case == 0 {
                    figures.events_per_second
                } else {
                    figures.requests_per_second
                };
                best[case][side] = best[case][side].max(rate);
                let after = server.usage();
                line += &format!(
                    " {} {:>9.0} {}/s p50 {:>7.2?} p99 {:>7.2?} (server CPU {:.1} µs, {:.2} context switches per request);",
                    if side == 0 { "collector" } else { "baseline" },
                    rate,
                    if case == 0 { "events" } else { "requests" },
                    figures.p50,
                    figures.p99,
                    (after.cpu - before.cpu).as_secs_f64() * 1e6 / requests as f64,
                    (after.switches - before.switches) as f64 / requests as f64
                );
            }
            println!("{line}");
        }
    }
    for (case, unit) in [(0, "events/s, batched"), (1, "requests/s, single")] {
        if best[case][1] == 0.0 {
            continue;
        }
        println!(
            "  best: collector {:.0} {unit}, baseline {:.0}: {:.2}x",
            best[case][0],
            best[case][1],
            best[case][0] / best[case][1]
        );
    }
}
