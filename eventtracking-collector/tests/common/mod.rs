//! Helpers shared by the integration tests: the collector on an ephemeral
//! loopback port (real TCP, real HTTP/1.1), a client, in-memory trackers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventtracking::file::FileBackend;
use eventtracking::{async_trait, Backend, BackendResult, Event, InMemoryBackend, Tracker};
use eventtracking_collector::{Collector, CollectorConfig};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Semaphore};

/// Longest wait for a flush; only reached when something is broken.
pub(crate) const DEADLINE: Duration = Duration::from_secs(30);

/// The write key most tests use.
pub(crate) const KEY: &str = "wk_test_8d2f1c";

/// A tracker whose only backend keeps events in memory.
pub(crate) fn memory_tracker() -> (Tracker, InMemoryBackend) {
    let memory = InMemoryBackend::new();
    let tracker = Tracker::builder()
        .with_backend("memory", memory.clone())
        .build()
        .expect("tracker");
    (tracker, memory)
}

/// A tracker writing JSON lines to `events.jsonl` in `dir`: events are
/// dropped once written (what lets the collector reuse their maps).
pub(crate) fn file_tracker(dir: &Path) -> (Tracker, PathBuf) {
    let path = dir.join("events.jsonl");
    let backend = FileBackend::builder(&path).build().expect("file backend");
    let tracker = Tracker::builder()
        .with_backend("file", backend)
        .build()
        .expect("tracker");
    (tracker, path)
}

/// The events in the file, after a flush.
pub(crate) async fn read_events(tracker: &Tracker, path: &Path) -> Vec<Value> {
    let report = tracker.flush_async(DEADLINE).await;
    assert!(report.complete, "flush did not complete: {report}");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

/// Settings on an ephemeral loopback port with [`KEY`] as the write key.
pub(crate) fn config() -> CollectorConfig {
    CollectorConfig::default()
        .with_write_keys([KEY])
        .expect("a valid key")
}

/// A running collector.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    pub(crate) collector: Collector,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// An answer: status, headers and the body (as JSON when it is JSON).
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Value,
}

impl Reply {
    /// A header as text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Server {
    /// Starts `tracker` behind a collector with `config` on 127.0.0.1:0.
    pub(crate) async fn start(tracker: Tracker, config: CollectorConfig) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Server::start_on(listener, tracker, config).await
    }

    /// Starts `tracker` behind a collector with `config` on `listener`.
    pub(crate) async fn start_on(
        listener: TcpListener,
        tracker: Tracker,
        config: CollectorConfig,
    ) -> Server {
        let collector = Collector::new(tracker, config).expect("collector");
        let addr = listener.local_addr().expect("address");
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = collector.clone();
        let task = tokio::spawn(serving.serve(listener, async move {
            let _ = stopped.await;
        }));
        Server {
            addr,
            collector,
            stop: Some(stop),
            task: Some(task),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Sends a request; `headers` as name/value pairs.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(body.into())).expect("request");
        let response = self.client.request(request).await.expect("response");
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.expect("body").to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// POSTs JSON to `/v1/events` with [`KEY`] as a bearer token.
    pub(crate) async fn post(&self, body: &Value) -> Reply {
        self.post_with(&[], body).await
    }

    /// POSTs JSON with [`KEY`] and more headers.
    pub(crate) async fn post_with(&self, headers: &[(&str, &str)], body: &Value) -> Reply {
        let bearer = format!("Bearer {KEY}");
        let mut all = vec![
            ("content-type", "application/json"),
            ("authorization", bearer.as_str()),
        ];
        all.extend_from_slice(headers);
        self.send(Method::POST, "/v1/events", &all, body.to_string())
            .await
    }

    /// A GET.
    pub(crate) async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, &[], Bytes::new()).await
    }

    /// Stops serving (the tracker keeps running).
    pub(crate) async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("the server task").expect("serve");
        }
    }
}

/// Every event delivered so far.
pub(crate) async fn delivered(tracker: &Tracker, memory: &InMemoryBackend) -> Vec<Arc<Event>> {
    let report = tracker.flush_async(DEADLINE).await;
    assert!(report.complete, "flush did not complete: {report}");
    memory.events()
}

/// A backend that sends nothing until its gate opens, then keeps the ids.
#[derive(Clone)]
pub(crate) struct Stalled {
    pub(crate) gate: Arc<Semaphore>,
    pub(crate) stored: Arc<Mutex<Vec<String>>>,
}

impl Stalled {
    /// Closed until `gate.add_permits`.
    pub(crate) fn new() -> Self {
        Stalled {
            gate: Arc::new(Semaphore::new(0)),
            stored: Arc::default(),
        }
    }
}

#[async_trait]
impl Backend for Stalled {
    async fn send_batch(&self, batch: &[Arc<Event>]) -> BackendResult {
        let _permit = self.gate.acquire().await;
        let mut stored = self.stored.lock().unwrap();
        stored.extend(batch.iter().map(|e| e.id().to_string()));
        Ok(())
    }
}

/// POSTs up to `most` single events (`data(i)` each, with ids of their
/// own) until one is answered 503: the ids answered 202, and that 503.
pub(crate) async fn post_until_refused(
    server: &Server,
    most: usize,
    data: impl Fn(usize) -> Value,
) -> (Vec<String>, Option<Reply>) {
    let mut accepted = Vec::new();
    for i in 0..most {
        let id = format!("0190f3a2-7b1c-7d4e-8f00-{i:012}");
        let reply = server
            .post(&serde_json::json!({"name": "tick", "data": data(i), "id": id}))
            .await;
        match reply.status {
            StatusCode::ACCEPTED => accepted.push(id),
            StatusCode::SERVICE_UNAVAILABLE => return (accepted, Some(reply)),
            other => panic!("unexpected {other}: {reply:?}"),
        }
    }
    (accepted, None)
}
