//! Helpers shared by the integration tests: a real axum server on an
//! ephemeral loopback port, a real HTTP/1.1 client, in-memory trackers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing;
use axum::{Extension, Router};
use eventtracking::{
    async_trait, Backend, BackendResult, DeliveryConfig, Event, InMemoryBackend, Tracker,
};
use eventtracking_tower::{RequestId, TrackingContextLayer};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// Longest wait for a flush; only reached when something is broken.
pub(crate) const DEADLINE: Duration = Duration::from_secs(30);

/// A tracker whose only backend keeps events in memory.
pub(crate) fn memory_tracker() -> (Tracker, InMemoryBackend) {
    let memory = InMemoryBackend::new();
    let tracker = Tracker::builder()
        .with_backend("memory", memory.clone())
        .build()
        .expect("tracker");
    (tracker, memory)
}

/// Keeps each event's JSON, not the event, as the file and Kafka backends
/// do: the engine drops the events (and the context maps they share) after
/// each batch, so the layer can recycle those maps.
#[derive(Clone, Default)]
pub(crate) struct JsonBackend(Arc<Mutex<Vec<Value>>>);

#[async_trait]
impl Backend for JsonBackend {
    async fn send_batch(&self, batch: &[Arc<Event>]) -> BackendResult {
        let mut events = self.0.lock().expect("not poisoned");
        events.extend(batch.iter().map(|event| event.to_value()));
        Ok(())
    }
}

/// A tracker that delivers to a [`JsonBackend`] in small batches (the
/// events are dropped soon after they are emitted).
pub(crate) fn json_tracker() -> (Tracker, JsonBackend) {
    let backend = JsonBackend::default();
    let tracker = Tracker::builder()
        .with_delivery(
            DeliveryConfig::default()
                .with_batch_size(16)
                .with_linger(std::time::Duration::from_millis(1)),
        )
        .with_backend("json", backend.clone())
        .build()
        .expect("tracker");
    (tracker, backend)
}

/// Every event's JSON delivered so far.
pub(crate) async fn delivered_json(tracker: &Tracker, backend: &JsonBackend) -> Vec<Value> {
    let report = tracker.flush_async(DEADLINE).await;
    assert!(report.complete, "flush did not complete: {report}");
    assert_eq!(report.total_dropped(), 0, "{report}");
    backend.0.lock().expect("not poisoned").clone()
}

/// Every event emitted so far, once delivered.
pub(crate) async fn delivered(tracker: &Tracker, memory: &InMemoryBackend) -> Vec<Arc<Event>> {
    let report = tracker.flush_async(DEADLINE).await;
    assert!(report.complete, "flush did not complete: {report}");
    assert_eq!(report.total_dropped(), 0, "{report}");
    memory.events()
}

/// An axum server on `127.0.0.1:0`, serving with `ConnectInfo<SocketAddr>`.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    pub(crate) async fn start(app: Router) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let serve = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        );
        let task = tokio::spawn(async move { serve.await });
        Server { addr, task }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A pooling HTTP/1.1 client (hyper-util's legacy client).
pub(crate) type HttpClient = Client<HttpConnector, Empty<Bytes>>;

pub(crate) fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// What a request got back.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

impl Reply {
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header in {self:?}"))
            .to_str()
            .expect("visible ASCII")
    }
}

/// `GET url` with extra headers.
pub(crate) async fn get(client: &HttpClient, url: &str, headers: &[(&str, &str)]) -> Reply {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(
            http::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            http::HeaderValue::from_str(value).expect("header value"),
        );
    }
    send(client, url, map).await
}

/// `GET url` with these headers (any bytes).
pub(crate) async fn send(client: &HttpClient, url: &str, headers: HeaderMap) -> Reply {
    let mut request = http::Request::get(url).body(Empty::new()).expect("request");
    *request.headers_mut() = headers;
    let response = client
        .request(request)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// `GET /probe` emits `probe` with the request id the handler sees (the
/// `RequestId` extension and the request header) and answers it as the
/// body. `GET /status/{code}` answers that status without an event.
pub(crate) fn probe_app(tracker: Tracker, layer: TrackingContextLayer) -> Router {
    Router::new()
        .route("/probe", routing::get(probe))
        .route(
            "/status/{code}",
            routing::get(
                |axum::extract::Path(code): axum::extract::Path<u16>| async move {
                    StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST)
                },
            ),
        )
        .with_state(tracker)
        .layer(layer)
}

async fn probe(
    State(tracker): State<Tracker>,
    Extension(id): Extension<RequestId>,
    headers: HeaderMap,
) -> String {
    tokio::task::yield_now().await;
    let header = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    tracker
        .emit(
            "probe",
            json!({"extension_id": id.as_str(), "header_id": header}),
        )
        .expect("emit");
    id.as_str().to_owned()
}

/// An event's context as a plain map (for readable assertion messages).
pub(crate) fn context(event: &Event) -> BTreeMap<String, Value> {
    event
        .context()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The only event named `name`.
pub(crate) fn only<'a>(events: &'a [Arc<Event>], name: &str) -> &'a Event {
    let found: Vec<_> = events.iter().filter(|e| e.name() == name).collect();
    assert_eq!(found.len(), 1, "expected one {name} event in {events:?}");
    found[0]
}
