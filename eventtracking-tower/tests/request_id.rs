//! Request ids: taken from the configured header when usable, generated
//! (UUIDv7) otherwise; seen by the handler, in every event, in the response.

mod common;

use common::{client, delivered, get, memory_tracker, only, probe_app, Reply, Server};
use eventtracking::{Event, InMemoryBackend, Tracker};
use eventtracking_tower::TrackingContextLayer;
use uuid::Uuid;

struct Probe {
    tracker: Tracker,
    memory: InMemoryBackend,
    server: Server,
}

impl Probe {
    async fn start(layer: TrackingContextLayer) -> Probe {
        let (tracker, memory) = memory_tracker();
        let server = Server::start(probe_app(tracker.clone(), layer)).await;
        Probe {
            tracker,
            memory,
            server,
        }
    }

    /// Sends `/probe`, returns the reply and its `probe` event.
    async fn request(&self, headers: &[(&str, &str)]) -> (Reply, Event) {
        self.memory.clear();
        let reply = get(&client(), &self.server.url("/probe"), headers).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        let events = delivered(&self.tracker, &self.memory).await;
        (reply, only(&events, "probe").clone())
    }
}

fn uuid_v7(text: &str) -> Uuid {
    let id = Uuid::parse_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    assert_eq!(id.get_version_num(), 7, "{text}");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_an_id_gets_a_new_uuid_v7() {
    let probe = Probe::start(TrackingContextLayer::new()).await;
    let (reply, event) = probe.request(&[]).await;
    let id = reply.header("x-request-id").to_owned();
    uuid_v7(&id);
    assert_eq!(event.context()["request_id"], id.as_str());
    // The handler sees it as the extension and as the request header.
    assert_eq!(reply.body, id);
    assert_eq!(event.data()["extension_id"], id.as_str());
    assert_eq!(event.data()["header_id"], id.as_str());

    let (again, _) = probe.request(&[]).await;
    assert_ne!(
        again.header("x-request-id"),
        id,
        "every request gets its own id"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incoming_id_is_kept() {
    let probe = Probe::start(TrackingContextLayer::new()).await;
    let (reply, event) = probe.request(&[("x-request-id", "edge-42.abc")]).await;
    assert_eq!(reply.header("x-request-id"), "edge-42.abc");
    assert_eq!(reply.body, "edge-42.abc");
    assert_eq!(event.context()["request_id"], "edge-42.abc");
    assert_eq!(event.data()["header_id"], "edge-42.abc");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_incoming_id_is_replaced() {
    let probe = Probe::start(TrackingContextLayer::new()).await;
    let too_long = "x".repeat(eventtracking_tower::MAX_REQUEST_ID_LEN + 1);
    for bad in [too_long.as_str(), "has spaces in it", ""] {
        let (reply, event) = probe.request(&[("x-request-id", bad)]).await;
        let id = reply.header("x-request-id").to_owned();
        uuid_v7(&id);
        assert_eq!(event.context()["request_id"], id.as_str());
        // The handler sees the replacement, not the original.
        assert_eq!(event.data()["header_id"], id.as_str());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_header_is_configurable() {
    let layer = TrackingContextLayer::builder()
        .with_request_id_header("X-Correlation-Id")
        .build()
        .unwrap();
    let probe = Probe::start(layer).await;
    let (reply, event) = probe
        .request(&[
            ("x-correlation-id", "corr-1"),
            ("x-request-id", "not-this-one"),
        ])
        .await;
    assert_eq!(reply.header("x-correlation-id"), "corr-1");
    assert_eq!(event.context()["request_id"], "corr-1");
    assert_eq!(reply.body, "corr-1");

    let (reply, event) = probe.request(&[("x-request-id", "not-this-one")]).await;
    let id = reply.header("x-correlation-id").to_owned();
    uuid_v7(&id);
    assert_eq!(event.context()["request_id"], id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_response_header_can_be_turned_off() {
    let layer = TrackingContextLayer::builder()
        .with_request_id_in_response(false)
        .build()
        .unwrap();
    let probe = Probe::start(layer).await;
    let (reply, event) = probe.request(&[]).await;
    assert!(reply.headers.get("x-request-id").is_none(), "{reply:?}");
    uuid_v7(event.context()["request_id"].as_str().unwrap());
    assert_eq!(event.context()["request_id"], reply.body.as_str());
}
